import { describe, expect, it } from "vitest";
import { apply, emptyProgress, parseData } from "../../src/training";

const ev = (event: string, data: object | string) => [event, typeof data === "string" ? data : JSON.stringify(data)] as const;

describe("training progress", () => {
  it("folds a real job's events into phases, word2vec progress and curves", () => {
    const events = [
      ev("phase", { name: "prepare", type: "phase" }),
      ev("phase", { name: "word2vec", type: "phase" }),
      ev("word2vec_epoch", { epoch: 1, epochs: 5 }),
      ev("word2vec_epoch", { epoch: 2, epochs: 5 }),
      ev("phase", { name: "train:avgpool", type: "phase" }),
      ev("epoch", { architecture: "avgpool", epoch: 1, epochs: 2, train_loss: 1.5, train_accuracy: 0.4, val_loss: 1.4, val_accuracy: 0.57 }),
      ev("epoch", { architecture: "avgpool", epoch: 2, epochs: 2, train_loss: 1.3, train_accuracy: 0.69, val_loss: 1.2, val_accuracy: 0.73 }),
      ev("candidate_done", { architecture: "avgpool", validation_accuracy: 0.73, validation_macro_f1: 0.7 }),
      ev("end", { error: null, model_version: 1, status: "succeeded" }),
    ];
    const p = events.reduce((acc, [e, d], i) => apply(acc, e, parseData(d), String(i + 1)), emptyProgress());
    expect(p.phases).toEqual(["prepare", "word2vec", "train:avgpool"]);
    expect(p.embedding).toEqual({ name: "word2vec", epoch: 2, epochs: 5 });
    expect(p.curves).toHaveLength(1);
    expect(p.curves[0].points.map((q) => q.val_accuracy)).toEqual([0.57, 0.73]);
    expect(p.candidates[0].validation_macro_f1).toBe(0.7);
    expect(p.end).toEqual({ status: "succeeded", error: null, model_version: 1 });
    expect(p.lastId).toBe("9");
  });

  it("keeps one curve per architecture and replaces replayed epochs", () => {
    let p = emptyProgress();
    p = apply(p, "epoch", { architecture: "avgpool", epoch: 1, epochs: 3, train_loss: 1, train_accuracy: 0.1 });
    p = apply(p, "epoch", { architecture: "textcnn", epoch: 1, epochs: 3, train_loss: 2, train_accuracy: 0.2 });
    p = apply(p, "epoch", { architecture: "avgpool", epoch: 1, epochs: 3, train_loss: 0.9, train_accuracy: 0.15 });
    expect(p.curves.map((c) => c.architecture)).toEqual(["avgpool", "textcnn"]);
    expect(p.curves[0].points).toHaveLength(1);
    expect(p.curves[0].points[0].train_loss).toBe(0.9);
  });

  it("gives each search trial its own curve and follows GloVe's epochs", () => {
    let p = emptyProgress();
    p = apply(p, "glove_epoch", { epoch: 3, epochs: 15, cost: 0.04 });
    expect(p.embedding).toEqual({ name: "glove", epoch: 3, epochs: 15 });
    p = apply(p, "epoch", { architecture: "avgpool", epoch: 1, epochs: 10, train_loss: 1, train_accuracy: 0.1 });
    p = apply(p, "epoch", { architecture: "avgpool", trial: "lr=0.003 init=glove", epoch: 1, epochs: 10, train_loss: 0.8, train_accuracy: 0.3 });
    p = apply(p, "epoch", { architecture: "avgpool", trial: "lr=0.003 init=glove", epoch: 2, epochs: 10, train_loss: 0.6, train_accuracy: 0.5 });
    expect(p.curves.map((c) => [c.architecture, c.trial, c.points.length])).toEqual([
      ["avgpool", undefined, 1],
      ["avgpool", "lr=0.003 init=glove", 2],
    ]);
  });

  it("keeps the stream's error message", () => {
    const p = apply(emptyProgress(), "error", parseData("no job \"x\""));
    expect(p.error).toBe('no job "x"');
  });
});
