// A tenant model's release tools: upload an ONNX model (with progress), its signature,
// trying it (images, named fields, or raw KServe tensors), the canary (start, promote,
// roll back, the live split by version), and the model's events.

import { useState } from "preact/hooks";
import { api, postForm, text, upload } from "../api";
import { Badge, Empty, ErrorBox, ProgressBar, Stat } from "../components/ui";
import { num, pct, when } from "../format";
import { useAction, useApi, useInterval } from "../hooks";
import { useCan } from "../me";
import * as prom from "../prom";
import { href, navigate } from "../router";
import type { ModelDetails, ModelEvent, ModelVersion, TensorSpec } from "../types";

/** Upload an .onnx file as the next version of a model (created on first upload). */
export function UploadModel() {
  const [name, setName] = useState("");
  const [file, setFile] = useState<File | null>(null);
  const [config, setConfig] = useState("");
  const [progress, setProgress] = useState<number | null>(null);
  const act = useAction();
  const submit = (e: Event) => {
    e.preventDefault();
    if (!file || !name.trim()) return;
    const query = config.trim() ? `?config=${encodeURIComponent(config.trim())}` : "";
    const path = `/api/v1/models/${encodeURIComponent(name.trim())}/versions${query}`;
    setProgress(0);
    act
      .run(() => upload<ModelVersion>(path, file, setProgress))
      .then((v) => {
        setProgress(null);
        if (v) navigate(`${href("models", name.trim())}?version=${v.version}`);
      });
  };
  return (
    <details class="card">
      <summary>Upload an ONNX model</summary>
      <form onSubmit={submit} aria-label="Upload an ONNX model">
        <div class="row">
          <label>
            Model name
            <input value={name} required placeholder="iris" onInput={(e) => setName((e.target as HTMLInputElement).value)} />
          </label>
          <label>
            .onnx file
            <input type="file" accept=".onnx" required onChange={(e) => setFile((e.target as HTMLInputElement).files?.[0] ?? null)} />
          </label>
        </div>
        <label>
          Configuration (JSON, optional: max_batch_size, inputs, outputs, labels, task, ...)
          <textarea rows={3} value={config} placeholder='{"labels": ["setosa", "versicolor", "virginica"]}' onInput={(e) => setConfig((e.target as HTMLTextAreaElement).value)} />
        </label>
        {progress !== null && <ProgressBar value={progress} label={`uploading ${pct(progress)}`} />}
        <ErrorBox error={act.error} />
        <button type="submit" disabled={act.busy || !file || !name.trim()}>
          Upload
        </button>
      </form>
    </details>
  );
}

function SpecTable({ title, specs }: { title: string; specs: TensorSpec[] }) {
  return (
    <div>
      <h3>{title}</h3>
      <table>
        <thead>
          <tr>
            <th>Name</th>
            <th>Datatype</th>
            <th>Dims</th>
          </tr>
        </thead>
        <tbody>
          {specs.map((s) => (
            <tr>
              <td>{s.name}</td>
              <td>{s.datatype}</td>
              <td>[{s.dims.join(", ")}]</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

interface OnnxConfig {
  max_batch_size: number;
  inputs: TensorSpec[];
  outputs: TensorSpec[];
  threads: number;
  labels?: string[];
  producer?: string;
  task?: { kind: "image-classification" | "tabular"; columns?: string[]; top_k?: number; image?: { size?: number[] } };
}

/** An uploaded version's signature and serving configuration. */
export function Signature({ version }: { version: ModelVersion }) {
  const c = version.config as unknown as OnnxConfig;
  return (
    <section class="card" aria-labelledby="signature-h">
      <h2 id="signature-h">v{version.version} signature</h2>
      <div class="stats">
        <Stat label="format" value={version.format} />
        <Stat label="max batch" value={c.max_batch_size || "no batching"} />
        <Stat label="task" value={c.task?.kind ?? "tensors (KServe v2)"} />
        <Stat label="producer" value={c.producer ?? "–"} />
      </div>
      <div class="grid">
        <SpecTable title="Inputs" specs={c.inputs ?? []} />
        <SpecTable title="Outputs" specs={c.outputs ?? []} />
      </div>
      {c.labels && <p class="muted small">labels: {c.labels.slice(0, 20).join(", ")}{c.labels.length > 20 ? ` … (${c.labels.length})` : ""}</p>}
    </section>
  );
}

interface Ranked {
  label: string;
  index: number;
  score: number;
}

interface TaskPrediction {
  label?: string;
  score?: number;
  top_k?: Ranked[];
  outputs?: Record<string, unknown>;
}

/** Try a deployed ONNX model: an image picker, a form of named fields, or raw tensors. */
export function TryModel({ model, version }: { model: ModelDetails; version: ModelVersion }) {
  const c = version.config as unknown as OnnxConfig;
  const predict = `/api/v1/models/${encodeURIComponent(model.name)}/predict`;
  const [fields, setFields] = useState<Record<string, string>>({});
  const example = {
    inputs: (c.inputs ?? []).map((i) => ({ name: i.name, datatype: i.datatype, shape: i.dims.map((d) => (d < 0 ? 1 : d)), data: [] as number[] })),
  };
  const [raw, setRaw] = useState(JSON.stringify(example, null, 1));
  const [answer, setAnswer] = useState<{ predictions?: TaskPrediction[]; outputs?: unknown[]; model_version?: string } | null>(null);
  const act = useAction();
  if (!model.deployment) return null;
  const task = c.task?.kind;
  return (
    <section class="card" aria-labelledby="try-h">
      <h2 id="try-h">Try it</h2>
      {task === "image-classification" && (
        <label>
          An image (PNG, JPEG, WebP, BMP)
          <input
            type="file"
            accept="image/*"
            aria-label="Image to classify"
            onChange={(e) => {
              const f = (e.target as HTMLInputElement).files?.[0];
              if (!f) return;
              const form = new FormData();
              form.append("image", f);
              act.run(() => postForm<{ predictions: TaskPrediction[] }>(predict, form)).then((a) => a && setAnswer(a));
            }}
          />
        </label>
      )}
      {task === "tabular" && (
        <form
          onSubmit={(e) => {
            e.preventDefault();
            const row: Record<string, number> = {};
            for (const col of c.task?.columns ?? []) row[col] = Number(fields[col] ?? "");
            act.run(() => api<{ predictions: TaskPrediction[] }>("POST", predict, { rows: [row] })).then((a) => a && setAnswer(a));
          }}
        >
          <div class="row">
            {(c.task?.columns ?? []).map((col) => (
              <label>
                {col}
                <input inputMode="decimal" required value={fields[col] ?? ""} onInput={(e) => setFields({ ...fields, [col]: (e.target as HTMLInputElement).value })} />
              </label>
            ))}
          </div>
          <button type="submit" disabled={act.busy}>
            Predict
          </button>
        </form>
      )}
      {!task && (
        <form
          onSubmit={(e) => {
            e.preventDefault();
            let body: unknown;
            try {
              body = JSON.parse(raw);
            } catch (err) {
              act.setError(new Error(`The request is not JSON: ${(err as Error).message}`));
              return;
            }
            act.run(() => api<{ outputs: unknown[] }>("POST", `/v2/models/${encodeURIComponent(model.name)}/infer`, body)).then((a) => a && setAnswer(a));
          }}
        >
          <label>
            KServe v2 request (tensors)
            <textarea rows={6} value={raw} onInput={(e) => setRaw((e.target as HTMLTextAreaElement).value)} />
          </label>
          <button type="submit" disabled={act.busy}>
            Infer
          </button>
        </form>
      )}
      <ErrorBox error={act.error} />
      {answer?.predictions && (
        <div class="table-wrap">
          <table aria-label="Predictions">
            <thead>
              <tr>
                <th>Class</th>
                <th class="num">Score</th>
              </tr>
            </thead>
            <tbody>
              {answer.predictions.flatMap((p) =>
                (p.top_k ?? []).map((r, i) => (
                  <tr>
                    <td>{i === 0 ? <strong>{r.label}</strong> : r.label}</td>
                    <td class="num">{num(r.score)}</td>
                  </tr>
                )),
              )}
            </tbody>
          </table>
          {answer.predictions.some((p) => p.outputs) && (
            <pre class="code">
              <code>{JSON.stringify(answer.predictions.map((p) => p.outputs), null, 2)}</code>
            </pre>
          )}
        </div>
      )}
      {answer?.outputs && (
        <pre class="code">
          <code>{JSON.stringify(answer, null, 2)}</code>
        </pre>
      )}
    </section>
  );
}

/** The canary: start one, promote or roll it back, and watch the split. */
export function CanaryPanel({ model, onChange }: { model: ModelDetails; onChange: () => void }) {
  const canDeploy = useCan("deploy");
  const canMetrics = useCan("read_metrics");
  const act = useAction();
  const d = model.deployment;
  const others = model.versions.filter((v) => v.version !== d?.version).sort((a, b) => b.version - a.version);
  const [version, setVersion] = useState<number | null>(null);
  const [percent, setPercent] = useState(10);
  const [auto, setAuto] = useState(true);
  const [margin, setMargin] = useState(5);
  const [windowSecs, setWindowSecs] = useState(60);
  const [split, setSplit] = useState<Map<string, number> | null>(null);
  const path = `/api/v1/models/${encodeURIComponent(model.name)}`;
  useInterval(() => {
    if (!canMetrics || !d?.canary) return;
    text("/metrics")
      .then((t) => setSplit(prom.sumBy(prom.parse(t), "aiaas_model_requests_total", "version", { model: model.name, tenant: model.tenant_id, track: /stable|canary/ })))
      .catch(() => setSplit(null));
  }, 3000);
  if (!d) return null;
  const total = split ? [...split.values()].reduce((a, b) => a + b, 0) : 0;
  return (
    <section class="card" aria-labelledby="canary-h">
      <h2 id="canary-h">Canary</h2>
      <ErrorBox error={act.error} />
      {d.canary ? (
        <>
          <p>
            <Badge kind="ok">v{d.version} stable</Badge> <Badge kind="info">v{d.canary.version} canary · {d.canary.percent}%</Badge> since {when(d.canary.started_at)}
            {d.canary.auto_rollback && (
              <>
                {" "}
                · rolls back by itself past +{pct(d.canary.auto_rollback.max_error_rate_increase)} errors over {d.canary.auto_rollback.window_secs} s (at least{" "}
                {d.canary.auto_rollback.min_requests} requests)
              </>
            )}
          </p>
          {split && total > 0 && (
            <div class="stats" aria-label="Split">
              {[...split.entries()].map(([v, n]) => (
                <Stat label={`v${v}`} value={`${n} requests · ${pct(n / total)}`} />
              ))}
            </div>
          )}
          {canDeploy && (
            <div class="row">
              <button type="button" disabled={act.busy} onClick={() => act.run(() => api("POST", `${path}/promote`)).then(onChange)}>
                Promote v{d.canary.version}
              </button>
              <button type="button" class="secondary" disabled={act.busy} onClick={() => act.run(() => api("POST", `${path}/rollback`)).then(onChange)}>
                Roll back
              </button>
            </div>
          )}
        </>
      ) : (
        <p class="muted">v{d.version} takes all traffic.</p>
      )}
      {canDeploy && !d.canary && others.length > 0 && (
        <form
          aria-label="Start a canary"
          onSubmit={(e) => {
            e.preventDefault();
            const canary = version ?? others[0].version;
            const body: Record<string, unknown> = { version: d.version, canary: { version: canary, percent } };
            if (auto) body.auto_rollback = { max_error_rate_increase: margin / 100, window_secs: windowSecs, min_requests: 50 };
            act.run(() => api("POST", `${path}/deploy`, body)).then(onChange);
          }}
        >
          <div class="row">
            <label>
              Canary version
              <select value={version ?? others[0].version} onChange={(e) => setVersion(Number((e.target as HTMLSelectElement).value))}>
                {others.map((v) => (
                  <option value={v.version}>v{v.version}</option>
                ))}
              </select>
            </label>
            <label>
              Share of requests (%)
              <input type="number" min={0} max={100} value={percent} onInput={(e) => setPercent(Number((e.target as HTMLInputElement).value))} />
            </label>
            <label>
              <input type="checkbox" checked={auto} onChange={(e) => setAuto((e.target as HTMLInputElement).checked)} /> Roll back automatically
            </label>
            {auto && (
              <>
                <label>
                  past an error-rate increase of (points)
                  <input type="number" min={0} max={100} value={margin} onInput={(e) => setMargin(Number((e.target as HTMLInputElement).value))} />
                </label>
                <label>
                  over (seconds)
                  <input type="number" min={1} max={3600} value={windowSecs} onInput={(e) => setWindowSecs(Number((e.target as HTMLInputElement).value))} />
                </label>
              </>
            )}
          </div>
          <button type="submit" disabled={act.busy}>
            Start the canary
          </button>
        </form>
      )}
    </section>
  );
}

/** What happened to the model, newest first. */
export function EventsPanel({ name, tick }: { name: string; tick: number }) {
  const events = useApi<ModelEvent[]>(`/api/v1/models/${encodeURIComponent(name)}/events?limit=50`, [tick]);
  return (
    <section class="card" aria-labelledby="events-h">
      <h2 id="events-h">Events</h2>
      <ErrorBox error={events.error} />
      {events.data && events.data.length === 0 && <Empty title="Nothing has happened to this model yet" />}
      {events.data && events.data.length > 0 && (
        <div class="table-wrap">
          <table aria-label="Model events">
            <thead>
              <tr>
                <th>When</th>
                <th>What</th>
                <th>Detail</th>
              </tr>
            </thead>
            <tbody>
              {events.data.map((e) => (
                <tr>
                  <td>{when(e.at)}</td>
                  <td>{e.kind === "canary.auto_rollback" ? <Badge kind="bad">{e.kind}</Badge> : e.kind}</td>
                  <td class="small">{typeof e.detail.reason === "string" ? e.detail.reason : JSON.stringify(e.detail)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
