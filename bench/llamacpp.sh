#!/usr/bin/env bash
# bench/llamacpp.sh - tessera vs llama.cpp on the same files, same threads.
#
# 1. llama.cpp is built from its public source OUTSIDE this repository
#    (never committed): $LLAMA_SRC (default /work/llama.cpp-src) must hold a
#    llama.cpp source tree, e.g. from a git mirror
#      git --git-dir=/work/.mirror/ggml-org+llama.cpp/... worktree add /work/llama.cpp-src
#    or from the vendor/llama.cpp folder of the llama-cpp-python sdist
#    (pip download llama-cpp-python --no-binary :all: --no-deps).
#    Built with cmake -DGGML_NATIVE=ON into $LLAMA_SRC/build.
# 2. Synthetic models are written with `tessera synth` into $MODELS.
# 3. Both benchmarks run on each GGUF with -p $P -n $N -t $T -r $R; tessera
#    also runs the HF F16 folder of the same shapes.  Results (markdown and
#    JSON) go to $OUT; /usr/bin/time -v gives peak RSS.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
LLAMA_SRC=${LLAMA_SRC:-/work/llama.cpp-src}
TESSERA=${TESSERA:-$ROOT/build/bin/tessera}
MODELS=${MODELS:-/work/synth}
OUT=${OUT:-/work/bench-results}
SHAPE=${SHAPE:-tinyllama-1.1b}
FORMATS=${FORMATS:-"f16 q8_0 q4_0 q4_k"}
P=${P:-512} N=${N:-128} T=${T:-2} R=${R:-3}

mkdir -p "$MODELS" "$OUT"
if [ ! -x "$LLAMA_SRC/build/bin/llama-bench" ]; then
  [ -f "$LLAMA_SRC/CMakeLists.txt" ] || { echo "no llama.cpp source in $LLAMA_SRC (see the header)" >&2; exit 1; }
  cmake -S "$LLAMA_SRC" -B "$LLAMA_SRC/build" -DGGML_NATIVE=ON -DCMAKE_BUILD_TYPE=Release \
    -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF
  cmake --build "$LLAMA_SRC/build" -j"$(nproc)" --target llama-bench
fi
LB="$LLAMA_SRC/build/bin/llama-bench"

echo "# machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-), $(nproc) cpus" | tee "$OUT/machine.txt"
cc -O3 -march=native -pthread "$ROOT/bench/stream.c" -o "$OUT/stream"
"$OUT/stream" "$T" 1024 | tee -a "$OUT/machine.txt"

for f in $FORMATS; do
  m="$MODELS/$SHAPE-$f.gguf"
  [ -f "$m" ] || "$TESSERA" synth --source "$ROOT" --shape "$SHAPE" --format "gguf-$f" -o "$m"
  /usr/bin/time -v "$LB" -m "$m" -p "$P" -n "$N" -t "$T" -r "$R" -o json \
    > "$OUT/llamacpp-$SHAPE-$f.json" 2> "$OUT/llamacpp-$SHAPE-$f.time"
  /usr/bin/time -v "$TESSERA" bench -q -m "$m" -p "$P" -n "$N" -t "$T" -r "$R" --json \
    > "$OUT/tessera-$SHAPE-$f.json" 2> "$OUT/tessera-$SHAPE-$f.time"
  echo "== $SHAPE $f"
  grep -h '"avg_ts"' "$OUT/llamacpp-$SHAPE-$f.json" "$OUT/tessera-$SHAPE-$f.json" || true
  grep -h "Maximum resident" "$OUT/llamacpp-$SHAPE-$f.time" "$OUT/tessera-$SHAPE-$f.time"
done
hf="$MODELS/$SHAPE-hf-f16"
[ -d "$hf" ] || "$TESSERA" synth --source "$ROOT" --shape "$SHAPE" --format hf-f16 -o "$hf"
/usr/bin/time -v "$TESSERA" bench -q -m "$hf" -p "$P" -n "$N" -t "$T" -r "$R" --json \
  > "$OUT/tessera-$SHAPE-hf-f16.json" 2> "$OUT/tessera-$SHAPE-hf-f16.time"
