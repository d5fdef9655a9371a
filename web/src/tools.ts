// Tool calling in the Playground's chat: the tools the user defines (OpenAI's `tools`
// list, as JSON), the calls a streamed reply assembles from its `delta.tool_calls`
// pieces, and the conversation as the API takes it. Pure functions, unit-tested.

/** A function call of an assistant turn. */
export interface ToolCall {
  id: string;
  name: string;
  /** JSON text, as the API sends it. */
  arguments: string;
}

export type ToolChoice = "auto" | "required" | "none";

/** A starting point for the tool editor. */
export const EXAMPLE_TOOLS = JSON.stringify(
  [
    {
      type: "function",
      function: {
        name: "get_weather",
        description: "Current weather in a city",
        parameters: {
          type: "object",
          properties: {
            city: { type: "string", description: "The city, e.g. Lisbon" },
            unit: { type: "string", enum: ["celsius", "fahrenheit"] },
          },
          required: ["city"],
        },
      },
    },
  ],
  null,
  2,
);

/** The editor's text as a `tools` list, or a message saying what is wrong with it. */
export function parseTools(text: string): { tools: unknown[] } | { error: string } {
  if (!text.trim()) return { tools: [] };
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    return { error: `The tools are not valid JSON: ${(e as Error).message}` };
  }
  const list = Array.isArray(v) ? v : [v];
  for (const [i, t] of list.entries()) {
    const f = (t as { type?: unknown; function?: { name?: unknown } } | null) ?? {};
    if (f.type !== "function" || typeof f.function?.name !== "string" || !f.function.name) {
      return { error: `Tool ${i + 1} needs "type": "function" and a function with a name.` };
    }
  }
  return { tools: list };
}

/** One `delta.tool_calls` piece of a streamed chunk. */
interface CallPiece {
  index?: number;
  id?: string;
  function?: { name?: string; arguments?: string };
}

/** Add a chunk's pieces to the calls assembled so far (by index, as OpenAI streams them). */
export function addCallPieces(calls: ToolCall[], pieces: unknown): ToolCall[] {
  if (!Array.isArray(pieces)) return calls;
  const out = calls.map((c) => ({ ...c }));
  for (const p of pieces as CallPiece[]) {
    const i = typeof p?.index === "number" ? p.index : 0;
    while (out.length <= i) out.push({ id: "", name: "", arguments: "" });
    if (typeof p.id === "string") out[i].id = p.id;
    out[i].name += p.function?.name ?? "";
    out[i].arguments += p.function?.arguments ?? "";
  }
  return out;
}

/** Arguments shown to a person: pretty JSON when they parse, as sent otherwise. */
export function prettyArguments(args: string): string {
  try {
    return JSON.stringify(JSON.parse(args), null, 2);
  } catch {
    return args;
  }
}

/** A turn of the conversation as the page keeps it. */
export interface ToolTurn {
  role: "system" | "user" | "assistant" | "tool";
  content: string;
  tool_calls?: ToolCall[];
  tool_call_id?: string;
}

/** The turns as `messages` of POST /v1/chat/completions. */
export function apiMessages(turns: ToolTurn[]): Record<string, unknown>[] {
  return turns.map((t) => {
    if (t.role === "assistant" && t.tool_calls?.length) {
      return {
        role: "assistant",
        content: t.content || null,
        tool_calls: t.tool_calls.map((c) => ({ id: c.id, type: "function", function: { name: c.name, arguments: c.arguments } })),
      };
    }
    if (t.role === "tool") return { role: "tool", tool_call_id: t.tool_call_id, content: t.content };
    return { role: t.role, content: t.content };
  });
}
