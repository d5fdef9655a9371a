#!/usr/bin/env python3
"""Replicas on one machine: throughput through nginx with 1, 2 and 3 replicas, and the
cost of PostgreSQL + S3 against SQLite + local files for the same workload.

usage: bench/replicas/run.sh   (builds, installs wrk/nginx/PostgreSQL when missing)
       bench.py --bin AIAAS --s3-bin AIAAS_S3_DEV --wheels DIR [--seconds 10]

Everything real and on loopback: PostgreSQL (scripts/pg.sh), the s3s-fs server
(aiaas-s3-dev), `aiaas serve` replicas and nginx; the load comes from wrk (C, one
process), so the client is not the bottleneck a Python one would be on 2 cores.

Measured, in one run:
  1. backends: one replica on SQLite + local files, then one on PostgreSQL + S3, the same
     workload on each: dataset upload, training job (wall time), predict throughput.
  2. scaling: 1, 2, 3 replicas (PostgreSQL + S3) behind nginx: predict requests/s and
     LLM completions/s (SmolLM2-135M, 16 tokens each), with the machine's CPU use.
The machine has 2 cores: replicas share them, so more replicas cannot add compute; what
scaling shows here is the overhead (or not) of spreading load, said plainly in the table.
"""
import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ADMIN = "aiaas_bench0123456789abcdef0123456789abcdef0123456789abcdef01234"
MASTER = "5c2e7a1f9b8d4c3e2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b"
S3_KEY, S3_SECRET = "AKIAAIAASTEST0000000", "aiaas/test+secret/key0000000000000000000"
TEXT = "The striker scored twice in the cup final at the stadium."


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(url, method="GET", body=None, key=ADMIN, ctype="application/json", timeout=600):
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Authorization": f"Bearer {key}", "content-type": ctype})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            text = r.read()
            return r.status, (json.loads(text) if text else None)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


def cpu_times():
    with open("/proc/stat") as f:
        parts = [int(x) for x in f.readline().split()[1:]]
    idle = parts[3] + parts[4]
    return sum(parts), idle


class Replica:
    def __init__(self, bin_path, name, env, wheels):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix=f"aiaas-bench-{name}-")
        self.name = name
        log = open(os.path.join(self.dir, "server.log"), "w")
        self.proc = subprocess.Popen(
            [bin_path, "serve", "--listen", f"127.0.0.1:{self.port}", "--data-dir", self.dir,
             "--no-demo", "--replica-id", name, "--wheel-dir", wheels,
             "--master-key-file", os.path.join(self.dir, "master.key")],
            env={**os.environ, **env, "AIAAS_ADMIN_KEY": ADMIN, "AIAAS_LOG": "warn"},
            stdout=subprocess.PIPE, stderr=log, text=True)
        for line in self.proc.stdout:
            if line.startswith("listening on"):
                break
        else:
            raise SystemExit(f"replica {name} did not start; see {self.dir}/server.log")
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.time() + 60
        while call(self.url + "/readyz")[0] != 200:
            if time.time() > deadline:
                raise SystemExit(f"replica {name} not ready")
            time.sleep(0.2)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class Nginx:
    def __init__(self, ports):
        self.dir = tempfile.mkdtemp(prefix="aiaas-bench-nginx-")
        self.port = free_port()
        d = self.dir
        servers = "".join(f"        server 127.0.0.1:{p};\n" for p in ports)
        user = "user root root;" if os.geteuid() == 0 else ""
        conf = f"""{user}
daemon off;
worker_processes 2;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
    upstream aiaas {{
{servers}        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{self.port};
        client_max_body_size 200m;
        location / {{
            proxy_pass http://aiaas;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_request_buffering off;
            proxy_read_timeout 600s;
        }}
    }}
}}
"""
        with open(os.path.join(d, "nginx.conf"), "w") as f:
            f.write(conf)
        self.proc = subprocess.Popen(["/usr/sbin/nginx", "-p", d, "-c", os.path.join(d, "nginx.conf")])
        deadline = time.time() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                break
            except OSError:
                if time.time() > deadline:
                    raise SystemExit("nginx did not start")
                time.sleep(0.05)
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


def wrk(url, path, body, seconds, connections):
    """requests/s and mean latency (ms) from wrk, POSTing `body` (JSON)."""
    script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
    script.write('wrk.method = "POST"\n'
                 f'wrk.headers["Authorization"] = "Bearer {ADMIN}"\n'
                 'wrk.headers["Content-Type"] = "application/json"\n'
                 f'wrk.body = [[{json.dumps(body)}]]\n'
                 'done = function(summary, latency, requests)\n'
                 '  io.write(string.format("ERRORS %d %d\\n", summary.errors.status, '
                 'summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))\n'
                 'end\n')
    script.close()
    cpu0 = cpu_times()
    out = subprocess.run(["wrk", "-t", "2", "-c", str(connections), "-d", f"{int(seconds)}s",
                          "--timeout", "60s", "-s", script.name, url + path],
                         capture_output=True, text=True, check=True).stdout
    cpu1 = cpu_times()
    os.unlink(script.name)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    m = re.search(r"Latency\s+([\d.]+)(us|ms|s)", out)
    lat = float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]
    status_errors, socket_errors = map(int, re.search(r"ERRORS (\d+) (\d+)", out).groups())
    total, idle = cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]
    cpu = 100.0 * (total - idle) / total if total else 0.0
    return {"rps": rps, "latency_ms": lat, "errors": status_errors + socket_errors, "cpu_pct": cpu}


def train_and_deploy(url, csv_bytes):
    t0 = time.perf_counter()
    status, v = call(url + "/api/v1/datasets?name=bbc&text_column=text&label_column=category",
                     "POST", csv_bytes, ctype="text/csv")
    assert status == 201, v
    upload = time.perf_counter() - t0
    t0 = time.perf_counter()
    status, job = call(url + "/api/v1/jobs", "POST",
                       {"dataset": "bbc", "model": "news", "deploy": True,
                        "config": {"architecture": "avgpool"}})
    assert status == 202, job
    while True:
        status, job = call(url + f"/api/v1/jobs/{job['id']}")
        if job["status"] in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(0.2)
    assert job["status"] == "succeeded", job
    return upload, time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--s3-bin", required=True)
    ap.add_argument("--wheels", required=True)
    ap.add_argument("--data", required=True, help="folder with bbc-train.csv")
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--out", default=os.path.join(ROOT, "bench/out/replicas.json"))
    args = ap.parse_args()
    csv_bytes = open(os.path.join(args.data, "bbc-train.csv"), "rb").read()
    pg_dir = f"/var/tmp/aiaas-bench-pg-{os.getpid()}"
    pg_port = free_port()
    pg_url = subprocess.run(["bash", os.path.join(ROOT, "scripts/pg.sh"), "start", pg_dir, str(pg_port)],
                            capture_output=True, text=True, check=True).stdout.strip()
    s3_root = tempfile.mkdtemp(prefix="aiaas-bench-s3-")
    s3_port = free_port()
    s3 = subprocess.Popen([args.s3_bin, s3_root, f"127.0.0.1:{s3_port}", "aiaas"],
                          stdout=subprocess.PIPE, text=True)
    s3.stdout.readline()
    shared = {"AIAAS_DATABASE_URL": pg_url, "AIAAS_ARTIFACTS": "s3://aiaas/bench",
              "AIAAS_S3_ENDPOINT": f"http://127.0.0.1:{s3_port}", "AWS_ACCESS_KEY_ID": S3_KEY,
              "AWS_SECRET_ACCESS_KEY": S3_SECRET, "AIAAS_MASTER_KEY": MASTER}
    predict = {"texts": [TEXT]}
    completion = {"model": "smollm2-135m-instruct", "prompt": "Write one sentence about the sea.",
                  "max_tokens": 16, "temperature": 0}
    results = {"backends": {}, "scaling": []}
    replicas = []
    nginx = None
    try:
        # 1. The same workload on each backend, one replica, no load balancer.
        for label, env in (("sqlite+local", {"AIAAS_MASTER_KEY": MASTER}), ("postgres+s3", shared)):
            r = Replica(args.bin, "b0", env, args.wheels)
            upload, train = train_and_deploy(r.url, csv_bytes)
            w = wrk(r.url, "/api/v1/models/news/predict", predict, args.seconds, 16)
            results["backends"][label] = {"upload_s": upload, "train_s": train, **w}
            print(f"{label:13} upload {upload:.2f} s, train+deploy {train:.2f} s, "
                  f"predict {w['rps']:.0f} req/s ({w['latency_ms']:.1f} ms mean, {w['errors']} errors)",
                  flush=True)
            r.stop()
        # The PostgreSQL + S3 installation keeps its model for the scaling runs.
        first = Replica(args.bin, "r0", shared, args.wheels)
        replicas.append(first)
        status, v = call(first.url + "/api/v1/library/pull", "POST",
                         {"source": "smollm2-135m-instruct", "stream": False})
        assert status in (200, 201), v
        # 2. 1, 2, 3 replicas behind nginx.
        for n in (1, 2, 3):
            while len(replicas) < n:
                replicas.append(Replica(args.bin, f"r{len(replicas)}", shared, args.wheels))
            nginx = Nginx([r.port for r in replicas])
            call(nginx.url + "/api/v1/models/news/predict", "POST", predict)
            # Warm every replica's LLM (each fetches the weights from S3 once).
            for r in replicas:
                status, v = call(r.url + "/v1/completions", "POST", completion)
                assert status == 200, v
            p = wrk(nginx.url, "/api/v1/models/news/predict", predict, args.seconds, 16)
            g = wrk(nginx.url, "/v1/completions", completion, args.seconds, 8)
            results["scaling"].append({"replicas": n, "predict": p, "completions": g})
            print(f"{n} replica(s): predict {p['rps']:.0f} req/s (cpu {p['cpu_pct']:.0f}%, {p['errors']} errors), "
                  f"completions {g['rps']:.2f} req/s (cpu {g['cpu_pct']:.0f}%, {g['errors']} errors)", flush=True)
            nginx.stop()
            nginx = None
    finally:
        if nginx:
            nginx.stop()
        for r in replicas:
            r.stop()
        s3.terminate()
        subprocess.run(["bash", os.path.join(ROOT, "scripts/pg.sh"), "stop", pg_dir], check=False)
        shutil.rmtree(pg_dir, ignore_errors=True)
        shutil.rmtree(s3_root, ignore_errors=True)

    b = results["backends"]
    base = results["scaling"][0]
    lines = ["", "| measure | sqlite+local | postgres+s3 | ratio (pg+s3 / sqlite+local) |", "|---|---|---|---|"]
    for key, unit, better_low in (("upload_s", "s", True), ("train_s", "s", True), ("rps", "req/s", False)):
        a, c = b["sqlite+local"][key], b["postgres+s3"][key]
        lines.append(f"| {key} | {a:.2f} {unit} | {c:.2f} {unit} | {c / a:.2f}x |")
    lines += ["", "| replicas | predict req/s | vs 1 | CPU | completions/s | vs 1 | CPU |", "|---|---|---|---|---|---|---|"]
    for s in results["scaling"]:
        lines.append(f"| {s['replicas']} | {s['predict']['rps']:.0f} | {s['predict']['rps'] / base['predict']['rps']:.2f}x | "
                     f"{s['predict']['cpu_pct']:.0f}% | {s['completions']['rps']:.2f} | "
                     f"{s['completions']['rps'] / base['completions']['rps']:.2f}x | {s['completions']['cpu_pct']:.0f}% |")
    lines.append(f"\n{os.cpu_count()} CPU cores: every replica, nginx, PostgreSQL, the S3 server and wrk share them.")
    report = "\n".join(lines)
    print(report)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)
    with open(args.out.replace(".json", ".md"), "w") as f:
        f.write(report + "\n")


if __name__ == "__main__":
    sys.exit(main())
