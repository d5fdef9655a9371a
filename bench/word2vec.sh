#!/usr/bin/env bash
# word2vec throughput alone: aiaas against gensim on the same BBC News tokens, in
# interleaved rounds (one aiaas run, one gensim run, ROUNDS times: both sides see the same
# machine conditions), medians and ratios in one table. The word2vec part of run.sh,
# without the classifiers.
#   bash bench/word2vec.sh
#   BASELINE_BENCH=/path/to/an/older/examples/bench bash bench/word2vec.sh
# With BASELINE_BENCH (the `bench` example of another build of aiaas, e.g. the commit
# before a change), each round runs that binary too, and the table adds ours/baseline:
# how a change moved words/s, measured under the same conditions.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export AIAAS_TEST_DATA="${AIAAS_TEST_DATA:-$HOME/.cache/aiaas-data-cache}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/aiaas-target}"
rounds="${BENCH_W2V_ROUNDS:-5}"
out=bench/out/w2v
bash bench/setup.sh
cargo build --release --quiet -p aiaas-train --example bench
ours="$CARGO_TARGET_DIR/release/examples/bench"
rm -rf "$out" && mkdir -p "$out"
for i in $(seq 1 "$rounds"); do
    echo "== word2vec round $i/$rounds" >&2
    "$ours" --data "$AIAAS_TEST_DATA" --tokens "$out/tokens" \
        --out "$out/ours-$i.json" --only word2vec --w2v-repeats 1
    if [ -n "${BASELINE_BENCH:-}" ]; then
        "$BASELINE_BENCH" --data "$AIAAS_TEST_DATA" --tokens "$out/tokens-baseline" \
            --out "$out/baseline-$i.json" --only word2vec --w2v-repeats 1
    fi
    # OPENBLAS_* may be set here for old OpenBLAS builds; they slow a current numpy.
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE bench/.venv/bin/python bench/python_baseline.py \
        --tokens "$out/tokens" --out "$out/peer-$i.json" --only-word2vec --w2v-repeats 1
done
python3 - "$out" <<'PY'
import glob, json, os, statistics, sys
out = sys.argv[1]

def medians(side):
    runs = {}
    for path in sorted(glob.glob(os.path.join(out, f"{side}-*.json"))):
        w2v = json.load(open(path))["word2vec"]
        for mode in ("skip-gram", "cbow"):
            runs.setdefault(mode, []).append(w2v[mode]["words_per_second"])
    return {m: (statistics.median(v), v) for m, v in runs.items()}

ours, peer, base = medians("ours"), medians("peer"), medians("baseline")
head = "| mode | aiaas words/s | gensim words/s | aiaas/gensim |"
rule = "|---|---|---|---|"
if base:
    head += " baseline words/s | aiaas/baseline |"
    rule += "---|---|"
lines = [head, rule]
for mode in ("skip-gram", "cbow"):
    o, p = ours[mode][0], peer[mode][0]
    row = f"| {mode} | {o:,.0f} | {p:,.0f} | {o / p:.2f}x |"
    if base:
        b = base[mode][0]
        row += f" {b:,.0f} | {b and o / b:.3f}x |"
    lines.append(row)
lines.append("")
lines.append(f"medians of {len(ours['cbow'][1])} interleaved rounds; every run: "
             + json.dumps({"ours": {m: v[1] for m, v in ours.items()},
                           "gensim": {m: v[1] for m, v in peer.items()},
                           **({"baseline": {m: v[1] for m, v in base.items()}} if base else {})}))
text = "\n".join(lines)
print(text)
open(os.path.join(out, "report.md"), "w").write(text + "\n")
PY
