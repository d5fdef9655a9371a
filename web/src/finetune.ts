// Fine-tuning jobs as the console follows them: OpenAI's job and event objects, the
// event list kept in sync by polling its newest-first pages, and the per-step loss
// curve drawn from the metrics events. Pure (the page fetch is passed in), so it is
// unit-tested.

export type FineTuneStatus = "validating_files" | "queued" | "running" | "succeeded" | "failed" | "cancelled";

export interface FineTuneJob {
  id: string;
  model: string;
  created_at: number;
  finished_at: number | null;
  fine_tuned_model: string | null;
  status: FineTuneStatus;
  hyperparameters: { n_epochs: number | "auto"; batch_size: number | "auto"; learning_rate_multiplier: number | "auto" };
  training_file: string;
  validation_file: string | null;
  trained_tokens: number | null;
  error: { code: string; message: string; param: string | null } | null;
  seed: number;
  user_provided_suffix: string | null;
  estimated_finish: number | null;
  lora: { rank?: number; alpha?: number; dropout?: number; targets?: string[] };
}

export interface FineTuneEvent {
  id: string;
  created_at: number;
  level: string;
  message: string;
  /** `message` or `metrics`. */
  type: string;
  data: Record<string, unknown> | null;
}

export interface FineTuneCheckpoint {
  id: string;
  created_at: number;
  fine_tuned_model_checkpoint: string;
  step_number: number;
  metrics: Record<string, unknown>;
}

export interface FileObject {
  id: string;
  bytes: number;
  created_at: number;
  filename: string;
  purpose: string;
}

export interface Page<T> {
  data: T[];
  has_more: boolean;
}

export const isActive = (s: FineTuneStatus) => s === "validating_files" || s === "queued" || s === "running";

/** An event's sequence number within its job (`ftevent-{job}-{seq}`); -1 if not one. */
export function eventSeq(id: string): number {
  const m = /-(\d+)$/.exec(id);
  return m ? Number(m[1]) : -1;
}

/**
 * Bring `known` (oldest first) up to date: read pages newest first until a page reaches
 * an event already known or there are no more. Returns the events, oldest first.
 */
export async function syncEvents(known: FineTuneEvent[], fetchPage: (after?: string) => Promise<Page<FineTuneEvent>>): Promise<FineTuneEvent[]> {
  const seen = new Set(known.map((e) => e.id));
  const fresh: FineTuneEvent[] = [];
  let after: string | undefined;
  for (;;) {
    const page = await fetchPage(after);
    let reachedKnown = false;
    for (const e of page.data) {
      if (seen.has(e.id)) {
        reachedKnown = true;
        break;
      }
      seen.add(e.id);
      fresh.push(e);
    }
    if (reachedKnown || !page.has_more || page.data.length === 0) break;
    after = page.data[page.data.length - 1].id;
  }
  if (fresh.length === 0) return known;
  return [...known, ...fresh].sort((a, b) => eventSeq(a.id) - eventSeq(b.id));
}

export interface StepPoint {
  step: number;
  totalSteps: number;
  epoch: number;
  trainLoss: number;
  tokenAccuracy: number | null;
  validLoss: number | null;
  validAccuracy: number | null;
  learningRate: number | null;
  trainedTokens: number | null;
}

const numOrNull = (v: unknown): number | null => (typeof v === "number" && Number.isFinite(v) ? v : null);

/**
 * The per-step curve from the metrics events, by step. A job resumed from a checkpoint
 * after a takeover replays the steps after it: the later event of a step wins.
 */
export function stepCurve(events: FineTuneEvent[]): StepPoint[] {
  const bySeq = [...events].sort((a, b) => eventSeq(a.id) - eventSeq(b.id));
  const steps = new Map<number, StepPoint>();
  for (const e of bySeq) {
    const d = e.data;
    if (e.type !== "metrics" || !d) continue;
    const step = numOrNull(d.step);
    const trainLoss = numOrNull(d.train_loss);
    if (step === null || trainLoss === null) continue;
    steps.set(step, {
      step,
      totalSteps: numOrNull(d.total_steps) ?? step,
      epoch: numOrNull(d.epoch) ?? 0,
      trainLoss,
      tokenAccuracy: numOrNull(d.train_mean_token_accuracy),
      validLoss: numOrNull(d.valid_loss),
      validAccuracy: numOrNull(d.valid_mean_token_accuracy),
      learningRate: numOrNull(d.learning_rate),
      trainedTokens: numOrNull(d.trained_tokens),
    });
  }
  return [...steps.values()].sort((a, b) => a.step - b.step);
}

/** A hyperparameter as the API takes it: "auto" when left empty, else the number. */
export function setting(text: string): number | "auto" {
  const t = text.trim();
  if (t === "" || t.toLowerCase() === "auto") return "auto";
  const v = Number(t);
  if (!Number.isFinite(v)) throw new Error(`${JSON.stringify(text)} is neither a number nor "auto"`);
  return v;
}

/** The `POST /v1/fine_tuning/jobs` body the form describes. */
export function jobRequest(f: {
  model: string;
  trainingFile: string;
  validationFile?: string;
  epochs: string;
  batchSize: string;
  lrMultiplier: string;
  suffix: string;
  seed: string;
  rank?: string;
  alpha?: string;
  mlp?: boolean;
}): Record<string, unknown> {
  const hyperparameters: Record<string, unknown> = {
    n_epochs: setting(f.epochs),
    batch_size: setting(f.batchSize),
    learning_rate_multiplier: setting(f.lrMultiplier),
  };
  const rank = f.rank?.trim() ? setting(f.rank) : "auto";
  if (rank !== "auto") hyperparameters.lora_rank = rank;
  const alpha = f.alpha?.trim() ? setting(f.alpha) : "auto";
  if (alpha !== "auto") hyperparameters.lora_alpha = alpha;
  if (f.mlp) hyperparameters.lora_targets = ["q", "k", "v", "o", "gate", "up", "down"];
  const body: Record<string, unknown> = { model: f.model, training_file: f.trainingFile, hyperparameters };
  if (f.validationFile) body.validation_file = f.validationFile;
  if (f.suffix.trim()) body.suffix = f.suffix.trim();
  if (f.seed.trim()) {
    const seed = Number(f.seed);
    if (!Number.isInteger(seed) || seed < 0) throw new Error(`the seed must be a whole number, got ${JSON.stringify(f.seed)}`);
    body.seed = seed;
  }
  return body;
}
