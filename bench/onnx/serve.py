"""Serving benchmark (issue 15): the scikit-learn model and the image model behind KServe
v2, aiaas against Seldon's MLServer (mlserver-sklearn, the scikit-learn model itself) and
KServe's Python model server (a custom predictor over Python onnxruntime, the image
model), all driven by one tritonclient load generator: N client processes, each sending
its next request when the last is answered, for a fixed time. Prints p50/p99 latency and
throughput per server, clients (1, 8) and batch (1, 32), and the ratios (throughput
ours/theirs, p99 theirs/ours). Run through bench/onnx/serve.sh.

Every server runs alone while it is measured, on the same cores as the load generator
(2 here): the client's own cost is in every figure alike. Each client sends at least one
request, so a cell whose requests take longer than the window still has a figure.
"""

import argparse
import json
import multiprocessing
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import requests
import tritonclient.http as httpclient

KEY = "aiaas_" + "5b" * 32


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url, headers=None, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if requests.get(url, headers=headers, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} never became ready")


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()


def load(port, model, make_inputs, outputs, clients, seconds, headers, binary):
    """Closed-loop clients, one process each (threads would share one interpreter lock,
    and 8 of them encoding 32-row JSON tensors capped the generator itself at about 1000
    requests a second, whatever the server); returns (p50 ms, p99 ms, requests/s,
    errors)."""
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()

    def worker(stop_at):
        c = httpclient.InferenceServerClient(url=f"127.0.0.1:{port}", connection_timeout=120,
                                             network_timeout=120)
        inputs = make_inputs(binary)
        outs = [httpclient.InferRequestedOutput(o, binary_data=binary) for o in outputs]
        mine, errors = [], 0
        while time.time() < stop_at or not mine:
            t = time.perf_counter()
            try:
                c.infer(model, inputs, outputs=outs, headers=headers)
                mine.append(time.perf_counter() - t)
            except Exception as e:  # counted, the run goes on
                errors += 1
                if errors == 1:
                    print(f"  first error: {e}", file=sys.stderr)
        results.put((mine, errors))

    # Warm up (loads, caches), then measure. The parent never opens a client itself:
    # tritonclient's gevent-based connection pool does not survive a fork.
    def warm_up():
        warm = httpclient.InferenceServerClient(url=f"127.0.0.1:{port}", network_timeout=120)
        for _ in range(3):
            warm.infer(model, make_inputs(binary),
                       outputs=[httpclient.InferRequestedOutput(o, binary_data=binary) for o in outputs],
                       headers=headers)

    w = ctx.Process(target=warm_up)
    w.start()
    w.join()
    if w.exitcode != 0:
        raise RuntimeError(f"warming up {model} failed")
    started = time.time()
    procs = [ctx.Process(target=worker, args=(started + seconds,)) for _ in range(clients)]
    for p in procs:
        p.start()
    latencies, errors = [], 0
    for _ in procs:
        # A client that died without an answer must not hang the run.
        mine, e = results.get(timeout=seconds + 600)
        latencies.extend(mine)
        errors += e
    took = time.time() - started
    for p in procs:
        p.join()
    lat = sorted(latencies)
    if not lat:
        return float("nan"), float("nan"), 0.0, errors
    p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000
    return p(0.5), p(0.99), len(lat) / took, errors


def tensor(name, x, binary):
    i = httpclient.InferInput(name, list(x.shape), "FP32")
    i.set_data_from_numpy(x, binary_data=binary)
    return [i]


def start_aiaas(args, work):
    port = free_port()
    data = os.path.join(work, "aiaas")
    env = dict(os.environ, AIAAS_ADMIN_KEY=KEY, AIAAS_ONNXRUNTIME=args.lib, AIAAS_LOG="warn")
    proc = subprocess.Popen([args.bin, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data,
                             "--no-demo", "--master-key-file", os.path.join(work, "master.key")],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    h = {"Authorization": f"Bearer {KEY}"}
    wait_ready(f"http://127.0.0.1:{port}/readyz")
    for name, file, config in [
        ("gbt", "breast_cancer_gbt.onnx", {"threads": args.threads}),
        ("lite0", "efficientnet_lite0.onnx", {"threads": args.threads}),
    ]:
        with open(os.path.join(args.models, file), "rb") as f:
            r = requests.post(f"http://127.0.0.1:{port}/api/v1/models/{name}/versions", headers=h,
                              files={"file": (file, f.read()), "config": (None, json.dumps(config))})
        r.raise_for_status()
        requests.post(f"http://127.0.0.1:{port}/api/v1/models/{name}/deploy", headers=h,
                      json={}).raise_for_status()
    return proc, port, h


def start_mlserver(args, work):
    folder = os.path.join(work, "mlserver", "gbt")
    os.makedirs(folder, exist_ok=True)
    subprocess.run([os.path.join(args.mlserver_venv, "bin", "python"), "-c", f"""
import joblib
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.model_selection import train_test_split
import numpy as np
x, y = load_breast_cancer(return_X_y=True)
x = x.astype(np.float32)
xtr, xte, ytr, _ = train_test_split(x, y, test_size=40, random_state=0)
gbt = GradientBoostingClassifier(n_estimators=40, max_depth=3, random_state=0).fit(xtr, ytr)
joblib.dump(gbt, {os.path.join(folder, 'model.joblib')!r})
"""], check=True)
    with open(os.path.join(folder, "model-settings.json"), "w") as f:
        json.dump({"name": "gbt", "implementation": "mlserver_sklearn.SKLearnModel",
                   "parameters": {"uri": "./model.joblib"}}, f)
    port = free_port()
    with open(os.path.join(work, "mlserver", "settings.json"), "w") as f:
        json.dump({"http_port": port, "grpc_port": free_port(), "metrics_port": free_port(),
                   "debug": False}, f)
    proc = subprocess.Popen([os.path.join(args.mlserver_venv, "bin", "mlserver"), "start",
                             os.path.join(work, "mlserver")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_ready(f"http://127.0.0.1:{port}/v2/models/gbt/ready")
    return proc, port, None


def start_kserve(args, work):
    port = free_port()
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kserve_onnx.py")
    proc = subprocess.Popen([os.path.join(args.kserve_venv, "bin", "python"), script,
                             "--model_path", os.path.join(args.models, "efficientnet_lite0.onnx"),
                             "--model_name", "lite0", "--threads", str(args.threads),
                             "--http_port", str(port), "--grpc_port", str(free_port())],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_ready(f"http://127.0.0.1:{port}/v2/models/lite0/ready")
    return proc, port, None


def main():
    ap = argparse.ArgumentParser()
    for a in ("bin", "lib", "models", "mlserver_venv", "kserve_venv", "out"):
        ap.add_argument("--" + a.replace("_", "-"), dest=a, required=True)
    ap.add_argument("--seconds", type=float, default=8)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    with open(os.path.join(args.models, "breast_cancer_gbt.json")) as f:
        rows = np.array(json.load(f)["rows"], dtype=np.float32)
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, size=(32, 3, 224, 224)).astype(np.float32)
    cases = {
        "gbt": dict(inputs=lambda b: (lambda binary: tensor("X", rows[np.arange(b) % len(rows)], binary)),
                    outputs={"aiaas": ["probabilities"], "peer": ["predict_proba"]}),
        "lite0": dict(inputs=lambda b: (lambda binary: tensor("input", images[:b], binary)),
                      outputs={"aiaas": ["logits"], "peer": ["logits"]}),
    }
    peers = {"gbt": ("MLServer", start_mlserver), "lite0": ("KServe", start_kserve)}
    results = {}
    with tempfile.TemporaryDirectory() as work:
        for model, (peer, start_peer) in peers.items():
            for server, start in (("aiaas", start_aiaas), (peer, start_peer)):
                proc, port, headers = start(args, work)
                try:
                    for clients in (1, 8):
                        for batch in (1, 32):
                            c = cases[model]
                            outputs = c["outputs"]["aiaas" if server == "aiaas" else "peer"]
                            # MLServer has no binary tensor extension: JSON for both sides
                            # of the scikit-learn comparison; binary for the images.
                            binary = model == "lite0"
                            r = load(port, model, c["inputs"](batch), outputs, clients, args.seconds,
                                     headers, binary)
                            results[(model, server, clients, batch)] = r
                            print(f"{model} {server} clients={clients} batch={batch}: "
                                  f"p50 {r[0]:.2f} ms p99 {r[1]:.2f} ms {r[2]:.1f} req/s errors {r[3]}",
                                  flush=True)
                finally:
                    stop(proc)
    lines = ["# ONNX serving: aiaas vs MLServer (scikit-learn) and KServe (image model)", "",
             f"tritonclient closed-loop clients, {args.seconds:g} s per cell, {args.threads} "
             "inference threads per server; throughput ratio = ours / theirs, p99 ratio = "
             "theirs / ours (above 1: aiaas better).", "",
             "| model | peer | clients | batch | aiaas p50 / p99 ms | aiaas req/s | peer p50 / p99 ms "
             "| peer req/s | throughput ratio | p99 ratio |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for model, (peer, _) in peers.items():
        for clients in (1, 8):
            for batch in (1, 32):
                o = results[(model, "aiaas", clients, batch)]
                t = results[(model, peer, clients, batch)]
                lines.append(f"| {model} | {peer} | {clients} | {batch} | {o[0]:.2f} / {o[1]:.2f} | "
                             f"{o[2]:.1f} | {t[0]:.2f} / {t[1]:.2f} | {t[2]:.1f} | "
                             f"{o[2] / t[2] if t[2] else float('inf'):.2f}x | {t[1] / o[1]:.2f}x |")
    report = "\n".join(lines) + "\n"
    print(report)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "serve.md"), "w") as f:
        f.write(report)


if __name__ == "__main__":
    main()
