#!/bin/sh
# The main job: install dependencies, build, and generate text with the small
# real Llama shipped in fixtures/ (stories260K, a Hugging Face folder).
set -eu
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
build/bin/tessera generate -m fixtures/stories260K-hf -p "${1:-Once upon a time}" -n "${2:-128}"
