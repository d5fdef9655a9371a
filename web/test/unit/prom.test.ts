import { describe, expect, it } from "vitest";
import {
  addBuckets,
  bucketIncrease,
  buckets,
  counterIncrease,
  familyOf,
  has,
  histogramQuantile,
  increase,
  labelKey,
  matches,
  max,
  observations,
  OWN_ROUTES,
  parse,
  parseSampleLine,
  parseValue,
  quantileOrNull,
  rate,
  select,
  statusPoint,
  sum,
  sumBy,
  typeOf,
  windowBuckets,
  type Bucket,
  type Snapshot,
} from "../../src/prom";

// A trimmed capture of a real aiaas /metrics answer.
const CAPTURE = `# HELP aiaas_http_request_duration_seconds HTTP request latency by route.
# TYPE aiaas_http_request_duration_seconds histogram
aiaas_http_request_duration_seconds_bucket{route="/api/v1/models",le="0.001"} 0
aiaas_http_request_duration_seconds_bucket{route="/api/v1/models",le="0.0025"} 2
aiaas_http_request_duration_seconds_bucket{route="/api/v1/models",le="0.005"} 2
aiaas_http_request_duration_seconds_bucket{route="/api/v1/models",le="+Inf"} 2
aiaas_http_request_duration_seconds_sum{route="/api/v1/models"} 0.0031641689999999997
aiaas_http_request_duration_seconds_count{route="/api/v1/models"} 2
aiaas_http_request_duration_seconds_bucket{route="/metrics",le="0.001"} 1
aiaas_http_request_duration_seconds_bucket{route="/metrics",le="0.0025"} 1
aiaas_http_request_duration_seconds_bucket{route="/metrics",le="0.005"} 1
aiaas_http_request_duration_seconds_bucket{route="/metrics",le="+Inf"} 1
aiaas_http_request_duration_seconds_sum{route="/metrics"} 0.0002
aiaas_http_request_duration_seconds_count{route="/metrics"} 1
# HELP aiaas_http_requests_total HTTP requests by route, method and status.
# TYPE aiaas_http_requests_total counter
aiaas_http_requests_total{route="/api/v1/models",method="GET",status="200"} 2
aiaas_http_requests_total{route="/metrics",method="GET",status="200"} 1
# HELP aiaas_inference_queue_depth Requests admitted and not yet answered, per model.
# TYPE aiaas_inference_queue_depth gauge
aiaas_inference_queue_depth{model="default/news:1"} 3
aiaas_inference_queue_depth{model="default/spam:2"} 1
# HELP aiaas_llm_kv_cache_usage_ratio Share of the KV cache in use, per model.
# TYPE aiaas_llm_kv_cache_usage_ratio gauge
aiaas_llm_kv_cache_usage_ratio{model="smollm2-135m-instruct"} 0.25
# TYPE aiaas_llm_requests_running gauge
aiaas_llm_requests_running{model="smollm2-135m-instruct"} 2
# TYPE aiaas_llm_requests_waiting gauge
aiaas_llm_requests_waiting{model="smollm2-135m-instruct"} 5
# TYPE aiaas_llm_time_to_first_token_seconds histogram
aiaas_llm_time_to_first_token_seconds_bucket{model="smollm2-135m-instruct",le="1"} 0
aiaas_llm_time_to_first_token_seconds_bucket{model="smollm2-135m-instruct",le="2.5"} 0
aiaas_llm_time_to_first_token_seconds_bucket{model="smollm2-135m-instruct",le="5"} 1
aiaas_llm_time_to_first_token_seconds_bucket{model="smollm2-135m-instruct",le="+Inf"} 1
aiaas_llm_time_to_first_token_seconds_sum{model="smollm2-135m-instruct"} 3.029114503
aiaas_llm_time_to_first_token_seconds_count{model="smollm2-135m-instruct"} 1
# HELP aiaas_models_loaded Models loaded in this process.
# TYPE aiaas_models_loaded gauge
aiaas_models_loaded 2
# HELP aiaas_models_memory_bytes Estimated memory of the loaded models (weights and caches).
# TYPE aiaas_models_memory_bytes gauge
aiaas_models_memory_bytes 485148092
`;

describe("parseValue", () => {
  it("reads decimals, exponents and the special values", () => {
    expect(parseValue("42")).toBe(42);
    expect(parseValue("-0.5")).toBe(-0.5);
    expect(parseValue("1e-3")).toBe(0.001);
    expect(parseValue("2.5E+2")).toBe(250);
    expect(parseValue(".5")).toBe(0.5);
    expect(parseValue("0.0031641689999999997")).toBeCloseTo(0.003164169, 12);
    expect(parseValue("+Inf")).toBe(Infinity);
    expect(parseValue("-Inf")).toBe(-Infinity);
    expect(parseValue("inf")).toBe(Infinity);
    expect(Number.isNaN(parseValue("NaN"))).toBe(true);
    expect(Number.isNaN(parseValue("nan"))).toBe(true);
  });
  it("refuses what is not a number", () => {
    expect(() => parseValue("")).toThrow();
    expect(() => parseValue("abc")).toThrow();
    expect(() => parseValue("1,5")).toThrow();
    expect(() => parseValue("0x10")).toThrow();
    expect(() => parseValue("1.2.3")).toThrow();
  });
});

describe("parseSampleLine", () => {
  it("reads a bare sample", () => {
    expect(parseSampleLine("aiaas_models_loaded 2")).toEqual({ name: "aiaas_models_loaded", labels: {}, value: 2 });
  });
  it("reads labels, an empty label set and a timestamp", () => {
    expect(parseSampleLine('x{a="1",b="two"} 3.5 1700000000000')).toEqual({
      name: "x",
      labels: { a: "1", b: "two" },
      value: 3.5,
      timestamp: 1700000000000,
    });
    expect(parseSampleLine("x{} 1")).toEqual({ name: "x", labels: {}, value: 1 });
  });
  it("unescapes quotes, backslashes and newlines in label values", () => {
    const s = parseSampleLine('x{path="C:\\\\dir",q="say \\"hi\\"",m="a\\nb"} 1');
    expect(s.labels).toEqual({ path: "C:\\dir", q: 'say "hi"', m: "a\nb" });
  });
  it("keeps commas, braces, equals signs and spaces inside quoted values", () => {
    const s = parseSampleLine('x{a="1,2",b="}{",c="k=v",d=" spaced out "} 7');
    expect(s.labels).toEqual({ a: "1,2", b: "}{", c: "k=v", d: " spaced out " });
    expect(s.value).toBe(7);
  });
  it("allows a trailing comma and whitespace between tokens", () => {
    const s = parseSampleLine('  x { a = "1" , b="2", }   9  ');
    expect(s).toEqual({ name: "x", labels: { a: "1", b: "2" }, value: 9 });
  });
  it("reads +Inf in a le label and NaN as a value", () => {
    const s = parseSampleLine('h_bucket{le="+Inf"} NaN');
    expect(s.labels.le).toBe("+Inf");
    expect(Number.isNaN(s.value)).toBe(true);
  });
  it("reads metric names with colons", () => {
    expect(parseSampleLine("job:rate:5m 0.25").name).toBe("job:rate:5m");
  });
  it("refuses broken lines with a reason", () => {
    expect(() => parseSampleLine('x{a="1"')).toThrow(/expected|unterminated/);
    expect(() => parseSampleLine('x{a="1} 2')).toThrow(/unterminated/);
    expect(() => parseSampleLine("x{a=1} 2")).toThrow(/quoted/);
    expect(() => parseSampleLine('x{a="1" b="2"} 2')).toThrow(/","/);
    expect(() => parseSampleLine("x")).toThrow(/missing value/);
    expect(() => parseSampleLine("x 1 2 3")).toThrow();
    expect(() => parseSampleLine("x 1 soon")).toThrow(/timestamp/);
    expect(() => parseSampleLine("9x 1")).toThrow(/metric name/);
    expect(() => parseSampleLine('x{9a="1"} 1')).toThrow(/label name/);
  });
});

describe("parse", () => {
  const m = parse(CAPTURE);

  it("reads HELP and TYPE and every sample of the capture", () => {
    expect(m.errors).toEqual([]);
    expect(m.types.get("aiaas_http_request_duration_seconds")).toBe("histogram");
    expect(m.types.get("aiaas_http_requests_total")).toBe("counter");
    expect(m.types.get("aiaas_models_loaded")).toBe("gauge");
    expect(m.help.get("aiaas_models_loaded")).toBe("Models loaded in this process.");
    expect(m.samples.length).toBe(12 + 2 + 2 + 1 + 1 + 1 + 6 + 1 + 1);
    expect(m.byName.get("aiaas_http_request_duration_seconds_bucket")?.length).toBe(8);
    expect(select(m, "aiaas_models_memory_bytes")[0].value).toBe(485148092);
  });

  it("ignores comments and blank lines, handles CRLF, and unescapes HELP", () => {
    const p = parse(
      "# a plain comment\r\n\r\n#HELP not_a_help_line\r\n# HELP x Line one\\nline two \\\\ done\r\n# TYPE x counter\r\nx 1\r\n# EOF\r\n",
    );
    expect(p.errors).toEqual([]);
    expect(p.samples).toEqual([{ name: "x", labels: {}, value: 1 }]);
    expect(p.help.get("x")).toBe("Line one\nline two \\ done");
    expect(p.types.get("x")).toBe("counter");
  });

  it("keeps going past bad lines and says where they are", () => {
    const p = parse('good 1\nbad{a="1" 2\n# TYPE y sometype\nalso_good{l="v"} 3\n');
    expect(p.samples.map((s) => s.name)).toEqual(["good", "also_good"]);
    expect(p.errors.map((e) => e.line)).toEqual([2, 3]);
    expect(p.errors[1].reason).toMatch(/unknown type/);
  });

  it("knows the family and type of suffixed sample names", () => {
    expect(familyOf(m, "aiaas_http_request_duration_seconds_bucket")).toBe("aiaas_http_request_duration_seconds");
    expect(typeOf(m, "aiaas_http_request_duration_seconds_count")).toBe("histogram");
    expect(typeOf(m, "aiaas_http_requests_total")).toBe("counter");
    expect(typeOf(m, "nothing_here")).toBe("untyped");
  });

  it("parses an empty text", () => {
    const p = parse("");
    expect(p.samples).toEqual([]);
    expect(p.errors).toEqual([]);
  });
});

describe("matching and gauges", () => {
  const m = parse(CAPTURE);

  it("matches labels by string, anchored regex and predicate; absent labels are empty", () => {
    const l = { route: "/api/v1/models", status: "404" };
    expect(matches(l)).toBe(true);
    expect(matches(l, { status: "404" })).toBe(true);
    expect(matches(l, { status: /4\d\d/ })).toBe(true);
    expect(matches(l, { status: /4/ })).toBe(false); // anchored, as in PromQL
    expect(matches(l, { route: (v) => v.startsWith("/api") })).toBe(true);
    expect(matches(l, { method: "" })).toBe(true);
    expect(matches(l, { method: "GET" })).toBe(false);
  });

  it("keys label sets independently of their order", () => {
    expect(labelKey({ a: "1", b: "2" })).toBe(labelKey({ b: "2", a: "1" }));
    expect(labelKey({ a: "1", le: "5" }, ["le"])).toBe(labelKey({ a: "1" }));
    expect(labelKey({ a: "x,b=y" })).not.toBe(labelKey({ a: "x", b: "y" }));
  });

  it("sums gauges over label sets and filters by label", () => {
    expect(sum(m, "aiaas_inference_queue_depth")).toBe(4);
    expect(sum(m, "aiaas_inference_queue_depth", { model: "default/spam:2" })).toBe(1);
    expect(sum(m, "aiaas_inference_queue_depth", { model: /default\/.*/ })).toBe(4);
    expect(sum(m, "aiaas_inference_queue_depth", { model: "nope" })).toBeUndefined();
    expect(sum(m, "aiaas_missing")).toBeUndefined();
    expect(sum(m, "aiaas_models_loaded")).toBe(2);
    expect(max(m, "aiaas_llm_kv_cache_usage_ratio")).toBe(0.25);
    expect(has(m, "aiaas_llm_requests_waiting")).toBe(true);
    expect(has(m, "aiaas_llm_nothing")).toBe(false);
  });

  it("leaves NaN out of sums", () => {
    const p = parse('g{a="1"} NaN\ng{a="2"} 2\ng{a="3"} 3\n');
    expect(sum(p, "g")).toBe(5);
    expect(max(p, "g")).toBe(3);
    const only = parse("g NaN\n");
    expect(sum(only, "g")).toBe(0);
    expect(max(only, "g")).toBeUndefined();
  });

  it("sums by one label", () => {
    const p = parse(
      'r{route="/a",status="200"} 5\nr{route="/b",status="200"} 2\nr{route="/a",status="503"} 1\n',
    );
    expect([...sumBy(p, "r", "status")].sort()).toEqual([
      ["200", 7],
      ["503", 1],
    ]);
  });
});

describe("counters", () => {
  it("takes a drop as a reset", () => {
    expect(counterIncrease(10, 15)).toBe(5);
    expect(counterIncrease(10, 10)).toBe(0);
    expect(counterIncrease(10, 3)).toBe(3);
    expect(counterIncrease(undefined, 4)).toBe(4);
  });

  const a = parse(
    'req{route="/a",status="200"} 100\nreq{route="/a",status="500"} 4\nreq{route="/b",status="200"} 50\n',
  );
  const b = parse(
    // /a 200 grew by 20, /a 500 was reset to 1, /b vanished, /c is new with 6.
    'req{status="200",route="/a"} 120\nreq{route="/a",status="500"} 1\nreq{route="/c",status="404"} 6\n',
  );

  it("sums per-series increases, counting resets and new series from zero", () => {
    expect(increase(a, b, "req")).toBe(20 + 1 + 6);
    expect(increase(a, b, "req", { status: /5\d\d/ })).toBe(1);
    expect(increase(a, b, "req", { status: /4\d\d/ })).toBe(6);
    expect(increase(a, a, "req")).toBe(0);
  });

  it("turns increases into per-second rates", () => {
    const s1: Snapshot = { t: 10_000, m: a };
    const s2: Snapshot = { t: 12_000, m: b };
    expect(rate(s1, s2, "req")).toBe(13.5);
    expect(rate(s1, s2, "req", { route: "/a", status: "200" })).toBe(10);
    expect(Number.isNaN(rate(s2, s1, "req"))).toBe(true);
    expect(Number.isNaN(rate(s1, s1, "req"))).toBe(true);
  });

  it("counts a whole-server restart (every counter lower) as a reset", () => {
    const before = parse('req{route="/a"} 1000\nreq{route="/b"} 10\n');
    const after = parse('req{route="/a"} 7\nreq{route="/b"} 2\n');
    expect(increase(before, after, "req")).toBe(9);
  });
});

const B = (pairs: [number, number][]): Bucket[] => pairs.map(([le, count]) => ({ le, count }));

describe("histogram quantiles", () => {
  // 10 observations: 2 in (0,1], 6 in (1,2], 2 in (2,4].
  const h = B([
    [1, 2],
    [2, 8],
    [4, 10],
    [Infinity, 10],
  ]);

  it("interpolates linearly within the bucket, like histogram_quantile", () => {
    expect(histogramQuantile(0.5, h)).toBeCloseTo(1.5, 12); // rank 5: 3 of 6 in (1,2]
    expect(histogramQuantile(0.1, h)).toBeCloseTo(0.5, 12); // first bucket starts at 0
    expect(histogramQuantile(0.2, h)).toBeCloseTo(1, 12);
    expect(histogramQuantile(0.9, h)).toBeCloseTo(3, 12); // rank 9: 1 of 2 in (2,4]
    expect(histogramQuantile(1, h)).toBeCloseTo(4, 12);
  });

  it("gives the largest finite bound when the rank falls in +Inf", () => {
    const tail = B([
      [1, 1],
      [2, 2],
      [Infinity, 10],
    ]);
    expect(histogramQuantile(0.99, tail)).toBe(2);
    expect(histogramQuantile(0.5, tail)).toBe(2);
  });

  it("does not interpolate below a bucket bound ≤ 0", () => {
    const neg = B([
      [-1, 5],
      [0, 8],
      [Infinity, 10],
    ]);
    expect(histogramQuantile(0.1, neg)).toBe(-1);
  });

  it("answers NaN without data, without +Inf or with one bucket; ±Inf for q out of range", () => {
    expect(Number.isNaN(histogramQuantile(0.5, []))).toBe(true);
    expect(
      Number.isNaN(
        histogramQuantile(
          0.5,
          B([
            [1, 0],
            [Infinity, 0],
          ]),
        ),
      ),
    ).toBe(true);
    expect(
      Number.isNaN(
        histogramQuantile(
          0.5,
          B([
            [1, 3],
            [2, 5],
          ]),
        ),
      ),
    ).toBe(true);
    expect(Number.isNaN(histogramQuantile(0.5, B([[Infinity, 5]])))).toBe(true);
    expect(Number.isNaN(histogramQuantile(NaN, h))).toBe(true);
    expect(histogramQuantile(-0.1, h)).toBe(-Infinity);
    expect(histogramQuantile(1.1, h)).toBe(Infinity);
  });

  it("sorts buckets, adds equal bounds and repairs non-monotonic counts", () => {
    const shuffled = [h[2], h[0], h[3], h[1]];
    expect(histogramQuantile(0.5, shuffled)).toBeCloseTo(1.5, 12);
    const dup = B([
      [1, 1],
      [1, 1],
      [2, 8],
      [4, 10],
      [Infinity, 10],
    ]);
    expect(histogramQuantile(0.5, dup)).toBeCloseTo(1.5, 12);
    // 3 at le=2 is below 8 at le=1: raised to 8, so the median lies in (0,1].
    const bumpy = B([
      [1, 8],
      [2, 3],
      [Infinity, 10],
    ]);
    expect(histogramQuantile(0.5, bumpy)).toBeCloseTo(0.625, 12);
    // The input is not modified.
    expect(bumpy[1].count).toBe(3);
  });

  it("sums buckets across label sets by le before taking the quantile", () => {
    const m = parse(
      [
        'lat_bucket{route="/a",le="0.1"} 4',
        'lat_bucket{route="/a",le="1"} 4',
        'lat_bucket{route="/a",le="+Inf"} 4',
        'lat_bucket{le="0.1",route="/b"} 0',
        'lat_bucket{route="/b",le="1"} 4',
        'lat_bucket{route="/b",le="+Inf"} 4',
      ].join("\n"),
    );
    const all = buckets(m, "lat");
    expect(all).toEqual(
      B([
        [0.1, 4],
        [1, 8],
        [Infinity, 8],
      ]),
    );
    expect(observations(all)).toBe(8);
    expect(histogramQuantile(0.5, all)).toBeCloseTo(0.1, 12);
    expect(histogramQuantile(0.75, all)).toBeCloseTo(0.55, 12);
    expect(histogramQuantile(0.5, buckets(m, "lat", { route: "/b" }))).toBeCloseTo(0.55, 12);
  });

  it("adds bucket lists", () => {
    expect(
      addBuckets(
        B([
          [1, 1],
          [Infinity, 2],
        ]),
        B([
          [0.5, 1],
          [1, 3],
          [Infinity, 3],
        ]),
      ),
    ).toEqual(
      B([
        [0.5, 1],
        [1, 4],
        [Infinity, 5],
      ]),
    );
    expect(observations([])).toBe(0);
    expect(observations(B([[1, 3]]))).toBe(0);
  });

  it("returns null for no observations through quantileOrNull", () => {
    expect(quantileOrNull(0.5, null)).toBeNull();
    expect(quantileOrNull(0.5, [])).toBeNull();
    expect(quantileOrNull(0.5, h)).toBeCloseTo(1.5, 12);
  });
});

describe("histogram increases between scrapes", () => {
  const t1 = parse(
    [
      'lat_bucket{route="/a",le="1"} 10',
      'lat_bucket{route="/a",le="2"} 20',
      'lat_bucket{route="/a",le="+Inf"} 20',
      'lat_bucket{route="/b",le="1"} 100',
      'lat_bucket{route="/b",le="2"} 100',
      'lat_bucket{route="/b",le="+Inf"} 100',
    ].join("\n"),
  );
  const t2 = parse(
    [
      // /a: 2 more in (0,1], 4 more in (1,2]
      'lat_bucket{route="/a",le="1"} 12',
      'lat_bucket{route="/a",le="2"} 26',
      'lat_bucket{route="/a",le="+Inf"} 26',
      // /b was reset: 1 in (1,2], 1 above 2
      'lat_bucket{route="/b",le="1"} 0',
      'lat_bucket{route="/b",le="2"} 1',
      'lat_bucket{route="/b",le="+Inf"} 2',
      // /c is new
      'lat_bucket{route="/c",le="1"} 1',
      'lat_bucket{route="/c",le="2"} 1',
      'lat_bucket{route="/c",le="+Inf"} 1',
    ].join("\n"),
  );

  it("subtracts per series, handling resets and new series, then sums by le", () => {
    expect(bucketIncrease(t1, t2, "lat")).toEqual(
      B([
        [1, 2 + 0 + 1],
        [2, 6 + 1 + 1],
        [Infinity, 6 + 2 + 1],
      ]),
    );
    expect(bucketIncrease(t1, t2, "lat", { route: "/a" })).toEqual(
      B([
        [1, 2],
        [2, 6],
        [Infinity, 6],
      ]),
    );
    expect(observations(bucketIncrease(t1, t1, "lat"))).toBe(0);
  });

  it("gives the interval's quantiles, not the cumulative ones", () => {
    // Interval on /a: 2 ≤ 1 s, 4 in (1,2]; the median (rank 3) is 1 + 1·(1/4).
    expect(histogramQuantile(0.5, bucketIncrease(t1, t2, "lat", { route: "/a" }))).toBeCloseTo(1.25, 12);
    // Cumulative on /a: 12 ≤ 1 s out of 26, the median (rank 13) is 1 + 1/14.
    expect(histogramQuantile(0.5, buckets(t2, "lat", { route: "/a" }))).toBeCloseTo(1 + 1 / 14, 12);
  });
});

describe("statusPoint", () => {
  const first: Snapshot = { t: 1_000_000, m: parse(CAPTURE) };
  const next: Snapshot = {
    t: 1_002_000,
    m: parse(
      CAPTURE.replace(
        'aiaas_http_requests_total{route="/api/v1/models",method="GET",status="200"} 2',
        [
          'aiaas_http_requests_total{route="/api/v1/models",method="GET",status="200"} 8',
          'aiaas_http_requests_total{route="/api/v1/models/{name}/predict",method="POST",status="400"} 1',
          'aiaas_http_requests_total{route="/v1/chat/completions",method="POST",status="503"} 1',
        ].join("\n"),
      )
        .replace('aiaas_http_requests_total{route="/metrics",method="GET",status="200"} 1', 'aiaas_http_requests_total{route="/metrics",method="GET",status="200"} 2')
        .replace('{route="/api/v1/models",le="0.005"} 2', '{route="/api/v1/models",le="0.005"} 6')
        .replace('{route="/api/v1/models",le="+Inf"} 2', '{route="/api/v1/models",le="+Inf"} 8')
        .replace('{route="/metrics",le="0.001"} 1', '{route="/metrics",le="0.001"} 2')
        .replace('{route="/metrics",le="0.0025"} 1', '{route="/metrics",le="0.0025"} 2')
        .replace('{route="/metrics",le="0.005"} 1', '{route="/metrics",le="0.005"} 2')
        .replace('{route="/metrics",le="+Inf"} 1', '{route="/metrics",le="+Inf"} 2'),
    ),
  };

  it("has gauges but no rates on the first scrape, and cumulative latency", () => {
    const p = statusPoint(null, first);
    expect(p.seconds).toBeNull();
    expect(p.all.rps).toBeNull();
    expect(p.all.latency.delta).toBeNull();
    expect(observations(p.all.latency.total)).toBe(3);
    expect(observations(p.others.latency.total)).toBe(2);
    expect(p.queue).toBe(4);
    expect(p.llmWaiting).toBe(5);
    expect(p.llmRunning).toBe(2);
    expect(p.kvCacheMax).toBe(0.25);
    expect(p.models).toBe(2);
    expect(p.memory).toBe(485148092);
    expect(quantileOrNull(0.5, p.ttft?.total)).toBeCloseTo(3.75, 12);
    expect(p.tpot).toBeNull();
  });

  it("has rates, error rates and interval latency from the second scrape on", () => {
    const p = statusPoint(first, next);
    expect(p.seconds).toBe(2);
    // 6 on /api/v1/models, 1 predict 400, 1 chat 503, 1 /metrics: 9 in 2 s.
    expect(p.all.rps).toBeCloseTo(4.5, 12);
    expect(p.all.rps4xx).toBeCloseTo(0.5, 12);
    expect(p.all.rps5xx).toBeCloseTo(0.5, 12);
    expect(p.others.rps).toBeCloseTo(4, 12);
    expect(OWN_ROUTES).toContain("/metrics");
    // Interval latency: 6 on /api/v1/models, all in (0.0025, 0.005] except 2 above.
    expect(p.others.latency.delta).toEqual(
      B([
        [0.001, 0],
        [0.0025, 0],
        [0.005, 4],
        [Infinity, 6],
      ]),
    );
    expect(observations(p.all.latency.delta!)).toBe(7);
    expect(quantileOrNull(0.5, p.others.latency.delta)).toBeCloseTo(0.0025 + 0.0025 * (3 / 4), 12);
    expect(quantileOrNull(0.99, p.others.latency.delta)).toBe(0.005);
  });

  it("ignores a previous scrape that is not older", () => {
    const p = statusPoint(next, first);
    expect(p.seconds).toBeNull();
    expect(p.all.rps).toBeNull();
  });

  it("leaves absent metrics null", () => {
    const p = statusPoint(null, { t: 1, m: parse("something_else 1\n") });
    expect(p.queue).toBeNull();
    expect(p.llmWaiting).toBeNull();
    expect(p.models).toBeNull();
    expect(p.ttft).toBeNull();
    expect(p.all.latency.total).toEqual([]);
  });
});

describe("windowBuckets", () => {
  const total = B([
    [1, 5],
    [Infinity, 5],
  ]);
  it("sums the deltas in the window", () => {
    const w = windowBuckets([
      { delta: null, total },
      {
        delta: B([
          [1, 1],
          [Infinity, 2],
        ]),
        total,
      },
      {
        delta: B([
          [1, 1],
          [Infinity, 1],
        ]),
        total,
      },
    ]);
    expect(w).toEqual({
      buckets: B([
        [1, 2],
        [Infinity, 3],
      ]),
      sinceStart: false,
    });
  });
  it("falls back to the totals when the window saw nothing", () => {
    const w = windowBuckets([
      null,
      {
        delta: B([
          [1, 0],
          [Infinity, 0],
        ]),
        total,
      },
    ]);
    expect(w).toEqual({ buckets: total, sinceStart: true });
    expect(windowBuckets([{ delta: null, total }])).toEqual({ buckets: total, sinceStart: true });
    expect(windowBuckets([null, null])).toBeNull();
  });
});
