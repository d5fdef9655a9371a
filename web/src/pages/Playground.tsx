// The Playground: try the models with the signed-in key, exactly as a client would.
// Chat streams from /v1/chat/completions, Classify calls a deployed trained model,
// Embeddings compares sentences, OCR reads an image, Entities finds names and addresses,
// Speech transcribes a recording;
// each tab shows the same call as curl and Python.

import { useEffect, useLayoutEffect, useMemo, useRef, useState } from "preact/hooks";
import { api, baseUrl } from "../api";
import { useAction, useApi } from "../hooks";
import { useCan } from "../me";
import { href, navigate } from "../router";
import type { ModelSummary } from "../types";
import { pct } from "../format";
import { Bars, CodePanel, Empty, ErrorBox, Loading, PageHeader, Stat, Tabs } from "../components/ui";
import { classifyRequest, classifySnippets, embeddingsRequest, embeddingsSnippets, predictPath } from "../snippets";
import { ChatTab } from "./Chat";
import { EntitiesTab } from "./Entities";
import { OcrTab } from "./Ocr";
import { SpeechTab } from "./Speech";
import { ModelSelect, libraryOption, libraryGate, useLibrary } from "./playground-widgets";
import { type Explanation, highlightSegments } from "../explain";

export { generationStats } from "./Chat";

type TabId = "chat" | "classify" | "embeddings" | "ocr" | "entities" | "speech";

const TABS: { id: TabId; label: string }[] = [
  { id: "chat", label: "Chat" },
  { id: "classify", label: "Classify" },
  { id: "embeddings", label: "Embeddings" },
  { id: "ocr", label: "OCR" },
  { id: "entities", label: "Entities" },
  { id: "speech", label: "Speech" },
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
          {t.id === "ocr" && <OcrTab />}
          {t.id === "speech" && <SpeechTab />}
          {t.id === "entities" && <EntitiesTab />}
        </section>
      ))}
    </div>
  );
}

// ---------------------------------------------------------------- classify

interface PredictResponse {
  model: string;
  version: number;
  labels: string[];
  predictions: { label: string; confidence: number; probabilities: Record<string, number>; explanation?: Explanation }[];
}

function ClassifyTab() {
  const list = useApi<{ models: ModelSummary[] }>("/api/v1/models");
  const canTrain = useCan("train");
  const deployed = useMemo(() => (list.data?.models ?? []).filter((m) => m.deployed_version != null && m.task === "text-classification"), [list.data]);
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
    const answer = await action.run(() => api<PredictResponse>("POST", predictPath(model), { ...classifyRequest(t), explain: true }));
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
          {prediction.explanation && <Highlights text={result.text} explanation={prediction.explanation} />}
        </div>
      )}
      <CodePanel snippets={classifySnippets({ base: baseUrl(), model, text: text.trim() || "Shares rose after the earnings report." })} />
    </div>
  );
}

/** The text with each token shaded by how much it pushed toward (green) or against (red)
 * the predicted label. */
function Highlights({ text, explanation }: { text: string; explanation: Explanation }) {
  const how = {
    exact: "each word's share of the label's score (the model's weight times the word's TF-IDF value)",
    "integrated-gradients": "integrated gradients: each word's share of the label's score against a text without words",
    occlusion: "how much the label's probability falls without the word",
  }[explanation.method];
  return (
    <div class="explanation">
      <p class="muted small">
        Why {explanation.target}: <span class="toward">green</span> pushed toward it, <span class="against">red</span> against ({how}).
      </p>
      <p class="explained-text" aria-label={`Words that pushed toward or against ${explanation.target}`}>
        {highlightSegments(text, explanation.tokens).map((s) =>
          s.weight === null ? (
            s.text
          ) : (
            <mark
              class={s.weight >= 0 ? "toward" : "against"}
              style={{ "--strength": Math.abs(s.weight).toFixed(3) }}
              title={`${s.attribution! >= 0 ? "+" : ""}${s.attribution!.toPrecision(3)}`}
            >
              {s.text}
            </mark>
          ),
        )}
      </p>
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
  const library = useLibrary(["embedding"]);
  const { models, model, setModel } = library;
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

  const gate = libraryGate(library, "embedding", "all-minilm-l6-v2");
  if (gate) return gate;

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
