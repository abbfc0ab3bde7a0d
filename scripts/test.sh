#!/usr/bin/env bash
# Builds everything with -Werror and runs every test (unit, api, property, oracle against
# oneDNN, examples, CLI, install), then the unit and api tests once more under AddressSanitizer
# and UndefinedBehaviorSanitizer (the archive fuzz test included), then the property tests (the
# multithreaded CPU kernels on 1,300 random problems per direction) and the api tests (command
# buffers run on their own threads) under ThreadSanitizer.
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

cmake --preset tsan -S "$root" >/dev/null
cmake --build "$root/build-tsan" -j"$jobs" --target convgrad_property_tests convgrad_api_tests
# Each binary runs once as a whole: one process per test case (ctest) costs TSan's start-up 276 times.
for binary in convgrad_property_tests convgrad_api_tests; do
  TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" "$root/build-tsan/tests/$binary" \
    --gtest_brief=1
done
