// The audit log's filters as query strings, and its entries as the Audit page shows them.
// Pure functions, tested in test/unit.

/** An entry of GET /api/v1/audit (oldest first; `seq` pages with `after`). */
export interface AuditEntry {
  seq: number;
  id: string;
  at: number;
  tenant_id: string | null;
  key_id: string | null;
  role: string | null;
  action: string;
  target: string | null;
  outcome: "success" | "denied" | "failed" | string;
  source: string | null;
  /** A JSON object as text (status, route, …), personal data masked. */
  detail: string;
  prev_hash: string;
  hash: string;
}

/** GET /api/v1/audit/verify (admins). */
export interface AuditVerification {
  ok: boolean;
  entries: number;
  head: { seq: number; hash: string } | null;
  problems: string[];
}

export type Outcome = "" | "success" | "denied" | "failed";

/** The filters the API takes (empty string / null: not filtered). */
export interface AuditFilters {
  /** Actions starting with this (`auth.`, `POST /api/v1/keys`). */
  action: string;
  outcome: Outcome;
  key: string;
  tenant: string;
  /** Epoch ms, inclusive. */
  since: number | null;
  /** Epoch ms, exclusive. */
  until: number | null;
}

export const NO_FILTERS: AuditFilters = { action: "", outcome: "", key: "", tenant: "", since: null, until: null };

/** `?action=…&outcome=…` for the filters, plus paging; "" when there is nothing to add. */
export function auditQuery(f: AuditFilters, paging: { after?: number | null; limit?: number | null } = {}): string {
  const q = new URLSearchParams();
  if (f.tenant.trim()) q.set("tenant", f.tenant.trim());
  if (f.key.trim()) q.set("key", f.key.trim());
  if (f.action.trim()) q.set("action", f.action.trim());
  if (f.outcome) q.set("outcome", f.outcome);
  if (f.since != null) q.set("since", String(Math.floor(f.since)));
  if (f.until != null) q.set("until", String(Math.floor(f.until)));
  if (paging.after != null) q.set("after", String(paging.after));
  if (paging.limit != null) q.set("limit", String(paging.limit));
  const s = q.toString();
  return s ? `?${s}` : "";
}

export interface Period {
  id: string;
  label: string;
  /** How far back from now (null: all time). */
  ms: number | null;
}

const HOUR = 3600 * 1000;
export const PERIODS: Period[] = [
  { id: "1h", label: "Last hour", ms: HOUR },
  { id: "24h", label: "Last 24 hours", ms: 24 * HOUR },
  { id: "7d", label: "Last 7 days", ms: 7 * 24 * HOUR },
  { id: "30d", label: "Last 30 days", ms: 30 * 24 * HOUR },
  { id: "all", label: "All time", ms: null },
  { id: "custom", label: "Custom range", ms: null },
];

/** A `datetime-local` input's value as epoch ms (local time); null when empty or invalid. */
export function localInputToMs(value: string): number | null {
  if (!value.trim()) return null;
  const ms = new Date(value).getTime();
  return Number.isNaN(ms) ? null : ms;
}

/** Epoch ms as a `datetime-local` input's value (local time, to the minute). */
export function msToLocalInput(ms: number): string {
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

/** The `since`/`until` of a period at `now` (a custom range reads its two inputs). */
export function periodRange(
  period: string,
  custom: { since: string; until: string },
  now = Date.now(),
): { since: number | null; until: number | null } {
  if (period === "custom") return { since: localInputToMs(custom.since), until: localInputToMs(custom.until) };
  const p = PERIODS.find((x) => x.id === period);
  return { since: p?.ms != null ? now - p.ms : null, until: null };
}

export function outcomeKind(outcome: string): "ok" | "warn" | "bad" | "info" {
  switch (outcome) {
    case "success":
      return "ok";
    case "denied":
      return "warn";
    case "failed":
      return "bad";
    default:
      return "info";
  }
}

/** An entry's `detail` pretty-printed (as is when it is not JSON). */
export function prettyDetail(detail: string): string {
  try {
    return JSON.stringify(JSON.parse(detail), null, 2);
  } catch {
    return detail;
  }
}

/** The actions seen in `entries`, sorted, for suggestions in the action filter. */
export function distinctActions(entries: AuditEntry[]): string[] {
  return [...new Set(entries.map((e) => e.action))].sort();
}

/** `audit-2026-11-29T0412.jsonl`: a file name for an export made at `now` (local time). */
export function exportFilename(now = Date.now()): string {
  return `audit-${msToLocalInput(now).replace(":", "")}.jsonl`;
}
