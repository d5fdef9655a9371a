#!/usr/bin/env bash
# Speech real-time factor: aiaas's Whisper tiny.en (candle, weights converted from
# faster-whisper's CTranslate2 files) against faster-whisper on the same files, on
# sentences spoken by espeak-ng (six short clips and one of about 25 s), the same
# threads; faster-whisper's default decoding on both sides (beam 5, timestamps).
#   bash bench/speech/run.sh      # table on stdout and in bench/speech/out/speech.md
# Settings (environment): SPEECH_ROUNDS (3), SPEECH_THREADS (2).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/aiaas-target}"
data="${AIAAS_TEST_DATA:-$HOME/.cache/aiaas-data-cache}"
bash scripts/setup.sh --test "$data" >&2
venv=bench/.venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -c "import faster_whisper" 2>/dev/null || "$venv/bin/pip" install --quiet --disable-pip-version-check "faster-whisper==1.2.1"
cargo build --release -p aiaas-speech --example transcribe_clips >&2
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp "$data"/speech/whisper-tiny-en-ct2/{model.bin,config.json,tokenizer.json} "$work/"
mkdir "$work/ct2" && cp "$data"/speech/whisper-tiny-en-ct2/* "$work/ct2/"
cargo run --release -q -p aiaas-hub --example convert_whisper -- "$work" >&2
sentences='The quick brown fox jumps over the lazy dog.
Please send the quarterly report to the finance team before Friday.
The weather tomorrow will be sunny with a light breeze from the west.
Our meeting has been moved to the third floor conference room.
She bought three apples, two oranges and a loaf of bread.
Remember to back up your files before installing the new version of the software.'
i=0
while IFS= read -r line; do
  espeak-ng -v en-us -s 150 -w "$work/clip$i.wav" "$line"
  i=$((i + 1))
done <<<"$sentences"
# And one recording of all six with pauses (about 25 s): several segments in a window.
espeak-ng -v en-us -s 150 -w "$work/clip_long.wav" "$(sed 's/$/ .../' <<<"$sentences")"
mkdir -p bench/speech/out
"$venv/bin/python" bench/speech/compare.py --binary "$CARGO_TARGET_DIR/release/examples/transcribe_clips" \
    --converted "$work" --ct2 "$work/ct2" --threads "${SPEECH_THREADS:-2}" --rounds "${SPEECH_ROUNDS:-3}" \
    "$work"/clip*.wav | tee bench/speech/out/speech.md
