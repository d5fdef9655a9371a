// Folding a training job's event stream into what the job page draws: phases, word-vector
// (word2vec or GloVe) progress and the per-epoch curve of each architecture and search
// trial. Pure, so it is unit-tested.

import type { EpochPoint } from "./types";

export interface Progress {
  phases: string[];
  /** The word vectors being trained before the networks. */
  embedding: { name: "word2vec" | "glove"; epoch: number; epochs: number } | null;
  /** Curves by architecture and search trial (absent: the first), in the order trained. */
  curves: { architecture: string; trial?: string; epochs: number; points: EpochPoint[] }[];
  candidates: { architecture: string; validation_accuracy: number; validation_macro_f1: number }[];
  end: { status: string; error: string | null; model_version: number | null } | null;
  error: string | null;
  lastId?: string;
}

export const emptyProgress = (): Progress => ({ phases: [], embedding: null, curves: [], candidates: [], end: null, error: null });

/** Apply one event (`event` name, parsed `data`) to the progress so far (a new object). */
export function apply(p: Progress, event: string, data: unknown, id?: string): Progress {
  const d = (data ?? {}) as Record<string, any>;
  const next: Progress = { ...p, lastId: id ?? p.lastId };
  switch (event) {
    case "phase":
      if (typeof d.name === "string" && !p.phases.includes(d.name)) next.phases = [...p.phases, d.name];
      break;
    case "word2vec_epoch":
    case "glove_epoch":
      next.embedding = { name: event === "glove_epoch" ? "glove" : "word2vec", epoch: Number(d.epoch), epochs: Number(d.epochs) };
      break;
    case "epoch": {
      const arch = String(d.architecture ?? "model");
      const trial = typeof d.trial === "string" ? d.trial : undefined;
      const point: EpochPoint = {
        epoch: Number(d.epoch),
        seconds: d.seconds,
        train_loss: d.train_loss,
        train_accuracy: d.train_accuracy,
        val_loss: d.val_loss ?? null,
        val_accuracy: d.val_accuracy ?? null,
      };
      const curves = p.curves.map((c) => ({ ...c }));
      let curve = curves.find((c) => c.architecture === arch && c.trial === trial);
      if (!curve) {
        curve = { architecture: arch, ...(trial ? { trial } : {}), epochs: Number(d.epochs), points: [] };
        curves.push(curve);
      }
      // A replayed event (after a reconnect) replaces the point of the same epoch.
      curve.points = [...curve.points.filter((q) => q.epoch !== point.epoch), point].sort((a, b) => a.epoch - b.epoch);
      curve.epochs = Number(d.epochs) || curve.epochs;
      next.curves = curves;
      break;
    }
    case "candidate_done":
      next.candidates = [
        ...p.candidates.filter((c) => c.architecture !== d.architecture),
        { architecture: String(d.architecture), validation_accuracy: d.validation_accuracy, validation_macro_f1: d.validation_macro_f1 },
      ];
      break;
    case "end":
      next.end = { status: String(d.status), error: d.error ?? null, model_version: d.model_version ?? null };
      break;
    case "error":
      next.error = typeof data === "string" ? data : String(d.message ?? "the event stream failed");
      break;
    default:
      break;
  }
  return next;
}

/** Parse an SSE data field: JSON when it is, the raw text otherwise. */
export function parseData(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
