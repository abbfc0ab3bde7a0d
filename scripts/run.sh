#!/usr/bin/env bash
# The main job: installs the dependencies (scripts/install-deps.sh), builds convgrad (Release)
# and trains a small CNN on Fashion-MNIST on the CPU (examples/train_fashion_mnist.cpp): progress
# per epoch, loss and accuracy, the test accuracy on the 10,000 test images, wall time, images/s.
# Extra arguments go to the example (e.g. --epochs 2, --seed 3, --save DIR, --device cuda; --help
# lists them).
#
#   ./scripts/run.sh convolution [ARGS]   runs `convgrad run` instead: one convolution problem
#                                         (the default one, or a benchdnn problem string) in all
#                                         three directions against the reference (docs/cli.md)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh"
# The CUDA sources (CUTLASS instantiations among them) take minutes to compile on a small
# machine: build them only when a run asks for the CUDA device, in a build folder of their own.
build="$root/build"
cuda=OFF
for arg in "$@"; do
  if [ "$arg" = cuda ]; then
    build="$root/build-run-cuda"
    cuda=ON
  fi
done
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCONVGRAD_WITH_CUDA=$cuda \
  >/dev/null
if [ "${1:-}" = "convolution" ]; then
  shift
  cmake --build "$build" --target convgrad_tool -j"$(nproc)"
  exec "$build/tools/convgrad/convgrad" run "$@"
fi
cmake --build "$build" --target example_train_fashion_mnist -j"$(nproc)"
exec "$build/examples/example_train_fashion_mnist" "$@"
