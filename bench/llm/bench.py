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
import json
import os
import platform
import secrets
import shutil
import statistics
import sys
import tempfile
import threading
import time

from client import (HERE, MODEL_SOURCE, PROMPTS, busy_cores, cpu_busy, http_json, log, long_prompt,
                    median, percentile, proc_cpu)
from servers import (aiaas_cold_load, assemble_gguf, lcp_cold_load, start_aiaas, start_lcp,
                     start_llama_server)

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
    log("   prompt throughput (~500-token prompt)")
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
