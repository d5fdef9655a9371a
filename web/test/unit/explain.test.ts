import { describe, expect, it } from "vitest";
import { highlightSegments } from "../../src/explain";

describe("highlightSegments", () => {
  it("cuts the text at the tokens and scales by the largest attribution", () => {
    const segs = highlightSegments("The bank rose", [
      { token: "the", start: 0, end: 3, attribution: -0.5 },
      { token: "bank", start: 4, end: 8, attribution: 2 },
    ]);
    expect(segs.map((s) => s.text)).toEqual(["The", " ", "bank", " rose"]);
    expect(segs.map((s) => s.weight)).toEqual([-0.25, null, 1, null]);
    expect(segs.map((s) => s.text).join("")).toBe("The bank rose");
  });

  it("counts code points, as the server does", () => {
    // An emoji is two UTF-16 units but one code point.
    const text = "😀 北京 ok";
    const segs = highlightSegments(text, [
      { token: "北京", start: 2, end: 4, attribution: 1 },
      { token: "ok", start: 5, end: 7, attribution: -1 },
    ]);
    expect(segs.filter((s) => s.weight !== null).map((s) => s.text)).toEqual(["北京", "ok"]);
    expect(segs.map((s) => s.text).join("")).toBe(text);
  });

  it("skips overlapping and out-of-range tokens", () => {
    const segs = highlightSegments("abc", [
      { token: "ab", start: 0, end: 2, attribution: 1 },
      { token: "bc", start: 1, end: 3, attribution: 1 },
      { token: "x", start: 2, end: 9, attribution: 1 },
    ]);
    expect(segs.map((s) => s.text)).toEqual(["ab", "c"]);
  });
});
