// The Playground's chat tab: a conversation streamed from /v1/chat/completions, with
// optional function tools (an editor with an example; a call is shown with its
// arguments and a box for its result, and the conversation goes on once the results
// are sent).

import { useEffect, useRef, useState } from "preact/hooks";
import { ApiError, baseUrl, stream } from "../api";
import { CodePanel, ErrorBox, Stat } from "../components/ui";
import { type ChatMessage, chatRequest, chatSnippets } from "../snippets";
import {
  EXAMPLE_TOOLS,
  type ToolCall,
  type ToolChoice,
  type ToolTurn,
  addCallPieces,
  apiMessages,
  parseTools,
  prettyArguments,
} from "../tools";
import { useRoute } from "../router";
import { ModelSelect, NumberField, libraryOption, libraryGate, useFineTunedModels, useLibrary } from "./playground-widgets";

/** Speed of one streamed answer. */
export interface GenerationStats {
  /** Milliseconds from sending to the first non-empty piece of content. */
  ttftMs: number | null;
  /** Completion tokens (from the usage chunk, else the number of content chunks). */
  tokens: number;
  /** Tokens per second between the first token and the end; null when not measurable. */
  tokensPerSecond: number | null;
}

export function generationStats(t: {
  start: number;
  firstToken: number | undefined;
  end: number;
  chunks: number;
  usageTokens: number | undefined;
}): GenerationStats {
  const tokens = t.usageTokens ?? t.chunks;
  const ttftMs = t.firstToken === undefined ? null : t.firstToken - t.start;
  const seconds = t.firstToken === undefined ? 0 : (t.end - t.firstToken) / 1000;
  return { ttftMs, tokens, tokensPerSecond: seconds > 0 && tokens > 0 ? tokens / seconds : null };
}

interface Turn extends ToolTurn {
  /** Set on the assistant turn being streamed or ended early. */
  state?: "streaming" | "stopped";
}

export function ChatTab() {
  const fineTuned = useFineTunedModels();
  const route = useRoute();
  const library = useLibrary(["chat", "completion"], fineTuned, route.query.get("model"));
  const { models, model, setModel } = library;
  const options = [...models.map(libraryOption), ...fineTuned.map((id) => ({ value: id, label: `${id} (fine-tuned)` }))];
  const [turns, setTurns] = useState<Turn[]>([]);
  const [draft, setDraft] = useState("");
  const [system, setSystem] = useState("");
  const [temperature, setTemperature] = useState(0.7);
  const [maxTokens, setMaxTokens] = useState(256);
  const [streaming, setStreaming] = useState(false);
  const [error, setError] = useState<unknown>(undefined);
  const [stats, setStats] = useState<(GenerationStats & { finish?: string; stopped: boolean }) | undefined>(undefined);
  const [toolsText, setToolsText] = useState("");
  const [toolChoice, setToolChoice] = useState<ToolChoice>("auto");
  /** What the user typed as each pending call's result, by call id. */
  const [results, setResults] = useState<Record<string, string>>({});
  const abort = useRef<AbortController | null>(null);
  // Bumped by Clear: a stream that ends after it no longer writes into the conversation.
  const epoch = useRef(0);
  const log = useRef<HTMLDivElement>(null);
  const input = useRef<HTMLTextAreaElement>(null);

  // Stop a running stream when the page goes away.
  useEffect(() => () => abort.current?.abort(), []);
  // Follow the answer as it grows.
  useEffect(() => {
    const el = log.current;
    if (el) el.scrollTop = el.scrollHeight;
  }, [turns]);

  const selected = models.find((m) => m.name === model);
  const context = Number((selected as { defaults?: { context_length?: number } } | undefined)?.defaults?.context_length) || 32768;
  const prefix: ChatMessage[] = system.trim() ? [{ role: "system", content: system }] : [];
  const history: ChatMessage[] = turns
    .filter((t) => t.content !== "" && t.role !== "tool" && !t.tool_calls?.length)
    .map((t) => ({ role: t.role as ChatMessage["role"], content: t.content }));
  const parsedTools = parseTools(toolsText);
  const toolsError = "error" in parsedTools ? parsedTools.error : undefined;
  const tools = "tools" in parsedTools ? parsedTools.tools : [];
  const last = turns[turns.length - 1];
  const pending: ToolCall[] = !streaming && last?.role === "assistant" ? last.tool_calls ?? [] : [];

  /** Send the user's message, or (with `answers`) the results of the last turn's calls. */
  const send = async (answers?: Turn[]) => {
    const text = draft.trim();
    if ((!text && !answers) || streaming || !model || toolsError) return;
    const added: Turn[] = answers ?? [{ role: "user", content: text }];
    const conversation: Turn[] = [...turns.filter((t) => !(t.role === "assistant" && t.content === "" && !t.tool_calls?.length)), ...added];
    const messages = apiMessages([...prefix, ...conversation]);
    setTurns([...turns, ...added, { role: "assistant", content: "", state: "streaming" }]);
    if (!answers) setDraft("");
    setResults({});
    setError(undefined);
    setStats(undefined);
    setStreaming(true);
    const ctl = new AbortController();
    abort.current = ctl;
    const run = ++epoch.current;
    const start = performance.now();
    let firstToken: number | undefined;
    let chunks = 0;
    let usageTokens: number | undefined;
    let finish: string | undefined;
    let content = "";
    let calls: ToolCall[] = [];
    let failed = false;
    const update = (state?: Turn["state"]) => {
      const turn: Turn = { role: "assistant", content, state, ...(calls.length ? { tool_calls: calls } : {}) };
      if (epoch.current === run) setTurns((ts) => [...ts.slice(0, -1), turn]);
    };
    try {
      // The conversation with its tool turns, in the request the snippets show too.
      const body = { ...chatRequest({ model, messages: [], temperature, maxTokens, tools, toolChoice }), messages };
      for await (const ev of stream("POST", "/v1/chat/completions", body, { signal: ctl.signal })) {
        if (ev.data === "[DONE]") break;
        let chunk: any;
        try {
          chunk = JSON.parse(ev.data);
        } catch {
          continue;
        }
        if (chunk?.error) {
          const err = chunk.error;
          throw new ApiError(0, typeof err === "string" ? err : err.message ?? "The model failed while answering.", err.code);
        }
        const choice = chunk?.choices?.[0];
        const piece = choice?.delta?.content;
        if (typeof piece === "string" && piece !== "") {
          if (firstToken === undefined) firstToken = performance.now();
          chunks++;
          content += piece;
          update("streaming");
        }
        if (choice?.delta?.tool_calls) {
          if (firstToken === undefined) firstToken = performance.now();
          calls = addCallPieces(calls, choice.delta.tool_calls);
          update("streaming");
        }
        if (choice?.finish_reason) finish = choice.finish_reason;
        if (typeof chunk?.usage?.completion_tokens === "number") usageTokens = chunk.usage.completion_tokens;
      }
    } catch (e) {
      if ((e as Error).name !== "AbortError") {
        failed = true;
        if (epoch.current === run) setError(e);
      }
    } finally {
      const end = performance.now();
      const stopped = ctl.signal.aborted;
      if (abort.current === ctl) abort.current = null;
      setStreaming(false);
      if (epoch.current !== run) {
        // Cleared meanwhile: nothing to show.
      } else if (failed && content === "" && calls.length === 0) {
        // Refused or failed before any text: take the message back for another try.
        setTurns((ts) => ts.slice(0, -(1 + added.length)));
        if (!answers) setDraft((d) => d || text);
      } else {
        update(stopped ? "stopped" : undefined);
        setStats({ ...generationStats({ start, firstToken, end, chunks, usageTokens }), finish, stopped });
      }
      input.current?.focus();
    }
  };

  const sendResults = () => {
    void send(pending.map((c) => ({ role: "tool", tool_call_id: c.id, content: results[c.id] ?? "" })));
  };

  const stop = () => abort.current?.abort();
  const clear = () => {
    epoch.current++;
    abort.current?.abort();
    setTurns([]);
    setStats(undefined);
    setError(undefined);
    input.current?.focus();
  };

  const gate = libraryGate(library, "chat", "smollm2-135m-instruct", "a small, fast chat model");
  if (gate) return gate;

  const snippetMessages: ChatMessage[] = [...prefix, ...history, ...(draft.trim() ? [{ role: "user" as const, content: draft.trim() }] : [])];
  const codeMessages = snippetMessages.some((m) => m.role === "user") ? snippetMessages : [...snippetMessages, { role: "user" as const, content: "Hello!" }];

  return (
    <div class="card">
      <div class="row">
        <ModelSelect id="chat-model" label="Model" value={model} onChange={setModel} options={options} disabled={streaming} />
        <label for="chat-temperature">
          Temperature
          <span class="range-pair">
            <input
              type="range"
              id="chat-temperature"
              min={0}
              max={2}
              step={0.05}
              value={temperature}
              onInput={(e) => setTemperature(Number((e.target as HTMLInputElement).value))}
            />
            <NumberField label="Temperature (number)" value={temperature} min={0} max={2} step={0.05} onChange={setTemperature} />
          </span>
        </label>
        <label for="chat-max-tokens">
          Max tokens
          <NumberField id="chat-max-tokens" value={maxTokens} min={1} max={context} step={1} integer onChange={setMaxTokens} />
        </label>
      </div>
      <details class="system-prompt">
        <summary>Tools{tools.length ? ` (${tools.length})` : ""}</summary>
        <label for="chat-tools">
          Function tools the model may call (OpenAI's <code>tools</code> list, JSON)
          <textarea
            id="chat-tools"
            rows={6}
            value={toolsText}
            spellcheck={false}
            aria-invalid={toolsError ? "true" : undefined}
            onInput={(e) => setToolsText((e.target as HTMLTextAreaElement).value)}
          />
        </label>
        {toolsError && <p class="error small">{toolsError}</p>}
        <div class="row">
          <button type="button" class="secondary small" onClick={() => setToolsText(EXAMPLE_TOOLS)}>
            Use an example
          </button>
          <label for="chat-tool-choice">
            Tool choice
            <select id="chat-tool-choice" value={toolChoice} onChange={(e) => setToolChoice((e.target as HTMLSelectElement).value as ToolChoice)}>
              <option value="auto">auto: the model decides</option>
              <option value="required">required: always call</option>
              <option value="none">none: never call</option>
            </select>
          </label>
        </div>
      </details>
      <details class="system-prompt">
        <summary>System prompt{system.trim() ? " (set)" : ""}</summary>
        <label for="chat-system">
          Instructions sent before the conversation (optional)
          <textarea id="chat-system" rows={2} value={system} onInput={(e) => setSystem((e.target as HTMLTextAreaElement).value)} />
        </label>
      </details>

      <div class="chat-log" ref={log} role="log" aria-label="Conversation" aria-live="polite" aria-busy={streaming}>
        {turns.length === 0 && <p class="muted small">No messages yet. Write one below; Enter sends, Shift+Enter starts a new line.</p>}
        {turns.map((t) =>
          t.role === "tool" ? (
            <div class="msg tool">
              <span class="muted small">Tool result: </span>
              {t.content}
            </div>
          ) : (
            <div class={`msg ${t.role}${t.state ? ` ${t.state}` : ""}`}>
              <span class="visually-hidden">{t.role === "user" ? "You: " : "Model: "}</span>
              {t.content}
              {(t.tool_calls ?? []).map((c) => (
                <div class="tool-call" aria-label={`Call of ${c.name}`}>
                  <span class="muted small">calls </span>
                  <code>{c.name}</code>
                  <pre>{prettyArguments(c.arguments)}</pre>
                </div>
              ))}
              {t.state === "streaming" && t.content === "" && !t.tool_calls?.length && <span class="muted">…</span>}
              {t.state === "stopped" && <span class="muted small"> (stopped)</span>}
              {t.role === "assistant" && !t.state && t.content === "" && !t.tool_calls?.length && <span class="muted small">(empty answer)</span>}
            </div>
          ),
        )}
      </div>

      {stats && (
        <div class="stats" aria-label="Speed of the last answer">
          <Stat label="time to first token" value={stats.ttftMs === null ? "–" : `${Math.round(stats.ttftMs)} ms`} />
          <Stat label="tokens / s" value={stats.tokensPerSecond === null ? "–" : stats.tokensPerSecond.toFixed(1)} />
          <Stat label="completion tokens" value={stats.tokens} />
          {(stats.stopped || stats.finish) && (
            <Stat label="finish" value={stats.stopped ? "stopped" : stats.finish === "length" ? "max tokens" : stats.finish} />
          )}
        </div>
      )}
      <ErrorBox error={error} />

      {pending.length > 0 && (
        <form
          class="tool-results"
          aria-label="Tool results"
          onSubmit={(e) => {
            e.preventDefault();
            sendResults();
          }}
        >
          <p class="muted small">The model called {pending.length === 1 ? "a tool" : "tools"}: run it yourself and paste what it returned.</p>
          {pending.map((c) => (
            <label for={`tool-result-${c.id}`}>
              Result of {c.name}
              <textarea
                id={`tool-result-${c.id}`}
                rows={2}
                value={results[c.id] ?? ""}
                placeholder='{"temperature": 21, "sky": "sunny"}'
                onInput={(e) => setResults({ ...results, [c.id]: (e.target as HTMLTextAreaElement).value })}
              />
            </label>
          ))}
          <div class="actions">
            <button type="submit">Send tool results</button>
          </div>
        </form>
      )}

      <form
        class="composer"
        onSubmit={(e) => {
          e.preventDefault();
          void send();
        }}
      >
        <label for="chat-input">
          Message
          <textarea
            id="chat-input"
            ref={input}
            rows={3}
            value={draft}
            placeholder="Ask something…"
            aria-describedby="chat-input-help"
            onInput={(e) => setDraft((e.target as HTMLTextAreaElement).value)}
            onKeyDown={(e) => {
              if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
                e.preventDefault();
                void send();
              }
            }}
          />
        </label>
        <p id="chat-input-help" class="muted small">
          Enter sends, Shift+Enter starts a new line.
        </p>
        <div class="actions">
          {/* One button that turns into Stop (the same element, so it keeps the focus). */}
          {streaming ? (
            <button type="button" class="danger" onClick={stop}>
              Stop
            </button>
          ) : (
            <button type="submit" disabled={!draft.trim() || !model || !!toolsError}>
              Send
            </button>
          )}
          <button type="button" class="secondary" onClick={clear} disabled={turns.length === 0 && !stats && !error}>
            Clear conversation
          </button>
        </div>
      </form>

      <CodePanel snippets={chatSnippets({ base: baseUrl(), model, messages: codeMessages, temperature, maxTokens, tools, toolChoice })} />
    </div>
  );
}
