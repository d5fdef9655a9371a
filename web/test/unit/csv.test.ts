import { describe, expect, it } from "vitest";
import { parseCsv, previewText } from "../../src/csv";

describe("parseCsv", () => {
  it("reads quoted fields with commas, doubled quotes and newlines", () => {
    const text = 'text,label\n"Hello, ""world""\nsecond line",greeting\nplain,other\r\n';
    expect(parseCsv(text, 10)).toEqual([
      ["text", "label"],
      ['Hello, "world"\nsecond line', "greeting"],
      ["plain", "other"],
    ]);
  });

  it("stops after the asked number of records and skips a byte-order mark", () => {
    const text = "\uFEFFa,b\n1,2\n3,4\n5,6\n";
    expect(parseCsv(text, 2)).toEqual([
      ["a", "b"],
      ["1", "2"],
    ]);
  });

  it("drops a record cut inside its quotes", () => {
    expect(parseCsv('a,b\n1,2\n"unfinished', 10)).toEqual([
      ["a", "b"],
      ["1", "2"],
    ]);
  });
});

describe("previewText", () => {
  it("guesses the BBC columns as the server would", () => {
    const p = previewText('text,category\n"A story",business\n"Another",tech\n');
    expect(p.format).toBe("csv");
    expect(p.columns).toEqual(["text", "category"]);
    expect(p.guessText).toBe("text");
    expect(p.guessLabel).toBe("category");
    expect(p.rows).toEqual([
      ["A story", "business"],
      ["Another", "tech"],
    ]);
  });

  it("leaves the choice to the user when no column name is known", () => {
    const p = previewText("headline,section\nx,y\n");
    expect(p.guessText).toBeNull();
    expect(p.guessLabel).toBeNull();
  });

  it("reads JSON Lines and ignores a line cut at the end", () => {
    const p = previewText('{"review": "good", "sentiment": "pos"}\n{"review": "bad", "sentiment": "neg", "stars": 1}\n{"review": "cu');
    expect(p.format).toBe("jsonl");
    expect(p.columns).toEqual(["review", "sentiment", "stars"]);
    expect(p.guessText).toBe("review");
    expect(p.guessLabel).toBe("sentiment");
    expect(p.rows).toEqual([
      ["good", "pos", ""],
      ["bad", "neg", "1"],
    ]);
  });
});
