import { describe, expect, it } from "vitest";
import {
  AuditEntry,
  NO_FILTERS,
  auditQuery,
  distinctActions,
  exportFilename,
  localInputToMs,
  msToLocalInput,
  outcomeKind,
  periodRange,
  prettyDetail,
} from "../../src/audit";

describe("audit query", () => {
  it("is empty without filters", () => {
    expect(auditQuery(NO_FILTERS)).toBe("");
  });
  it("maps each filter to the API's parameter names", () => {
    const q = auditQuery(
      { action: " POST /api/v1/keys ", outcome: "denied", key: "k1", tenant: "t1", since: 1000.7, until: 2000 },
      { after: 42, limit: 100 },
    );
    const p = new URLSearchParams(q.slice(1));
    expect(q.startsWith("?")).toBe(true);
    expect(Object.fromEntries(p)).toEqual({
      tenant: "t1",
      key: "k1",
      action: "POST /api/v1/keys",
      outcome: "denied",
      since: "1000",
      until: "2000",
      after: "42",
      limit: "100",
    });
  });
  it("encodes spaces and slashes safely", () => {
    expect(auditQuery({ ...NO_FILTERS, action: "auth.failed & more" })).toBe("?action=auth.failed+%26+more");
  });
  it("sends since 0 and after 0 (they are not 'unset')", () => {
    expect(auditQuery({ ...NO_FILTERS, since: 0 }, { after: 0 })).toBe("?since=0&after=0");
  });
});

describe("periods", () => {
  const now = 10 * 24 * 3600 * 1000;
  it("reaches back from now", () => {
    expect(periodRange("1h", { since: "", until: "" }, now)).toEqual({ since: now - 3600_000, until: null });
    expect(periodRange("7d", { since: "", until: "" }, now)).toEqual({ since: now - 7 * 86400_000, until: null });
    expect(periodRange("all", { since: "", until: "" }, now)).toEqual({ since: null, until: null });
  });
  it("reads a custom range from local date-times", () => {
    const r = periodRange("custom", { since: "2026-11-29T10:30", until: "" }, now);
    expect(r.since).toBe(new Date(2026, 10, 29, 10, 30).getTime());
    expect(r.until).toBeNull();
  });
  it("converts datetime-local values both ways", () => {
    const ms = new Date(2026, 0, 2, 3, 4).getTime();
    expect(msToLocalInput(ms)).toBe("2026-01-02T03:04");
    expect(localInputToMs(msToLocalInput(ms))).toBe(ms);
    expect(localInputToMs("")).toBeNull();
    expect(localInputToMs("not a date")).toBeNull();
  });
});

describe("entries", () => {
  const entry = (seq: number, action: string): AuditEntry => ({
    seq,
    id: `e${seq}`,
    at: seq,
    tenant_id: null,
    key_id: null,
    role: null,
    action,
    target: null,
    outcome: "success",
    source: null,
    detail: "{}",
    prev_hash: "",
    hash: "",
  });
  it("badges outcomes", () => {
    expect(outcomeKind("success")).toBe("ok");
    expect(outcomeKind("denied")).toBe("warn");
    expect(outcomeKind("failed")).toBe("bad");
    expect(outcomeKind("other")).toBe("info");
  });
  it("pretty-prints JSON details and keeps other text", () => {
    expect(prettyDetail('{"status":201}')).toBe('{\n  "status": 201\n}');
    expect(prettyDetail("plain")).toBe("plain");
  });
  it("suggests each action once, sorted", () => {
    expect(distinctActions([entry(1, "b"), entry(2, "a"), entry(3, "b")])).toEqual(["a", "b"]);
  });
  it("names export files by date and time", () => {
    expect(exportFilename(new Date(2026, 10, 29, 4, 12).getTime())).toBe("audit-2026-11-29T0412.jsonl");
  });
});
