// The Playground's Entities tab: a text sent to a token-classification (NER) model of the
// library, its entities highlighted in place and listed with their scores.

import { useState } from "preact/hooks";
import { api, baseUrl } from "../api";
import { useAction } from "../hooks";
import { pct } from "../format";
import { CodePanel, ErrorBox } from "../components/ui";
import { nerSnippets, predictPath } from "../snippets";
import { ModelSelect, libraryOption, libraryGate, useLibrary } from "./playground-widgets";

export interface FoundEntity {
  label: string;
  score: number;
  /** Code-point offsets into the text (as Python counts). */
  start: number;
  end: number;
  text: string;
}

interface EntitiesResponse {
  model: string;
  aggregation: string;
  predictions: { entities: FoundEntity[] }[];
}

const AGGREGATIONS = ["simple", "first", "max", "average"];
const EXAMPLE = "Please ship the order to Mary Smith, 221 Baker Street, Springfield, IL 62704, or call (415) 555-2671.";

/** The text cut into plain runs and entity runs, by code-point offsets (what the API gives). */
export function segments(text: string, entities: FoundEntity[]): { text: string; entity?: FoundEntity }[] {
  const points = Array.from(text);
  const out: { text: string; entity?: FoundEntity }[] = [];
  let at = 0;
  for (const e of [...entities].sort((a, b) => a.start - b.start)) {
    if (e.start < at || e.end > points.length || e.end <= e.start) continue;
    if (e.start > at) out.push({ text: points.slice(at, e.start).join("") });
    out.push({ text: points.slice(e.start, e.end).join(""), entity: e });
    at = e.end;
  }
  if (at < points.length) out.push({ text: points.slice(at).join("") });
  return out;
}

/** A stable colour slot (0-7) for a label. */
export function labelSlot(label: string): number {
  let h = 0;
  for (const c of label) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return h % 8;
}

export function EntitiesTab() {
  const library = useLibrary(["token-classification"]);
  const { models, model, setModel } = library;
  const [text, setText] = useState(EXAMPLE);
  const [aggregation, setAggregation] = useState("simple");
  const [result, setResult] = useState<{ text: string; entities: FoundEntity[]; ms: number } | undefined>(undefined);
  const action = useAction();

  const find = async () => {
    if (!model || !text.trim() || action.busy) return;
    const start = performance.now();
    const sent = text;
    const answer = await action.run(() => api<EntitiesResponse>("POST", predictPath(model), { texts: [sent], aggregation }));
    if (answer) setResult({ text: sent, entities: answer.predictions[0]?.entities ?? [], ms: performance.now() - start });
  };

  const gate = libraryGate(library, "entity", "pii-ner");
  if (gate) return gate;

  return (
    <div class="card">
      <form
        onSubmit={(e) => {
          e.preventDefault();
          void find();
        }}
      >
        <ModelSelect id="ner-model" label="Model" value={model} onChange={setModel} options={models.map(libraryOption)} />
        <label for="ner-aggregation">
          Aggregation
          <select id="ner-aggregation" value={aggregation} onChange={(e) => setAggregation((e.target as HTMLSelectElement).value)}>
            {AGGREGATIONS.map((a) => (
              <option value={a}>{a}</option>
            ))}
          </select>
        </label>
        <label for="ner-text">
          Text
          <textarea id="ner-text" rows={4} value={text} onInput={(e) => setText((e.target as HTMLTextAreaElement).value)} />
        </label>
        <div class="actions">
          <button type="submit" disabled={!text.trim() || action.busy}>
            {action.busy ? "Finding…" : "Find entities"}
          </button>
        </div>
      </form>
      <ErrorBox error={action.error} />
      {result && (
        <div aria-live="polite">
          <p class="muted small">
            {result.entities.length} entities · answered in {Math.round(result.ms)} ms
          </p>
          <p class="ner-text" aria-label="The text with its entities marked">
            {segments(result.text, result.entities).map((s) =>
              s.entity ? (
                <mark class={`entity slot-${labelSlot(s.entity.label)}`} title={`${s.entity.label} · ${pct(s.entity.score, 1)}`}>
                  {s.text}
                  <span class="entity-label">{s.entity.label}</span>
                </mark>
              ) : (
                s.text
              ),
            )}
          </p>
          {result.entities.length > 0 && (
            <div class="table-wrap">
              <table aria-label="Entities found">
                <thead>
                  <tr>
                    <th scope="col">Label</th>
                    <th scope="col">Text</th>
                    <th scope="col" class="num">
                      Score
                    </th>
                    <th scope="col" class="num">
                      Characters
                    </th>
                  </tr>
                </thead>
                <tbody>
                  {result.entities.map((e) => (
                    <tr>
                      <td>{e.label}</td>
                      <td>{e.text}</td>
                      <td class="num">{pct(e.score, 1)}</td>
                      <td class="num">
                        {e.start}–{e.end}
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
        </div>
      )}
      <CodePanel snippets={nerSnippets({ base: baseUrl(), model, text: text.trim() || EXAMPLE, aggregation })} />
    </div>
  );
}
