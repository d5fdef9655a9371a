// Data sets: upload a CSV / JSON Lines file (columns picked from a preview, progress
// shown, PII masked on request), then its statistics and a preview of what was stored.

import { useRef, useState } from "preact/hooks";
import { api, upload } from "../api";
import { Badge, Bars, Empty, ErrorBox, Loading, PageHeader, ProgressBar, Stat } from "../components/ui";
import { FilePreview, previewText, readHead } from "../csv";
import { bytes, when } from "../format";
import { useAction, useApi } from "../hooks";
import { useCan } from "../me";
import { href, navigate } from "../router";
import type { Dataset, Percentiles } from "../types";

export function DatasetsPage() {
  const list = useApi<{ datasets: Dataset[] }>("/api/v1/datasets");
  const canWrite = useCan("write_data");
  return (
    <>
      <PageHeader title="Datasets" />
      {canWrite && <UploadCard onUploaded={(d) => navigate(href("datasets", d.id))} />}
      <section class="card" aria-labelledby="datasets-h">
        <h2 id="datasets-h">Data sets</h2>
        <ErrorBox error={list.error} />
        {!list.data && !list.error && <Loading />}
        {list.data && list.data.datasets.length === 0 && (
          <Empty title="No data sets yet">{canWrite && <p>Upload a CSV or JSON Lines file with a text column and a label column above.</p>}</Empty>
        )}
        {list.data && list.data.datasets.length > 0 && (
          <div class="table-wrap">
            <table>
              <thead>
                <tr>
                  <th>Name</th>
                  <th class="num">Rows</th>
                  <th class="num">Classes</th>
                  <th>Columns (text / label)</th>
                  <th class="num">Size</th>
                  <th>Uploaded</th>
                </tr>
              </thead>
              <tbody>
                {list.data.datasets.map((d) => (
                  <tr>
                    <td>
                      <a href={href("datasets", d.id)}>{d.name}</a>
                    </td>
                    <td class="num">{d.row_count}</td>
                    <td class="num">{d.stats?.classes ?? "–"}</td>
                    <td>
                      {d.text_column} / {d.label_column}
                    </td>
                    <td class="num">{bytes(d.byte_count)}</td>
                    <td>{when(d.created_at)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>
    </>
  );
}

function UploadCard({ onUploaded }: { onUploaded: (d: Dataset) => void }) {
  const [file, setFile] = useState<File | null>(null);
  const [preview, setPreview] = useState<FilePreview | null>(null);
  const [name, setName] = useState("");
  const [textColumn, setTextColumn] = useState("");
  const [labelColumn, setLabelColumn] = useState("");
  const [mask, setMask] = useState("");
  const [progress, setProgress] = useState<number | null>(null);
  const [error, setError] = useState<unknown>(undefined);
  const abort = useRef<AbortController | null>(null);

  const pick = async (f: File | null) => {
    setFile(f);
    setPreview(null);
    setError(undefined);
    if (!f) return;
    setName(f.name.replace(/\.(csv|jsonl|json|txt)$/i, "").replace(/[^A-Za-z0-9_.-]+/g, "-").slice(0, 64));
    try {
      const p = previewText(await readHead(f));
      setPreview(p);
      setTextColumn(p.guessText ?? p.columns[0] ?? "");
      setLabelColumn(p.guessLabel ?? p.columns.find((c) => c !== (p.guessText ?? p.columns[0])) ?? "");
    } catch (e) {
      setError(e);
    }
  };

  const submit = async (e: Event) => {
    e.preventDefault();
    if (!file || !preview) return;
    const q = new URLSearchParams({ name, format: preview.format });
    if (textColumn) q.set("text_column", textColumn);
    if (labelColumn) q.set("label_column", labelColumn);
    if (mask) q.set("mask_pii", mask);
    setError(undefined);
    setProgress(0);
    abort.current = new AbortController();
    try {
      const d = await upload<Dataset>(`/api/v1/datasets?${q}`, file, setProgress, abort.current.signal);
      onUploaded(d);
    } catch (err) {
      if ((err as Error).name !== "AbortError") setError(err);
    } finally {
      setProgress(null);
      abort.current = null;
    }
  };

  return (
    <section class="card" aria-labelledby="upload-h">
      <h2 id="upload-h">Upload a data set</h2>
      <form onSubmit={submit}>
        <label>
          CSV or JSON Lines file
          <input type="file" accept=".csv,.jsonl,.json,.txt,text/csv" onChange={(e) => pick((e.target as HTMLInputElement).files?.[0] ?? null)} />
        </label>
        {preview && (
          <>
            <div class="row">
              <label>
                Name
                <input required value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} />
              </label>
              <label>
                Text column
                <select value={textColumn} onChange={(e) => setTextColumn((e.target as HTMLSelectElement).value)}>
                  {preview.columns.map((c) => (
                    <option value={c}>{c}</option>
                  ))}
                </select>
              </label>
              <label>
                Label column
                <select value={labelColumn} onChange={(e) => setLabelColumn((e.target as HTMLSelectElement).value)}>
                  {preview.columns.map((c) => (
                    <option value={c}>{c}</option>
                  ))}
                </select>
              </label>
              <label>
                Mask personal data
                <select value={mask} onChange={(e) => setMask((e.target as HTMLSelectElement).value)}>
                  <option value="">no</option>
                  <option value="mask">mask (138****5678)</option>
                  <option value="label">label ([PHONE])</option>
                  <option value="pseudonymise">pseudonymise ([PHONE:1f3a…])</option>
                </select>
              </label>
            </div>
            <h3>
              Preview <span class="muted small">({preview.format.toUpperCase()}, first rows)</span>
            </h3>
            <div class="table-wrap preview">
              <table>
                <thead>
                  <tr>
                    {preview.columns.map((c) => (
                      <th>
                        {c} {c === textColumn && <Badge kind="info">text</Badge>} {c === labelColumn && <Badge kind="ok">label</Badge>}
                      </th>
                    ))}
                  </tr>
                </thead>
                <tbody>
                  {preview.rows.map((r) => (
                    <tr>
                      {r.map((cell) => (
                        <td>{cell.length > 160 ? `${cell.slice(0, 160)}…` : cell}</td>
                      ))}
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
            {textColumn === labelColumn && <p class="error">The text and label columns must differ.</p>}
          </>
        )}
        <ErrorBox error={error} />
        {progress !== null && <ProgressBar value={progress} label="Upload progress" />}
        <div class="row">
          <div>
            <button type="submit" disabled={!preview || progress !== null || !name || textColumn === labelColumn}>
              Upload
            </button>{" "}
            {progress !== null && (
              <button type="button" class="secondary" onClick={() => abort.current?.abort()}>
                Cancel
              </button>
            )}
          </div>
        </div>
      </form>
    </section>
  );
}

function lengthBars(p: Percentiles | undefined, unit: string) {
  if (!p) return null;
  const items = [
    { label: "shortest", value: p.min },
    { label: "median", value: p.p50 },
    { label: "mean", value: p.mean },
    { label: "90th pct", value: p.p90 },
    { label: "99th pct", value: p.p99 },
    { label: "longest", value: p.max },
  ].map((i) => ({ ...i, caption: `${Math.round(i.value)} ${unit}` }));
  return <Bars label={`Text length in ${unit}`} items={items} />;
}

export function DatasetPage({ id }: { id: string }) {
  const d = useApi<Dataset>(`/api/v1/datasets/${encodeURIComponent(id)}`);
  const rows = useApi<{ rows: { line: number; text: string; label: string }[] }>(`/api/v1/datasets/${encodeURIComponent(id)}/preview?limit=10`);
  const canTrain = useCan("train");
  const canWrite = useCan("write_data");
  const act = useAction();
  if (d.error) return <ErrorBox error={d.error} />;
  if (!d.data) return <Loading />;
  const ds = d.data;
  const s = ds.stats;
  const pii = s.pii;
  const piiTotal = pii ? Object.values(pii.found).reduce((a, b) => a + b, 0) : 0;
  return (
    <>
      <PageHeader title={ds.name}>
        <a class="button secondary" href={href("datasets")}>
          All data sets
        </a>
        {canTrain && (
          <a class="button" href={`${href("training")}?dataset=${encodeURIComponent(ds.name)}`}>
            Train on it
          </a>
        )}
        {canWrite && (
          <button
            type="button"
            class="danger"
            disabled={act.busy}
            onClick={async () => {
              if (!window.confirm(`Delete the data set ${ds.name}? Models trained on it stay.`)) return;
              try {
                await api("DELETE", `/api/v1/datasets/${encodeURIComponent(ds.id)}`);
                navigate(href("datasets"));
              } catch (e) {
                act.setError(e);
              }
            }}
          >
            Delete
          </button>
        )}
      </PageHeader>
      <ErrorBox error={act.error} />
      <section class="card">
        <div class="stats">
          <Stat label="rows" value={ds.row_count} />
          <Stat label="classes" value={s.classes} />
          <Stat label="size" value={bytes(ds.byte_count)} />
          <Stat label="format" value={ds.format} />
          <Stat label="text / label" value={`${ds.text_column} / ${ds.label_column}`} />
        </div>
        <p class="muted small">Uploaded {when(ds.created_at)} · columns in the file: {s.columns?.join(", ")}</p>
      </section>
      {pii && (
        <section class="card" aria-labelledby="pii-h">
          <h2 id="pii-h">Personal data</h2>
          <p>
            Masked on upload ({pii.mode}): {piiTotal === 0 ? "nothing was found." : `${piiTotal} values found and masked before storing.`}
          </p>
          {piiTotal > 0 && <Bars label="Personal data found, by kind" items={Object.entries(pii.found).map(([k, n]) => ({ label: k, value: n }))} />}
        </section>
      )}
      <div class="grid">
        <section class="card" aria-labelledby="balance-h">
          <h2 id="balance-h">Class balance</h2>
          <Bars
            label="Rows per class"
            items={(s.class_balance ?? []).map((c) => ({ label: c.label, value: c.count, caption: `${c.count} (${(c.fraction * 100).toFixed(1)}%)` }))}
          />
        </section>
        <section class="card" aria-labelledby="length-h">
          <h2 id="length-h">Text length</h2>
          {lengthBars(s.text_tokens, "tokens")}
          <h3 class="small muted">in characters</h3>
          {lengthBars(s.text_chars, "chars")}
        </section>
      </div>
      <section class="card" aria-labelledby="rows-h">
        <h2 id="rows-h">Stored rows</h2>
        <ErrorBox error={rows.error} />
        {rows.data && (
          <div class="table-wrap">
            <table>
              <thead>
                <tr>
                  <th class="num">Line</th>
                  <th>Text</th>
                  <th>Label</th>
                </tr>
              </thead>
              <tbody>
                {rows.data.rows.map((r) => (
                  <tr>
                    <td class="num">{r.line}</td>
                    <td>{r.text.length > 300 ? `${r.text.slice(0, 300)}…` : r.text}</td>
                    <td>{r.label}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>
    </>
  );
}
