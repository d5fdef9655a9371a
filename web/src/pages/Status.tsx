// Operations status: live numbers from /metrics (scraped every 2 s while the page is
// visible, the last 5 minutes kept in memory), the loaded models from /api/v1/ps and
// readiness from /readyz. Rates and interval latencies come from two consecutive scrapes.

import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { api, ApiError, text } from "../api";
import { LineChart, color, type Series } from "../components/chart";
import { Badge, Empty, ErrorBox, Loading, PageHeader, Stat } from "../components/ui";
import { bytes, duration } from "../format";
import { useInterval } from "../hooks";
import {
  observations,
  OWN_ROUTES,
  parse,
  quantileOrNull,
  statusPoint,
  windowBuckets,
  type Bucket,
  type Snapshot,
  type StatusPoint,
  type Traffic,
} from "../prom";
import type { Running } from "../types";

const POLL_MS = 2000;
const WINDOW_MS = 5 * 60 * 1000;

type Readiness =
  | { state: "checking" }
  | { state: "ready" }
  | { state: "not-ready"; reason: string }
  | { state: "unreachable" };

const UNREACHABLE = "The server cannot be reached. Is aiaas still running?";

function isAbort(e: unknown): boolean {
  return (e as Error)?.name === "AbortError";
}

/** Requests per second: "–" when unknown, two decimals below 10. */
function perSecond(x: number | null | undefined): string {
  if (x == null || !Number.isFinite(x)) return "–";
  if (x === 0) return "0";
  return x < 10 ? x.toFixed(2) : x.toFixed(1);
}

/** A latency in seconds, in ms below one second. */
function latency(s: number | null | undefined): string {
  if (s == null || !Number.isFinite(s)) return "–";
  const ms = s * 1000;
  if (ms < 10) return `${ms.toFixed(2)} ms`;
  if (ms < 1000) return `${ms.toFixed(ms < 100 ? 1 : 0)} ms`;
  return `${s.toFixed(2)} s`;
}

function share(part: number | null, whole: number | null): string {
  if (part == null || whole == null || part <= 0 || whole <= 0) return "";
  return ` · ${((part / whole) * 100).toFixed(part / whole < 0.1 ? 1 : 0)}%`;
}

function clock(ms: number): string {
  return new Date(ms).toLocaleTimeString();
}

function ms(s: number | null): number | null {
  return s == null ? null : s * 1000;
}

export function StatusPage() {
  const [paused, setPaused] = useState(false);
  const [hideOwn, setHideOwn] = useState(false);
  const [points, setPoints] = useState<StatusPoint[]>([]);
  const [metricsError, setMetricsError] = useState<unknown>(undefined);
  const [refused, setRefused] = useState(false);
  const [unreadLines, setUnreadLines] = useState(0);
  const [models, setModels] = useState<Running[] | undefined>(undefined);
  const [modelsError, setModelsError] = useState<unknown>(undefined);
  const [ready, setReady] = useState<Readiness>({ state: "checking" });

  const prev = useRef<Snapshot | null>(null);
  const busy = useRef(false);
  const refusedRef = useRef(false);
  const ctl = useRef<AbortController | null>(null);

  async function scrape(signal: AbortSignal) {
    if (refusedRef.current) return;
    try {
      const body = await text("/metrics", { signal });
      const t = Date.now();
      const snap: Snapshot = { t, m: parse(body) };
      const point = statusPoint(prev.current, snap);
      prev.current = snap;
      setPoints((ps) => [...ps.filter((p) => p.t >= t - WINDOW_MS), point]);
      setUnreadLines(snap.m.errors.length);
      setMetricsError(undefined);
    } catch (e) {
      if (isAbort(e)) return;
      if (e instanceof ApiError) {
        setMetricsError(e);
        // A key without access stays without it: stop asking until "Try again".
        if (e.status === 401 || e.status === 403) {
          refusedRef.current = true;
          setRefused(true);
        }
      } else {
        setMetricsError(new Error(UNREACHABLE));
      }
    }
  }

  async function loadModels(signal: AbortSignal) {
    try {
      const r = await api<{ models: Running[] }>("GET", "/api/v1/ps", undefined, { signal });
      setModels(r.models);
      setModelsError(undefined);
    } catch (e) {
      if (!isAbort(e)) setModelsError(e);
    }
  }

  async function checkReady(signal: AbortSignal) {
    // /readyz needs no key and answers 503 with {"status":"not ready","reason":…}.
    try {
      const resp = await fetch("/readyz", { signal });
      if (resp.ok) {
        setReady({ state: "ready" });
        return;
      }
      let reason = `${resp.status} ${resp.statusText}`.trim();
      try {
        const b = await resp.json();
        if (typeof b?.reason === "string") reason = b.reason;
        else if (typeof b?.status === "string") reason = b.status;
      } catch {
        // not JSON: keep the status line
      }
      setReady({ state: "not-ready", reason });
    } catch (e) {
      if (!isAbort(e)) setReady({ state: "unreachable" });
    }
  }

  async function poll() {
    if (busy.current) return;
    busy.current = true;
    const c = new AbortController();
    ctl.current = c;
    try {
      await Promise.all([scrape(c.signal), loadModels(c.signal), checkReady(c.signal)]);
    } finally {
      busy.current = false;
    }
  }

  useEffect(() => {
    poll();
    return () => ctl.current?.abort();
  }, []);

  useInterval(() => {
    if (!paused) poll();
  }, POLL_MS);

  const togglePause = () => {
    const next = !paused;
    setPaused(next);
    if (!next) poll();
  };

  const retry = () => {
    refusedRef.current = false;
    setRefused(false);
    setMetricsError(undefined);
    poll();
  };

  const last = points[points.length - 1];
  const pick = (p: StatusPoint): Traffic => (hideOwn ? p.others : p.all);

  // Charts: one point per scrape that has a previous one (rates need two).
  const charts = useMemo(() => {
    const rated = points.filter((p) => p.seconds !== null);
    const x = rated.map((p) => p.t / 1000);
    const tr = rated.map(pick);
    const q = (quant: number) => tr.map((t) => ms(quantileOrNull(quant, t.latency.delta)));
    const requests: Series[] = [
      { label: "requests/s", values: tr.map((t) => t.rps), color: color(0) },
      { label: "4xx/s", values: tr.map((t) => t.rps4xx), color: color(4) },
      { label: "5xx/s", values: tr.map((t) => t.rps5xx), color: color(1) },
    ];
    const latencies: Series[] = [
      { label: "p50", values: q(0.5), color: color(2) },
      { label: "p95", values: q(0.95), color: color(4) },
      { label: "p99", values: q(0.99), color: color(1) },
    ];
    const qx = points.map((p) => p.t / 1000);
    const queue: Series[] = [{ label: "queue depth", values: points.map((p) => p.queue), color: color(0) }];
    if (points.some((p) => p.llmWaiting !== null))
      queue.push({ label: "LLM waiting", values: points.map((p) => p.llmWaiting), color: color(4) });
    if (points.some((p) => p.llmRunning !== null))
      queue.push({ label: "LLM running", values: points.map((p) => p.llmRunning), color: color(2) });
    return { x, requests, latencies, qx, queue };
  }, [points, hideOwn]);

  const llm = useMemo(() => {
    const ttft = windowBuckets(points.map((p) => p.ttft));
    const tpot = windowBuckets(points.map((p) => p.tpot));
    return { ttft, tpot };
  }, [points]);

  // Latency tiles: over the last interval; with a single scrape, since the server started.
  let lat: Bucket[] | null = null;
  let latNote = "";
  if (last) {
    const t = pick(last);
    if (t.latency.delta) {
      lat = t.latency.delta;
      latNote = observations(lat) > 0 ? `over the last ${last.seconds!.toFixed(1)} s` : `no requests in the last ${last.seconds!.toFixed(1)} s`;
    } else {
      lat = t.latency.total;
      latNote = "since the server started (one scrape so far)";
    }
  }
  const traffic = last ? pick(last) : null;
  const collecting = points.length < 2 && !refused;

  return (
    <div class="status">
      <PageHeader title="Status">
        <ReadyBadge ready={ready} />
        {last && <span class="muted small">updated {clock(last.t)}</span>}
        <button type="button" class="secondary small" aria-pressed={paused} onClick={togglePause}>
          {paused ? "Resume" : "Pause"}
        </button>
      </PageHeader>

      {metricsError !== undefined && (
        <div>
          <ErrorBox title="Metrics" error={metricsError} />
          {refused && (
            <p class="small">
              This key cannot read <code>/metrics</code>: metrics name every tenant's models, so only admin and <code>metrics</code> keys read them.{" "}
              <button type="button" class="secondary small" onClick={retry}>
                Try again
              </button>
            </p>
          )}
        </div>
      )}
      {paused && <p class="notice small">Paused: the numbers below are frozen. Resume to scrape again every {POLL_MS / 1000} s.</p>}
      {collecting && !paused && (
        <p class="notice small" role="status">
          {points.length === 0 ? "Scraping /metrics…" : "Collecting a second scrape:"} rates and per-interval latencies need two scrapes, {POLL_MS / 1000} s apart.
        </p>
      )}
      {unreadLines > 0 && <p class="muted small">{unreadLines} line(s) of /metrics could not be read and were skipped.</p>}

      <section class="card" aria-labelledby="traffic-h">
        <h2 id="traffic-h">HTTP traffic</h2>
        {!last && !metricsError && <Loading what="Scraping /metrics" />}
        {last && traffic && (
          <>
            <div class="stats">
              <Stat label="requests/s" value={perSecond(traffic.rps)} />
              <Stat label="4xx errors/s" value={`${perSecond(traffic.rps4xx)}${share(traffic.rps4xx, traffic.rps)}`} />
              <Stat label="5xx errors/s" value={`${perSecond(traffic.rps5xx)}${share(traffic.rps5xx, traffic.rps)}`} />
              <Stat label="p50 latency" value={latency(quantileOrNull(0.5, lat))} />
              <Stat label="p95 latency" value={latency(quantileOrNull(0.95, lat))} />
              <Stat label="p99 latency" value={latency(quantileOrNull(0.99, lat))} />
            </div>
            <p class="muted small">
              Rates over the last scrape interval{last.seconds !== null ? ` (${last.seconds.toFixed(1)} s)` : ""}; latency percentiles {latNote}, interpolated within the histogram's buckets.
            </p>
            <label class="status-check">
              <input type="checkbox" checked={hideOwn} onChange={(e) => setHideOwn((e.target as HTMLInputElement).checked)} />
              Leave out this page's own polling ({OWN_ROUTES.join(", ")})
            </label>
            {charts.x.length > 0 && (
              <div class="grid status-grid">
                <div>
                  <h3>Requests per second</h3>
                  <LineChart title="Requests per second over the last 5 minutes, with 4xx and 5xx errors" x={charts.x} series={charts.requests} xLabel="time" yLabel="requests/s" timeAxis height={200} />
                </div>
                <div>
                  <h3>Latency percentiles</h3>
                  <LineChart title="Request latency p50, p95 and p99 per scrape interval, in milliseconds" x={charts.x} series={charts.latencies} xLabel="time" yLabel="ms" timeAxis height={200} />
                </div>
              </div>
            )}
          </>
        )}
        {!last && metricsError !== undefined && <p class="muted">No metrics to show.</p>}
      </section>

      {last && (
        <section class="card" aria-labelledby="inference-h">
          <h2 id="inference-h">Inference</h2>
          <div class="stats">
            <Stat label="queue depth" value={last.queue ?? "–"} />
            {last.llmWaiting !== null && <Stat label="LLM requests waiting" value={last.llmWaiting} />}
            {last.llmRunning !== null && <Stat label="LLM requests running" value={last.llmRunning} />}
            {last.kvCacheMax !== null && <Stat label="KV cache in use (fullest model)" value={`${(last.kvCacheMax * 100).toFixed(0)}%`} />}
            {llm.ttft && (
              <Stat
                label={`time to first token p50 (${llm.ttft.sinceStart ? "since start" : "last 5 min"})`}
                value={latency(quantileOrNull(0.5, llm.ttft.buckets))}
              />
            )}
            {llm.tpot && (
              <Stat
                label={`time per output token p50 (${llm.tpot.sinceStart ? "since start" : "last 5 min"})`}
                value={latency(quantileOrNull(0.5, llm.tpot.buckets))}
              />
            )}
          </div>
          {charts.qx.length > 1 && (
            <>
              <h3>Queue depth</h3>
              <LineChart title="Inference queue depth and LLM requests waiting and running over the last 5 minutes" x={charts.qx} series={charts.queue} xLabel="time" yLabel="requests" timeAxis height={180} />
            </>
          )}
        </section>
      )}

      <section class="card" aria-labelledby="models-h">
        <h2 id="models-h">Loaded models</h2>
        {last && (
          <div class="stats">
            <Stat label="models loaded" value={last.models ?? "–"} />
            <Stat label="model memory (estimated)" value={bytes(last.memory)} />
          </div>
        )}
        <ErrorBox error={modelsError} />
        {!models && !modelsError && <Loading />}
        {models && models.length === 0 && (
          <Empty title="No model is loaded">
            <p>Models load on their first request, or when deployed.</p>
          </Empty>
        )}
        {models && models.length > 0 && (
          <div class="table-wrap">
            <table>
              <caption class="muted small status-caption">From /api/v1/ps, refreshed with the metrics.</caption>
              <thead>
                <tr>
                  <th scope="col">Model</th>
                  <th scope="col">Kind</th>
                  <th scope="col" class="num">Memory</th>
                  <th scope="col" class="num">In flight</th>
                  <th scope="col" class="num">Busy slots</th>
                  <th scope="col" class="num">Idle for</th>
                </tr>
              </thead>
              <tbody>
                {[...models]
                  .sort((a, b) => a.label.localeCompare(b.label))
                  .map((r) => (
                    <tr key={r.key}>
                      <th scope="row">{r.label}</th>
                      <td>{r.kind}</td>
                      <td class="num">{bytes(r.memory_bytes)}</td>
                      <td class="num">{r.in_flight}</td>
                      <td class="num">{r.slots != null ? `${r.slots_busy ?? 0}/${r.slots}` : "–"}</td>
                      <td class="num">{r.in_flight > 0 || (r.slots_busy ?? 0) > 0 ? <Badge kind="ok">busy</Badge> : duration(r.idle_for)}</td>
                    </tr>
                  ))}
              </tbody>
            </table>
          </div>
        )}
      </section>
    </div>
  );
}

function ReadyBadge({ ready }: { ready: Readiness }) {
  switch (ready.state) {
    case "checking":
      return <Badge>checking readiness…</Badge>;
    case "ready":
      return <Badge kind="ok">ready</Badge>;
    case "not-ready":
      return <Badge kind="bad">not ready: {ready.reason}</Badge>;
    case "unreachable":
      return <Badge kind="bad">unreachable</Badge>;
  }
}
