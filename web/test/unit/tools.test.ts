import { describe, expect, it } from "vitest";
import { EXAMPLE_TOOLS, addCallPieces, apiMessages, parseTools, prettyArguments } from "../../src/tools";

describe("tools", () => {
  it("parses the example and names what is wrong", () => {
    const ok = parseTools(EXAMPLE_TOOLS);
    expect("tools" in ok && ok.tools.length).toBe(1);
    expect(parseTools("")).toEqual({ tools: [] });
    expect(parseTools("{")).toHaveProperty("error");
    const bad = parseTools('[{"type": "function", "function": {}}]');
    expect("error" in bad && bad.error).toContain("Tool 1");
    // A single tool object counts as a list of one.
    const one = parseTools('{"type": "function", "function": {"name": "f"}}');
    expect("tools" in one && one.tools.length).toBe(1);
  });

  it("assembles streamed calls by index", () => {
    let calls = addCallPieces([], [{ index: 0, id: "call_a", type: "function", function: { name: "get_weather", arguments: "" } }]);
    calls = addCallPieces(calls, [{ index: 0, function: { arguments: '{"city":' } }]);
    calls = addCallPieces(calls, [{ index: 1, id: "call_b", function: { name: "get_time", arguments: "{}" } }]);
    calls = addCallPieces(calls, [{ index: 0, function: { arguments: '"Oslo"}' } }]);
    calls = addCallPieces(calls, undefined);
    expect(calls).toEqual([
      { id: "call_a", name: "get_weather", arguments: '{"city":"Oslo"}' },
      { id: "call_b", name: "get_time", arguments: "{}" },
    ]);
    expect(prettyArguments('{"city":"Oslo"}')).toBe('{\n  "city": "Oslo"\n}');
    expect(prettyArguments("{cut")).toBe("{cut");
  });

  it("writes calls and results as the API takes them", () => {
    const m = apiMessages([
      { role: "user", content: "Weather?" },
      { role: "assistant", content: "", tool_calls: [{ id: "call_a", name: "get_weather", arguments: "{}" }] },
      { role: "tool", content: "sunny", tool_call_id: "call_a" },
    ]);
    expect(m[1]).toEqual({
      role: "assistant",
      content: null,
      tool_calls: [{ id: "call_a", type: "function", function: { name: "get_weather", arguments: "{}" } }],
    });
    expect(m[2]).toEqual({ role: "tool", tool_call_id: "call_a", content: "sunny" });
  });
});
