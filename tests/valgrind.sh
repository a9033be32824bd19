#!/usr/bin/env bash
# tests/valgrind.sh BUILD_DIR [--all] [-R REGEX] [-j N]
#   The ctest suite of BUILD_DIR (a build without sanitizers, e.g. build/ci)
#   under valgrind memcheck: an error, or a leak "definitely lost", fails.
#   --all (what scripts/test.sh runs): every test below. Without --all or
#   -R: a quick subset, VG_UNIT and VG_INTEGRATION below.
#
#   - Unit tests (label "unit" or none): the Criterion binary itself runs
#     under valgrind with --trace-children=yes (Criterion re-executes itself
#     for each test, and every worker is checked), --jobs=1.
#   - Integration tests: the test binary runs natively (its load threads
#     would crawl on valgrind's one-thread-at-a-time core) and the daemons it
#     starts run under valgrind through FULCRUM_TEST_WRAPPER, honoured by
#     tests/integration/harness.c, with its waits stretched
#     (FULCRUM_TEST_TIMEOUT_SCALE).
#   - Shell-driven tests: test_check_config (VG_SHELL) puts
#     FULCRUM_TEST_WRAPPER in front of each daemon it runs; the others
#     (test_netns*, test_ansible, test_docs_flags, packaging) are not run.
#   VG_EXTRA: more valgrind flags (no spaces inside one flag).
#
# Every valgrind log is kept in BUILD_DIR/valgrind/NAME/ (one file per
# process); the summary lists the tests and the logs with errors. A process
# killed with SIGKILL (fault tests do that) writes no summary: unchecked.
# Suppressions: tests/valgrind.supp (third-party noise only).
set -uo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=$(cd "${1:?usage: tests/valgrind.sh BUILD_DIR [--all] [-R REGEX] [-j N]}" && pwd) || exit 2
shift
ALL=0
REGEX=""
JOBS=$(nproc)
# The quick subset (docs/reliability.md says why these): unit tests of the
# code that parses what peers send, and integration tests that start, load
# and stop (so their leak check runs) every daemon. --all: everything.
VG_UNIT=${VG_UNIT:-'^(test_proto|test_http|test_check|test_cfg|test_repl_frame|test_store)$'}
VG_INTEGRATION=${VG_INTEGRATION:-'^(test_cache|test_balancer)$'}
VG_SHELL='^(test_check_config)$' # shell-driven tests that honour FULCRUM_TEST_WRAPPER
while [ $# -gt 0 ]; do
  case $1 in
    --all) ALL=1 ;;
    -R) REGEX=$2; shift ;;
    -j) JOBS=$2; shift ;;
    *) echo "valgrind.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
  shift
done
command -v valgrind >/dev/null || { echo "valgrind.sh: valgrind is missing (scripts/deps.sh test)" >&2; exit 1; }
command -v jq >/dev/null || { echo "valgrind.sh: jq is missing (scripts/deps.sh test)" >&2; exit 1; }

OUT=$BUILD/valgrind
rm -rf "$OUT" && mkdir -p "$OUT" || exit 1
# One line, single spaces: the harness splits FULCRUM_TEST_WRAPPER on spaces.
VG="valgrind --leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite"
VG+=" --error-exitcode=99 --num-callers=30 --suppressions=$SRC/tests/valgrind.supp"
VG+=${VG_EXTRA:+ $VG_EXTRA} # more valgrind flags, e.g. --gen-suppressions=all

# One line per test to run: NAME KIND TIMEOUT DIR COMMAND... (KIND unit|integration).
(cd "$BUILD" && ctest --show-only=json-v1) | jq -r '
  .tests[] | select(.command != null)
  | . as $t
  | ([.properties[]? | select(.name == "LABELS") | .value[]] | join(",")) as $labels
  | ([.properties[]? | select(.name == "TIMEOUT") | .value] | first // 60) as $timeout
  | ([.properties[]? | select(.name == "WORKING_DIRECTORY") | .value] | first // ".") as $dir
  | [$t.name, (if ($labels | test("integration")) then "integration" else "unit" end),
     ($timeout | tostring), $dir] + $t.command | @tsv' >"$OUT/tests.tsv" || exit 1

# run_one LINE: runs one test as described; writes OUT/NAME/result.
run_one() {
  local name kind timeout dir cmd=() rc
  IFS=$'\t' read -r name kind timeout dir cmd_str <<<"$1"
  IFS=$'\t' read -r -a cmd <<<"$cmd_str"
  mkdir -p "$OUT/$name"
  # Criterion: one worker at a time; its summary still says what failed.
  for i in "${!cmd[@]}"; do [ "${cmd[$i]}" = --jobs=2 ] && cmd[i]=--jobs=1; done
  local t0=$SECONDS
  if [ "$kind" = unit ]; then
    # shellcheck disable=SC2086
    (cd "$dir" && CRITERION_NO_EARLY_EXIT=1 timeout $((timeout * 10)) \
      $VG --trace-children=yes --trace-children-skip='/usr/*,/bin/*' \
      --log-file="$OUT/$name/%p.vg" "${cmd[@]}") >"$OUT/$name/out.log" 2>&1
  else
    (cd "$dir" && CRITERION_NO_EARLY_EXIT=1 FULCRUM_TEST_WRAPPER="$VG --log-file=$OUT/$name/%p.vg" \
      FULCRUM_TEST_TIMEOUT_SCALE=8 timeout $((timeout * 3)) "${cmd[@]}") >"$OUT/$name/out.log" 2>&1
  fi
  rc=$?
  local bad
  bad=$(grep -l "ERROR SUMMARY: [1-9]" "$OUT/$name"/*.vg 2>/dev/null | wc -l)
  echo "$name $kind rc=$rc vg_logs=$(find "$OUT/$name" -name '*.vg' | wc -l) vg_bad=$bad secs=$((SECONDS - t0))" |
    tee "$OUT/$name/result"
}
export -f run_one
export OUT VG

sel=$(awk -F'\t' -v all="$ALL" -v re="$VG_INTEGRATION" -v ure="$VG_UNIT" -v shre="$VG_SHELL" -v only="$REGEX" '
  $1 !~ shre && ($4 ~ /\.sh$/ || $5 ~ /\.sh$/ || $5 ~ /cmake$/) { next } # shell-driven, fixtures
  only != "" { if ($1 ~ only) print; next }                # -R: what it names
  !all && $2 == "integration" && $1 !~ re { next }
  !all && $2 == "unit" && $1 !~ ure { next }
  { print }' "$OUT/tests.tsv")
n=$(grep -c . <<<"$sel")
echo "valgrind.sh: $n tests from $BUILD, $JOBS at a time, logs in $OUT"
T0=$SECONDS
# One line per test (NAME KIND TIMEOUT DIR COMMAND..., tab-separated).
# shellcheck disable=SC2016 # $1 is bash -c's own argument
xargs -d '\n' -r -n 1 -P "$JOBS" bash -c 'run_one "$1"' _ <<<"$sel"
fails=0
for r in "$OUT"/*/result; do
  read -r name _ rc _ bad _ <<<"$(cat "$r")"
  if [ "$rc" != rc=0 ] || [ "$bad" != vg_bad=0 ]; then
    fails=$((fails + 1))
    echo "valgrind.sh: FAIL $(cat "$r")"
    grep -l "ERROR SUMMARY: [1-9]" "$OUT/$name"/*.vg 2>/dev/null | sed 's/^/  valgrind report: /'
    tail -n 5 "$OUT/$name/out.log" | sed 's/^/  | /'
  fi
done
echo "valgrind.sh: $((n - fails)) of $n passed under valgrind in $((SECONDS - T0)) s"
[ "$fails" = 0 ]
