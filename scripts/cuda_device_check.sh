#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds and tests the CUDA backend on a GPU machine in one go (the device tool's `run`, which has
# no network): configure with the headers carried in .carry/ (nlohmann/json, CLI11, and CUTLASS
# in .carry/cutlass/include when present), build, run the gpu label, then the rest of ctest, then
# compute-sanitizer memcheck and initcheck on a subset. Logs go to $OUT; the last lines printed
# are the summary.
#   FASHION_MNIST_DIR=DIR  also trains examples/train_fashion_mnist on the GPU (full run)
#   SKIP_REST=1            skips the non-gpu ctest labels (CI runs those)
#   GPU_TEST_FILTER=PAT    runs only these gtest cases of the GPU test binary instead of ctest -L gpu
#   SKIP_SANITIZER=1       skips compute-sanitizer
#   BENCH_LAYERS=CSV       also runs `convgrad bench --backend cuda --baseline cudnn` over CSV for
#                          each of BENCH_DTYPES (default bf16), with BENCH_OPTIONS; JSON to $OUT
# Usage: bash scripts/cuda_device_check.sh [build-dir]
set -uo pipefail
out=${OUT:-/tmp/convgrad-device}
mkdir -p "$out"
build=${1:-build-device}
carry=$PWD/.carry
summary=()
now() { date +%s; }

{ nvidia-smi; nvcc --version; g++ --version; cmake --version; ninja --version; } >"$out/env.log" 2>&1
cutlass=""
[ -d "$carry/cutlass/include/cutlass" ] && cutlass="$carry/cutlass/include"
t0=$(now)
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCONVGRAD_WITH_ONEDNN=OFF -DCONVGRAD_WITH_CUDA=ON -DCMAKE_PREFIX_PATH="$carry" \
  -Dnlohmann_json_DIR="$carry/share/cmake/nlohmann_json" -DCLI11_DIR="$carry/share/cmake/CLI11" \
  ${cutlass:+-DCONVGRAD_CUTLASS_DIR="$cutlass"} \
  ${FASHION_MNIST_DIR:+-DCONVGRAD_FASHION_MNIST_DIR="$FASHION_MNIST_DIR"} \
  -DCMAKE_POLICY_VERSION_MINIMUM=3.5 >"$out/configure.log" 2>&1 ||
  { tail -40 "$out/configure.log"; exit 1; }
# The GPU tests first: a failure elsewhere in the tree must not hide their result.
cmake --build "$build" -j16 --target convgrad_gpu_tests >"$out/build.log" 2>&1 ||
  { grep -A25 FAILED "$out/build.log" | head -120; exit 1; }
cmake --build "$build" -j16 -- -k 0 >>"$out/build.log" 2>&1 ||
  { summary+=("build of the rest FAILED:"); grep -A12 FAILED "$out/build.log" | head -60; }
t1=$(now)
summary+=("configure+build: $((t1 - t0)) s, $(grep -c "warning:" "$out/build.log") warnings")

if [ -n "${GPU_TEST_FILTER:-}" ]; then
  "$build/tests/convgrad_gpu_tests" --gtest_filter="$GPU_TEST_FILTER" >"$out/ctest-gpu.log" 2>&1
  rc=$?
  t2=$(now)
  summary+=("gpu tests $GPU_TEST_FILTER: rc=$rc, $((t2 - t1)) s: $(grep -E '^\[  (PASSED|FAILED) ' "$out/ctest-gpu.log" | tr '\n' ' ')")
else
  ctest --test-dir "$build" -L gpu -V >"$out/ctest-gpu.log" 2>&1
  rc=$?
  t2=$(now)
  summary+=("ctest -L gpu: rc=$rc, $((t2 - t1)) s: $(grep -E 'tests passed|tests failed' "$out/ctest-gpu.log" | tail -1)")
fi
grep -E '^\S*[0-9]+: \[cuda vs ref\]|kernels:|Failed|FAILED|Skipped' "$out/ctest-gpu.log" | head -40

t3=$t2
if [ -z "${SKIP_REST:-}" ]; then
  ctest --test-dir "$build" -LE gpu -j16 --output-on-failure >"$out/ctest-rest.log" 2>&1
  rc=$?
  t3=$(now)
  summary+=("ctest -LE gpu: rc=$rc, $((t3 - t2)) s: $(grep -E 'tests passed|tests failed' "$out/ctest-rest.log" | tail -1)")
  grep -A30 'The following tests FAILED' "$out/ctest-rest.log" | head -40
fi

if [ -n "${FASHION_MNIST_DIR:-}" ]; then
  "$build/examples/example_train_fashion_mnist" --device cuda --data "$FASHION_MNIST_DIR" \
    >"$out/train-cuda.log" 2>&1
  rc=$?
  t4=$(now)
  summary+=("train_fashion_mnist --device cuda: rc=$rc, $((t4 - t3)) s: $(grep -E '^test accuracy|^training:' "$out/train-cuda.log" | tr '\n' ' ')")
  t3=$t4
fi

# Everything but the out-of-memory tests, whose failed cudaMalloc the sanitizer reports as such.
filter='CudaVsRef.*:CudaTensorCore.*:CudaSpecialKernels.*:CudaApi.TrainingStep*:CudaApi.Update*:CudaDevice.BufferCopies*:CudaDevice.Generic*:CudaDevice.Tensors*'
filter+=':CudaImage.StartsZero*:CudaImage.Views*'
tools="memcheck initcheck"
[ -n "${SKIP_SANITIZER:-}" ] && tools=""
for tool in $tools; do
  CONVGRAD_GPU_PROBLEMS=${SANITIZER_PROBLEMS:-40} compute-sanitizer --tool $tool \
    --error-exitcode 99 "$build/tests/convgrad_gpu_tests" --gtest_filter="$filter" \
    >"$out/$tool.log" 2>&1
  rc=$?
  t4=$(now)
  summary+=("$tool: rc=$rc, $((t4 - t3)) s: $(grep -E 'ERROR SUMMARY' "$out/$tool.log" | tail -1)")
  t3=$t4
done
if [ -n "${BENCH_LAYERS:-}" ]; then
  for dtype in ${BENCH_DTYPES:-bf16}; do
    # shellcheck disable=SC2086  # BENCH_OPTIONS is a list of options
    "$build/tools/convgrad/convgrad" bench --backend cuda --layers "$BENCH_LAYERS" \
      --baseline cudnn --dtype "$dtype" ${BENCH_OPTIONS:-} --json "$out/bench-gpu-$dtype.json" \
      >"$out/bench-$dtype.log" 2>&1
    rc=$?
    t4=$(now)
    summary+=("bench $dtype: rc=$rc, $((t4 - t3)) s: $(grep -E 'geomean' "$out/bench-$dtype.log" | tr -s ' ' | tr '\n' ';')")
    t3=$t4
  done
fi
printf '%s\n' "${summary[@]}"
