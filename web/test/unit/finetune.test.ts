import { describe, expect, it } from "vitest";
import { type FineTuneEvent, type Page, eventSeq, jobRequest, setting, stepCurve, syncEvents } from "../../src/finetune";

const JOB = "0193abcd";
const metrics = (seq: number, step: number, loss: number, extra: Record<string, unknown> = {}): FineTuneEvent => ({
  id: `ftevent-${JOB}-${seq}`,
  created_at: 1_700_000_000 + seq,
  level: "info",
  message: `Step ${step}: training loss=${loss}`,
  type: "metrics",
  data: { step, total_steps: 4, epoch: step <= 2 ? 1 : 2, train_loss: loss, train_mean_token_accuracy: 0.5, ...extra },
});
const message = (seq: number, text: string): FineTuneEvent => ({
  id: `ftevent-${JOB}-${seq}`,
  created_at: 1_700_000_000 + seq,
  level: "info",
  message: text,
  type: "message",
  data: null,
});

/** The server's pages: newest first, `limit` per page, after an event id. */
function server(all: FineTuneEvent[], limit: number) {
  const calls: (string | undefined)[] = [];
  const newestFirst = [...all].sort((a, b) => eventSeq(b.id) - eventSeq(a.id));
  const fetchPage = async (after?: string): Promise<Page<FineTuneEvent>> => {
    calls.push(after);
    const start = after ? newestFirst.findIndex((e) => e.id === after) + 1 : 0;
    const data = newestFirst.slice(start, start + limit);
    return { data, has_more: start + limit < newestFirst.length };
  };
  return { fetchPage, calls };
}

describe("fine-tuning events", () => {
  it("reads every page the first time, oldest first", async () => {
    const all = [message(1, "Validating"), ...[1, 2, 3, 4].map((s) => metrics(s + 1, s, 3 - s / 2)), message(6, "done")];
    const { fetchPage, calls } = server(all, 2);
    const events = await syncEvents([], fetchPage);
    expect(events.map((e) => eventSeq(e.id))).toEqual([1, 2, 3, 4, 5, 6]);
    expect(calls).toEqual([undefined, `ftevent-${JOB}-5`, `ftevent-${JOB}-3`]);
  });

  it("stops at the first page that reaches a known event", async () => {
    const first = [message(1, "Validating"), metrics(2, 1, 2.9), metrics(3, 2, 2.5)];
    const later = [...first, metrics(4, 3, 2.1), metrics(5, 4, 1.8)];
    const { fetchPage, calls } = server(later, 100);
    const events = await syncEvents(first, fetchPage);
    expect(events.map((e) => eventSeq(e.id))).toEqual([1, 2, 3, 4, 5]);
    expect(calls).toEqual([undefined]);
    // Nothing new: the same array comes back (no re-render).
    expect(await syncEvents(events, server(later, 100).fetchPage)).toBe(events);
  });

  it("orders by sequence number, not by text (10 after 9)", () => {
    expect(eventSeq(`ftevent-${JOB}-10`)).toBeGreaterThan(eventSeq(`ftevent-${JOB}-9`));
    expect(eventSeq("not-an-event")).toBe(-1);
  });

  it("draws one point per step, the later event winning after a resume", () => {
    const events = [
      metrics(2, 1, 2.9),
      metrics(3, 2, 2.5, { valid_loss: 2.6, valid_mean_token_accuracy: 0.4 }),
      metrics(4, 3, 2.2),
      message(5, "Resumed from the checkpoint at step 2"),
      // Step 3 replayed after the takeover, then step 4.
      metrics(6, 3, 2.15),
      metrics(7, 4, 1.9, { valid_loss: 2.0 }),
    ];
    const curve = stepCurve(events.reverse());
    expect(curve.map((p) => p.step)).toEqual([1, 2, 3, 4]);
    expect(curve.map((p) => p.trainLoss)).toEqual([2.9, 2.5, 2.15, 1.9]);
    expect(curve.map((p) => p.validLoss)).toEqual([null, 2.6, null, 2.0]);
    expect(curve[1].validAccuracy).toBe(0.4);
    expect(curve[3].totalSteps).toBe(4);
    expect(curve[3].epoch).toBe(2);
  });

  it("ignores message events and metrics without a loss", () => {
    const odd: FineTuneEvent = { ...metrics(3, 2, 1), data: { step: 2 } };
    expect(stepCurve([message(1, "hi"), odd]).length).toBe(0);
  });
});

describe("the fine-tuning form's request", () => {
  it("sends auto for empty settings and numbers otherwise", () => {
    expect(setting("")).toBe("auto");
    expect(setting(" Auto ")).toBe("auto");
    expect(setting("3")).toBe(3);
    expect(() => setting("three")).toThrow(/neither a number nor "auto"/);
    const body = jobRequest({ model: "smollm2", trainingFile: "file-1", epochs: "2", batchSize: "", lrMultiplier: "1.5", suffix: " support ", seed: "7", rank: "8", alpha: "", mlp: true });
    expect(body).toEqual({
      model: "smollm2",
      training_file: "file-1",
      suffix: "support",
      seed: 7,
      hyperparameters: {
        n_epochs: 2,
        batch_size: "auto",
        learning_rate_multiplier: 1.5,
        lora_rank: 8,
        lora_targets: ["q", "k", "v", "o", "gate", "up", "down"],
      },
    });
  });

  it("leaves out what was not given and refuses a bad seed", () => {
    const body = jobRequest({ model: "m", trainingFile: "f", validationFile: "v", epochs: "", batchSize: "", lrMultiplier: "", suffix: "", seed: "" });
    expect(body).toEqual({ model: "m", training_file: "f", validation_file: "v", hyperparameters: { n_epochs: "auto", batch_size: "auto", learning_rate_multiplier: "auto" } });
    expect(() => jobRequest({ model: "m", trainingFile: "f", epochs: "", batchSize: "", lrMultiplier: "", suffix: "", seed: "-1" })).toThrow(/whole number/);
  });
});
