import { describe, expect, it } from "vitest";
import {
  describeLimits,
  describeList,
  expiresInSecs,
  hasLimits,
  keyStatus,
  limitsFromForm,
  limitsToForm,
  parseList,
  roleRank,
  rolesCreatableBy,
} from "../../src/keys";

describe("roles", () => {
  it("hands out only the key's own role and those below", () => {
    expect(rolesCreatableBy("admin")).toEqual(["admin", "owner", "developer", "inference", "metrics"]);
    expect(rolesCreatableBy("owner")).toEqual(["owner", "developer", "inference"]);
    expect(rolesCreatableBy("inference")).toEqual(["inference"]);
  });
  it("ranks an unknown role highest", () => {
    expect(roleRank("root")).toBe(3);
    expect(roleRank("developer")).toBe(1);
  });
});

describe("key status", () => {
  const now = 1_000_000;
  it("is revoked before anything else", () => {
    expect(keyStatus({ revoked_at: 5, expires_at: 10 }, now)).toBe("revoked");
  });
  it("is expired once the expiry has passed", () => {
    expect(keyStatus({ revoked_at: null, expires_at: now }, now)).toBe("expired");
    expect(keyStatus({ revoked_at: null, expires_at: now + 1 }, now)).toBe("active");
    expect(keyStatus({ revoked_at: null, expires_at: null }, now)).toBe("active");
  });
});

describe("lists", () => {
  it("splits on commas, spaces and lines, without empties or repeats", () => {
    expect(parseList(" a, b,,c\n d  a ")).toEqual(["a", "b", "c", "d"]);
    expect(parseList("   ")).toEqual([]);
    expect(parseList("10.0.0.0/8, ::1")).toEqual(["10.0.0.0/8", "::1"]);
  });
  it("describes null as all and empty as none", () => {
    expect(describeList(null, "all")).toBe("all");
    expect(describeList([], "all")).toBe("none");
    expect(describeList(["x", "y"], "all")).toBe("x, y");
  });
});

describe("limits", () => {
  it("leaves empty fields out", () => {
    expect(limitsFromForm({ requests_per_minute: "60", burst: " ", tokens_per_minute: "", tokens_per_month: "1_000_000" })).toEqual({
      requests_per_minute: 60,
      tokens_per_month: 1000000,
    });
    expect(limitsFromForm(limitsToForm({}))).toEqual({});
  });
  it("refuses what is not a whole number of at least 1, naming the field", () => {
    const base = limitsToForm(null);
    expect(() => limitsFromForm({ ...base, burst: "0" })).toThrow(/Burst/);
    expect(() => limitsFromForm({ ...base, tokens_per_minute: "1.5" })).toThrow(/Tokens per minute/);
    expect(() => limitsFromForm({ ...base, requests_per_minute: "-3" })).toThrow(/Requests per minute/);
    expect(() => limitsFromForm({ ...base, tokens_per_month: "lots" })).toThrow(/whole number/);
  });
  it("round-trips through the form", () => {
    const l = { requests_per_minute: 60, burst: 10, tokens_per_month: 5000 };
    expect(limitsToForm(l)).toEqual({ requests_per_minute: "60", burst: "10", tokens_per_minute: "", tokens_per_month: "5000" });
    expect(limitsFromForm(limitsToForm(l))).toEqual(l);
  });
  it("describes limits for a table", () => {
    expect(describeLimits({})).toBe("none");
    expect(describeLimits(undefined)).toBe("none");
    expect(hasLimits({ burst: null })).toBe(false);
    expect(describeLimits({ requests_per_minute: 60, burst: 10, tokens_per_month: 5000 })).toBe(
      "60 req/min · 10 burst · 5,000 tokens/month",
    );
  });
});

describe("expiry", () => {
  it("turns days into seconds, empty into never", () => {
    expect(expiresInSecs("")).toBeUndefined();
    expect(expiresInSecs(" 30 ")).toBe(30 * 86400);
    expect(expiresInSecs("0.5")).toBe(43200);
  });
  it("refuses zero, negatives, garbage and more than ten years", () => {
    expect(() => expiresInSecs("0")).toThrow();
    expect(() => expiresInSecs("-1")).toThrow();
    expect(() => expiresInSecs("soon")).toThrow();
    expect(() => expiresInSecs("4000")).toThrow(/ten years/);
  });
});
