#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test: the release build's whole ctest suite,
# then the ASan+UBSan build of the unit tests, then the fuzz targets for a bounded time.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh

jobs=$(nproc)
echo "== release build (-Wall -Wextra -Werror)"
./scripts/build.sh build
echo "== tests"
(cd build && ctest --output-on-failure -j "$jobs" --timeout 600)

echo "== benchmark smoke run (checks that scripts/bench.sh works; asserts no figure)"
./scripts/bench.sh --smoke --no-build

echo "== ASan+UBSan build: unit tests"
./scripts/build.sh build-asan -DGH_SANITIZE=ON -DGH_BENCH=OFF --target gh_unit_tests
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --output-on-failure -j "$jobs" -L unit)

echo "== fuzz targets (libFuzzer, bounded)"
./scripts/build.sh build-fuzz -DGH_FUZZ=ON -DCMAKE_CXX_COMPILER=clang++-16
(cd build-fuzz && ctest --output-on-failure -j "$jobs" -L fuzz)
echo "== all tests passed"
