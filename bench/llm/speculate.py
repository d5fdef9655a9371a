"""Speculative decoding (prompt lookup) against llama-server, on gemma-3-270m, in one run:
aiaas with speculation (its default), aiaas with `--llm-draft-tokens 0`, and llama-server
(`--parallel 8`, no speculation: it has no draft model here), all three up, measured in
turn round after round with the order rotated (machine drift falls on all alike):

- single-stream decode tok/s on free generation (news openings to continue) and on
  extractive prompts (a passage, then "the same text, copied word for word"), the
  median over the prompts of a round, then the median of the per-round ratios;
- the draft acceptance rate (accepted / drafted, from aiaas's /metrics) per prompt set;
- aggregate tok/s at 8 concurrent clients (where aiaas does not speculate: more than two
  sequences generate), alternating aiaas and llama-server.

Run through bench/llm/speculate.sh. Every request: /v1/completions, temperature 0,
max_tokens N, ignore_eos (llama-server), streamed; decode tok/s = (tokens - 1) / (last
token - first token).
"""

import argparse
import os
import secrets
import shutil
import tempfile

from client import PROMPTS, http_json, log, median
from servers import assemble_gguf, start_aiaas, start_llama_server
import bench


def extractive(i):
    passage = " ".join(PROMPTS[(i + k) % len(PROMPTS)] for k in range(3))
    return f"{passage}\n\nThe same text, copied word for word:\n\n"


def metric(server, name):
    status, text = http_json(server.base, "GET", "/metrics", None, server.headers)
    if status != 200:
        raise RuntimeError(f"/metrics: HTTP {status}")
    text = text if isinstance(text, str) else str(text)
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + "{") or line.startswith(name + " "))


def single(server, prompts, max_tokens):
    """Median decode tok/s over the prompts, and each prompt's text."""
    rates, texts = [], []
    for p in prompts:
        r = server.stream(p, max_tokens)
        if r.error:
            raise RuntimeError(f"{server.name}: {r.error}")
        if r.decode_rate:
            rates.append(r.decode_rate)
        texts.append("".join(r.text))
    return median(rates), texts


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--aiaas-bin", required=True)
    ap.add_argument("--llama-server", required=True)
    ap.add_argument("--wheel-dir", required=True)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "out"))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--prompts", type=int, default=4, help="prompts per set and round")
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--llm-slots", type=int, default=8)
    ap.add_argument("--llm-context", type=int, default=2048)
    ap.add_argument("--load-pairs", type=int, default=3, help="alternating 8-client runs")
    ap.add_argument("--label", default="")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    sets = {
        "free": [PROMPTS[i] for i in range(args.prompts)],
        "extractive": [extractive(i) for i in range(args.prompts)],
    }
    dirs = [tempfile.mkdtemp(prefix="aiaas-spec-bench-") for _ in range(2)]
    key = "aiaas_bench_" + secrets.token_hex(16)
    servers = []
    try:
        log("== aiaas (speculating) and aiaas (--llm-draft-tokens 0): start, pull gemma-3-270m")
        on = start_aiaas(args, dirs[0], key, name="aiaas")
        off = start_aiaas(args, dirs[1], key, name="aiaas-no-draft", extra=("--llm-draft-tokens", "0"))
        servers += [on, off]
        for s in (on, off):
            status, rec = http_json(s.base, "POST", "/api/v1/library/pull",
                                    {"source": "gemma-3-270m", "stream": False}, s.headers)
            if status not in (200, 201):
                raise RuntimeError(f"pull failed: HTTP {status} {rec}")
        gguf = assemble_gguf(args.wheel_dir, dirs[0], rec)
        log("== llama-server: start")
        peer = start_llama_server(args, gguf)
        servers.append(peer)
        for s in servers:  # warm-up
            s.stream(PROMPTS[7], 16)
        rates = {(s.name, k): [] for s in servers for k in sets}
        # Greedy texts with and without drafts, per prompt set and round: they must agree.
        texts = {}
        same = total = 0
        acceptance = {k: [0.0, 0.0] for k in sets}
        for rnd in range(args.rounds):
            order = servers[rnd % 3:] + servers[:rnd % 3]
            for kind, prompts in sets.items():
                for s in order:
                    if s is on:
                        d0 = metric(on, "aiaas_llm_draft_tokens_total")
                        a0 = metric(on, "aiaas_llm_draft_accepted_tokens_total")
                    rate, got = single(s, prompts, args.max_tokens)
                    rates[(s.name, kind)].append(rate)
                    texts[(s.name, kind)] = got
                    if s is on:
                        acceptance[kind][0] += metric(on, "aiaas_llm_draft_tokens_total") - d0
                        acceptance[kind][1] += metric(on, "aiaas_llm_draft_accepted_tokens_total") - a0
                pairs = list(zip(texts[("aiaas", kind)], texts[("aiaas-no-draft", kind)]))
                same += sum(a == b for a, b in pairs)
                total += len(pairs)
                log(f"   round {rnd + 1}/{args.rounds} {kind}: " + ", ".join(
                    f"{s.name} {rates[(s.name, kind)][-1]:.1f} tok/s" for s in servers))
        load = []
        for k in range(args.load_pairs):
            got = {}
            for s in ((on, peer) if k % 2 == 0 else (peer, on)):
                got[s.name] = bench.concurrent(s, 8, 2, args.max_tokens)["aggregate_tok_s"]
            load.append((got[on.name], got[peer.name]))
            log(f"   8 clients pair {k + 1}: aiaas {got[on.name]:.1f}, llama-server {got[peer.name]:.1f} tok/s")
    finally:
        for s in servers:
            s.stop()
        for d in dirs:
            shutil.rmtree(d, ignore_errors=True)

    def ratio(a, b, kind):
        return median([x / y for x, y in zip(rates[(a, kind)], rates[(b, kind)])])

    lines = [f"# Speculative decoding (prompt lookup), gemma-3-270m Q4_K_M, {args.threads} threads"]
    if args.label:
        lines.append(f"\n**{args.label}**")
    lines += ["", f"{args.rounds} rounds x {args.prompts} prompts per set, max_tokens {args.max_tokens}, "
              "temperature 0; medians of rounds; ratios are medians of per-round ratios.", "",
              "| single stream | aiaas tok/s | aiaas, no drafts | llama-server | aiaas / llama-server "
              "| aiaas / no drafts | drafts accepted |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for kind in sets:
        drafted, accepted = acceptance[kind]
        rate = f"{accepted / drafted:.0%} of {drafted:.0f}" if drafted else "no drafts"
        lines.append(
            f"| {kind} | {median(rates[('aiaas', kind)]):.1f} | {median(rates[('aiaas-no-draft', kind)]):.1f} "
            f"| {median(rates[('llama-server', kind)]):.1f} | {ratio('aiaas', 'llama-server', kind):.2f}x "
            f"| {ratio('aiaas', 'aiaas-no-draft', kind):.2f}x | {rate} |")
    lines += ["", f"Greedy texts with and without drafts identical: **{same} of {total}** requests."]
    load_ratio = median([a / b for a, b in load]) if load else None
    if load:
        lines += ["", f"8 clients, aggregate tok/s (alternating pairs): aiaas "
                  f"{median([a for a, _ in load]):.1f}, llama-server {median([b for _, b in load]):.1f}: "
                  f"**{load_ratio:.2f}x**"]
    report = "\n".join(lines) + "\n"
    print(report)
    with open(os.path.join(args.out, "speculate.md"), "w") as f:
        f.write(report)


if __name__ == "__main__":
    main()
