// Fine-tuning on the Training page: a form that uploads the JSON Lines training file
// through OpenAI's files API and creates a job, the tenant's fine-tuning jobs, and a
// job's page whose loss curve grows step by step (the events API polled while the job
// runs), with its checkpoints, its log and, once it succeeded, the model to chat with.

import { useEffect, useRef, useState } from "preact/hooks";
import { api, postForm } from "../api";
import { LineChart, color } from "../components/chart";
import { Badge, CopyButton, Empty, ErrorBox, Loading, PageHeader, ProgressBar, Stat, Tabs } from "../components/ui";
import { duration, num, pct } from "../format";
import {
  type FileObject,
  type FineTuneCheckpoint,
  type FineTuneEvent,
  type FineTuneJob,
  type FineTuneStatus,
  type Page,
  isActive,
  jobRequest,
  stepCurve,
  syncEvents,
} from "../finetune";
import { useAction, useApi, useInterval } from "../hooks";
import { useCan } from "../me";
import { href, navigate } from "../router";
import { useLibrary } from "./playground-widgets";

const seconds = (s: number | null | undefined) => (s ? new Date(s * 1000).toLocaleString() : "–");

function StatusBadge({ status }: { status: FineTuneStatus }) {
  const kind = status === "succeeded" ? "ok" : status === "failed" ? "bad" : status === "cancelled" ? "warn" : "info";
  return <Badge kind={kind}>{status.replace("_", " ")}</Badge>;
}

const TRAINING_TABS = [
  { id: "classifiers" as const, label: "Classifiers" },
  { id: "fine-tuning" as const, label: "Fine-tuning" },
];

/** The Training page's two parts: classifiers trained from a CSV, chat models fine-tuned. */
export function TrainingTabs({ current }: { current: "classifiers" | "fine-tuning" }) {
  return <Tabs label="Training" idPrefix="training" tabs={TRAINING_TABS} value={current} onChange={(id) => navigate(id === "classifiers" ? href("training") : href("training", id))} />;
}

/** Training, fine-tuning tab: the form and the tenant's fine-tuning jobs. */
export function FineTuningPage() {
  return (
    <>
      <PageHeader title="Training" />
      <TrainingTabs current="fine-tuning" />
      <FineTuneSection />
    </>
  );
}

function FineTuneSection() {
  const jobs = useApi<Page<FineTuneJob>>("/v1/fine_tuning/jobs?limit=100");
  const anyActive = jobs.data?.data.some((j) => isActive(j.status));
  useInterval(() => anyActive && jobs.reload(), 3000);
  return (
    <>
      <FineTuneForm />
      <section class="card" aria-labelledby="ft-jobs-h">
        <h2 id="ft-jobs-h">Fine-tuning jobs</h2>
        <ErrorBox error={jobs.error} />
        {!jobs.data && !jobs.error && <Loading />}
        {jobs.data && jobs.data.data.length === 0 && <Empty title="No fine-tuning jobs yet">Adapt a chat model to your own conversations with the form above.</Empty>}
        {jobs.data && jobs.data.data.length > 0 && (
          <div class="table-wrap">
            <table>
              <thead>
                <tr>
                  <th>Job</th>
                  <th>Base model</th>
                  <th>Status</th>
                  <th>Fine-tuned model</th>
                  <th>Created</th>
                  <th class="num">Took</th>
                </tr>
              </thead>
              <tbody>
                {jobs.data.data.map((j) => (
                  <tr>
                    <td>
                      <a href={href("training", j.id)}>{j.user_provided_suffix ? `${j.user_provided_suffix} (${j.id})` : j.id}</a>
                    </td>
                    <td>{j.model}</td>
                    <td>
                      <StatusBadge status={j.status} />
                    </td>
                    <td>{j.fine_tuned_model ? <code>{j.fine_tuned_model}</code> : "–"}</td>
                    <td>{seconds(j.created_at)}</td>
                    <td class="num">{j.finished_at ? duration(j.finished_at - j.created_at) : "–"}</td>
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

const UPLOAD = "";

/** A training or validation file: an uploaded one picked, or a new one to upload. */
function FilePick({
  id,
  label,
  files,
  value,
  onChange,
  onFile,
  optional,
}: {
  id: string;
  label: string;
  files: FileObject[];
  value: string;
  onChange: (v: string) => void;
  onFile: (f: File | null) => void;
  optional?: boolean;
}) {
  return (
    <div class="row">
      <label for={`${id}-pick`}>
        {label}
        <select id={`${id}-pick`} value={value} onChange={(e) => onChange((e.target as HTMLSelectElement).value)}>
          {optional && <option value="none">none</option>}
          <option value={UPLOAD}>upload a JSON Lines file…</option>
          {files.map((f) => (
            <option value={f.id}>
              {f.filename} ({f.id})
            </option>
          ))}
        </select>
      </label>
      {value === UPLOAD && (
        <label for={`${id}-file`}>
          {label}: file
          <input id={`${id}-file`} type="file" accept=".jsonl,.json,application/jsonl,text/plain" onChange={(e) => onFile((e.target as HTMLInputElement).files?.[0] ?? null)} />
        </label>
      )}
    </div>
  );
}

function FineTuneForm() {
  const canTrain = useCan("train");
  const library = useLibrary(["chat", "completion"]);
  const bases = library.models.filter((m) => m.format === "gguf");
  const files = useApi<Page<FileObject>>("/v1/files?purpose=fine-tune&limit=100");
  const [model, setModel] = useState("");
  const [training, setTraining] = useState(UPLOAD);
  const [trainingUpload, setTrainingUpload] = useState<File | null>(null);
  const [validation, setValidation] = useState("none");
  const [validationUpload, setValidationUpload] = useState<File | null>(null);
  const [epochs, setEpochs] = useState("");
  const [batch, setBatch] = useState("");
  const [lr, setLr] = useState("");
  const [rank, setRank] = useState("");
  const [alpha, setAlpha] = useState("");
  const [mlp, setMlp] = useState(false);
  const [suffix, setSuffix] = useState("");
  const [seed, setSeed] = useState("");
  const [phase, setPhase] = useState("");
  const act = useAction();
  useEffect(() => {
    if (bases.length && !bases.some((m) => m.name === model)) setModel(bases[0].name);
  }, [library.lib.data]);
  if (!canTrain) return null;
  const upload = async (f: File) => {
    setPhase(`Uploading ${f.name}…`);
    const form = new FormData();
    form.append("purpose", "fine-tune");
    form.append("file", f, f.name);
    return (await postForm<FileObject>("/v1/files", form)).id;
  };
  const fileList = files.data?.data ?? [];
  return (
    <section class="card" aria-labelledby="ft-new-h">
      <h2 id="ft-new-h">Fine-tune a chat model</h2>
      <p class="small muted">
        LoRA on a library model, from conversations in OpenAI's chat format (one <code>{'{"messages": [...]}'}</code> per line) or <code>prompt</code>/<code>completion</code> pairs. The
        result is a model of your own that chat and completions answer with.
      </p>
      <ErrorBox error={library.lib.error} title="The model library could not be read" />
      <ErrorBox error={files.error} title="The uploaded files could not be read" />
      {library.lib.data && bases.length === 0 && (
        <Empty title="No chat model to fine-tune">
          <p>
            An admin pulls one onto the server first, for instance <code class="cmd">aiaas pull smollm2-135m-instruct</code>.
          </p>
        </Empty>
      )}
      {bases.length > 0 && (
        <form
          onSubmit={async (e) => {
            e.preventDefault();
            const job = await act.run(async () => {
              const trainingFile = training === UPLOAD ? (trainingUpload ? await upload(trainingUpload) : null) : training;
              if (!trainingFile) throw new Error("Pick a training file (JSON Lines) to upload, or one uploaded before.");
              let validationFile: string | undefined;
              if (validation === UPLOAD) {
                if (!validationUpload) throw new Error("Pick a validation file to upload, or choose none.");
                validationFile = await upload(validationUpload);
              } else if (validation !== "none") validationFile = validation;
              setPhase("Creating the job…");
              const body = jobRequest({ model, trainingFile, validationFile, epochs, batchSize: batch, lrMultiplier: lr, suffix, seed, rank, alpha, mlp });
              return api<FineTuneJob>("POST", "/v1/fine_tuning/jobs", body);
            }).finally(() => setPhase(""));
            if (job) navigate(href("training", job.id));
          }}
        >
          <div class="row">
            <label for="ft-model">
              Base model
              <select id="ft-model" value={model} onChange={(e) => setModel((e.target as HTMLSelectElement).value)}>
                {bases.map((m) => (
                  <option value={m.name}>{m.name}</option>
                ))}
              </select>
            </label>
            <label for="ft-suffix">
              Suffix
              <input id="ft-suffix" value={suffix} maxLength={64} placeholder="e.g. support" pattern="[A-Za-z0-9_.\-]*" onInput={(e) => setSuffix((e.target as HTMLInputElement).value)} />
            </label>
            <label for="ft-seed">
              Seed
              <input id="ft-seed" value={seed} inputMode="numeric" placeholder="random" onInput={(e) => setSeed((e.target as HTMLInputElement).value)} />
            </label>
          </div>
          <FilePick id="ft-training" label="Training file" files={fileList} value={training} onChange={setTraining} onFile={setTrainingUpload} />
          <FilePick id="ft-validation" label="Validation file" files={fileList} value={validation} onChange={setValidation} onFile={setValidationUpload} optional />
          <div class="row">
            {(
              [
                ["ft-epochs", "Epochs", epochs, setEpochs],
                ["ft-batch", "Batch size", batch, setBatch],
                ["ft-lr", "Learning rate multiplier", lr, setLr],
                ["ft-rank", "LoRA rank", rank, setRank],
                ["ft-alpha", "LoRA alpha", alpha, setAlpha],
              ] as const
            ).map(([id, label, value, set]) => (
              <label for={id}>
                {label}
                <input id={id} value={value} placeholder="auto" inputMode="decimal" onInput={(e) => set((e.target as HTMLInputElement).value)} />
              </label>
            ))}
          </div>
          <label>
            <input type="checkbox" checked={mlp} onChange={(e) => setMlp((e.target as HTMLInputElement).checked)} />
            Adapt the MLP projections too (gate, up, down), not only attention
          </label>
          <ErrorBox error={act.error} />
          {phase && (
            <p class="small" role="status">
              {phase}
            </p>
          )}
          <button type="submit" disabled={act.busy || !model}>
            Start fine-tuning
          </button>
        </form>
      )}
    </section>
  );
}

/** The job, its events and checkpoints, re-read every 2 s while it is active. */
function useFineTune(id: string) {
  const job = useApi<FineTuneJob>(`/v1/fine_tuning/jobs/${encodeURIComponent(id)}`);
  const checkpoints = useApi<Page<FineTuneCheckpoint>>(`/v1/fine_tuning/jobs/${encodeURIComponent(id)}/checkpoints?limit=100`);
  const [events, setEvents] = useState<FineTuneEvent[]>([]);
  const [eventsError, setEventsError] = useState<unknown>(undefined);
  const syncing = useRef(false);
  const sync = async () => {
    if (syncing.current) return;
    syncing.current = true;
    try {
      const base = `/v1/fine_tuning/jobs/${encodeURIComponent(id)}/events?limit=100`;
      setEvents(await syncEvents(events, (after) => api<Page<FineTuneEvent>>("GET", after ? `${base}&after=${encodeURIComponent(after)}` : base)));
      setEventsError(undefined);
    } catch (e) {
      setEventsError(e);
    } finally {
      syncing.current = false;
    }
  };
  useEffect(() => {
    setEvents([]);
  }, [id]);
  const active = job.data ? isActive(job.data.status) : false;
  // Once more after the job ends, so the last steps and the end message are shown.
  const [finalSync, setFinalSync] = useState(false);
  useEffect(() => {
    if (job.data) sync();
    if (job.data && !active && !finalSync) {
      setFinalSync(true);
      checkpoints.reload();
    }
  }, [job.data]);
  useInterval(() => {
    if (!active) return;
    job.reload();
    checkpoints.reload();
  }, 2000);
  return { job, checkpoints, events, eventsError };
}

export function FineTunePage({ id }: { id: string }) {
  const { job, checkpoints, events, eventsError } = useFineTune(id);
  const canTrain = useCan("train");
  const canDeploy = useCan("deploy");
  const act = useAction();
  const [deleted, setDeleted] = useState(false);
  if (job.error) return <ErrorBox error={job.error} />;
  if (!job.data) return <Loading />;
  const j = job.data;
  const active = isActive(j.status);
  const curve = stepCurve(events);
  const last = curve[curve.length - 1];
  const validPoints = curve.filter((p) => p.validLoss !== null);
  const lastValid = validPoints[validPoints.length - 1];
  const messages = events.filter((e) => e.type !== "metrics").reverse();
  const h = j.hyperparameters;
  return (
    <>
      <PageHeader title={`Fine-tuning: ${j.user_provided_suffix || j.id}`}>
        <a class="button secondary" href={href("training", "fine-tuning")}>
          All fine-tuning jobs
        </a>
        {canTrain && active && (
          <button type="button" class="danger" disabled={act.busy} onClick={() => act.run(() => api("POST", `/v1/fine_tuning/jobs/${encodeURIComponent(j.id)}/cancel`)).then(job.reload)}>
            Cancel
          </button>
        )}
      </PageHeader>
      <p>
        <StatusBadge status={j.status} /> · <code>{j.id}</code> · base model {j.model} · created {seconds(j.created_at)}
        {j.finished_at && <> · took {duration(j.finished_at - j.created_at)}</>}
        {active && j.estimated_finish && <> · expected to finish {seconds(j.estimated_finish)}</>}
      </p>
      <ErrorBox error={act.error} />
      {j.error && <ErrorBox error={new Error(j.error.message)} title={`The job failed (${j.error.code}${j.error.param ? `, ${j.error.param}` : ""})`} />}
      {eventsError && <ErrorBox error={eventsError} title="Live updates stopped" />}

      {j.fine_tuned_model && (
        <section class="card" aria-labelledby="ft-result-h">
          <h2 id="ft-result-h">Fine-tuned model</h2>
          {deleted ? (
            <p role="status">Deleted {j.fine_tuned_model}.</p>
          ) : (
            <>
              <p>
                <code data-testid="fine-tuned-model">{j.fine_tuned_model}</code> <CopyButton text={j.fine_tuned_model} label="Copy name" />
              </p>
              <p>
                <a class="button" href={`${href("playground", "chat")}?model=${encodeURIComponent(j.fine_tuned_model)}`}>
                  Chat with it
                </a>{" "}
                {canDeploy && (
                  <button
                    type="button"
                    class="danger-text secondary"
                    disabled={act.busy}
                    onClick={async () => {
                      if (!window.confirm(`Delete ${j.fine_tuned_model}? Chat and completions stop answering with it.`)) return;
                      const ok = await act.run(() => api("DELETE", `/v1/models/${encodeURIComponent(j.fine_tuned_model ?? "")}`).then(() => true));
                      if (ok) setDeleted(true);
                    }}
                  >
                    Delete the model
                  </button>
                )}
              </p>
              <pre class="code">
                <code>{`client.chat.completions.create(model="${j.fine_tuned_model}", messages=[...])`}</code>
              </pre>
            </>
          )}
        </section>
      )}

      <section class="card" aria-labelledby="ft-progress-h">
        <h2 id="ft-progress-h">Training</h2>
        {active && curve.length === 0 && <Loading what={j.status === "validating_files" ? "Validating the files" : j.status === "queued" ? "Waiting for a worker" : "Preparing the examples"} />}
        {last && (
          <>
            <p class="small" data-testid="ft-steps">
              step {last.step} of {last.totalSteps} · epoch {last.epoch}
            </p>
            {active && <ProgressBar value={last.step / Math.max(1, last.totalSteps)} label="fine-tuning steps" />}
            <div class="stats">
              <Stat label="training loss" value={num(last.trainLoss)} />
              <Stat label="token accuracy" value={pct(last.tokenAccuracy)} />
              <Stat label="validation loss" value={num(lastValid?.validLoss)} />
              <Stat label="trained tokens" value={(j.trained_tokens ?? last.trainedTokens ?? 0).toLocaleString()} />
            </div>
            <LineChart
              title="Loss per step"
              x={curve.map((p) => p.step)}
              xLabel="step"
              yLabel="loss"
              rightLabel="token accuracy"
              series={[
                { label: "training loss", values: curve.map((p) => p.trainLoss), color: color(1) },
                { label: "validation loss", values: curve.map((p) => p.validLoss), color: color(3) },
                { label: "token accuracy", values: curve.map((p) => p.tokenAccuracy), color: color(0), right: true },
              ]}
            />
          </>
        )}
        {!active && curve.length === 0 && <Empty title="No training step was recorded for this job" />}
      </section>

      <section class="card" aria-labelledby="ft-ckpt-h">
        <h2 id="ft-ckpt-h">Checkpoints</h2>
        <ErrorBox error={checkpoints.error} />
        {checkpoints.data && checkpoints.data.data.length === 0 && <Empty title="No checkpoint yet">One is sealed at each epoch's end and every few minutes; a job taken over by another replica resumes from the latest.</Empty>}
        {checkpoints.data && checkpoints.data.data.length > 0 && (
          <div class="table-wrap">
            <table>
              <thead>
                <tr>
                  <th class="num">Step</th>
                  <th class="num">Training loss</th>
                  <th class="num">Validation loss</th>
                  <th>Saved</th>
                  <th>Checkpoint</th>
                </tr>
              </thead>
              <tbody>
                {checkpoints.data.data.map((c) => (
                  <tr>
                    <td class="num">{c.step_number}</td>
                    <td class="num">{num(c.metrics.train_loss as number | undefined)}</td>
                    <td class="num">{num(c.metrics.valid_loss as number | undefined)}</td>
                    <td>{seconds(c.created_at)}</td>
                    <td>
                      <code>{c.fine_tuned_model_checkpoint}</code>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>

      <section class="card" aria-labelledby="ft-log-h">
        <h2 id="ft-log-h">Log</h2>
        {messages.length === 0 ? (
          <p class="muted small">No message yet.</p>
        ) : (
          <ul class="log" aria-label="Job messages">
            {messages.map((e) => (
              <li class={e.level === "error" ? "bad" : e.level === "warn" ? "warn" : ""}>
                <span class="muted small">{seconds(e.created_at)}</span> {e.message}
              </li>
            ))}
          </ul>
        )}
      </section>

      <section class="card" aria-labelledby="ft-config-h">
        <h2 id="ft-config-h">Settings</h2>
        <div class="stats">
          <Stat label="epochs" value={String(h.n_epochs)} />
          <Stat label="batch size" value={String(h.batch_size)} />
          <Stat label="learning rate multiplier" value={String(h.learning_rate_multiplier)} />
          <Stat label="LoRA rank" value={String(j.lora.rank ?? "–")} />
          <Stat label="LoRA alpha" value={String(j.lora.alpha ?? "–")} />
          <Stat label="seed" value={String(j.seed)} />
        </div>
        <p class="small">
          LoRA on {(j.lora.targets ?? []).join(", ") || "–"}; training file <code>{j.training_file}</code>
          {j.validation_file && (
            <>
              , validation file <code>{j.validation_file}</code>
            </>
          )}
          .
        </p>
      </section>
    </>
  );
}
