"""aiaas against llama-cpp-python's OpenAI server (and llama.cpp's llama-server when built)
on the same GGUF (gemma-3-270m Q4_K_M), one server after the other, then one table.

Run through bench/llm/run.sh, which builds/installs the three servers and passes their
paths. Steps:
1. aiaas: `aiaas serve` on a fresh data dir, `POST /api/v1/library/pull` of gemma-3-270m
   from the wheel dir; the pulled `models/gemma-3-270m/model.gguf` is the file every
   server loads;
2. for each server in turn (never two at once: the machine has 2 cores): start it, measure
   its cold model load, warm it up, then
   - single stream: BENCH_SINGLE requests one after the other (a different prompt each),
     median TTFT and decode tok/s = (completion tokens - 1) / (end - first token);
   - prompt throughput: a ~500-token prompt, max_tokens 1, not streamed,
     prompt tokens / request seconds (median of 3; each repetition starts differently so
     no server can reuse a cached prefix);
   - concurrency: for each level C, C client threads each send requests back to back
     (at least BENCH_ROUNDS each, at least BENCH_MIN_REQUESTS in all): aggregate tok/s = all
     completion tokens / wall time, p50/p99 request latency, p99 TTFT;
   then stop it;
3. the table with ratios aiaas / peer and PASS/FAIL per target; bench/llm/out/results.json
   and bench/llm/out/report.md.

The client is the standard library only (http.client, threads), streaming over loopback;
every request is `/v1/completions` (gemma-3-270m is a base model), temperature 0,
max_tokens N, `ignore_eos` (only llama-server honours it; the others may stop early at
EOS, so the mean completion tokens per request are reported and every rate counts real
tokens), `repeat_penalty` 1.0 (llama-cpp-python's default of 1.1 would change the text),
`cache_prompt` false (llama-server would otherwise reuse prompt prefixes; aiaas has no
prefix cache). Completion tokens come from the stream's `usage` (stream_options
include_usage) where a server sends it, else from llama-server's `timings`, else one per
streamed chunk; the source is recorded.
"""

import argparse
import http.client
import json
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from urllib.parse import urlparse

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

MODEL_SOURCE = "gemma-3-270m"

# 16 different prompts of about 40 tokens each (news-style openings; the model is a base
# model, so plain text to continue).
PROMPTS = [
    "The city council met on Tuesday evening to discuss the new plan for public transport, which would add three tram lines and close the old bus depot near the river by the end of next year.",
    "Scientists at the northern research station reported that the winter ice had formed two weeks later than usual, and they warned that the change could affect the seals that breed along the coast.",
    "The small bakery on the corner of Market Street has been run by the same family for four generations, and every morning a queue forms outside before the doors open at six o'clock.",
    "After months of negotiations, the two companies announced a merger that will create the largest maker of bicycles in Europe, with factories in five countries and more than twelve thousand workers.",
    "The museum's new exhibition brings together more than two hundred maps drawn by sailors and merchants between the fifteenth and the eighteenth centuries, many of them shown to the public for the first time.",
    "Farmers in the valley say the dry spring has left the soil too hard to plant, and many of them are now waiting for rain before they decide whether to sow wheat or leave the fields empty.",
    "The national team arrived at the airport late on Sunday night, greeted by hundreds of supporters who had waited for hours to celebrate the first championship title in almost thirty years.",
    "A report published by the health ministry this week found that children who walk or cycle to school sleep better and perform better in mathematics than those who are driven by their parents.",
    "The old railway bridge, built in 1887 and closed to trains since the 1970s, will reopen next month as a footpath and cycle route linking the two halves of the town across the gorge.",
    "Engineers working on the new telescope in the desert have finished polishing the last of its thirty-six mirror segments, and the first test images are expected to be taken before the end of the summer.",
    "The annual book fair opened its doors on Thursday with more than nine hundred publishers from forty countries, and the organisers expect a record number of visitors over the five days of the event.",
    "Residents of the island have voted to ban cars from the main village during the summer months, hoping to reduce noise and pollution while making the narrow streets safer for walkers and children.",
    "The orchestra's new conductor, who is only twenty-nine years old, said in an interview that she wants to bring classical music to schools and to play concerts in factories, markets and train stations.",
    "Heavy snow closed the mountain pass for the third time this month, leaving dozens of lorries stranded on both sides and forcing the regional government to open emergency shelters in two villages.",
    "A group of volunteers has spent the last ten years restoring the gardens of the ruined castle, planting old varieties of apples and pears that had almost disappeared from the region's orchards.",
    "The central bank kept interest rates unchanged on Wednesday, saying that prices were still rising faster than expected and that it would wait for more data before deciding its next move in the autumn.",
]

LONG_OPENINGS = [
    "Here is a summary of the week's local news, collected from several newspapers.",
    "Below are short reports from around the region, as printed in Friday's edition.",
    "The following stories were read on the evening radio bulletin last Monday.",
]


def long_prompt(rep):
    """About 500 tokens; each repetition starts with a different sentence and a rotated
    order, so no server can reuse the previous one as a cached prefix."""
    body = PROMPTS[rep % len(PROMPTS):] + PROMPTS[: rep % len(PROMPTS)]
    return LONG_OPENINGS[rep % len(LONG_OPENINGS)] + "\n\n" + "\n\n".join(body[:12]) + "\n\n"


# ---------------------------------------------------------------- small helpers


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values, q):
    """Linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return None
    v = sorted(values)
    if len(v) == 1:
        return v[0]
    pos = (len(v) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


def median(values):
    return statistics.median(values) if values else None


def http_json(base, method, path, body=None, headers=None, timeout=600):
    u = urlparse(base)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    h = {"Content-Type": "application/json"}
    h.update(headers or {})
    conn.request(method, path, body=None if body is None else json.dumps(body), headers=h)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    try:
        parsed = json.loads(data) if data else None
    except ValueError:
        parsed = data.decode("utf-8", "replace")
    return resp.status, parsed


def wait_http(base, path, timeout, proc=None, ok=(200,)):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            status, _ = http_json(base, "GET", path, timeout=5)
            if status in ok:
                return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


def busy_cores(seconds=2.0):
    """Cores busy on the machine over a short sample (nothing of ours is running yet)."""
    a = cpu_busy()
    time.sleep(seconds)
    b = cpu_busy()
    if not a or not b or b[1] == a[1]:
        return None
    return (b[0] - a[0]) / ((b[1] - a[1]) / (os.cpu_count() or 1))


def cpu_busy():
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            parts = [int(x) for x in f.readline().split()[1:]]
        idle = parts[3] + (parts[4] if len(parts) > 4 else 0)
        return sum(parts) - idle, sum(parts)
    except OSError:
        return None


def proc_cpu(pid):
    """utime + stime jiffies of a process and its threads."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return None


# ---------------------------------------------------------------- one streamed request


class Result:
    """One request: start, first text chunk, last text chunk (`last`), end of the stream."""

    __slots__ = ("start", "first", "last", "end", "tokens", "token_source", "chunks", "finish", "error", "text")

    def __init__(self):
        self.start = self.first = self.last = self.end = None
        self.tokens = 0
        self.token_source = None
        self.chunks = 0
        self.finish = None
        self.error = None
        self.text = []

    @property
    def latency(self):
        return self.end - self.start

    @property
    def ttft(self):
        return None if self.first is None else self.first - self.start

    @property
    def decode_rate(self):
        if self.first is None or self.tokens < 2 or self.last <= self.first:
            return None
        return (self.tokens - 1) / (self.last - self.first)


class Server:
    def __init__(self, name, base, model, headers=None, extra=None):
        self.name = name
        self.base = base
        self.model = model
        self.headers = headers or {}
        self.extra = extra or {}
        self.proc = None
        self.log_path = None

    def payload(self, prompt, max_tokens, stream=True):
        body = {
            "model": self.model,
            "prompt": prompt,
            "max_tokens": max_tokens,
            "temperature": 0,
            "stream": stream,
            "ignore_eos": True,
            "repeat_penalty": 1.0,
            "cache_prompt": False,
        }
        if stream:
            body["stream_options"] = {"include_usage": True}
        body.update(self.extra)
        return body

    def stream(self, prompt, max_tokens, timeout=900):
        r = Result()
        u = urlparse(self.base)
        body = json.dumps(self.payload(prompt, max_tokens))
        h = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        h.update(self.headers)
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
        usage_tokens = timing_tokens = None
        try:
            r.start = time.perf_counter()
            conn.request("POST", "/v1/completions", body=body, headers=h)
            resp = conn.getresponse()
            if resp.status != 200:
                r.error = f"HTTP {resp.status}: {resp.read()[:300]!r}"
                r.end = time.perf_counter()
                return r
            while True:
                line = resp.readline()
                if not line:
                    break
                line = line.strip()
                if not line.startswith(b"data:"):
                    continue
                data = line[5:].strip()
                if data == b"[DONE]":
                    break
                try:
                    ev = json.loads(data)
                except ValueError:
                    continue
                if "error" in ev and not ev.get("choices"):
                    r.error = str(ev["error"])[:300]
                    break
                now = time.perf_counter()
                for ch in ev.get("choices") or []:
                    if ch.get("finish_reason"):
                        r.finish = ch["finish_reason"]
                    text = ch.get("text")
                    if text is None:
                        text = (ch.get("delta") or {}).get("content")
                    if text:
                        if r.first is None:
                            r.first = now
                        r.chunks += 1
                        r.text.append(text)
                        r.last = now
                u_ = ev.get("usage")
                if isinstance(u_, dict) and u_.get("completion_tokens") is not None:
                    usage_tokens = u_["completion_tokens"]
                t_ = ev.get("timings")
                if isinstance(t_, dict) and t_.get("predicted_n") is not None:
                    timing_tokens = t_["predicted_n"]
            r.end = time.perf_counter()
        except (OSError, http.client.HTTPException) as e:
            r.error = f"{type(e).__name__}: {e}"
            r.end = time.perf_counter()
        finally:
            conn.close()
        if usage_tokens is not None:
            r.tokens, r.token_source = usage_tokens, "usage"
        elif timing_tokens is not None:
            r.tokens, r.token_source = timing_tokens, "timings"
        else:
            r.tokens, r.token_source = r.chunks, "chunks"
        return r

    def prompt_eval(self, prompt):
        """Non-streamed, max_tokens 1: (prompt tokens, seconds)."""
        t0 = time.perf_counter()
        status, body = http_json(self.base, "POST", "/v1/completions",
                                 self.payload(prompt, 1, stream=False), self.headers)
        dt = time.perf_counter() - t0
        if status != 200 or not isinstance(body, dict):
            raise RuntimeError(f"{self.name}: prompt request failed: HTTP {status} {str(body)[:300]}")
        return (body.get("usage") or {}).get("prompt_tokens"), dt

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


# ---------------------------------------------------------------- measurements


def check(results, what):
    bad = [r.error for r in results if r.error]
    if bad:
        raise RuntimeError(f"{what}: {len(bad)} of {len(results)} requests failed, e.g. {bad[0]}")


def single_stream(server, n, max_tokens):
    results = []
    for i in range(n):
        results.append(server.stream(PROMPTS[i % len(PROMPTS)], max_tokens))
    check(results, f"{server.name} single stream")
    rates = [r.decode_rate for r in results if r.decode_rate]
    return {
        "requests": n,
        "decode_tok_s": median(rates),
        "ttft_s": median([r.ttft for r in results if r.ttft is not None]),
        "latency_s": median([r.latency for r in results]),
        "mean_completion_tokens": statistics.mean(r.tokens for r in results),
        "token_source": sorted({r.token_source for r in results}),
        "finish_reasons": sorted({str(r.finish) for r in results}),
        "sample_text": "".join(results[0].text)[:200],
    }


def prompt_throughput(server, reps=3):
    runs = []
    for rep in range(reps):
        tokens, dt = server.prompt_eval(long_prompt(rep))
        runs.append({"prompt_tokens": tokens, "seconds": dt,
                     "tok_s": (tokens / dt) if tokens else None})
    rates = [r["tok_s"] for r in runs if r["tok_s"]]
    return {"prompt_tokens": runs[0]["prompt_tokens"], "seconds": median([r["seconds"] for r in runs]),
            "tok_s": median(rates), "runs": runs}


def concurrent(server, clients, per_client, max_tokens):
    barrier = threading.Barrier(clients)
    results = [[] for _ in range(clients)]

    def worker(c):
        barrier.wait()
        for k in range(per_client):
            p = PROMPTS[(c + k * clients) % len(PROMPTS)]
            results[c].append(server.stream(p, max_tokens))

    machine0 = cpu_busy()
    proc0 = proc_cpu(server.proc.pid) if server.proc else None
    self0 = os.times()
    threads = [threading.Thread(target=worker, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    flat = [r for rs in results for r in rs]
    check(flat, f"{server.name} {clients} clients")
    wall = max(r.end for r in flat) - min(r.start for r in flat)
    tokens = sum(r.tokens for r in flat)
    out = {
        "clients": clients,
        "requests": len(flat),
        "wall_s": wall,
        "aggregate_tok_s": tokens / wall if wall > 0 else None,
        "completion_tokens": tokens,
        "mean_completion_tokens": tokens / len(flat),
        "latency_p50_s": percentile([r.latency for r in flat], 50),
        "latency_p99_s": percentile([r.latency for r in flat], 99),
        "ttft_p50_s": percentile([r.ttft for r in flat if r.ttft is not None], 50),
        "ttft_p99_s": percentile([r.ttft for r in flat if r.ttft is not None], 99),
        "token_source": sorted({r.token_source for r in flat}),
    }
    machine1 = cpu_busy()
    proc1 = proc_cpu(server.proc.pid) if server.proc else None
    self1 = os.times()
    if machine0 and machine1 and proc0 is not None and proc1 is not None:
        # cores used over the run by the server, by this client, and by anything else
        busy = machine1[0] - machine0[0]
        total = machine1[1] - machine0[1]
        ncpu = os.cpu_count() or 1
        if total:
            ticks = total / ncpu
            seconds = ticks / os.sysconf("SC_CLK_TCK")
            out["machine_cores"] = busy / ticks
            out["server_cores"] = (proc1 - proc0) / ticks
            out["client_cores"] = ((self1.user - self0.user) + (self1.system - self0.system)) / seconds
            out["other_cores"] = max(0.0, out["machine_cores"] - out["server_cores"] - out["client_cores"])
    return out


def measure(server, args):
    log(f"   warm-up ({server.name})")
    for i in range(2):
        r = server.stream(PROMPTS[(i + 7) % len(PROMPTS)], 16)
        if r.error:
            raise RuntimeError(f"{server.name}: warm-up failed: {r.error}")
    log(f"   single stream: {args.single} requests, max_tokens {args.max_tokens}")
    out = {"single": single_stream(server, args.single, args.max_tokens)}
    log(f"   prompt throughput (~500-token prompt)")
    out["prompt"] = prompt_throughput(server)
    out["concurrency"] = {}
    for c in args.clients:
        per_client = max(args.rounds, -(-args.min_requests // c))
        log(f"   {c} clients x {per_client} requests")
        out["concurrency"][str(c)] = concurrent(server, c, per_client, args.max_tokens)
        cc = out["concurrency"][str(c)]
        log(f"      {cc['aggregate_tok_s']:.1f} tok/s, p50 {cc['latency_p50_s']:.2f} s, "
            f"p99 TTFT {cc['ttft_p99_s']:.2f} s")
    return out


def head_to_head(a, b, args):
    """Both servers up, the same concurrency run alternately (a b, b a, a b, ...): drift of
    the machine over the run (other tenants of the host, page cache, clock) falls on both
    sides alike instead of on whichever server runs last. Median of the per-pair ratios."""
    c = args.pairs_clients
    per_client = max(args.rounds, -(-args.min_requests // c))
    runs = {a.name: [], b.name: []}
    ratios = []
    for k in range(args.pairs):
        order = (a, b) if k % 2 == 0 else (b, a)
        got = {}
        for s in order:
            r = concurrent(s, c, per_client, args.max_tokens)
            got[s.name] = r["aggregate_tok_s"]
            runs[s.name].append(r["aggregate_tok_s"])
        ratios.append(got[a.name] / got[b.name])
        log(f"   head-to-head pair {k + 1}/{args.pairs} ({c} clients): {a.name} {got[a.name]:.1f} tok/s, "
            f"{b.name} {got[b.name]:.1f} tok/s, ratio {ratios[-1]:.2f}")
    return {"clients": c, "pairs": args.pairs, "peer": b.name, "aiaas_tok_s": runs[a.name],
            "peer_tok_s": runs[b.name], "ratios": ratios, "ratio_median": median(ratios)}


# ---------------------------------------------------------------- the servers


def start_aiaas(args, data_dir, key):
    log_path = os.path.join(args.out, "aiaas.log")
    cmd = [args.aiaas_bin, "serve", "--listen", "127.0.0.1:0", "--data-dir", data_dir, "--no-demo",
           "--wheel-dir", args.wheel_dir, "--keep-alive", "-1",
           "--llm-slots", str(args.llm_slots), "--llm-context", str(args.llm_context)]
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
    s = Server("aiaas", base.rstrip("/"), MODEL_SOURCE, headers={"Authorization": f"Bearer {key}"})
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


# ---------------------------------------------------------------- report

PEERS = ["llama-cpp-python", "llama-server"]


def fmt(v, kind):
    if v is None:
        return "-"
    if kind == "tok":
        return f"{v:,.1f}"
    if kind == "s":
        return f"{v * 1000:,.0f} ms" if v < 10 else f"{v:,.1f} s"
    if kind == "n":
        return f"{v:,.1f}"
    return str(v)


def rows(results, clients):
    """(label, kind, {server: value}, higher_is_better)"""
    def get(server, *path):
        v = results.get(server, {})
        for p in path:
            if not isinstance(v, dict):
                return None
            v = v.get(p)
        return v

    servers = ["aiaas"] + PEERS
    out = []

    def add(label, kind, path, higher):
        out.append((label, kind, {s: get(s, *path) for s in servers}, higher))

    add("single stream: decode tok/s", "tok", ("single", "decode_tok_s"), True)
    add("single stream: TTFT", "s", ("single", "ttft_s"), False)
    add("single stream: mean completion tokens", "n", ("single", "mean_completion_tokens"), None)
    add("prompt tok/s (~500-token prompt)", "tok", ("prompt", "tok_s"), True)
    for c in clients:
        k = str(c)
        add(f"{c} clients: aggregate tok/s", "tok", ("concurrency", k, "aggregate_tok_s"), True)
        add(f"{c} clients: p50 latency", "s", ("concurrency", k, "latency_p50_s"), False)
        add(f"{c} clients: p99 latency", "s", ("concurrency", k, "latency_p99_s"), False)
        add(f"{c} clients: p99 TTFT", "s", ("concurrency", k, "ttft_p99_s"), False)
    add("cold load (aiaas: POST load; peers: model load)", "s", ("cold", "load_s"), False)
    add("aiaas: first request on an unloaded model (TTFT)", "s", ("cold", "first_request_ttft_s"), False)
    add("server start to ready (aiaas loads models on demand)", "s", ("startup_s",), None)
    return out


def targets(results, clients):
    """(description, value, wanted, passed or None when not measurable)"""
    def ratio(metric, peer, *path):
        a, p = results.get("aiaas", {}), results.get(peer, {})
        for k in path:
            a = a.get(k, {}) if isinstance(a, dict) else {}
            p = p.get(k, {}) if isinstance(p, dict) else {}
        if isinstance(a, (int, float)) and isinstance(p, (int, float)) and p:
            return a / p
        return None

    t = []
    r = ratio("decode", "llama-cpp-python", "single", "decode_tok_s")
    t.append(("single-stream decode vs llama-cpp-python", r, ">= 1.0x", None if r is None else r >= 1.0))
    if 8 in clients:
        r = ratio("agg", "llama-cpp-python", "concurrency", "8", "aggregate_tok_s")
        t.append(("8-client aggregate tok/s vs llama-cpp-python", r, ">= 2.5x", None if r is None else r >= 2.5))
        h2h = results.get("head_to_head") or {}
        if h2h.get("clients") == 8 and h2h.get("ratios"):
            r = h2h["ratio_median"]
            desc = f"8-client aggregate tok/s vs llama-server (median of {len(h2h['ratios'])} alternating pairs)"
        else:
            r = ratio("agg", "llama-server", "concurrency", "8", "aggregate_tok_s")
            desc = "8-client aggregate tok/s vs llama-server"
        t.append((desc, r, ">= 1.0x", None if r is None else r >= 1.0))
        r = ratio("ttft", "llama-cpp-python", "concurrency", "8", "ttft_p99_s")
        t.append(("8-client p99 TTFT vs llama-cpp-python", r, "<= 0.5x", None if r is None else r <= 0.5))
    cold = results.get("aiaas", {}).get("cold", {}).get("load_s")
    t.append(("aiaas cold load of the GGUF", cold, "< 1 s", None if cold is None else cold < 1.0))
    return t


def render(results, meta, clients):
    lines = []
    lines.append("# aiaas vs llama-cpp-python vs llama-server (gemma-3-270m Q4_K_M, CPU)")
    lines.append("")
    for k, v in meta.items():
        lines.append(f"- {k}: {v}")
    lines.append("")
    header = "| metric | aiaas | llama-cpp-python | llama-server | aiaas / llama-cpp-python | aiaas / llama-server |"
    lines.append(header)
    lines.append("|---|---:|---:|---:|---:|---:|")
    for label, kind, vals, higher in rows(results, clients):
        cells = [fmt(vals.get(s), kind) for s in ["aiaas"] + PEERS]
        ratios = []
        for p in PEERS if higher is not None else []:
            a, b = vals.get("aiaas"), vals.get(p)
            ratios.append(f"{a / b:.2f}x" if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else "-")
        ratios += ["-"] * (len(PEERS) - len(ratios))
        lines.append(f"| {label} | " + " | ".join(cells + ratios) + " |")
    lines.append("")
    lines.append("Ratios are aiaas / peer: above 1 is better for tok/s, below 1 is better for times.")
    lines.append("")
    lines.append("| target | measured | wanted | result |")
    lines.append("|---|---:|---:|---|")
    for desc, v, want, ok in targets(results, clients):
        shown = "-" if v is None else (f"{v:.2f} s" if "cold" in desc else f"{v:.2f}x")
        lines.append(f"| {desc} | {shown} | {want} | {'n/a' if ok is None else ('PASS' if ok else 'FAIL')} |")
    h2h = results.get("head_to_head")
    if h2h:
        lines.append("")
        lines.append(f"Head to head, {h2h['clients']} clients, both servers up, run alternately "
                     f"({h2h['pairs']} pairs, the order swapped every pair):")
        lines.append("")
        lines.append(f"| pair | aiaas tok/s | {h2h['peer']} tok/s | ratio |")
        lines.append("|---:|---:|---:|---:|")
        for k, (x, y, r) in enumerate(zip(h2h["aiaas_tok_s"], h2h["peer_tok_s"], h2h["ratios"])):
            lines.append(f"| {k + 1} | {x:.1f} | {y:.1f} | {r:.2f}x |")
        lines.append(f"| median | {median(h2h['aiaas_tok_s']):.1f} | {median(h2h['peer_tok_s']):.1f} | "
                     f"{h2h['ratio_median']:.2f}x |")
    notes = results.get("_notes", [])
    if notes:
        lines.append("")
        for n in notes:
            lines.append(f"- {n}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--aiaas-bin", required=True)
    ap.add_argument("--venv-python", required=True, help="python with llama-cpp-python[server]; '' to skip")
    ap.add_argument("--llama-server", default="", help="llama-server binary; '' to skip")
    ap.add_argument("--wheel-dir", required=True)
    ap.add_argument("--out", default=os.path.join(HERE, "out"))
    ap.add_argument("--clients", default="1,4,8,16")
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--single", type=int, default=8, help="single-stream requests")
    ap.add_argument("--rounds", type=int, default=2, help="requests per client at each level")
    ap.add_argument("--min-requests", type=int, default=8, help="requests in all at each level, at least")
    ap.add_argument("--cold-reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--llm-slots", type=int, default=8)
    ap.add_argument("--llm-context", type=int, default=2048)
    ap.add_argument("--lcp-ctx", type=int, default=2048)
    ap.add_argument("--pairs", type=int, default=5,
                    help="alternating head-to-head runs against llama-server (0: none)")
    ap.add_argument("--pairs-clients", type=int, default=8, help="clients in the head-to-head runs")
    ap.add_argument("--label", default="", help="a note printed on top of the report (e.g. debug build)")
    ap.add_argument("--strict", action="store_true", help="exit 1 unless every target passes")
    args = ap.parse_args()
    args.clients = [int(c) for c in args.clients.split(",") if c.strip()]
    os.makedirs(args.out, exist_ok=True)
    for f in ("aiaas.log", "llama-cpp-python.log", "llama-server.log"):
        try:
            os.remove(os.path.join(args.out, f))
        except FileNotFoundError:
            pass

    idle = busy_cores()
    meta = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
        "aiaas binary": args.aiaas_bin,
        "settings": (f"max_tokens {args.max_tokens}, temperature 0, clients {args.clients}, "
                     f"{args.single} single-stream requests, >= {args.rounds} requests per client "
                     f"and >= {args.min_requests} per level, "
                     f"{args.threads} threads per server, aiaas --llm-slots {args.llm_slots} "
                     f"--llm-context {args.llm_context}, llama-server --parallel {args.llm_slots} "
                     f"-c {args.llm_slots * args.llm_context}, llama-cpp-python n_ctx {args.lcp_ctx}"),
        "cores busy before the start (2 s sample)": f"{idle:.2f}" if idle is not None else "?",
    }
    if args.label:
        meta = {"NOTE": args.label, **meta}
    results = {"_notes": []}
    if idle is not None and idle > 0.25:
        results["_notes"].append(f"WARNING: {idle:.2f} cores busy before the start: something else is using "
                                 "the CPUs (a build?); every number is lower than on an idle machine.")

    data_dir = tempfile.mkdtemp(prefix="aiaas-llm-bench-")
    key = "aiaas_bench_" + secrets.token_hex(16)
    servers = []
    try:
        # ---- aiaas (also pulls the GGUF every server loads)
        log("== aiaas: start, pull gemma-3-270m")
        s = start_aiaas(args, data_dir, key)
        servers.append(s)
        t0 = time.perf_counter()
        status, rec = http_json(s.base, "POST", "/api/v1/library/pull",
                                {"source": MODEL_SOURCE, "stream": False}, s.headers)
        if status not in (200, 201):
            raise RuntimeError(f"pull failed: HTTP {status} {rec}")
        log(f"   pulled in {time.perf_counter() - t0:.1f} s")
        if isinstance(rec, dict) and rec.get("name"):
            s.model = rec["name"]
        # aiaas keeps pulled weights sealed (encrypted at rest), so the peers get the same
        # GGUF assembled from the same wheels, checked against the sha256 the pull recorded.
        gguf = assemble_gguf(args.wheel_dir, data_dir, rec)
        meta["model"] = f"{gguf} ({os.path.getsize(gguf) / 1e6:.0f} MB)"
        res = {"startup_s": s.startup_s}
        log("   cold load")
        res["cold"] = aiaas_cold_load(s, args.cold_reps)
        res.update(measure(s, args))
        results["aiaas"] = res
        aiaas_server = s
        if not (args.pairs and args.llama_server and os.path.exists(args.llama_server)):
            s.stop()

        # ---- llama-cpp-python
        if args.venv_python:
            log("== llama-cpp-python: cold load, start")
            res = {"cold": lcp_cold_load(args, gguf, args.cold_reps)}
            s = start_lcp(args, gguf)
            servers.append(s)
            res["startup_s"] = s.startup_s
            res.update(measure(s, args))
            results["llama-cpp-python"] = res
            s.stop()
        else:
            results["_notes"].append("llama-cpp-python skipped (not installed).")

        # ---- llama-server
        if args.llama_server and os.path.exists(args.llama_server):
            log("== llama-server: start")
            s = start_llama_server(args, gguf)
            servers.append(s)
            res = {"startup_s": s.startup_s}
            # its start-to-ready time includes loading the model (and its warm-up decode)
            res["cold"] = {"load_s": s.startup_s}
            res.update(measure(s, args))
            results["llama-server"] = res
            if args.pairs:
                results["head_to_head"] = head_to_head(aiaas_server, s, args)
            s.stop()
            aiaas_server.stop()
        else:
            results["_notes"].append("llama-server skipped: " + (args.llama_server or "not built (see run.sh output)"))
    finally:
        for s in servers:
            s.stop()
        if os.environ.get("BENCH_KEEP_TMP") != "1":
            shutil.rmtree(data_dir, ignore_errors=True)

    others = {f"{name} {c} clients": v["other_cores"]
              for name in ["aiaas"] + PEERS if isinstance(results.get(name), dict)
              for c, v in results[name].get("concurrency", {}).items() if v.get("other_cores") is not None}
    busy = {k: v for k, v in others.items() if v > 0.25}
    if busy:
        results["_notes"].insert(0, "WARNING: other processes used CPU during the runs (cores): " +
                                 ", ".join(f"{k} {v:.2f}" for k, v in busy.items()) +
                                 "; those numbers are not comparable. Run on an idle machine.")
    results["_notes"].append(
        "cold load: aiaas = POST /api/v1/library/NAME/load after an unload (context for "
        f"{args.llm_slots} x {args.llm_context} tokens created); llama-cpp-python = Llama(...) "
        f"in a fresh process (n_ctx {args.lcp_ctx}); llama-server = process start to /health OK "
        "(includes its warm-up decode). The GGUF is in the page cache for all.")
    results["_notes"].append(
        "llama-cpp-python runs with --interrupt_requests False (else a new request cuts the "
        "stream in progress), --logits_all False and --flash_attn True (its defaults compute "
        "logits for every prompt token and disable flash attention; llama.cpp, which aiaas and "
        "llama-server use, picks flash attention itself). It serves one request at a time.")
    results["_notes"].append(
        "p99 over few requests is close to the maximum; decode tok/s = (completion tokens - 1) "
        "/ (last token - first token). The client runs on the same 2 cores as the server.")
    results["_meta"] = meta
    report = render(results, meta, args.clients)
    print(report)
    with open(os.path.join(args.out, "report.md"), "w") as f:
        f.write(report)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=2, default=str)
    log(f"wrote {os.path.join(args.out, 'report.md')} and results.json")
    if args.strict and not all(ok for _, _, _, ok in targets(results, args.clients)):
        sys.exit(1)


if __name__ == "__main__":
    main()
