// Usage rows (GET /api/v1/usage: one per tenant, key, model and UTC day) turned into
// totals and per-day series for the Usage page. Pure functions, tested in test/unit.

export interface UsageRow {
  tenant_id: string;
  key_id: string;
  model: string;
  /** UTC day, `YYYY-MM-DD`. */
  day: string;
  requests: number;
  prompt_tokens: number;
  completion_tokens: number;
}

export type GroupBy = "model" | "key" | "tenant";
export type Metric = "tokens" | "prompt_tokens" | "completion_tokens" | "requests";

export const METRICS: { id: Metric; label: string }[] = [
  { id: "tokens", label: "Tokens (prompt + completion)" },
  { id: "prompt_tokens", label: "Prompt tokens" },
  { id: "completion_tokens", label: "Completion tokens" },
  { id: "requests", label: "Requests" },
];

/** The name of the group that gathers every series past the largest ones. */
export const OTHER = "\u0000other";

export function metricOf(row: UsageRow, metric: Metric): number {
  switch (metric) {
    case "tokens":
      return (row.prompt_tokens || 0) + (row.completion_tokens || 0);
    case "prompt_tokens":
      return row.prompt_tokens || 0;
    case "completion_tokens":
      return row.completion_tokens || 0;
    case "requests":
      return row.requests || 0;
  }
}

export function groupOf(row: UsageRow, by: GroupBy): string {
  switch (by) {
    case "model":
      return row.model;
    case "key":
      return row.key_id;
    case "tenant":
      return row.tenant_id;
  }
}

const DAY_MS = 24 * 3600 * 1000;

function parseDay(day: string): number {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(day);
  if (!m) throw new Error(`not a day: ${day}`);
  return Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]));
}

function formatDay(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

/** The UTC day `n` days after `day` (before it when negative). */
export function addDays(day: string, n: number): string {
  return formatDay(parseDay(day) + n * DAY_MS);
}

/** Today as the server counts days (UTC). */
export function todayUtc(now: number = Date.now()): string {
  return formatDay(now);
}

/** Every day from `first` to `last`, both included (empty when `last` is before `first`). */
export function daysBetween(first: string, last: string): string[] {
  const out: string[] = [];
  const end = parseDay(last);
  for (let t = parseDay(first); t <= end; t += DAY_MS) out.push(formatDay(t));
  return out;
}

/**
 * The first day of a period of `days` days ending today (null: all time, no first day).
 */
export function periodStart(days: number | null, now: number = Date.now()): string | null {
  return days === null ? null : addDays(todayUtc(now), -(days - 1));
}

/** Rows on or after `from` (all of them when `from` is null). */
export function since(rows: UsageRow[], from: string | null): UsageRow[] {
  return from === null ? rows : rows.filter((r) => r.day >= from);
}

export interface Totals {
  group: string;
  requests: number;
  prompt_tokens: number;
  completion_tokens: number;
  tokens: number;
}

function empty(group: string): Totals {
  return { group, requests: 0, prompt_tokens: 0, completion_tokens: 0, tokens: 0 };
}

function add(t: Totals, r: UsageRow) {
  t.requests += r.requests || 0;
  t.prompt_tokens += r.prompt_tokens || 0;
  t.completion_tokens += r.completion_tokens || 0;
  t.tokens += (r.prompt_tokens || 0) + (r.completion_tokens || 0);
}

/** Everything in `rows` added up. */
export function grandTotals(rows: UsageRow[]): Totals {
  const t = empty("");
  for (const r of rows) add(t, r);
  return t;
}

/** Totals per model, key or tenant: the largest first (tokens, then requests, then name). */
export function totalsBy(rows: UsageRow[], by: GroupBy): Totals[] {
  const m = new Map<string, Totals>();
  for (const r of rows) {
    const g = groupOf(r, by);
    let t = m.get(g);
    if (!t) {
      t = empty(g);
      m.set(g, t);
    }
    add(t, r);
  }
  return [...m.values()].sort(
    (a, b) => b.tokens - a.tokens || b.requests - a.requests || a.group.localeCompare(b.group),
  );
}

export interface DailySeries {
  /** Every day of the range, without gaps. */
  days: string[];
  series: {
    group: string;
    /** One value per day (0 on days without usage). */
    values: number[];
    total: number;
    /** For the OTHER group: how many groups it gathers. */
    gathers?: number;
  }[];
}

/**
 * The metric per day for each group: the `maxSeries` largest groups by the metric's
 * total, the rest gathered into one OTHER series. Days run from `from` (default: the
 * first day with usage) to `to` (default: the last day with usage), zero-filled.
 */
export function dailySeries(
  rows: UsageRow[],
  by: GroupBy,
  metric: Metric,
  opts: { maxSeries?: number; from?: string | null; to?: string | null } = {},
): DailySeries {
  const maxSeries = Math.max(1, opts.maxSeries ?? 6);
  let first = opts.from ?? null;
  let last = opts.to ?? null;
  const inRange = rows.filter((r) => (first === null || r.day >= first) && (last === null || r.day <= last));
  if (inRange.length === 0 && (first === null || last === null)) return { days: [], series: [] };
  for (const r of inRange) {
    if (opts.from == null && (first === null || r.day < first)) first = r.day;
    if (opts.to == null && (last === null || r.day > last)) last = r.day;
  }
  const days = daysBetween(first!, last!);
  const index = new Map(days.map((d, i) => [d, i]));

  const perGroup = new Map<string, number[]>();
  const totals = new Map<string, number>();
  for (const r of inRange) {
    const g = groupOf(r, by);
    let values = perGroup.get(g);
    if (!values) {
      values = new Array(days.length).fill(0);
      perGroup.set(g, values);
    }
    const v = metricOf(r, metric);
    values[index.get(r.day)!] += v;
    totals.set(g, (totals.get(g) ?? 0) + v);
  }
  const ranked = [...perGroup.keys()].sort((a, b) => totals.get(b)! - totals.get(a)! || a.localeCompare(b));
  // Gathering a single group into "other" would only hide its name.
  const keep = ranked.length <= maxSeries ? ranked : ranked.slice(0, maxSeries - 1);
  const series: DailySeries["series"] = keep.map((g) => ({ group: g, values: perGroup.get(g)!, total: totals.get(g)! }));
  const rest = ranked.slice(keep.length);
  if (rest.length > 0) {
    const values = new Array(days.length).fill(0);
    let total = 0;
    for (const g of rest) {
      perGroup.get(g)!.forEach((v, i) => (values[i] += v));
      total += totals.get(g)!;
    }
    series.push({ group: OTHER, values, total, gathers: rest.length });
  }
  return { days, series };
}

/**
 * A UTC day as the epoch seconds of that date's local midnight: a chart's time axis
 * (which shows local time) then labels each point with its own date.
 */
export function dayToLocalSeconds(day: string): number {
  const d = new Date(parseDay(day));
  return new Date(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()).getTime() / 1000;
}
