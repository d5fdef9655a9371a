#!/usr/bin/env bash
# LoRA fine-tuning: aiaas's trainer (crates/finetune) against Hugging Face
# transformers + PEFT on PyTorch CPU, side by side in one run, on the same GGUF base
# (SmolLM2-135M-Instruct; transformers dequantises the same file), the same token
# sequences and batches (aiaas writes them, PEFT reads them), the same LoRA shape,
# optimiser and schedule, the same threads. Then decode speed of the served model with
# the trained adapter against the base model alone (llama.cpp, one run).
#   bash bench/finetune/run.sh            # table on stdout, bench/out/finetune/*.json
#   BENCH_THREADS=2 BENCH_EPOCHS=2 bash bench/finetune/run.sh
# PyTorch comes from PyPI into bench/.venv-ft (several GB with its CUDA libraries).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
export AIAAS_TEST_DATA="${AIAAS_TEST_DATA:-$HOME/.cache/aiaas-data-cache}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/aiaas-target}"
if ! command -v cargo >/dev/null && [ -f "$HOME/.cargo/env" ]; then
    . "$HOME/.cargo/env"
fi
threads="${BENCH_THREADS:-2}"
epochs="${BENCH_EPOCHS:-2}"
model="${AIAAS_FT_MODEL:-$AIAAS_TEST_DATA/models/smollm2-135m-instruct.gguf}"
[ -f "$model" ] || bash scripts/setup.sh --test
out=bench/out/finetune
mkdir -p "$out"

venv=bench/.venv-ft
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c "import torch, transformers, peft, gguf" 2>/dev/null; then
    echo "== installing bench/finetune/requirements.txt into $venv" >&2
    "$venv/bin/python" -m pip install --quiet --no-cache-dir --disable-pip-version-check \
        -r bench/finetune/requirements.txt
fi

python3 bench/finetune/make_data.py > "$out/data.jsonl"
echo "== building aiaas-finetune's finetune_bench (release)" >&2
cargo build --release --quiet -p aiaas-finetune --example finetune_bench

echo "== aiaas, $threads threads" >&2
RAYON_NUM_THREADS="$threads" "$CARGO_TARGET_DIR/release/examples/finetune_bench" \
    "$model" "$out/data.jsonl" "$out" --epochs "$epochs" --threads "$threads" > "$out/aiaas.json"
echo "== transformers + PEFT, one example per forward (as aiaas), $threads threads" >&2
"$venv/bin/python" bench/finetune/peft_train.py "$model" "$out/sequences.json" \
    --threads "$threads" 2> "$out/peft.log" > "$out/peft.json"
echo "== transformers + PEFT, a padded batch per forward, $threads threads" >&2
"$venv/bin/python" bench/finetune/peft_train.py "$model" "$out/sequences.json" \
    --threads "$threads" --padded 2> "$out/peft_padded.log" > "$out/peft_padded.json"

python3 - "$out" <<'PY'
import json, statistics, sys
out = sys.argv[1]
ours = json.load(open(f"{out}/aiaas.json"))
rows = [("transformers + PEFT (per example)", json.load(open(f"{out}/peft.json"))),
        ("transformers + PEFT (padded batch)", json.load(open(f"{out}/peft_padded.json")))]
print(f"training tokens/s, {ours['threads']} threads, {ours['steps']} steps of {ours['batch_size']} examples "
      f"({ours['tokens']} tokens an epoch)")
# tokens/s over all timed steps, and the median of the steps' own rates (a shared
# machine's bursts of load slow some steps of either run; the median sets them aside).
# ratio = aiaas / the row's.
med = lambda r: statistics.median(r['step_rates'])
print(f"{'trainer':36} {'tokens/s':>9} {'ratio':>6} {'median':>7} {'ratio':>6} {'final loss':>11} {'loss gap':>9}")
print(f"{'aiaas':36} {ours['tokens_per_second']:9.1f} {1.0:6.2f} {med(ours):7.1f} {1.0:6.2f} "
      f"{ours['final_loss']:11.4f} {'':>9}")
for name, r in rows:
    gap = (ours['final_loss'] - r['final_loss']) / r['final_loss']
    print(f"{name:36} {r['tokens_per_second']:9.1f} {ours['tokens_per_second'] / r['tokens_per_second']:6.2f} "
          f"{med(r):7.1f} {med(ours) / med(r):6.2f} {r['final_loss']:11.4f} {gap:+9.1%}")
d = ours["decode"]
print(f"decode tok/s (llama.cpp, greedy, {d['tokens']} tokens each side): base {d['base']:.1f}, "
      f"with the adapter {d['adapter']:.1f}, ratio {d['adapter'] / d['base']:.2f}; "
      f"median of {d['pairs']} back-to-back pairs {d['median_ratio']:.2f}")
m = ours["memory"]
print(f"memory: a context of {m['context_per_slot']} tokens {m['base_context_bytes'] / 2**20:.1f} MiB (base), "
      f"{m['adapter_context_bytes'] / 2**20:.1f} MiB more for the adapter's; the adapter file "
      f"{m['adapter_file_bytes'] / 2**20:.2f} MiB")
PY
