#!/usr/bin/env bash
# Installs what is missing, builds with warnings as errors, and runs every
# test: the normal build, its tests again under valgrind, then under
# AddressSanitizer + UBSan (their options, and the LeakSanitizer
# suppressions, are set per test by CMake).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh test
scripts/check-format.sh

jobs=$(nproc)
run() {  # run NAME CMAKE-ARGS...
  local dir="build/$1"; shift
  echo "== build $dir"
  cmake -S . -B "$dir" -DFULCRUM_WERROR=ON "$@" >/dev/null
  cmake --build "$dir" -j"$jobs" >/dev/null
  echo "== test $dir"
  (cd "$dir" && ctest --output-on-failure -j"$jobs")
}

run ci -DCMAKE_BUILD_TYPE=RelWithDebInfo
# The same binaries under valgrind memcheck: every unit test, and the
# integration tests that start every daemon (docs/reliability.md; --all for
# every integration test).
echo "== valgrind build/ci"
tests/valgrind.sh build/ci -j "$jobs"
run asan -DCMAKE_BUILD_TYPE=Debug -DFULCRUM_SANITIZE=ON
scripts/fuzz.sh 30   # each libFuzzer target 30 s on its corpus (docs/fuzzing.md)
echo "== all tests passed (normal and ASan+UBSan builds)"
