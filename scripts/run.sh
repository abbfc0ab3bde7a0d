#!/usr/bin/env bash
# The main job: installs dependencies, builds convgrad (Release) and runs `convgrad run` on the
# default problem on the CPU: the gradients' summary, the check against the reference, the time.
# Extra arguments go to `convgrad run` (e.g. a benchdnn problem string, --dtype bf16, --dump DIR).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh"
cmake -S "$root" -B "$root/build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$root/build" --target convgrad_tool -j"$(nproc)"
"$root/build/tools/convgrad/convgrad" run "$@"
