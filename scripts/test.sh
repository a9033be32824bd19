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
# After a red ctest: what the daemons of each failed Criterion test wrote,
# kept by the harness in DIR/test-logs (tests/integration/harness.h).
daemon_logs() {  # daemon_logs DIR
  local t f
  grep -ao '\[FAIL\] [A-Za-z0-9_]*::[A-Za-z0-9_]*' "$1/Testing/Temporary/LastTest.log" 2>/dev/null |
    sort -u | while read -r _ t; do
      for f in "$1"/test-logs/*."$t".log; do
        [ -f "$f" ] && { echo "== what the daemons of $t wrote ($f)"; cat "$f"; }
      done
    done
}
run() {  # run NAME CMAKE-ARGS...
  local dir="build/$1"; shift
  echo "== build $dir"
  cmake -S . -B "$dir" -DFULCRUM_WERROR=ON "$@" >/dev/null
  cmake --build "$dir" -j"$jobs" >/dev/null
  echo "== test $dir"
  rm -rf "$dir/test-logs"
  (cd "$dir" && ctest --output-on-failure -j"$jobs") || { daemon_logs "$dir"; return 1; }
}

run ci -DCMAKE_BUILD_TYPE=RelWithDebInfo
# The same binaries under valgrind memcheck: every unit test and every
# integration test but the shell-driven ones that start namespaces, ansible
# or packages (docs/reliability.md, "Under valgrind").
echo "== valgrind build/ci"
tests/valgrind.sh build/ci --all -j "$jobs"
run asan -DCMAKE_BUILD_TYPE=Debug -DFULCRUM_SANITIZE=ON
scripts/fuzz.sh 30   # each libFuzzer target 30 s on its corpus (docs/fuzzing.md)
echo "== all tests passed (normal and ASan+UBSan builds)"
