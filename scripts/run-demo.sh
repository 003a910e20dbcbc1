#!/bin/sh
# The main job: install dependencies, build, and generate text with the small
# real Llama shipped in fixtures/ (stories260K, a Hugging Face folder).
set -eu
cd "$(dirname "$0")/.."
scripts/install-deps.sh
log=build/demo-build.log
mkdir -p build
if ! { cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build -j"$(nproc)"; } >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "run-demo: the build failed (full log: $log)" >&2
    exit 1
fi
build/bin/tessera generate -m fixtures/stories260K-hf -p "${1:-Once upon a time}" -n "${2:-128}"
