// Training: start a job with the training API's options, watch it live (curves drawn as
// epochs arrive over SSE), cancel it, compare finished jobs, deploy the result; and
// fine-tune a chat model (pages/FineTuning.tsx).

import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { api, stream } from "../api";
import { EpochCurves, LineChart, color } from "../components/chart";
import { Badge, Empty, ErrorBox, Loading, PageHeader, ProgressBar, Stat } from "../components/ui";
import { duration, num, pct, when } from "../format";
import { useAction, useApi, useInterval } from "../hooks";
import { useCan } from "../me";
import { href, navigate, useRoute } from "../router";
import { apply, emptyProgress, parseData, Progress } from "../training";
import { TrainingTabs } from "./FineTuning";
import type { Dataset, Job, JobStatus, Metrics, TrainingReport } from "../types";

const ARCHITECTURES = [
  { id: "auto", label: "auto (try several, keep the best)" },
  { id: "avgpool", label: "average pooling (fast baseline)" },
  { id: "textcnn", label: "TextCNN (convolutional)" },
  { id: "gru", label: "GRU (recurrent)" },
  { id: "lstm", label: "LSTM (recurrent)" },
  { id: "tfidf-logreg", label: "TF-IDF + logistic regression" },
];

function StatusBadge({ status }: { status: JobStatus }) {
  const kind = status === "succeeded" ? "ok" : status === "failed" ? "bad" : status === "cancelled" ? "warn" : "info";
  return <Badge kind={kind}>{status}</Badge>;
}

/** The metrics of the job's chosen model (test set when there was one). */
export function jobMetrics(report: TrainingReport | null | undefined): Metrics | null {
  if (!report) return null;
  const c = report.candidates.find((x) => x.architecture === report.architecture) ?? report.candidates[0];
  return c?.test ?? c?.validation ?? null;
}

export function JobsPage() {
  const jobs = useApi<{ jobs: Job[] }>("/api/v1/jobs");
  const datasets = useApi<{ datasets: Dataset[] }>("/api/v1/datasets");
  const anyActive = jobs.data?.jobs.some((j) => j.status === "queued" || j.status === "running");
  useInterval(() => anyActive && jobs.reload(), 3000);
  const [selected, setSelected] = useState<string[]>([]);
  const names = new Map((datasets.data?.datasets ?? []).map((d) => [d.id, d.name]));
  const sorted = [...(jobs.data?.jobs ?? [])].sort((a, b) => b.created_at - a.created_at);
  return (
    <>
      <PageHeader title="Training">
        <button type="button" class="secondary" disabled={selected.length < 2} onClick={() => navigate(`${href("training", "compare")}?ids=${selected.join(",")}`)}>
          Compare selected ({selected.length})
        </button>
      </PageHeader>
      <TrainingTabs current="classifiers" />
      <NewJob datasets={datasets.data?.datasets} datasetsError={datasets.error} />
      <section class="card" aria-labelledby="jobs-h">
        <h2 id="jobs-h">Jobs</h2>
        <ErrorBox error={jobs.error} />
        {!jobs.data && !jobs.error && <Loading />}
        {jobs.data && sorted.length === 0 && <Empty title="No training jobs yet">Start one with the form above.</Empty>}
        {sorted.length > 0 && (
          <div class="table-wrap">
            <table>
              <thead>
                <tr>
                  <th>
                    <span class="sr-only">Compare</span>
                  </th>
                  <th>Model</th>
                  <th>Data set</th>
                  <th>Architecture</th>
                  <th>Status</th>
                  <th class="num">Accuracy</th>
                  <th class="num">Macro F1</th>
                  <th>Started</th>
                  <th class="num">Took</th>
                </tr>
              </thead>
              <tbody>
                {sorted.map((j) => {
                  const m = jobMetrics(j.report);
                  const finished = j.status === "succeeded";
                  return (
                    <tr>
                      <td>
                        <input
                          type="checkbox"
                          aria-label={`Compare job ${j.model_name} ${j.id}`}
                          disabled={!finished}
                          checked={selected.includes(j.id)}
                          onChange={(e) => {
                            const on = (e.target as HTMLInputElement).checked;
                            setSelected(on ? [...selected, j.id] : selected.filter((x) => x !== j.id));
                          }}
                        />
                      </td>
                      <td>
                        <a href={href("training", j.id)}>{j.model_name}</a>
                        {j.model_version != null && <span class="muted"> v{j.model_version}</span>}
                      </td>
                      <td>{names.get(j.dataset_id) ?? j.dataset_id.slice(0, 8)}</td>
                      <td>{j.report?.architecture ?? String(j.config?.architecture ?? "–")}</td>
                      <td>
                        <StatusBadge status={j.status} />
                      </td>
                      <td class="num">{pct(m?.accuracy)}</td>
                      <td class="num">{num(m?.macro_f1)}</td>
                      <td>{when(j.started_at ?? j.created_at)}</td>
                      <td class="num">{j.finished_at && j.started_at ? duration((j.finished_at - j.started_at) / 1000) : "–"}</td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </div>
        )}
      </section>
    </>
  );
}

function NewJob({ datasets, datasetsError }: { datasets?: Dataset[]; datasetsError: unknown }) {
  const route = useRoute();
  const [dataset, setDataset] = useState(route.query.get("dataset") ?? "");
  const [model, setModel] = useState("");
  const [architecture, setArchitecture] = useState("avgpool");
  const [epochs, setEpochs] = useState(10);
  const [batch, setBatch] = useState(32);
  const [lr, setLr] = useState(0.001);
  const [split, setSplit] = useState(0.2);
  const [seed, setSeed] = useState(42);
  const [init, setInit] = useState("word2vec");
  const [budget, setBudget] = useState("");
  const [deploy, setDeploy] = useState(false);
  const act = useAction();
  useEffect(() => {
    if (!dataset && datasets && datasets.length > 0) setDataset(datasets[0].name);
  }, [datasets]);
  // A default model name follows the data set until the user types one.
  const named = useRef(false);
  useEffect(() => {
    if (!named.current && dataset) setModel(`${dataset}-classifier`.replace(/[^A-Za-z0-9_.-]+/g, "-").slice(0, 64));
  }, [dataset]);
  if (datasets && datasets.length === 0) {
    return (
      <section class="card">
        <Empty title="Upload a data set first">
          <p>
            Training needs a labelled data set: <a href={href("datasets")}>upload one</a>.
          </p>
        </Empty>
      </section>
    );
  }
  const numberInput = (label: string, value: number, set: (v: number) => void, attrs: Record<string, string | number>) => (
    <label>
      {label}
      <input type="number" value={value} required {...attrs} onInput={(e) => set(Number((e.target as HTMLInputElement).value))} />
    </label>
  );
  return (
    <section class="card" aria-labelledby="new-job-h">
      <h2 id="new-job-h">Start a training job</h2>
      <ErrorBox error={datasetsError} />
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          const job = await act.run(() =>
            api<Job>("POST", "/api/v1/jobs", {
              dataset,
              model,
              deploy,
              config: {
                architecture,
                epochs,
                batch_size: batch,
                learning_rate: lr,
                validation_split: split,
                seed,
                embedding: { init },
                ...(architecture === "auto" && budget !== "" ? { time_budget_secs: Number(budget) } : {}),
              },
            }),
          );
          if (job) navigate(href("training", job.id));
        }}
      >
        <div class="row">
          <label>
            Data set
            <select value={dataset} required onChange={(e) => setDataset((e.target as HTMLSelectElement).value)}>
              {(datasets ?? []).map((d) => (
                <option value={d.name}>
                  {d.name} ({d.row_count} rows, {d.stats?.classes} classes)
                </option>
              ))}
            </select>
          </label>
          <label>
            Model name
            <input
              value={model}
              required
              pattern="[A-Za-z0-9][A-Za-z0-9_.\-]*"
              onInput={(e) => {
                named.current = true;
                setModel((e.target as HTMLInputElement).value);
              }}
            />
          </label>
          <label>
            Architecture
            <select value={architecture} onChange={(e) => setArchitecture((e.target as HTMLSelectElement).value)}>
              {ARCHITECTURES.map((a) => (
                <option value={a.id}>{a.label}</option>
              ))}
            </select>
          </label>
        </div>
        <div class="row">
          {numberInput("Epochs", epochs, setEpochs, { min: 1, max: 1000 })}
          {numberInput("Batch size", batch, setBatch, { min: 1, max: 4096 })}
          {numberInput("Learning rate", lr, setLr, { min: 0.000001, max: 1, step: "any" })}
          {numberInput("Validation split", split, setSplit, { min: 0.05, max: 0.5, step: 0.05 })}
          {numberInput("Seed", seed, setSeed, { min: 0, step: 1 })}
          <label>
            Word vectors
            <select value={init} onChange={(e) => setInit((e.target as HTMLSelectElement).value)}>
              <option value="word2vec">word2vec</option>
              <option value="glove">GloVe</option>
              <option value="random">random</option>
            </select>
          </label>
          {architecture === "auto" && (
            <label>
              Time budget (s)
              <input
                type="number"
                min={1}
                step={1}
                value={budget}
                placeholder="none"
                onInput={(e) => setBudget((e.target as HTMLInputElement).value)}
              />
            </label>
          )}
        </div>
        <label>
          <input type="checkbox" checked={deploy} onChange={(e) => setDeploy((e.target as HTMLInputElement).checked)} />
          Deploy the model when training succeeds
        </label>
        <ErrorBox error={act.error} />
        <button type="submit" disabled={act.busy || !dataset || !model}>
          Start training
        </button>
      </form>
    </section>
  );
}

/** Follows the job's event stream (reconnecting from the last event id if it drops). */
function useJobEvents(id: string, active: boolean): Progress {
  const [progress, setProgress] = useState<Progress>(emptyProgress);
  useEffect(() => {
    if (!active) return;
    const ctl = new AbortController();
    let lastId: string | undefined;
    (async () => {
      for (let attempt = 0; attempt < 20 && !ctl.signal.aborted; attempt++) {
        try {
          for await (const ev of stream("GET", `/api/v1/jobs/${encodeURIComponent(id)}/events`, undefined, { signal: ctl.signal, lastEventId: lastId })) {
            if (ev.id) lastId = ev.id;
            setProgress((p) => apply(p, ev.event, parseData(ev.data), ev.id));
            if (ev.event === "end" || ev.event === "error") return;
          }
        } catch (e) {
          setProgress((p) => apply(p, "error", (e as Error).message));
          return;
        }
        await new Promise((r) => setTimeout(r, 1000));
      }
    })();
    return () => ctl.abort();
  }, [id, active]);
  return progress;
}

export function JobPage({ id }: { id: string }) {
  const job = useApi<Job>(`/api/v1/jobs/${encodeURIComponent(id)}`);
  const live = job.data ? job.data.status === "queued" || job.data.status === "running" : false;
  const [following, setFollowing] = useState(false);
  useEffect(() => {
    if (live) setFollowing(true);
  }, [live]);
  const progress = useJobEvents(id, following);
  useEffect(() => {
    if (progress.end) job.reload();
  }, [progress.end]);
  const canTrain = useCan("train");
  const canDeploy = useCan("deploy");
  const act = useAction();
  const [deployed, setDeployed] = useState<number | null>(null);

  if (job.error) return <ErrorBox error={job.error} />;
  if (!job.data) return <Loading />;
  const j = job.data;
  const report = j.report;
  const curves =
    progress.curves.length > 0
      ? progress.curves
      : (report?.candidates ?? []).map((c) => ({ architecture: c.architecture, epochs: c.curve.length, points: c.curve }));
  const running = j.status === "queued" || j.status === "running";
  const metrics = jobMetrics(report);
  const emb = progress.embedding;
  return (
    <>
      <PageHeader title={`Job: ${j.model_name}`}>
        <a class="button secondary" href={href("training")}>
          All jobs
        </a>
        {canTrain && running && (
          <button type="button" class="danger" disabled={act.busy || j.cancel_requested} onClick={() => act.run(() => api("POST", `/api/v1/jobs/${encodeURIComponent(j.id)}/cancel`)).then(job.reload)}>
            {j.cancel_requested ? "Cancelling…" : "Cancel"}
          </button>
        )}
        {canDeploy && j.status === "succeeded" && j.model_version != null && (
          <button
            type="button"
            disabled={act.busy}
            onClick={async () => {
              const d = await act.run(() => api<{ version: number }>("POST", `/api/v1/models/${encodeURIComponent(j.model_name)}/deploy`, { version: j.model_version }));
              if (d) setDeployed(d.version);
            }}
          >
            Deploy v{j.model_version}
          </button>
        )}
      </PageHeader>
      <p>
        <StatusBadge status={j.status} /> · created {when(j.created_at)}
        {j.started_at && <> · started {when(j.started_at)}</>}
        {j.finished_at && j.started_at && <> · took {duration((j.finished_at - j.started_at) / 1000)}</>}
        {j.model_version != null && (
          <>
            {" "}
            · model <a href={`${href("models", j.model_name)}?version=${j.model_version}`}>{j.model_name} v{j.model_version}</a>
          </>
        )}
      </p>
      {deployed != null && (
        <p class="notice" role="status">
          Deployed {j.model_name} v{deployed}. <a href={href("playground", "classify")}>Try it in the playground</a>.
        </p>
      )}
      <ErrorBox error={act.error} />
      {j.error && <ErrorBox error={new Error(j.error)} title="The job failed" />}
      {progress.error && <ErrorBox error={new Error(progress.error)} title="Live updates stopped" />}

      <section class="card" aria-labelledby="progress-h">
        <h2 id="progress-h">Progress</h2>
        {running && progress.phases.length === 0 && <Loading what={j.status === "queued" ? "Waiting for a worker" : "Starting"} />}
        {progress.phases.length > 0 && (
          <ol class="phases" aria-label="Phases">
            {progress.phases.map((p, i) => (
              <li class={i === progress.phases.length - 1 && running ? "current" : ""}>{p}</li>
            ))}
          </ol>
        )}
        {emb && running && emb.epoch < emb.epochs && (
          <div>
            <p class="small">
              {emb.name}: epoch {emb.epoch} of {emb.epochs}
            </p>
            <ProgressBar value={emb.epoch / emb.epochs} label={`${emb.name} training`} />
          </div>
        )}
        {curves.length === 0 && !running && <Empty title="No per-epoch curve recorded for this job" />}
        {curves.map((c, i) => {
          const last = c.points[c.points.length - 1];
          return (
            <div class="curve" data-architecture={c.architecture}>
              <h3>
                {c.architecture}
                {"trial" in c && c.trial ? ` (${c.trial})` : ""}{" "}
                <span class="muted small" data-testid="epochs-done">
                  epoch {last?.epoch ?? 0} of {c.epochs}
                </span>
              </h3>
              {running && c.epochs > 0 && <ProgressBar value={(last?.epoch ?? 0) / c.epochs} label={`${c.architecture} epochs`} />}
              <EpochCurves architecture={c.architecture} points={c.points} index={i} />
            </div>
          );
        })}
      </section>

      {metrics && (
        <section class="card" aria-labelledby="result-h">
          <h2 id="result-h">Result</h2>
          <div class="stats">
            <Stat label="accuracy" value={pct(metrics.accuracy)} />
            <Stat label="macro precision" value={num(metrics.macro_precision)} />
            <Stat label="macro recall" value={num(metrics.macro_recall)} />
            <Stat label="macro F1" value={num(metrics.macro_f1)} />
          </div>
          {report && report.candidates.length > 1 && (
            <p class="small">
              Tried: {report.candidates.map((c) => `${c.architecture} ${pct(c.validation?.accuracy)}`).join(", ")}; kept {report.architecture}.
            </p>
          )}
          {report?.search && (
            <p class="small" data-testid="search-summary">
              Search: {report.search.trials} trials in {duration(report.search.seconds)}
              {report.search.time_budget_secs != null && <> of a {duration(report.search.time_budget_secs)} budget</>}
              {report.search.skipped > 0 && <>, {report.search.skipped} left out for time</>}
              {report.search.cut_short && <>, one stopped at the budget</>}
              {report.search.refit_skipped && <>, no refit (no time left)</>}.
            </p>
          )}
        </section>
      )}
      <section class="card" aria-labelledby="job-config-h">
        <h2 id="job-config-h">Config</h2>
        <details>
          <summary>Every option of the job, as sent to the training API</summary>
          <pre class="code">
            <code>{JSON.stringify(j.config, null, 2)}</code>
          </pre>
        </details>
      </section>
    </>
  );
}

export function ComparePage({ ids }: { ids: string[] }) {
  const [jobs, setJobs] = useState<Job[] | null>(null);
  const [error, setError] = useState<unknown>(undefined);
  useEffect(() => {
    Promise.all(ids.map((id) => api<Job>("GET", `/api/v1/jobs/${encodeURIComponent(id)}`)))
      .then(setJobs)
      .catch(setError);
  }, [ids.join(",")]);
  const rows = useMemo(
    () =>
      (jobs ?? []).map((j) => {
        const c = j.report?.candidates.find((x) => x.architecture === j.report?.architecture) ?? j.report?.candidates[0];
        return { job: j, metrics: jobMetrics(j.report), curve: c?.curve ?? [] };
      }),
    [jobs],
  );
  if (error) return <ErrorBox error={error} />;
  if (ids.length < 2) return <Empty title="Pick two or more finished jobs to compare">Tick them in the list under <a href={href("training")}>Training</a>.</Empty>;
  if (!jobs) return <Loading />;
  const maxEpochs = Math.max(0, ...rows.map((r) => r.curve.length));
  const x = Array.from({ length: maxEpochs }, (_, i) => i + 1);
  const cfg = (j: Job, k: string) => String(j.config?.[k] ?? "–");
  const lines: [string, (r: (typeof rows)[number]) => string][] = [
    ["data set", (r) => r.job.dataset_id.slice(0, 8)],
    ["architecture", (r) => r.job.report?.architecture ?? cfg(r.job, "architecture")],
    ["epochs", (r) => cfg(r.job, "epochs")],
    ["batch size", (r) => cfg(r.job, "batch_size")],
    ["learning rate", (r) => cfg(r.job, "learning_rate")],
    ["validation split", (r) => cfg(r.job, "validation_split")],
    ["seed", (r) => cfg(r.job, "seed")],
    ["accuracy", (r) => pct(r.metrics?.accuracy)],
    ["macro precision", (r) => num(r.metrics?.macro_precision)],
    ["macro recall", (r) => num(r.metrics?.macro_recall)],
    ["macro F1", (r) => num(r.metrics?.macro_f1)],
    ["training time", (r) => duration(r.job.report?.seconds)],
  ];
  return (
    <>
      <PageHeader title="Compare jobs">
        <a class="button secondary" href={href("training")}>
          All jobs
        </a>
      </PageHeader>
      <section class="card">
        <div class="table-wrap">
          <table>
            <thead>
              <tr>
                <th />
                {rows.map((r) => (
                  <th>
                    <a href={href("training", r.job.id)}>{r.job.model_name}</a>
                    {r.job.model_version != null && ` v${r.job.model_version}`}
                  </th>
                ))}
              </tr>
            </thead>
            <tbody>
              {lines.map(([label, f]) => (
                <tr>
                  <th scope="row">{label}</th>
                  {rows.map((r) => (
                    <td>{f(r)}</td>
                  ))}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      </section>
      {maxEpochs > 0 && (
        <section class="card">
          <h2>Validation accuracy per epoch</h2>
          <LineChart
            title="Validation accuracy per epoch of each job"
            x={x}
            xLabel="epoch"
            yLabel="validation accuracy"
            series={rows.map((r, i) => ({
              label: `${r.job.model_name}${r.job.model_version != null ? ` v${r.job.model_version}` : ""}`,
              values: x.map((e) => r.curve.find((p) => p.epoch === e)?.val_accuracy ?? null),
              color: color(i),
            }))}
          />
        </section>
      )}
    </>
  );
}
