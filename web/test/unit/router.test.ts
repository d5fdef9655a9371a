import { describe, expect, it } from "vitest";
import { href, parseHash } from "../../src/router";

describe("hash routes", () => {
  it("parses sections, ids and queries, decoding each segment", () => {
    const r = parseHash("#/models/news%20v2?library=1&version=3");
    expect(r.parts).toEqual(["models", "news v2"]);
    expect(r.query.get("library")).toBe("1");
    expect(r.query.get("version")).toBe("3");
  });

  it("treats an empty or bare hash as no section", () => {
    expect(parseHash("").parts).toEqual([]);
    expect(parseHash("#/").parts).toEqual([]);
  });

  it("keeps a malformed escape as it is instead of failing", () => {
    expect(parseHash("#/datasets/%E0%A4%A").parts).toEqual(["datasets", "%E0%A4%A"]);
  });

  it("builds links that round-trip", () => {
    const link = href("training", "a/b c");
    expect(link).toBe("#/training/a%2Fb%20c");
    expect(parseHash(link).parts).toEqual(["training", "a/b c"]);
  });
});
