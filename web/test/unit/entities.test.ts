// The Entities tab's text marking: the API's offsets count code points (as Python does),
// so text beyond the Basic Multilingual Plane must not shift the marks.

import { describe, expect, it } from "vitest";
import { labelSlot, segments, type FoundEntity } from "../../src/pages/Entities";

const e = (label: string, start: number, end: number): FoundEntity => ({ label, score: 0.9, start, end, text: "" });

describe("segments", () => {
  it("cuts the text into plain runs and entities", () => {
    const text = "Call Mary Smith in Austin.";
    const parts = segments(text, [e("CITY", 19, 25), e("GIVEN_NAME", 5, 9), e("SURNAME", 10, 15)]);
    expect(parts.map((p) => [p.text, p.entity?.label])).toEqual([
      ["Call ", undefined],
      ["Mary", "GIVEN_NAME"],
      [" ", undefined],
      ["Smith", "SURNAME"],
      [" in ", undefined],
      ["Austin", "CITY"],
      [".", undefined],
    ]);
    expect(parts.map((p) => p.text).join("")).toBe(text);
  });

  it("counts code points, not UTF-16 units", () => {
    // 😀 is one code point and two UTF-16 units.
    const text = "😀 hi Ada!";
    const parts = segments(text, [e("GIVEN_NAME", 5, 8)]);
    expect(parts.find((p) => p.entity)?.text).toBe("Ada");
  });

  it("skips overlapping or out-of-range entities", () => {
    const parts = segments("abcdef", [e("A", 0, 3), e("B", 2, 4), e("C", 4, 99), e("D", 5, 5)]);
    expect(parts.map((p) => [p.text, p.entity?.label])).toEqual([
      ["abc", "A"],
      ["def", undefined],
    ]);
  });

  it("gives each label a stable colour slot", () => {
    expect(labelSlot("CITY")).toBe(labelSlot("CITY"));
    for (const l of ["GIVEN_NAME", "SURNAME", "CITY", "STATE", "ZIP_CODE"]) {
      expect(labelSlot(l)).toBeGreaterThanOrEqual(0);
      expect(labelSlot(l)).toBeLessThan(8);
    }
  });
});
