// Models: trained classifiers (versions, aliases, deployment) and library models (LLMs,
// embedders), with their serving state; a model page with metrics, curves, confusion
// matrix and training config.

import { useState } from "preact/hooks";
import { api } from "../api";
import { EpochCurves } from "../components/chart";
import { Badge, Empty, ErrorBox, Heatmap, Loading, PageHeader, Stat } from "../components/ui";
import { bytes, duration, num, pct, when } from "../format";
import { useAction, useApi, useInterval } from "../hooks";
import { useCan } from "../me";
import { href, navigate } from "../router";
import type { LibraryModel, ModelDetails, ModelSummary, ModelVersion, Running } from "../types";
import { CanaryPanel, EventsPanel, Signature, TryModel, UploadModel } from "./model-release";

/** Serving state from /api/v1/ps: busy, loaded (idle) or unloaded. */
function ServingState({ running }: { running?: Running }) {
  if (!running) return <Badge>unloaded</Badge>;
  if (running.in_flight > 0 || (running.slots_busy ?? 0) > 0) return <Badge kind="ok">busy</Badge>;
  return <Badge kind="info">loaded · idle {duration(running.idle_for)}</Badge>;
}

function queueOf(r?: Running): string {
  if (!r) return "–";
  if (r.slots != null) return `${r.slots_busy ?? 0}/${r.slots} slots · ${r.in_flight} in flight`;
  return `${r.in_flight} in flight`;
}

export function ModelsPage() {
  const models = useApi<{ models: ModelSummary[] }>("/api/v1/models");
  const library = useApi<{ models: LibraryModel[] }>("/api/v1/library");
  const ps = useApi<{ models: Running[] }>("/api/v1/ps");
  useInterval(() => ps.reload(), 3000);
  const running = new Map((ps.data?.models ?? []).map((r) => [r.key, r]));
  const canDeploy = useCan("deploy");
  const canTrain = useCan("train");
  const canManageLibrary = useCan("manage_library");
  const act = useAction();
  const refresh = () => {
    models.reload();
    library.reload();
    ps.reload();
  };

  return (
    <>
      <PageHeader title="Models">
        {canTrain && (
          <a class="button" href={href("training")}>
            Train a model
          </a>
        )}
      </PageHeader>
      <ErrorBox error={act.error} />
      {canDeploy && <UploadModel />}
      <section class="card" aria-labelledby="trained-h">
        <h2 id="trained-h">Tenant models</h2>
        <ErrorBox error={models.error} />
        {!models.data && !models.error && <Loading />}
        {models.data && models.data.models.length === 0 && (
          <Empty title="No trained models yet">
            {canTrain ? (
              <p>
                Upload a data set under <a href={href("datasets")}>Datasets</a>, then start a job under <a href={href("training")}>Training</a>.
              </p>
            ) : (
              <p>Models trained in this tenant will appear here.</p>
            )}
          </Empty>
        )}
        {models.data && models.data.models.length > 0 && (
          <div class="table-wrap">
            <table>
              <thead>
                <tr>
                  <th>Name</th>
                  <th>Task</th>
                  <th class="num">Latest</th>
                  <th>Aliases</th>
                  <th>Deployed</th>
                  <th>State</th>
                  <th class="num">Memory</th>
                  <th>Queue</th>
                  {canDeploy && <th>Actions</th>}
                </tr>
              </thead>
              <tbody>
                {models.data.models.map((m) => {
                  const r = m.deployed_version != null ? running.get(`${m.id}:${m.deployed_version}`) : undefined;
                  return (
                    <tr>
                      <td>
                        <a href={href("models", m.name)}>{m.name}</a>
                      </td>
                      <td>{m.task}</td>
                      <td class="num">v{m.latest_version ?? "–"}</td>
                      <td>{m.aliases.map((a) => `${a.alias}→v${a.version}`).join(", ") || "–"}</td>
                      <td>{m.deployed_version != null ? <Badge kind="ok">v{m.deployed_version}</Badge> : <Badge>not deployed</Badge>}</td>
                      <td>{m.deployed_version != null ? <ServingState running={r} /> : "–"}</td>
                      <td class="num">{bytes(r?.memory_bytes)}</td>
                      <td>{queueOf(r)}</td>
                      {canDeploy && (
                        <td>
                          {m.deployed_version == null ? (
                            <button
                              type="button"
                              class="small"
                              disabled={act.busy}
                              onClick={() => act.run(() => api("POST", `/api/v1/models/${encodeURIComponent(m.name)}/deploy`)).then(refresh)}
                            >
                              Deploy latest
                            </button>
                          ) : (
                            <button
                              type="button"
                              class="small secondary"
                              disabled={act.busy}
                              onClick={() => act.run(() => api("POST", `/api/v1/models/${encodeURIComponent(m.name)}/undeploy`)).then(refresh)}
                            >
                              Undeploy
                            </button>
                          )}
                        </td>
                      )}
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </div>
        )}
      </section>

      <section class="card" aria-labelledby="library-h">
        <h2 id="library-h">Library models</h2>
        <p class="muted small">LLMs and embedding models pulled into this installation (<code>aiaas pull NAME</code>), shared by every tenant.</p>
        <ErrorBox error={library.error} />
        {library.data && library.data.models.length === 0 && (
          <Empty title="No library models">
            <p>
              An admin pulls one with <code>aiaas pull smollm2-135m-instruct</code> (chat) or <code>aiaas pull all-minilm-l6-v2</code> (embeddings).
            </p>
          </Empty>
        )}
        {library.data && library.data.models.length > 0 && (
          <div class="table-wrap">
            <table>
              <thead>
                <tr>
                  <th>Name</th>
                  <th>Task</th>
                  <th>Format</th>
                  <th class="num">Size</th>
                  <th>State</th>
                  <th class="num">Memory</th>
                  <th>Queue</th>
                  {canManageLibrary && <th>Actions</th>}
                </tr>
              </thead>
              <tbody>
                {library.data.models.map((m) => {
                  const r = running.get(`lib:${m.name}`);
                  return (
                    <tr>
                      <td>
                        <a href={`${href("models", m.name)}?library=1`}>{m.name}</a>
                      </td>
                      <td>{m.task}</td>
                      <td>{m.format}</td>
                      <td class="num">{bytes(m.size_bytes)}</td>
                      <td>
                        <ServingState running={r} />
                      </td>
                      <td class="num">{bytes(r?.memory_bytes)}</td>
                      <td>{queueOf(r)}</td>
                      {canManageLibrary && (
                        <td>
                          <LoadButton name={m.name} loaded={!!r} onDone={refresh} act={act} />
                        </td>
                      )}
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

function LoadButton({ name, loaded, onDone, act }: { name: string; loaded: boolean; onDone: () => void; act: ReturnType<typeof useAction> }) {
  const path = `/api/v1/library/${encodeURIComponent(name)}/${loaded ? "unload" : "load"}`;
  return (
    <button type="button" class={loaded ? "small secondary" : "small"} disabled={act.busy} onClick={() => act.run(() => api("POST", path)).then(onDone)}>
      {loaded ? "Unload" : "Load"}
    </button>
  );
}

export function ModelPage({ name, library, version }: { name: string; library: boolean; version: string | null }) {
  return library ? <LibraryModelPage name={name} /> : <TrainedModelPage name={name} selected={version} />;
}

function TrainedModelPage({ name, selected }: { name: string; selected: string | null }) {
  const model = useApi<ModelDetails>(`/api/v1/models/${encodeURIComponent(name)}`);
  const ps = useApi<{ models: Running[] }>("/api/v1/ps");
  const canDeploy = useCan("deploy");
  const act = useAction();
  const [alias, setAlias] = useState("");
  const [tick, setTick] = useState(0);
  if (model.error) return <ErrorBox error={model.error} />;
  if (!model.data) return <Loading />;
  const m = model.data;
  const versions = [...m.versions].sort((a, b) => b.version - a.version);
  const shown = versions.find((v) => String(v.version) === selected) ?? versions.find((v) => v.version === m.deployment?.version) ?? versions[0];
  const running = ps.data?.models.find((r) => r.key === `${m.id}:${m.deployment?.version}`);
  const path = `/api/v1/models/${encodeURIComponent(m.name)}`;
  const refresh = () => {
    model.reload();
    ps.reload();
    setTick((t) => t + 1);
  };
  return (
    <>
      <PageHeader title={m.name}>
        <a class="button secondary" href={href("models")}>
          All models
        </a>
        {canDeploy && m.deployment && (
          <button type="button" class="secondary" disabled={act.busy} onClick={() => act.run(() => api("POST", `${path}/undeploy`)).then(refresh)}>
            Undeploy
          </button>
        )}
      </PageHeader>
      <p>
        {m.task} · created {when(m.created_at)} ·{" "}
        {m.deployment ? (
          <>
            <Badge kind="ok">deployed v{m.deployment.version}</Badge>
            {m.deployment.canary && <Badge kind="info">canary v{m.deployment.canary.version} · {m.deployment.canary.percent}%</Badge>} <ServingState running={running} />
          </>
        ) : (
          <Badge>not deployed</Badge>
        )}
        {m.deployment?.pii_inputs && <> · inputs masked ({m.deployment.pii_inputs})</>}
      </p>
      <ErrorBox error={act.error} />

      <section class="card" aria-labelledby="versions-h">
        <h2 id="versions-h">Versions</h2>
        <div class="table-wrap">
          <table>
            <thead>
              <tr>
                <th class="num">Version</th>
                <th>Architecture</th>
                <th class="num">Accuracy</th>
                <th class="num">Macro F1</th>
                <th>Aliases</th>
                <th>Created</th>
                {canDeploy && <th>Actions</th>}
              </tr>
            </thead>
            <tbody>
              {versions.map((v) => {
                const metrics = bestMetrics(v);
                const isDeployed = m.deployment?.version === v.version;
                return (
                  <tr aria-current={v === shown ? "true" : undefined}>
                    <td class="num">
                      <a href={`${href("models", m.name)}?version=${v.version}`}>v{v.version}</a>
                      {isDeployed && <> <Badge kind="ok">deployed</Badge></>}
                    </td>
                    <td>{v.architecture}</td>
                    <td class="num">{pct(metrics?.accuracy)}</td>
                    <td class="num">{num(metrics?.macro_f1)}</td>
                    <td>{m.aliases.filter((a) => a.version === v.version).map((a) => a.alias).join(", ") || "–"}</td>
                    <td>{when(v.created_at)}</td>
                    {canDeploy && (
                      <td>
                        {!isDeployed && (
                          <button type="button" class="small" disabled={act.busy} onClick={() => act.run(() => api("POST", `${path}/deploy`, { version: v.version })).then(refresh)}>
                            Deploy v{v.version}
                          </button>
                        )}
                      </td>
                    )}
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
        {canDeploy && (
          <form
            class="row"
            onSubmit={(e) => {
              e.preventDefault();
              if (!shown || !alias.trim()) return;
              act.run(() => api("POST", `${path}/aliases`, { alias: alias.trim(), version: shown.version })).then(() => {
                setAlias("");
                refresh();
              });
            }}
          >
            <label>
              Alias for v{shown?.version}
              <input value={alias} placeholder="production" onInput={(e) => setAlias((e.target as HTMLInputElement).value)} />
            </label>
            <div>
              <button type="submit" disabled={act.busy || !alias.trim()}>
                Set alias
              </button>
            </div>
          </form>
        )}
      </section>

      <CanaryPanel model={m} onChange={refresh} />
      {shown && shown.format === "onnx" && <Signature version={shown} />}
      {shown && shown.format === "onnx" && <TryModel model={m} version={shown} />}
      {shown && shown.format !== "onnx" && <VersionDetails version={shown} />}
      <EventsPanel name={m.name} tick={tick} />
    </>
  );
}

/** The chosen candidate's validation (or test) metrics of a version. */
function bestMetrics(v: ModelVersion) {
  const report = v.report;
  // Uploaded models have no training report (an empty object).
  if (!report?.candidates) return null;
  const c = report.candidates.find((c) => c.architecture === report.architecture) ?? report.candidates[0];
  return c?.test ?? c?.validation ?? null;
}

function VersionDetails({ version }: { version: ModelVersion }) {
  const report = version.report;
  const chosen = report?.candidates.find((c) => c.architecture === report.architecture) ?? report?.candidates[0];
  const metrics = chosen?.test ?? chosen?.validation ?? null;
  const which = chosen?.test ? "test set" : "validation set";
  return (
    <>
      <section class="card" aria-labelledby="metrics-h">
        <h2 id="metrics-h">
          v{version.version} metrics <span class="muted small">({which})</span>
        </h2>
        {!metrics && <Empty title="No evaluation recorded for this version" />}
        {metrics && (
          <>
            <div class="stats">
              <Stat label="accuracy" value={pct(metrics.accuracy)} />
              <Stat label="macro precision" value={num(metrics.macro_precision)} />
              <Stat label="macro recall" value={num(metrics.macro_recall)} />
              <Stat label="macro F1" value={num(metrics.macro_f1)} />
              <Stat label="samples" value={metrics.samples} />
            </div>
            <div class="grid">
              <div>
                <h3>Per class</h3>
                <div class="table-wrap">
                  <table>
                    <thead>
                      <tr>
                        <th>Label</th>
                        <th class="num">Precision</th>
                        <th class="num">Recall</th>
                        <th class="num">F1</th>
                        <th class="num">Support</th>
                      </tr>
                    </thead>
                    <tbody>
                      {metrics.per_class.map((c) => (
                        <tr>
                          <td>{c.label}</td>
                          <td class="num">{num(c.precision)}</td>
                          <td class="num">{num(c.recall)}</td>
                          <td class="num">{num(c.f1)}</td>
                          <td class="num">{c.support}</td>
                        </tr>
                      ))}
                    </tbody>
                  </table>
                </div>
              </div>
              <div>
                <h3>Confusion matrix</h3>
                <Heatmap labels={metrics.labels} matrix={metrics.confusion} />
              </div>
            </div>
          </>
        )}
      </section>
      {chosen?.top_features && chosen.top_features.length > 0 && (
        <section class="card" aria-labelledby="features-h">
          <h2 id="features-h">Top features per class</h2>
          <p class="muted small">The terms with the largest weights toward each class in the model (global importance; a prediction's own reasons are in the playground).</p>
          <div class="top-features">
            {chosen.top_features.map((c) => (
              <div>
                <h3>{c.label}</h3>
                <ol aria-label={`Top features of ${c.label}`}>
                  {c.toward.slice(0, 10).map((f) => (
                    <li>
                      {f.feature} <span class="muted small">{f.weight.toFixed(2)}</span>
                    </li>
                  ))}
                </ol>
              </div>
            ))}
          </div>
        </section>
      )}
      {report && report.candidates.some((c) => c.curve.length > 0) && (
        <section class="card" aria-labelledby="curves-h">
          <h2 id="curves-h">Training curves</h2>
          {report.candidates.map((c, i) => (
            <div>
              <h3>
                {c.architecture} {c.architecture === report.architecture && <Badge kind="ok">chosen</Badge>} <span class="muted small">trained in {duration(c.train_seconds)}</span>
              </h3>
              <EpochCurves architecture={c.architecture} points={c.curve} index={i} />
            </div>
          ))}
        </section>
      )}
      <section class="card" aria-labelledby="config-h">
        <h2 id="config-h">Training config</h2>
        <p class="muted small">
          {report && (
            <>
              {report.train_samples} training / {report.validation_samples} validation samples, vocabulary {report.vocabulary}, {duration(report.seconds)} in all.{" "}
            </>
          )}
          {version.job_id && <a href={href("training", version.job_id)}>The training job</a>}
          {version.dataset_id && (
            <>
              {" "}
              · <a href={href("datasets", version.dataset_id)}>its data set</a>
            </>
          )}
        </p>
        <details>
          <summary>Every option the version was trained with</summary>
          <pre class="code">
            <code>{JSON.stringify(version.config, null, 2)}</code>
          </pre>
        </details>
      </section>
    </>
  );
}

function LibraryModelPage({ name }: { name: string }) {
  const model = useApi<LibraryModel & { info?: Record<string, unknown>; embedding_dimensions?: number; max_input_tokens?: number }>(
    `/api/v1/library/${encodeURIComponent(name)}`,
  );
  const ps = useApi<{ models: Running[] }>("/api/v1/ps");
  useInterval(() => ps.reload(), 3000);
  const canManage = useCan("manage_library");
  const act = useAction();
  if (model.error) return <ErrorBox error={model.error} />;
  if (!model.data) return <Loading />;
  const m = model.data;
  const r = ps.data?.models.find((x) => x.key === `lib:${m.name}`);
  const refresh = () => {
    model.reload();
    ps.reload();
  };
  return (
    <>
      <PageHeader title={m.name}>
        <a class="button secondary" href={href("models")}>
          All models
        </a>
        {canManage && <LoadButton name={m.name} loaded={!!r} onDone={refresh} act={act} />}
        <button type="button" class="secondary" onClick={() => navigate(href("playground", m.task === "embedding" ? "embeddings" : "chat"))}>
          Try it
        </button>
      </PageHeader>
      <ErrorBox error={act.error} />
      <section class="card">
        <div class="stats">
          <Stat label="task" value={m.task} />
          <Stat label="format" value={m.format} />
          <Stat label="size" value={bytes(m.size_bytes)} />
          <Stat label="memory" value={bytes(r?.memory_bytes)} />
          <Stat label="queue" value={queueOf(r)} />
        </div>
        <p>
          <ServingState running={r} /> · license {m.license || "–"} · pulled {when(m.created_at)}
        </p>
        <p class="muted small">source: {m.source}</p>
        <h3>Serving settings</h3>
        <pre class="code">
          <code>{JSON.stringify(m.settings ?? {}, null, 2)}</code>
        </pre>
        {m.info && (
          <>
            <h3>Model</h3>
            <pre class="code">
              <code>{JSON.stringify(m.info, null, 2)}</code>
            </pre>
          </>
        )}
      </section>
    </>
  );
}
