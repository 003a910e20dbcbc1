#!/bin/sh
# Every test: install dependencies, build with warnings as errors and run the
# suite, then build again with AddressSanitizer + UndefinedBehaviorSanitizer
# and run the suite again.
set -eu
cd "$(dirname "$0")/.."
scripts/install-deps.sh
jobs="$(nproc)"

echo "== build (warnings are errors) =="
cmake -S . -B build-ci -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTESSERA_WERROR=ON >/dev/null
cmake --build build-ci -j"$jobs" >/dev/null
echo "== tests =="
ctest --test-dir build-ci --output-on-failure -j"$jobs"

echo "== build with ASan + UBSan =="
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DTESSERA_WERROR=ON -DTESSERA_SANITIZE=ON \
      -DTESSERA_CUDA=OFF -DTESSERA_HIP=OFF >/dev/null
cmake --build build-asan -j"$jobs" >/dev/null
echo "== tests under ASan + UBSan =="
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-asan --output-on-failure -j"$jobs"
