// The Prometheus text exposition format (version 0.0.4) and the little metric maths the
// status page needs: counter rates between two scrapes (with counter resets), gauges
// summed over label sets, and histogram quantiles interpolated within buckets the way
// Prometheus' histogram_quantile() does. Pure functions: no DOM, no fetch.

export type Labels = Record<string, string>;

export type MetricType =
  | "counter"
  | "gauge"
  | "histogram"
  | "summary"
  | "untyped"
  | "gaugehistogram"
  | "info"
  | "stateset"
  | "unknown";

const TYPES: ReadonlySet<string> = new Set([
  "counter",
  "gauge",
  "histogram",
  "summary",
  "untyped",
  "gaugehistogram",
  "info",
  "stateset",
  "unknown",
]);

/** One line of data: `name{labels} value [timestamp]`. */
export interface Sample {
  name: string;
  labels: Labels;
  value: number;
  /** Milliseconds since the epoch, when the exposition gives one. */
  timestamp?: number;
}

export interface ParseError {
  /** 1-based line number. */
  line: number;
  text: string;
  reason: string;
}

export interface Parsed {
  samples: Sample[];
  /** The samples of each sample name (e.g. `x_bucket`, `x_sum`), in order of appearance. */
  byName: Map<string, Sample[]>;
  /** `# TYPE` of each metric family. */
  types: Map<string, MetricType>;
  /** `# HELP` of each metric family, unescaped. */
  help: Map<string, string>;
  /** Lines that could not be read; they are skipped, the rest of the text is kept. */
  errors: ParseError[];
}

/** A parsed scrape and when it was taken (milliseconds since the epoch). */
export interface Snapshot {
  t: number;
  m: Parsed;
}

// ---------------------------------------------------------------------------------------
// Parsing

const NAME_START = /[a-zA-Z_:]/;
const NAME_CHAR = /[a-zA-Z0-9_:]/;
const LABEL_START = /[a-zA-Z_]/;
const LABEL_CHAR = /[a-zA-Z0-9_]/;
const FLOAT = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

/**
 * A sample value: a decimal float, or `NaN`, `+Inf`, `-Inf` (case-insensitive, as Go's
 * ParseFloat reads them; `Inf` and `Infinity` too). Throws on anything else.
 */
export function parseValue(s: string): number {
  const l = s.toLowerCase();
  if (l === "nan" || l === "+nan" || l === "-nan") return NaN;
  if (l === "+inf" || l === "inf" || l === "+infinity" || l === "infinity") return Infinity;
  if (l === "-inf" || l === "-infinity") return -Infinity;
  if (!FLOAT.test(s)) throw new Error(`not a number: ${JSON.stringify(s)}`);
  return Number(s);
}

function isSpace(c: string | undefined): boolean {
  return c === " " || c === "\t";
}

/** Unescape a HELP text: `\\` and `\n` (any other backslash is kept as is). */
function unescapeHelp(s: string): string {
  return s.replace(/\\(\\|n)/g, (_, c: string) => (c === "n" ? "\n" : "\\"));
}

/** Read one sample line; throws with a reason when it is not one. */
export function parseSampleLine(line: string): Sample {
  let i = 0;
  const n = line.length;
  const skip = () => {
    while (i < n && isSpace(line[i])) i++;
  };
  skip();
  const nameStart = i;
  if (i >= n || !NAME_START.test(line[i])) throw new Error("expected a metric name");
  i++;
  while (i < n && NAME_CHAR.test(line[i])) i++;
  const name = line.slice(nameStart, i);
  const labels: Labels = {};
  skip();
  if (line[i] === "{") {
    i++;
    for (;;) {
      skip();
      if (i >= n) throw new Error("unterminated label set");
      if (line[i] === "}") {
        i++;
        break;
      }
      const ls = i;
      if (!LABEL_START.test(line[i])) throw new Error(`expected a label name at column ${i + 1}`);
      i++;
      while (i < n && LABEL_CHAR.test(line[i])) i++;
      const label = line.slice(ls, i);
      skip();
      if (line[i] !== "=") throw new Error(`expected "=" after label ${label}`);
      i++;
      skip();
      if (line[i] !== '"') throw new Error(`expected a quoted value for label ${label}`);
      i++;
      let value = "";
      let closed = false;
      while (i < n) {
        const c = line[i];
        if (c === "\\") {
          const next = line[i + 1];
          if (next === undefined) break;
          value += next === "n" ? "\n" : next === '"' || next === "\\" ? next : `\\${next}`;
          i += 2;
        } else if (c === '"') {
          closed = true;
          i++;
          break;
        } else {
          value += c;
          i++;
        }
      }
      if (!closed) throw new Error(`unterminated value of label ${label}`);
      labels[label] = value;
      skip();
      if (line[i] === ",") {
        i++;
        continue;
      }
      if (line[i] === "}") {
        i++;
        break;
      }
      throw new Error(`expected "," or "}" after label ${label}`);
    }
  }
  const rest = line.slice(i).trim().split(/[ \t]+/).filter(Boolean);
  if (rest.length === 0) throw new Error("missing value");
  if (rest.length > 2) throw new Error("unexpected text after the timestamp");
  const value = parseValue(rest[0]);
  const sample: Sample = { name, labels, value };
  if (rest.length === 2) {
    if (!/^-?\d+$/.test(rest[1])) throw new Error(`bad timestamp ${JSON.stringify(rest[1])}`);
    sample.timestamp = Number(rest[1]);
  }
  return sample;
}

/**
 * Parse an exposition. Never throws: lines that are not understood end up in `errors`.
 * Comments other than `# HELP` and `# TYPE` are ignored, as are blank lines.
 */
export function parse(text: string): Parsed {
  const out: Parsed = { samples: [], byName: new Map(), types: new Map(), help: new Map(), errors: [] };
  const lines = text.split(/\r?\n/);
  for (let k = 0; k < lines.length; k++) {
    const raw = lines[k];
    const line = raw.trim();
    if (line === "") continue;
    if (line.startsWith("#")) {
      const m = /^#[ \t]+(HELP|TYPE)[ \t]+([a-zA-Z_:][a-zA-Z0-9_:]*)(?:[ \t]+(.*))?$/.exec(line);
      if (!m) continue; // a plain comment
      const [, kind, name, arg = ""] = m;
      if (kind === "HELP") out.help.set(name, unescapeHelp(arg));
      else {
        const t = arg.trim().toLowerCase();
        if (TYPES.has(t)) out.types.set(name, t as MetricType);
        else out.errors.push({ line: k + 1, text: raw, reason: `unknown type ${JSON.stringify(arg)}` });
      }
      continue;
    }
    try {
      const s = parseSampleLine(line);
      out.samples.push(s);
      const list = out.byName.get(s.name);
      if (list) list.push(s);
      else out.byName.set(s.name, [s]);
    } catch (e) {
      out.errors.push({ line: k + 1, text: raw, reason: (e as Error).message });
    }
  }
  return out;
}

/** The family a sample name belongs to (`x_bucket` → `x` when `x` is a histogram). */
export function familyOf(m: Parsed, sampleName: string): string {
  if (m.types.has(sampleName)) return sampleName;
  for (const suffix of ["_bucket", "_sum", "_count", "_created", "_total", "_info"]) {
    if (sampleName.endsWith(suffix)) {
      const base = sampleName.slice(0, -suffix.length);
      if (m.types.has(base)) return base;
    }
  }
  return sampleName;
}

/** The declared type of the family of a sample name, `untyped` when none was declared. */
export function typeOf(m: Parsed, sampleName: string): MetricType {
  return m.types.get(familyOf(m, sampleName)) ?? "untyped";
}

// ---------------------------------------------------------------------------------------
// Selecting series

/**
 * Which label sets to keep: each label must equal a string, match a regular expression
 * (anchored, as in PromQL), or pass a predicate. A missing label reads as "".
 */
export type Matcher = Record<string, string | RegExp | ((value: string) => boolean)>;

export function matches(labels: Labels, match?: Matcher): boolean {
  if (!match) return true;
  for (const [k, want] of Object.entries(match)) {
    const v = labels[k] ?? "";
    if (typeof want === "string") {
      if (v !== want) return false;
    } else if (want instanceof RegExp) {
      const anchored = new RegExp(`^(?:${want.source})$`, want.flags.replace(/[gy]/g, ""));
      if (!anchored.test(v)) return false;
    } else if (!want(v)) return false;
  }
  return true;
}

/** A stable key for a label set (sorted), optionally leaving some labels out. */
export function labelKey(labels: Labels, without: string[] = []): string {
  return Object.keys(labels)
    .filter((k) => !without.includes(k))
    .sort()
    .map((k) => `${k}=${JSON.stringify(labels[k])}`)
    .join(",");
}

/** The samples with this exact name whose labels match. */
export function select(m: Parsed, name: string, match?: Matcher): Sample[] {
  return (m.byName.get(name) ?? []).filter((s) => matches(s.labels, match));
}

/** Whether any series of this name exists (whatever its labels). */
export function has(m: Parsed, name: string): boolean {
  return (m.byName.get(name)?.length ?? 0) > 0;
}

/**
 * The sum of the matching series (gauges, or a counter's current total); NaN samples are
 * left out. `undefined` when no series matches, so "absent" and "zero" stay apart.
 */
export function sum(m: Parsed, name: string, match?: Matcher): number | undefined {
  const list = select(m, name, match);
  if (list.length === 0) return undefined;
  let total = 0;
  for (const s of list) if (!Number.isNaN(s.value)) total += s.value;
  return total;
}

/** The largest matching value (NaN left out); `undefined` when none matches. */
export function max(m: Parsed, name: string, match?: Matcher): number | undefined {
  let best: number | undefined;
  for (const s of select(m, name, match)) {
    if (Number.isNaN(s.value)) continue;
    if (best === undefined || s.value > best) best = s.value;
  }
  return best;
}

/** Sum the matching series per value of one label (e.g. requests by `status`). */
export function sumBy(m: Parsed, name: string, label: string, match?: Matcher): Map<string, number> {
  const out = new Map<string, number>();
  for (const s of select(m, name, match)) {
    if (Number.isNaN(s.value)) continue;
    const k = s.labels[label] ?? "";
    out.set(k, (out.get(k) ?? 0) + s.value);
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Counters

/** The increase of one counter series from `prev` to `cur`: a drop means it was reset. */
export function counterIncrease(prev: number | undefined, cur: number): number {
  if (prev === undefined || Number.isNaN(prev)) return cur;
  return cur < prev ? cur : cur - prev;
}

/**
 * How much the matching counter series grew between two scrapes, summed over label sets.
 * Per series: a counter that went down was reset (restart) and counts from zero; a series
 * absent from the earlier scrape counts from zero too (series are created on their first
 * increment). NaN samples are left out.
 */
export function increase(prev: Parsed, cur: Parsed, name: string, match?: Matcher): number {
  const before = new Map<string, number>();
  for (const s of select(prev, name, match)) before.set(labelKey(s.labels), s.value);
  let total = 0;
  for (const s of select(cur, name, match)) {
    if (Number.isNaN(s.value)) continue;
    total += counterIncrease(before.get(labelKey(s.labels)), s.value);
  }
  return total;
}

/**
 * Per-second rate of the matching counters between two snapshots; NaN when the scrapes are
 * not in order in time.
 */
export function rate(prev: Snapshot, cur: Snapshot, name: string, match?: Matcher): number {
  const seconds = (cur.t - prev.t) / 1000;
  if (!(seconds > 0)) return NaN;
  return increase(prev.m, cur.m, name, match) / seconds;
}

// ---------------------------------------------------------------------------------------
// Histograms

/** A cumulative bucket: observations `<= le`. */
export interface Bucket {
  le: number;
  count: number;
}

/** The cumulative buckets of each matching histogram series, by label set (without `le`). */
function bucketsBySeries(m: Parsed, name: string, match?: Matcher): Map<string, Map<number, number>> {
  const out = new Map<string, Map<number, number>>();
  for (const s of m.byName.get(`${name}_bucket`) ?? []) {
    const le = s.labels.le;
    if (le === undefined) continue;
    const rest: Labels = { ...s.labels };
    delete rest.le;
    if (!matches(rest, match)) continue;
    let bound: number;
    try {
      bound = parseValue(le);
    } catch {
      continue;
    }
    if (Number.isNaN(bound) || Number.isNaN(s.value)) continue;
    const key = labelKey(rest);
    let series = out.get(key);
    if (!series) out.set(key, (series = new Map()));
    series.set(bound, (series.get(bound) ?? 0) + s.value);
  }
  return out;
}

function toSorted(byLe: Map<number, number>): Bucket[] {
  return [...byLe.entries()].map(([le, count]) => ({ le, count })).sort((a, b) => a.le - b.le);
}

/** Add bucket lists by upper bound (`sum by (le)`). */
export function addBuckets(...lists: Bucket[][]): Bucket[] {
  const byLe = new Map<number, number>();
  for (const list of lists) for (const b of list) byLe.set(b.le, (byLe.get(b.le) ?? 0) + b.count);
  return toSorted(byLe);
}

/** The matching histogram's cumulative buckets, summed across label sets by `le`. */
export function buckets(m: Parsed, name: string, match?: Matcher): Bucket[] {
  const byLe = new Map<number, number>();
  for (const series of bucketsBySeries(m, name, match).values()) {
    for (const [le, c] of series) byLe.set(le, (byLe.get(le) ?? 0) + c);
  }
  return toSorted(byLe);
}

/**
 * The observations made between two scrapes, as buckets summed across label sets by `le`
 * (what `sum by (le) (increase(x_bucket[…]))` gives). A series whose count went down in
 * any bucket was reset and counts from zero; one absent from the earlier scrape too.
 */
export function bucketIncrease(prev: Parsed, cur: Parsed, name: string, match?: Matcher): Bucket[] {
  const before = bucketsBySeries(prev, name, match);
  const byLe = new Map<number, number>();
  for (const [key, series] of bucketsBySeries(cur, name, match)) {
    const old = before.get(key);
    let reset = !old;
    if (old) {
      for (const [le, c] of series) {
        if (c < (old.get(le) ?? 0)) {
          reset = true;
          break;
        }
      }
    }
    for (const [le, c] of series) {
      const d = reset ? c : c - (old!.get(le) ?? 0);
      byLe.set(le, (byLe.get(le) ?? 0) + d);
    }
  }
  return toSorted(byLe);
}

/** The number of observations in cumulative buckets (the `+Inf` bucket's count). */
export function observations(list: Bucket[]): number {
  const last = list[list.length - 1];
  return last && last.le === Infinity ? last.count : 0;
}

/**
 * The q-quantile (0 ≤ q ≤ 1) of cumulative buckets, as Prometheus' histogram_quantile():
 * linear interpolation within the bucket the rank falls in, the lowest bucket starting at
 * 0 (unless its bound is ≤ 0), and the rank falling in the `+Inf` bucket giving the largest
 * finite bound. NaN without a `+Inf` bucket, with fewer than two buckets or with no
 * observations; -Inf for q < 0 and +Inf for q > 1. Buckets need not be sorted; equal
 * bounds are added together, and counts that go down are raised to keep them monotonic.
 */
export function histogramQuantile(q: number, list: Bucket[]): number {
  if (Number.isNaN(q)) return NaN;
  if (q < 0) return -Infinity;
  if (q > 1) return Infinity;
  const bs = addBuckets(list);
  if (bs.length === 0 || bs[bs.length - 1].le !== Infinity) return NaN;
  let top = 0;
  for (const b of bs) {
    if (b.count < top) b.count = top;
    else top = b.count;
  }
  if (bs.length < 2) return NaN;
  const total = bs[bs.length - 1].count;
  if (total === 0) return NaN;
  let rank = q * total;
  let i = 0;
  while (i < bs.length - 1 && bs[i].count < rank) i++;
  if (i === bs.length - 1) return bs[bs.length - 2].le;
  if (i === 0 && bs[0].le <= 0) return bs[0].le;
  let start = 0;
  const end = bs[i].le;
  let count = bs[i].count;
  if (i > 0) {
    start = bs[i - 1].le;
    count -= bs[i - 1].count;
    rank -= bs[i - 1].count;
  }
  return start + (end - start) * (rank / count);
}

// ---------------------------------------------------------------------------------------
// The status page's numbers, from aiaas' own metric names

export const M = {
  requests: "aiaas_http_requests_total",
  latency: "aiaas_http_request_duration_seconds",
  queueDepth: "aiaas_inference_queue_depth",
  llmWaiting: "aiaas_llm_requests_waiting",
  llmRunning: "aiaas_llm_requests_running",
  kvCache: "aiaas_llm_kv_cache_usage_ratio",
  modelsLoaded: "aiaas_models_loaded",
  modelsMemory: "aiaas_models_memory_bytes",
  ttft: "aiaas_llm_time_to_first_token_seconds",
  tpot: "aiaas_llm_time_per_output_token_seconds",
} as const;

/** The routes the status page itself polls, which it can leave out of the traffic. */
export const OWN_ROUTES: readonly string[] = ["/metrics", "/readyz", "/api/v1/ps"];

/** A histogram at one scrape: its increase since the previous scrape and its total. */
export interface HistPoint {
  /** Observations since the previous scrape; null on the first scrape. */
  delta: Bucket[] | null;
  /** Observations since the server started. */
  total: Bucket[];
}

export interface Traffic {
  /** Requests per second since the previous scrape (null on the first scrape). */
  rps: number | null;
  rps4xx: number | null;
  rps5xx: number | null;
  latency: HistPoint;
}

export interface StatusPoint {
  /** When the scrape was taken (ms since the epoch). */
  t: number;
  /** Seconds since the previous scrape; null for the first. */
  seconds: number | null;
  /** Every request. */
  all: Traffic;
  /** Every request except the status page's own polling (OWN_ROUTES). */
  others: Traffic;
  queue: number | null;
  llmWaiting: number | null;
  llmRunning: number | null;
  kvCacheMax: number | null;
  models: number | null;
  memory: number | null;
  ttft: HistPoint | null;
  tpot: HistPoint | null;
}

function orNull(x: number | undefined): number | null {
  return x === undefined || !Number.isFinite(x) ? null : x;
}

function traffic(prev: Snapshot | null, cur: Snapshot, match?: Matcher): Traffic {
  const r = (extra?: Matcher) => {
    if (!prev) return null;
    const v = rate(prev, cur, M.requests, { ...match, ...extra });
    return Number.isFinite(v) ? v : null;
  };
  return {
    rps: r(),
    rps4xx: r({ status: /4\d\d/ }),
    rps5xx: r({ status: /5\d\d/ }),
    latency: {
      delta: prev ? bucketIncrease(prev.m, cur.m, M.latency, match) : null,
      total: buckets(cur.m, M.latency, match),
    },
  };
}

function hist(prev: Snapshot | null, cur: Snapshot, name: string): HistPoint | null {
  if (!has(cur.m, `${name}_bucket`)) return null;
  return { delta: prev ? bucketIncrease(prev.m, cur.m, name) : null, total: buckets(cur.m, name) };
}

/** Everything the status page draws from one scrape (and the one before it, if any). */
export function statusPoint(prev: Snapshot | null, cur: Snapshot): StatusPoint {
  const p = prev && prev.t < cur.t ? prev : null;
  const notOwn: Matcher = { route: (v) => !OWN_ROUTES.includes(v) };
  return {
    t: cur.t,
    seconds: p ? (cur.t - p.t) / 1000 : null,
    all: traffic(p, cur),
    others: traffic(p, cur, notOwn),
    queue: orNull(sum(cur.m, M.queueDepth)),
    llmWaiting: orNull(sum(cur.m, M.llmWaiting)),
    llmRunning: orNull(sum(cur.m, M.llmRunning)),
    kvCacheMax: orNull(max(cur.m, M.kvCache)),
    models: orNull(sum(cur.m, M.modelsLoaded)),
    memory: orNull(sum(cur.m, M.modelsMemory)),
    ttft: hist(p, cur, M.ttft),
    tpot: hist(p, cur, M.tpot),
  };
}

/** A quantile as a number or null (no observations). */
export function quantileOrNull(q: number, list: Bucket[] | null | undefined): number | null {
  if (!list) return null;
  const v = histogramQuantile(q, list);
  return Number.isFinite(v) ? v : null;
}

/**
 * Observations over a window of points: the sum of their deltas, or, when the window saw
 * none, the latest totals (flagged `sinceStart`).
 */
export function windowBuckets(
  points: (HistPoint | null)[],
): { buckets: Bucket[]; sinceStart: boolean } | null {
  const deltas: Bucket[][] = [];
  let latest: HistPoint | null = null;
  for (const p of points) {
    if (!p) continue;
    latest = p;
    if (p.delta) deltas.push(p.delta);
  }
  if (!latest) return null;
  const summed = addBuckets(...deltas);
  if (observations(summed) > 0) return { buckets: summed, sinceStart: false };
  return { buckets: latest.total, sinceStart: true };
}
