"""Driver of bench/queue/run.sh: starts `aiaas serve` with the demo (the news classifier
trained from BBC News at first start, and the default embedder all-MiniLM-L6-v2 pulled at
first start), waits for them, then runs the overload client
(crates/aiaas/examples/overload.rs) on each twice: without a queue policy and with
max_queue_time_ms = the unloaded p99 of the first run. Each run overloads twice: open
loop at 10x the measured capacity (the issue's target), and a closed-loop swarm of
--connections clients that resend at once on a refusal. The classifier's requests cost
almost only HTTP; the embedder's are compute-bound."""
import argparse
import json
import math
import os
import secrets
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

MODEL = "news-classifier"
EMBEDDER = "all-minilm-l6-v2"


def call(url, key, method="GET", body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={
        "Authorization": f"Bearer {key}", "content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def ms(v):
    """Milliseconds, or - where there was nothing to measure."""
    return "-" if v is None else f"{v:.2f}"


def pinned(cpu, argv):
    """argv on CPU `cpu` alone (the server and the load generator each get their own
    core, so the client's work does not queue the server's), where taskset exists."""
    cores = os.cpu_count() or 1
    if cores < 2 or not shutil.which("taskset"):
        return argv
    return ["taskset", "-c", str(cpu % cores)] + argv


def overload(load, url, key, seconds, connections, model=MODEL, rate=None):
    """The overload client's phases; `rate`: the open loop's requests a second (default:
    10x the capacity it measures)."""
    argv = [load, url, key, model, str(seconds), str(connections)] + ([f"{rate:.1f}"] if rate else [])
    out = subprocess.run(pinned(1, argv),
                         check=True, capture_output=True, text=True).stdout
    print(out, end="", flush=True)
    return {p["phase"]: p for p in map(json.loads, out.splitlines())}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--load", required=True)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--connections", type=int, default=512)
    ap.add_argument("--only", choices=[MODEL, EMBEDDER], help="measure one of the two models")
    args = ap.parse_args()
    data = tempfile.mkdtemp(prefix="aiaas-queue-")
    key = "aiaas_" + secrets.token_hex(32)
    env = dict(os.environ, AIAAS_ADMIN_KEY=key, AIAAS_LOG="warn")
    wheels = os.path.join(os.environ.get("AIAAS_TEST_DATA", ""), "wheels")
    if os.path.isdir(wheels):  # the embedder from the cached wheel, not the network
        env["AIAAS_WHEEL_DIRS"] = wheels
    proc = subprocess.Popen(pinned(0, [args.bin, "serve", "--listen", "127.0.0.1:0", "--data-dir", data,
                                       "--master-key-file", os.path.join(data, "master.key")]),
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        url = None
        while url is None:
            line = proc.stdout.readline()
            if not line:
                raise SystemExit("the server did not start")
            if line.startswith("listening on "):
                url = line.split()[-1]
        deadline = time.time() + 900
        while time.time() < deadline:
            status, m = call(f"{url}/api/v1/models/{MODEL}", key)
            if status == 200 and m.get("deployment"):
                break
            time.sleep(2)
        else:
            raise SystemExit("the demo classifier was not deployed within 15 minutes")
        while time.time() < deadline:
            status, m = call(f"{url}/api/v1/library/{EMBEDDER}", key)
            if status == 200:
                break
            time.sleep(2)
        else:
            raise SystemExit("the default embedder was not pulled within 15 minutes")
        rows = []
        runs = []
        def deploy(limit):
            status, _ = call(f"{url}/api/v1/models/{MODEL}/deploy", key, "POST", {"max_queue_time_ms": limit})
            assert status == 200, status

        def settings(limit):
            status, _ = call(f"{url}/api/v1/library/{EMBEDDER}/settings", key, "PUT",
                             {"max_queue_time_ms": limit})
            assert status == 200, status

        for name, target, policy in [(MODEL, MODEL, deploy), (EMBEDDER, "lib:" + EMBEDDER, settings)]:
            if args.only and name != args.only:
                continue
            policy(0)
            off = overload(args.load, url, key, args.seconds, args.connections, target)
            runs.append((f"{name}, no queue policy", off))
            # The open loop offers 10x the capacity measured without a policy in every run
            # (with one, the 64 connections of the capacity phase are refused in part).
            rate = 10 * off["capacity"]["ok_per_s"]
            # Two limits: one unloaded service time of queueing (p50), and the unloaded p99.
            u = off["unloaded"]
            for limit in sorted({max(1, math.ceil(u["ok_p50_ms"])), max(1, math.ceil(u["ok_p99_ms"]))}):
                policy(limit)
                on = overload(args.load, url, key, args.seconds, args.connections, target, rate)
                runs.append((f"{name}, max_queue_time_ms {limit}", on))
        for name, r in runs:
            u, c = r["unloaded"], r["capacity"]
            cells = [f"| {name} | {ms(u['ok_p50_ms'])} / {ms(u['ok_p99_ms'])} | {c['ok_per_s']:.0f}"]
            for phase in ("open", "overload"):
                o = r[phase]
                offered = f"{o['offered_per_s']:.0f} offered, " if phase == "open" else ""
                cells.append(
                    f"{offered}{o['ok_per_s']:.0f} | {ms(o['ok_p50_ms'])} / {ms(o['ok_p99_ms'])} | "
                    f"**{o['ok_p99_ms'] / u['ok_p99_ms']:.2f}x** | {o['refused']} ({ms(o['refused_p99_ms'])}) "
                    f"| {o['other']}")
            rows.append(" | ".join(cells) + " |")
        table = "\n".join([
            f"{MODEL} predict and {EMBEDDER} embeddings, one text per request, {args.seconds:g} s per phase; "
            f"capacity = 64 connections closed loop; open = open loop at 10x the capacity without a queue policy; "
            f"swarm = {args.connections} connections each resending at once on any answer",
            "",
            "| deployment | unloaded p50 / p99 ms | capacity req/s "
            "| open: admitted req/s | open: admitted p50 / p99 ms | open: p99 / unloaded p99 | open: refused 429 (p99 ms) | open: other "
            "| swarm: admitted req/s | swarm: admitted p50 / p99 ms | swarm: p99 / unloaded p99 | swarm: refused 429 (p99 ms) | swarm: other |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
            *rows,
        ])
        print(table)
        os.makedirs("bench/out", exist_ok=True)
        with open("bench/out/queue.md", "w") as f:
            f.write(table + "\n")
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
