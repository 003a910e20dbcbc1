#!/bin/bash
# scripts/gpu-tests.sh - build and test the GPU backends on a machine with an
# NVIDIA GPU (driver installed, CUDA toolkit with nvcc).  Not run by CI.
#
#   scripts/gpu-tests.sh [build-dir]        (default: build-gpu)
#
# 1. configures with TESSERA_CUDA=ON, TESSERA_HIP_ON_CUDA=ON (the HIP
#    backend's sources built by nvcc) and TESSERA_TEST_GPU=ON, for this GPU's
#    architecture only (CUDAARCHS or nvidia-smi's compute capability);
# 2. runs the kernel tests: every op of the cuda plugin and of the HIP
#    flavour against the cpu backend, on device buffers (ctest -R kernels);
# 3. prints a small matmul benchmark (cuda vs cpu, GFLOP/s) and a greedy
#    generation on the cpu backend for reference.
# Environment: CUDACXX (nvcc), CUDAARCHS (e.g. 90), JOBS (parallel build).
set -eu
src=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$src/build-gpu}
jobs=${JOBS:-$(nproc)}
if ! command -v nvidia-smi >/dev/null || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "gpu-tests.sh: no NVIDIA GPU here (nvidia-smi -L failed); nothing to do" >&2
  exit 77
fi
nvidia-smi -L
arch=${CUDAARCHS:-$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d '.')}
nvcc=${CUDACXX:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
echo "gpu-tests.sh: nvcc $nvcc, architecture sm_$arch, build dir $build"

cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTESSERA_WERROR=ON \
  -DTESSERA_CUDA=ON -DCMAKE_CUDA_COMPILER="$nvcc" -DTESSERA_CUDA_ARCHITECTURES="$arch" \
  -DTESSERA_HIP_ON_CUDA=ON -DTESSERA_TEST_GPU=ON -DTESSERA_HIP=OFF
cmake --build "$build" -j"$jobs" --target tessera-kernel-test tessera-plugin-cpu \
  tessera-plugin-cuda tessera-plugin-hip-on-cuda tessera-cli tessera-plugin-llama

# 2. correctness: cuda and hip-on-cuda against the cpu reference
ctest --test-dir "$build" -R '^kernels\.(cuda|hip_on_cuda)$' --output-on-failure
"$build/bin/tessera" plugins | grep -E '^(NAME|cuda) '

# 3. benchmark: matmul at decode and prefill sizes (data on the device)
cpu=$build/lib/tessera-1/plugins/tessera-cpu.so
for kn in "4096 4096" "4096 14336"; do
  "$build/bin/tessera-kernel-test" "$cpu" "$build/lib/tessera-1/plugins/tessera-cuda.so" --bench $kn
  "$build/bin/tessera-kernel-test" "$cpu" "$build/tests/gpu/tessera-hip-on-cuda.so" --bench $kn
done
echo "gpu-tests.sh: all GPU kernel tests passed"
