import { describe, expect, it } from "vitest";
import {
  OTHER,
  UsageRow,
  addDays,
  dailySeries,
  dayToLocalSeconds,
  daysBetween,
  grandTotals,
  metricOf,
  periodStart,
  since,
  todayUtc,
  totalsBy,
} from "../../src/usage";

function row(day: string, model: string, key: string, prompt: number, completion: number, requests = 1, tenant = "t1"): UsageRow {
  return { day, model, key_id: key, tenant_id: tenant, prompt_tokens: prompt, completion_tokens: completion, requests };
}

// As the server answers: newest day first.
const rows: UsageRow[] = [
  row("2026-11-29", "llm", "k1", 32, 12),
  row("2026-11-29", "embed", "k2", 100, 0, 4),
  row("2026-11-27", "llm", "k2", 10, 20, 2, "t2"),
  row("2026-11-26", "llm", "k1", 1, 1),
];

describe("days", () => {
  it("adds days across month and year ends", () => {
    expect(addDays("2026-11-30", 1)).toBe("2026-12-01");
    expect(addDays("2026-12-31", 1)).toBe("2027-01-01");
    expect(addDays("2026-03-01", -1)).toBe("2026-02-28");
    expect(addDays("2028-03-01", -1)).toBe("2028-02-29");
  });
  it("lists every day of a range, both ends included", () => {
    expect(daysBetween("2026-11-29", "2026-12-02")).toEqual(["2026-11-29", "2026-11-30", "2026-12-01", "2026-12-02"]);
    expect(daysBetween("2026-11-29", "2026-11-29")).toEqual(["2026-11-29"]);
    expect(daysBetween("2026-11-29", "2026-11-28")).toEqual([]);
  });
  it("counts today and periods in UTC", () => {
    const now = Date.UTC(2026, 10, 29, 23, 59);
    expect(todayUtc(now)).toBe("2026-11-29");
    expect(periodStart(7, now)).toBe("2026-11-23");
    expect(periodStart(1, now)).toBe("2026-11-29");
    expect(periodStart(null, now)).toBeNull();
  });
  it("rejects a malformed day", () => {
    expect(() => addDays("29/11/2026", 1)).toThrow();
  });
  it("places a day at its local midnight", () => {
    const s = dayToLocalSeconds("2026-11-29");
    const d = new Date(s * 1000);
    expect([d.getFullYear(), d.getMonth(), d.getDate(), d.getHours(), d.getMinutes()]).toEqual([2026, 10, 29, 0, 0]);
  });
});

describe("totals", () => {
  it("adds up everything", () => {
    expect(grandTotals(rows)).toEqual({ group: "", requests: 8, prompt_tokens: 143, completion_tokens: 33, tokens: 176 });
    expect(grandTotals([])).toEqual({ group: "", requests: 0, prompt_tokens: 0, completion_tokens: 0, tokens: 0 });
  });
  it("groups by model, largest first", () => {
    const t = totalsBy(rows, "model");
    expect(t.map((x) => [x.group, x.tokens, x.requests])).toEqual([
      ["embed", 100, 4],
      ["llm", 76, 4],
    ]);
  });
  it("groups by key and by tenant", () => {
    expect(totalsBy(rows, "key").map((x) => [x.group, x.prompt_tokens, x.completion_tokens])).toEqual([
      ["k2", 110, 20],
      ["k1", 33, 13],
    ]);
    expect(totalsBy(rows, "tenant").map((x) => [x.group, x.tokens])).toEqual([
      ["t1", 146],
      ["t2", 30],
    ]);
  });
  it("picks each metric", () => {
    const r = rows[0];
    expect(metricOf(r, "tokens")).toBe(44);
    expect(metricOf(r, "prompt_tokens")).toBe(32);
    expect(metricOf(r, "completion_tokens")).toBe(12);
    expect(metricOf(r, "requests")).toBe(1);
  });
  it("keeps the rows of a period", () => {
    expect(since(rows, "2026-11-27").length).toBe(3);
    expect(since(rows, null)).toBe(rows);
  });
});

describe("daily series", () => {
  it("fills the days without usage with zeros, oldest day first", () => {
    const s = dailySeries(rows, "model", "tokens");
    expect(s.days).toEqual(["2026-11-26", "2026-11-27", "2026-11-28", "2026-11-29"]);
    expect(s.series).toEqual([
      { group: "embed", values: [0, 0, 0, 100], total: 100 },
      { group: "llm", values: [2, 30, 0, 44], total: 76 },
    ]);
  });
  it("spans a requested range and drops rows outside it", () => {
    const s = dailySeries(rows, "key", "requests", { from: "2026-11-27", to: "2026-11-30" });
    expect(s.days).toEqual(["2026-11-27", "2026-11-28", "2026-11-29", "2026-11-30"]);
    expect(s.series).toEqual([
      { group: "k2", values: [2, 0, 4, 0], total: 6 },
      { group: "k1", values: [0, 0, 1, 0], total: 1 },
    ]);
  });
  it("gathers the smaller groups into one series", () => {
    const many = ["a", "b", "c", "d"].map((m, i) => row("2026-11-29", m, "k", (i + 1) * 10, 0));
    const s = dailySeries(many, "model", "tokens", { maxSeries: 3 });
    expect(s.series.map((x) => [x.group, x.total, x.gathers])).toEqual([
      ["d", 40, undefined],
      ["c", 30, undefined],
      [OTHER, 30, 2],
    ]);
    // Exactly maxSeries groups: nothing gathered.
    expect(dailySeries(many, "model", "tokens", { maxSeries: 4 }).series.map((x) => x.group)).toEqual(["d", "c", "b", "a"]);
  });
  it("is empty without usage", () => {
    expect(dailySeries([], "model", "tokens")).toEqual({ days: [], series: [] });
    expect(dailySeries(rows, "model", "tokens", { from: "2027-01-01" })).toEqual({ days: [], series: [] });
  });
});
