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
cmake -S "$root" -B "$root/build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
if [ "${1:-}" = "convolution" ]; then
  shift
  cmake --build "$root/build" --target convgrad_tool -j"$(nproc)"
  exec "$root/build/tools/convgrad/convgrad" run "$@"
fi
cmake --build "$root/build" --target example_train_fashion_mnist -j"$(nproc)"
exec "$root/build/examples/example_train_fashion_mnist" "$@"
