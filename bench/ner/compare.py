"""Rounds of aiaas's NER (the ner_texts example) and the Python way (the model's
tokenizer through `tokenizers`, Python onnxruntime on padded batches of 16 windows,
Hugging Face's pipeline aggregation), alternating, on the same texts and threads; prints
texts/s of each, the ratio, and whether the entities agree."""
import argparse
import json
import statistics
import subprocess
import time
from types import SimpleNamespace

import numpy as np


def python_rounds(args, texts, rounds):
    import onnxruntime
    from transformers import PreTrainedTokenizerFast
    from transformers.pipelines.token_classification import AggregationStrategy, TokenClassificationPipeline

    config = json.load(open(f"{args.model}/config.json"))
    tokenizer = PreTrainedTokenizerFast(tokenizer_file=f"{args.model}/tokenizer.json", unk_token="[UNK]",
                                        pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]")
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(f"{args.model}/model.onnx", options, providers=["CPUExecutionProvider"])
    pipe = TokenClassificationPipeline.__new__(TokenClassificationPipeline)
    pipe.tokenizer = tokenizer
    pipe.model = SimpleNamespace(config=SimpleNamespace(id2label={int(k): v for k, v in config["id2label"].items()}))
    names = [i.name for i in session.get_inputs()]
    strategy = AggregationStrategy.SIMPLE
    times, found = [], []
    for _ in range(rounds):
        started = time.perf_counter()
        enc = tokenizer(texts, truncation=True, max_length=512, stride=128, return_overflowing_tokens=True,
                        return_offsets_mapping=True, return_special_tokens_mask=True, return_token_type_ids=True)
        owner = enc["overflow_to_sample_mapping"]
        n = len(enc["input_ids"])
        scores = [None] * n
        for at in range(0, n, 16):
            rows = range(at, min(n, at + 16))
            width = max(len(enc["input_ids"][r]) for r in rows)
            feed = {k: np.zeros((len(rows), width), dtype=np.int64) for k in ("input_ids", "attention_mask", "token_type_ids")}
            for i, r in enumerate(rows):
                for k in feed:
                    feed[k][i, :len(enc[k][r])] = enc[k][r]
            logits = session.run(None, {k: feed[k] for k in names})[0]
            for i, r in enumerate(rows):
                l = logits[i, :len(enc["input_ids"][r])]
                e = np.exp(l - l.max(axis=-1, keepdims=True))
                scores[r] = e / e.sum(axis=-1, keepdims=True)
        per_text = [[] for _ in texts]
        windows = [0] * len(texts)
        for r in range(n):
            t = owner[r]
            windows[t] += 1
            pre = pipe.gather_pre_entities(texts[t], np.array(enc["input_ids"][r]), scores[r],
                                           [tuple(o) for o in enc["offset_mapping"][r]],
                                           np.array(enc["special_tokens_mask"][r]), strategy)
            per_text[t] += [e for e in pipe.aggregate(pre, strategy) if e.get("entity_group") != "O"]
        found = [pipe.aggregate_overlapping_entities(es) if windows[t] > 1 else es for t, es in enumerate(per_text)]
        times.append(time.perf_counter() - started)
    return times, [[[e["entity_group"], int(e["start"]), int(e["end"])] for e in es] for es in found]


def aiaas_rounds(args, rounds):
    out = subprocess.run([args.binary, args.lib, args.model, args.corpus, str(args.threads), str(rounds)],
                         check=True, capture_output=True, text=True).stdout.splitlines()
    lines = [json.loads(l) for l in out]
    return [l["seconds"] for l in lines if "seconds" in l], lines[-1]["entities"]


def main():
    p = argparse.ArgumentParser()
    for name in ("binary", "lib", "model", "corpus"):
        p.add_argument("--" + name, required=True)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    texts = [json.loads(l)["text"] for l in open(args.corpus, encoding="utf-8")]
    ours, theirs = [], []
    aiaas_rounds(args, 1)
    python_rounds(args, texts, 1)
    for _ in range(args.rounds):
        t, our_entities = aiaas_rounds(args, 1)
        ours += t
        t, their_entities = python_rounds(args, texts, 1)
        theirs += t
    n = len(texts)
    ours_tps, theirs_tps = n / statistics.median(ours), n / statistics.median(theirs)
    agree = sum(a == b for a, b in zip(our_entities, their_entities))
    chars = sum(len(t) for t in texts)
    print(f"# NER throughput: {n} texts ({chars} characters, 4 longer than one window), {args.threads} intra-op threads, median of {args.rounds} rounds\n")
    print("| | texts/s | ratio |")
    print("|---|---:|---:|")
    print(f"| aiaas (Rust: tokenizers crate, ONNX Runtime, aggregation) | {ours_tps:.1f} | {ours_tps / theirs_tps:.2f}x |")
    print(f"| Python (tokenizers, onnxruntime, transformers' aggregation) | {theirs_tps:.1f} | 1.00x |")
    print(f"\nTexts whose entities agree: {agree}/{n}")


if __name__ == "__main__":
    main()
