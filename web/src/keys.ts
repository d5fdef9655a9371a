// Keys and limits as the Keys and Tenants pages show and edit them. Pure functions,
// tested in test/unit.

import type { Limits } from "./types";

export type Role = "admin" | "owner" | "developer" | "inference" | "metrics";

export const ROLES: { id: Role; label: string; hint: string }[] = [
  { id: "admin", label: "admin", hint: "everything, every tenant" },
  { id: "owner", label: "owner", hint: "its tenant: keys, data, training, models, audit" },
  { id: "developer", label: "developer", hint: "data, training, deploying and calling models" },
  { id: "inference", label: "inference", hint: "calling models only" },
  { id: "metrics", label: "metrics", hint: "reading /metrics only (a Prometheus scraper)" },
];

// A metrics key reads what spans every tenant: it ranks with admins, as on the server.
const RANK: Record<Role, number> = { admin: 3, metrics: 3, owner: 2, developer: 1, inference: 0 };

export function roleRank(role: string): number {
  // An unknown role counts as the most powerful (as the server does).
  return role in RANK ? RANK[role as Role] : 3;
}

/** The roles a key with `role` may hand out: its own and those below. */
export function rolesCreatableBy(role: string): Role[] {
  return ROLES.map((r) => r.id).filter((r) => RANK[r] <= roleRank(role));
}

export type KeyStatus = "active" | "revoked" | "expired";

export function keyStatus(k: { revoked_at: number | null; expires_at: number | null }, now = Date.now()): KeyStatus {
  if (k.revoked_at != null) return "revoked";
  if (k.expires_at != null && k.expires_at <= now) return "expired";
  return "active";
}

/** A comma- (or space- or line-) separated list: trimmed, without empties or repeats. */
export function parseList(text: string): string[] {
  const out: string[] = [];
  for (const item of text.split(/[\s,]+/)) {
    const t = item.trim();
    if (t && !out.includes(t)) out.push(t);
  }
  return out;
}

export interface LimitField {
  id: keyof Limits;
  label: string;
  unit: string;
}

export const LIMIT_FIELDS: LimitField[] = [
  { id: "requests_per_minute", label: "Requests per minute", unit: "req/min" },
  { id: "burst", label: "Burst (requests at once)", unit: "burst" },
  { id: "tokens_per_minute", label: "Tokens per minute", unit: "tokens/min" },
  { id: "tokens_per_month", label: "Tokens per month", unit: "tokens/month" },
];

/** The limits form: one text per field, empty for "no limit". */
export type LimitsForm = Record<keyof Limits, string>;

export function limitsToForm(l?: Limits | null): LimitsForm {
  const f = {} as LimitsForm;
  for (const { id } of LIMIT_FIELDS) f[id] = l?.[id] != null ? String(l[id]) : "";
  return f;
}

/**
 * The limits a form sets (empty fields left out: no limit). Throws an Error with a
 * message for the user when a field is not a whole number of at least 1; the rules
 * across fields (burst needs requests per minute) are the server's to say.
 */
export function limitsFromForm(f: LimitsForm): Limits {
  const out: Limits = {};
  for (const { id, label } of LIMIT_FIELDS) {
    const text = (f[id] ?? "").trim().replace(/[_\s]/g, "");
    if (text === "") continue;
    if (!/^\d+$/.test(text) || Number(text) < 1 || !Number.isSafeInteger(Number(text))) {
      throw new Error(`${label} must be a whole number of at least 1 (leave it empty for no limit).`);
    }
    out[id] = Number(text);
  }
  return out;
}

export function hasLimits(l?: Limits | null): boolean {
  return !!l && LIMIT_FIELDS.some(({ id }) => l[id] != null);
}

/** "60 req/min · 10 burst · 5,000 tokens/month", or "none". */
export function describeLimits(l?: Limits | null): string {
  if (!hasLimits(l)) return "none";
  return LIMIT_FIELDS.filter(({ id }) => l![id] != null)
    .map(({ id, unit }) => `${l![id]!.toLocaleString("en-US")} ${unit}`)
    .join(" · ");
}

/** The lifetime to send for "expires in N days" (undefined: never). Throws on bad input. */
export function expiresInSecs(daysText: string): number | undefined {
  const t = daysText.trim();
  if (t === "") return undefined;
  const days = Number(t);
  if (!Number.isFinite(days) || days <= 0) {
    throw new Error("Expiry must be a positive number of days (leave it empty for a key that does not expire).");
  }
  if (days > 3650) throw new Error("Expiry must be at most 3650 days (ten years).");
  return Math.max(1, Math.round(days * 86400));
}

/** A list for a table cell: null is "all"/"any", empty is "none". */
export function describeList(list: string[] | null | undefined, all: string): string {
  if (list == null) return all;
  if (list.length === 0) return "none";
  return list.join(", ");
}
