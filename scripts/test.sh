#!/usr/bin/env bash
# Builds everything with -Werror and runs every test (unit, api, property, oracle against
# oneDNN, examples, CLI, install), then the unit and api tests once more under AddressSanitizer
# and UndefinedBehaviorSanitizer (the archive fuzz test included).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
jobs=$(nproc)
"$root/scripts/install-deps.sh"

cmake --preset ci -S "$root" >/dev/null
cmake --build "$root/build-ci" -j"$jobs"
ctest --test-dir "$root/build-ci" -j"$jobs" --output-on-failure

# No -Werror here: with sanitizers GCC reports -Wmaybe-uninitialized inside libstdc++ (std::regex);
# the -Werror build above already checks our code.
cmake --preset asan -S "$root" >/dev/null
cmake --build "$root/build-asan" -j"$jobs" --target convgrad_unit_tests convgrad_api_tests
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir "$root/build-asan" -j"$jobs" -L 'unit|api' --output-on-failure
