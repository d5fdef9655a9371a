"""In-process compute: aiaas's ONNX runtime wrapper (crates/onnx, through the `ort`
crate) against Python's onnxruntime, on the same libonnxruntime release, the same
scikit-learn models (tests/onnx/make_models.py), rows, batch sizes and threads, in one
run with the two alternating round by round. Ratio = onnxruntime's time / ours (above 1:
ours is faster). Run through bench/onnx/compute.sh.
"""

import argparse
import json
import os
import statistics
import subprocess
import time

import numpy as np
import onnxruntime as ort


def python_run(model, reference, batch, iterations, threads):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    ref = json.load(open(reference))
    rows = np.array(ref["rows"], dtype=np.float32)
    x = rows[np.arange(batch) % len(rows)]
    if "row_shape" in ref:
        x = x.reshape([batch] + ref["row_shape"])
    feed = {ref["input"]: x}
    for _ in range(iterations // 10 + 1):
        sess.run(None, feed)
    times = []
    for _ in range(iterations):
        t = time.perf_counter()
        sess.run(None, feed)
        times.append((time.perf_counter() - t) * 1e6)
    return statistics.median(times)


def ours_run(binary, lib, model, reference, batch, iterations, threads):
    out = subprocess.run([binary, lib, model, reference, str(batch), str(iterations), str(threads)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)["median_us"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--lib", required=True)
    ap.add_argument("--models", required=True)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--iterations", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    lines = [f"# ONNX in-process compute: aiaas (ort) vs Python onnxruntime {ort.__version__}, "
             f"{args.threads} threads", "",
             f"{args.rounds} alternating rounds x {args.iterations} runs (the image model: a hundredth, at least 5); median microseconds per run; "
             "ratio = median over rounds of onnxruntime / aiaas.", "",
             "| model | batch | aiaas us | onnxruntime us | ratio |", "|---|---:|---:|---:|---:|"]
    # The image model's rows: two random images, flattened (its reference JSON holds
    # answers, not inputs).
    images = os.path.join(args.out, "efficientnet_lite0.rows.json")
    os.makedirs(args.out, exist_ok=True)
    rng = np.random.default_rng(0)
    with open(images, "w") as f:
        json.dump({"input": "input", "row_shape": [3, 224, 224],
                   "rows": rng.uniform(-1, 1, (2, 3 * 224 * 224)).round(4).tolist()}, f)
    cases = [(name, os.path.join(args.models, name + ".json"), args.iterations)
             for name in ("iris_pipeline", "breast_cancer_gbt")]
    cases.append(("efficientnet_lite0", images, max(args.iterations // 100, 5)))
    for name, reference, iterations in cases:
        model = os.path.join(args.models, name + ".onnx")
        args_iterations = iterations
        for batch in (1, 32):
            ours, theirs = [], []
            for rnd in range(args.rounds):
                pair = [lambda: ours.append(ours_run(args.binary, args.lib, model, reference, batch,
                                                     args_iterations, args.threads)),
                        lambda: theirs.append(python_run(model, reference, batch, args_iterations,
                                                         args.threads))]
                for f in (pair if rnd % 2 == 0 else pair[::-1]):
                    f()
            ratio = statistics.median(t / o for t, o in zip(theirs, ours))
            lines.append(f"| {name} | {batch} | {statistics.median(ours):.1f} | "
                         f"{statistics.median(theirs):.1f} | {ratio:.2f}x |")
            print(lines[-1], flush=True)
    report = "\n".join(lines) + "\n"
    print(report)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "compute.md"), "w") as f:
        f.write(report)


if __name__ == "__main__":
    main()
