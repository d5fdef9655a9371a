// The Playground: try the models with the signed-in key, exactly as a client would.
// Chat streams from /v1/chat/completions, Classify calls a deployed trained model,
// Embeddings compares sentences; each tab shows the same call as curl and Python.

import type { ComponentChildren } from "preact";
import { useEffect, useLayoutEffect, useMemo, useRef, useState } from "preact/hooks";
import { ApiError, api, baseUrl, stream } from "../api";
import { useAction, useApi } from "../hooks";
import { useCan } from "../me";
import { href, navigate } from "../router";
import type { LibraryModel, ModelSummary } from "../types";
import { pct } from "../format";
import { Bars, CodePanel, Empty, ErrorBox, Loading, PageHeader, Stat, Tabs } from "../components/ui";
import {
  type ChatMessage,
  chatRequest,
  chatSnippets,
  classifyRequest,
  classifySnippets,
  embeddingsRequest,
  embeddingsSnippets,
  predictPath,
} from "../snippets";

type TabId = "chat" | "classify" | "embeddings";

const TABS: { id: TabId; label: string }[] = [
  { id: "chat", label: "Chat" },
  { id: "classify", label: "Classify" },
  { id: "embeddings", label: "Embeddings" },
];

function isTab(t: string | undefined): t is TabId {
  return TABS.some((x) => x.id === t);
}

export function PlaygroundPage({ tab }: { tab?: string }) {
  const current: TabId = isTab(tab) ? tab : "chat";
  // A tab is mounted the first time it is shown and kept afterwards (hidden), so a
  // conversation or a result survives a look at another tab.
  const [visited, setVisited] = useState<TabId[]>([current]);
  useEffect(() => {
    if (!visited.includes(current)) setVisited([...visited, current]);
  }, [current]);
  const shown = visited.includes(current) ? visited : [...visited, current];

  return (
    <div class="playground">
      <PageHeader title="Playground" />
      <p class="muted">
        Try the models with your key, exactly as your own code would call them; “Show code” gives the same call as curl and Python.
      </p>
      <Tabs label="Playground" tabs={TABS} value={current} onChange={(id) => navigate(href("playground", id))} />
      {TABS.filter((t) => shown.includes(t.id)).map((t) => (
        <section key={t.id} role="tabpanel" id={`panel-${t.id}`} aria-labelledby={`tab-${t.id}`} hidden={t.id !== current}>
          {t.id === "chat" && <ChatTab />}
          {t.id === "classify" && <ClassifyTab />}
          {t.id === "embeddings" && <EmbeddingsTab />}
        </section>
      ))}
    </div>
  );
}

// ---------------------------------------------------------------- shared

/** The library's models of some tasks, with the one picked (kept while it exists). */
function useLibrary(tasks: string[]) {
  const lib = useApi<{ models: LibraryModel[] }>("/api/v1/library");
  const models = useMemo(() => (lib.data?.models ?? []).filter((m) => tasks.includes(m.task)), [lib.data]);
  const [model, setModel] = useState("");
  useEffect(() => {
    if (models.length && !models.some((m) => m.name === model)) setModel(models[0].name);
  }, [models]);
  return { lib, models, model, setModel };
}

function ModelSelect({
  id,
  label,
  value,
  onChange,
  options,
  disabled,
}: {
  id: string;
  label: string;
  value: string;
  onChange: (v: string) => void;
  options: { value: string; label: string }[];
  disabled?: boolean;
}) {
  return (
    <label for={id}>
      {label}
      <select id={id} value={value} disabled={disabled} onChange={(e) => onChange((e.target as HTMLSelectElement).value)}>
        {options.map((o) => (
          <option value={o.value}>{o.label}</option>
        ))}
      </select>
    </label>
  );
}

function libraryOption(m: LibraryModel) {
  return { value: m.name, label: m.loaded ? m.name : `${m.name} (not loaded: the first call loads it)` };
}

/**
 * A number input that lets the user type freely (an empty or half-typed value is kept
 * as text) and reports only valid values, clamped on leaving the field.
 */
function NumberField({
  id,
  label,
  value,
  min,
  max,
  step,
  integer,
  onChange,
}: {
  id?: string;
  label?: string;
  value: number;
  min: number;
  max: number;
  step: number;
  integer?: boolean;
  onChange: (v: number) => void;
}) {
  const [text, setText] = useState(String(value));
  useEffect(() => {
    if (Number(text) !== value) setText(String(value));
  }, [value]);
  const parse = (raw: string) => {
    if (raw.trim() === "") return undefined;
    const v = integer ? Math.round(Number(raw)) : Number(raw);
    return Number.isFinite(v) ? v : undefined;
  };
  return (
    <input
      type="number"
      id={id}
      aria-label={label}
      inputMode={integer ? "numeric" : "decimal"}
      min={min}
      max={max}
      step={step}
      value={text}
      onInput={(e) => {
        const raw = (e.target as HTMLInputElement).value;
        setText(raw);
        const v = parse(raw);
        if (v !== undefined && v >= min && v <= max) onChange(v);
      }}
      onBlur={() => {
        const v = parse(text);
        const clamped = v === undefined ? value : Math.min(max, Math.max(min, v));
        if (clamped !== value) onChange(clamped);
        setText(String(clamped));
      }}
    />
  );
}

function Cmd({ children }: { children: ComponentChildren }) {
  return <code class="cmd">{children}</code>;
}

// ---------------------------------------------------------------- chat

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

interface Turn extends ChatMessage {
  /** Set on the assistant turn being streamed or ended early. */
  state?: "streaming" | "stopped";
}

function ChatTab() {
  const { lib, models, model, setModel } = useLibrary(["chat", "completion"]);
  const [turns, setTurns] = useState<Turn[]>([]);
  const [draft, setDraft] = useState("");
  const [system, setSystem] = useState("");
  const [temperature, setTemperature] = useState(0.7);
  const [maxTokens, setMaxTokens] = useState(256);
  const [streaming, setStreaming] = useState(false);
  const [error, setError] = useState<unknown>(undefined);
  const [stats, setStats] = useState<(GenerationStats & { finish?: string; stopped: boolean }) | undefined>(undefined);
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
  const history: ChatMessage[] = turns.filter((t) => t.content !== "").map((t) => ({ role: t.role, content: t.content }));

  const send = async () => {
    const text = draft.trim();
    if (!text || streaming || !model) return;
    const messages: ChatMessage[] = [...prefix, ...history, { role: "user", content: text }];
    setTurns([...turns, { role: "user", content: text }, { role: "assistant", content: "", state: "streaming" }]);
    setDraft("");
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
    let failed = false;
    const update = (state?: Turn["state"]) => {
      if (epoch.current === run) setTurns((ts) => [...ts.slice(0, -1), { role: "assistant", content, state }]);
    };
    try {
      const body = chatRequest({ model, messages, temperature, maxTokens });
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
      } else if (failed && content === "") {
        // Refused or failed before any text: take the message back for another try.
        setTurns((ts) => ts.slice(0, -2));
        setDraft((d) => d || text);
      } else {
        update(stopped ? "stopped" : undefined);
        setStats({ ...generationStats({ start, firstToken, end, chunks, usageTokens }), finish, stopped });
      }
      input.current?.focus();
    }
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

  if (lib.loading && !lib.data) return <Loading what="Loading models" />;
  if (lib.error) return <ErrorBox error={lib.error} title="The model library could not be read" />;
  if (models.length === 0) {
    return (
      <Empty title="No chat model in the library yet">
        <p>
          An admin pulls one onto the server, for instance <Cmd>aiaas pull smollm2-135m-instruct</Cmd> (a small, fast chat model).
        </p>
        <button type="button" class="secondary small" onClick={lib.reload}>
          Check again
        </button>
      </Empty>
    );
  }

  const snippetMessages: ChatMessage[] = [...prefix, ...history, ...(draft.trim() ? [{ role: "user" as const, content: draft.trim() }] : [])];
  const codeMessages = snippetMessages.some((m) => m.role === "user") ? snippetMessages : [...snippetMessages, { role: "user" as const, content: "Hello!" }];

  return (
    <div class="card">
      <div class="row">
        <ModelSelect id="chat-model" label="Model" value={model} onChange={setModel} options={models.map(libraryOption)} disabled={streaming} />
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
        <summary>System prompt{system.trim() ? " (set)" : ""}</summary>
        <label for="chat-system">
          Instructions sent before the conversation (optional)
          <textarea id="chat-system" rows={2} value={system} onInput={(e) => setSystem((e.target as HTMLTextAreaElement).value)} />
        </label>
      </details>

      <div class="chat-log" ref={log} role="log" aria-label="Conversation" aria-live="polite" aria-busy={streaming}>
        {turns.length === 0 && <p class="muted small">No messages yet. Write one below; Enter sends, Shift+Enter starts a new line.</p>}
        {turns.map((t) => (
          <div class={`msg ${t.role}${t.state ? ` ${t.state}` : ""}`}>
            <span class="visually-hidden">{t.role === "user" ? "You: " : "Model: "}</span>
            {t.content}
            {t.state === "streaming" && t.content === "" && <span class="muted">…</span>}
            {t.state === "stopped" && <span class="muted small"> (stopped)</span>}
            {t.role === "assistant" && !t.state && t.content === "" && <span class="muted small">(empty answer)</span>}
          </div>
        ))}
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
            <button type="submit" disabled={!draft.trim() || !model}>
              Send
            </button>
          )}
          <button type="button" class="secondary" onClick={clear} disabled={turns.length === 0 && !stats && !error}>
            Clear conversation
          </button>
        </div>
      </form>

      <CodePanel snippets={chatSnippets({ base: baseUrl(), model, messages: codeMessages, temperature, maxTokens })} />
    </div>
  );
}

// ---------------------------------------------------------------- classify

interface PredictResponse {
  model: string;
  version: number;
  labels: string[];
  predictions: { label: string; confidence: number; probabilities: Record<string, number> }[];
}

function ClassifyTab() {
  const list = useApi<{ models: ModelSummary[] }>("/api/v1/models");
  const canTrain = useCan("train");
  const deployed = useMemo(() => (list.data?.models ?? []).filter((m) => m.deployed_version != null), [list.data]);
  const [model, setModel] = useState("");
  const [text, setText] = useState("");
  const [result, setResult] = useState<{ answer: PredictResponse; ms: number; text: string } | undefined>(undefined);
  const action = useAction();

  useEffect(() => {
    if (deployed.length && !deployed.some((m) => m.name === model)) setModel(deployed[0].name);
  }, [deployed]);

  const classify = async () => {
    const t = text.trim();
    if (!t || !model || action.busy) return;
    const start = performance.now();
    const answer = await action.run(() => api<PredictResponse>("POST", predictPath(model), classifyRequest(t)));
    if (answer) setResult({ answer, ms: performance.now() - start, text: t });
  };

  if (list.loading && !list.data) return <Loading what="Loading models" />;
  if (list.error) return <ErrorBox error={list.error} title="The models could not be listed" />;
  if (deployed.length === 0) {
    return (
      <Empty title="No deployed classifier yet">
        {canTrain ? (
          <p>
            Train a text classifier on a dataset and deploy it: <a href={href("training")}>go to Training</a>.
          </p>
        ) : (
          <p>Ask a developer of your team to train and deploy a text classifier.</p>
        )}
        <button type="button" class="secondary small" onClick={list.reload}>
          Check again
        </button>
      </Empty>
    );
  }

  const prediction = result?.answer.predictions[0];
  const items = prediction
    ? Object.entries(prediction.probabilities)
        .sort((a, b) => b[1] - a[1])
        .map(([label, p]) => ({ label, value: p, caption: pct(p, 1) }))
    : [];

  return (
    <div class="card">
      <form
        onSubmit={(e) => {
          e.preventDefault();
          void classify();
        }}
      >
        <ModelSelect
          id="classify-model"
          label="Model"
          value={model}
          onChange={setModel}
          options={deployed.map((m) => ({ value: m.name, label: `${m.name} (version ${m.deployed_version}${m.task ? `, ${m.task}` : ""})` }))}
        />
        <label for="classify-text">
          Text
          <textarea
            id="classify-text"
            rows={4}
            value={text}
            placeholder="A text to classify…"
            aria-describedby="classify-help"
            onInput={(e) => setText((e.target as HTMLTextAreaElement).value)}
            onKeyDown={(e) => {
              if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
                e.preventDefault();
                void classify();
              }
            }}
          />
        </label>
        <p id="classify-help" class="muted small">
          Ctrl+Enter classifies.
        </p>
        <div class="actions">
          <button type="submit" disabled={!text.trim() || action.busy}>
            {action.busy ? "Classifying…" : "Classify"}
          </button>
        </div>
      </form>
      <ErrorBox error={action.error} />
      {result && prediction && (
        <div class="prediction" aria-live="polite">
          <p class="prediction-label">
            <span class="muted small">Predicted label</span>
            <strong>{prediction.label}</strong>
            <span class="muted">{pct(prediction.confidence, 1)} confident</span>
          </p>
          <p class="muted small">
            {result.answer.model} version {result.answer.version} · answered in {Math.round(result.ms)} ms
          </p>
          <Bars label="Probability of every label" items={items} max={1} />
        </div>
      )}
      <CodePanel snippets={classifySnippets({ base: baseUrl(), model, text: text.trim() || "Shares rose after the earnings report." })} />
    </div>
  );
}

// ---------------------------------------------------------------- embeddings

/** Cosine similarity of two vectors (0 when either is all zeros). */
export function cosine(a: number[], b: number[]): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    dot += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  return na > 0 && nb > 0 ? dot / Math.sqrt(na * nb) : 0;
}

/** Every pair's cosine similarity; the diagonal is 1 for a non-zero vector. */
export function similarityMatrix(vectors: number[][]): number[][] {
  return vectors.map((a) => vectors.map((b) => cosine(a, b)));
}

/** The most similar pair of different rows, or null with fewer than two. */
export function mostSimilarPair(m: number[][]): { i: number; j: number; value: number } | null {
  let best: { i: number; j: number; value: number } | null = null;
  for (let i = 0; i < m.length; i++) {
    for (let j = i + 1; j < m.length; j++) {
      if (!best || m[i][j] > best.value) best = { i, j, value: m[i][j] };
    }
  }
  return best;
}

const EXAMPLES = ["The cat sits on the mat.", "A kitten is resting on the rug.", "Stock markets fell sharply today."];
const MIN_ROWS = 2;
const MAX_ROWS = 6;

interface EmbeddingsResponse {
  data: { embedding: number[]; index: number }[];
  model: string;
  usage?: { prompt_tokens?: number; total_tokens?: number };
}

function EmbeddingsTab() {
  const { lib, models, model, setModel } = useLibrary(["embedding"]);
  const [rows, setRows] = useState<{ id: number; text: string }[]>(() => EXAMPLES.map((text, id) => ({ id, text })));
  const nextId = useRef(EXAMPLES.length);
  const [result, setResult] = useState<{ sentences: string[]; matrix: number[][]; dimension: number; tokens?: number } | undefined>(
    undefined,
  );
  const action = useAction();
  // The sentence to focus once drawn (after adding or removing a row).
  const [focusRow, setFocusRow] = useState<number | null>(null);
  useLayoutEffect(() => {
    if (focusRow === null) return;
    document.getElementById(`sentence-${focusRow}`)?.focus();
    setFocusRow(null);
  }, [focusRow]);

  const inputs = rows.map((r) => r.text.trim()).filter((t) => t !== "");

  const compare = async () => {
    if (action.busy || !model) return;
    if (inputs.length < MIN_ROWS) {
      action.setError(new Error("Write at least two sentences to compare."));
      return;
    }
    const answer = await action.run(() => api<EmbeddingsResponse>("POST", "/v1/embeddings", embeddingsRequest(model, inputs)));
    if (!answer) return;
    const vectors = [...answer.data].sort((a, b) => a.index - b.index).map((d) => d.embedding);
    setResult({
      sentences: inputs,
      matrix: similarityMatrix(vectors),
      dimension: vectors[0]?.length ?? 0,
      tokens: answer.usage?.prompt_tokens ?? answer.usage?.total_tokens,
    });
  };

  const addRow = () => {
    if (rows.length >= MAX_ROWS) return;
    const id = nextId.current++;
    setRows([...rows, { id, text: "" }]);
    setFocusRow(id);
  };
  const removeRow = (id: number) => {
    if (rows.length <= MIN_ROWS) return;
    const at = rows.findIndex((r) => r.id === id);
    const rest = rows.filter((r) => r.id !== id);
    setRows(rest);
    setFocusRow(rest[Math.min(at, rest.length - 1)].id);
  };

  if (lib.loading && !lib.data) return <Loading what="Loading models" />;
  if (lib.error) return <ErrorBox error={lib.error} title="The model library could not be read" />;
  if (models.length === 0) {
    return (
      <Empty title="No embedding model in the library yet">
        <p>
          An admin pulls one onto the server, for instance <Cmd>aiaas pull all-minilm-l6-v2</Cmd>.
        </p>
        <button type="button" class="secondary small" onClick={lib.reload}>
          Check again
        </button>
      </Empty>
    );
  }

  const pair = result ? mostSimilarPair(result.matrix) : null;

  return (
    <div class="card">
      <form
        onSubmit={(e) => {
          e.preventDefault();
          void compare();
        }}
      >
        <ModelSelect id="embeddings-model" label="Model" value={model} onChange={setModel} options={models.map(libraryOption)} />
        <fieldset>
          <legend>Sentences ({rows.length} of at most {MAX_ROWS})</legend>
          {rows.map((r, i) => (
            <div class="sentence-row" key={r.id}>
              <label for={`sentence-${r.id}`}>
                <span class="sentence-tag">S{i + 1}</span>
                <span class="visually-hidden"> Sentence {i + 1}</span>
              </label>
              <input
                id={`sentence-${r.id}`}
                type="text"
                value={r.text}
                onInput={(e) => {
                  const text = (e.target as HTMLInputElement).value;
                  setRows((rs) => rs.map((x) => (x.id === r.id ? { ...x, text } : x)));
                }}
              />
              <button
                type="button"
                class="secondary small"
                aria-label={`Remove sentence ${i + 1}`}
                title={`Remove sentence ${i + 1}`}
                disabled={rows.length <= MIN_ROWS}
                onClick={() => removeRow(r.id)}
              >
                ✕
              </button>
            </div>
          ))}
          <button type="button" class="secondary small" onClick={addRow} disabled={rows.length >= MAX_ROWS}>
            Add a sentence
          </button>
        </fieldset>
        <div class="actions">
          <button type="submit" disabled={action.busy || inputs.length < MIN_ROWS}>
            {action.busy ? "Comparing…" : "Compare"}
          </button>
        </div>
      </form>
      <ErrorBox error={action.error} />
      {result && (
        <div aria-live="polite">
          <div class="stats">
            <Stat label="vector dimension" value={result.dimension} />
            {result.tokens !== undefined && <Stat label="tokens" value={result.tokens} />}
            {pair && <Stat label={`most similar: S${pair.i + 1} and S${pair.j + 1}`} value={pair.value.toFixed(3)} />}
          </div>
          <SimilarityTable sentences={result.sentences} matrix={result.matrix} />
        </div>
      )}
      <CodePanel snippets={embeddingsSnippets({ base: baseUrl(), model, inputs: inputs.length ? inputs : EXAMPLES })} />
    </div>
  );
}

function SimilarityTable({ sentences, matrix }: { sentences: string[]; matrix: number[][] }) {
  return (
    <div class="table-wrap">
      <table class="similarity">
        <caption class="muted small">Cosine similarity between the sentences (1.000: same direction)</caption>
        <thead>
          <tr>
            <th scope="col">
              <span class="visually-hidden">Sentence</span>
            </th>
            {sentences.map((s, j) => (
              <th scope="col" class="num" title={s}>
                S{j + 1}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {matrix.map((row, i) => (
            <tr>
              <th scope="row" title={sentences[i]}>
                <span class="sentence-tag">S{i + 1}</span> <span class="sentence-text">{sentences[i]}</span>
              </th>
              {row.map((v, j) => {
                const strength = Math.max(0, Math.min(1, v));
                return (
                  <td
                    class="num"
                    style={{
                      background: `color-mix(in srgb, var(--accent) ${Math.round(strength * 85)}%, transparent)`,
                      color: strength > 0.6 ? "var(--accent-fg)" : undefined,
                    }}
                    title={`S${i + 1} · S${j + 1}: ${v.toFixed(3)}`}
                  >
                    {v.toFixed(3)}
                  </td>
                );
              })}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
