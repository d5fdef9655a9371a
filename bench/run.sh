#!/usr/bin/env bash
# The benchmark in one command: aiaas and its Python peers (gensim, Keras, scikit-learn,
# mittens for GloVe)
# on the same BBC News split and the same tokens, one after the other, then one table.
#   bash bench/run.sh            # table on stdout, markdown in bench/out/report.md
#   BENCH_STRICT=1 bash bench/run.sh   # exit 1 unless every target passes
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export AIAAS_TEST_DATA="${AIAAS_TEST_DATA:-$HOME/.cache/aiaas-data-cache}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/aiaas-target}"
if ! command -v cargo >/dev/null && [ -f "$HOME/.cargo/env" ]; then
    . "$HOME/.cargo/env"
fi

out=bench/out
echo "== setup (venv, BBC split)" >&2
bash bench/setup.sh
mkdir -p "$out"
rm -rf "$out/tokens" "$out/aiaas.json" "$out/peer.json" "$out/glove.json" "$out/report.md" "$out/w2v-rounds"

echo "== aiaas (cargo run --release -p aiaas-train --example bench)" >&2
cargo run --release --quiet -p aiaas-train --example bench -- \
    --data "$AIAAS_TEST_DATA" --tokens "$out/tokens" --out "$out/aiaas.json" --w2v-repeats 1

echo "== Python: gensim, Keras, scikit-learn" >&2
# OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE may be set on this machine for old OpenBLAS builds;
# they slow a current numpy, so the Python side runs without them (this command only).
env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \
    bench/.venv/bin/python bench/python_baseline.py --tokens "$out/tokens" --out "$out/peer.json" --w2v-repeats 1 \
    --data "$AIAAS_TEST_DATA"

echo "== GloVe: mittens on the same co-occurrence counts" >&2
bench/.venv/bin/python bench/glove_reference.py --tokens "$out/tokens/train.tsv" \
    --ours "$out/tokens/glove-vectors.txt" --top 2000 --dim 50 --iters 500 --json "$out/glove.json"

# word2vec throughput: alternate one aiaas run and one gensim run, ROUNDS times, so both
# sides are measured under the same machine conditions; medians replace the figures above.
rounds="${BENCH_W2V_ROUNDS:-5}"
mkdir -p "$out/w2v-rounds"
for i in $(seq 1 "$rounds"); do
    echo "== word2vec round $i/$rounds" >&2
    "$CARGO_TARGET_DIR/release/examples/bench" --data "$AIAAS_TEST_DATA" --tokens "$out/tokens" \
        --out "$out/w2v-rounds/ours-$i.json" --only word2vec --w2v-repeats 1
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE bench/.venv/bin/python bench/python_baseline.py \
        --tokens "$out/tokens" --out "$out/w2v-rounds/peer-$i.json" --only-word2vec --w2v-repeats 1
done
python3 bench/merge_word2vec.py "$out/aiaas.json" "$out/peer.json" "$out/w2v-rounds"

echo "== comparison" >&2
strict=()
if [ "${BENCH_STRICT:-0}" = 1 ]; then strict=(--strict); fi
python3 bench/compare.py --ours "$out/aiaas.json" --peer "$out/peer.json" --glove "$out/glove.json" \
    --report "$out/report.md" "${strict[@]}"
