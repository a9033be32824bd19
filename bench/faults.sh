#!/usr/bin/env bash
# bench/faults.sh - the fault-injection suite (tests/integration/test_faults*)
# as long variants: more clients, a faster pace and minutes of load around
# every fault, then the reliability table (docs/reliability.md).
#
# Knobs (environment), read by tests/integration/fault_rig.c:
#   FAULTS_THREADS  client threads per case (default 8; the tests use 2-4, max 16)
#   FAULTS_PACE_US  pause between one thread's requests (default 2000: 500/s
#                   per thread; the tests use 4000)
#   FAULTS_HOLD_S   extra seconds of load at every wait of a case: before the
#                   fault and after each reaction (default 30; the tests use 0)
#   FAULTS_FILTER   a Criterion --filter pattern (default: every case), e.g.
#                   'faults/cache_node_*'
#   FAULTS_BUILD    build directory (default build/bench-faults, RelWithDebInfo;
#                   configured and built here)
# The cases run one at a time (--jobs=1), each with a timeout of 150 s plus
# ten holds. With the defaults the whole run takes about 10 to 15 minutes.
# Traffic stays on 127.0.0.1. Results: one line per case in
# BUILD/faults/CASE.txt, and the table on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."

threads=${FAULTS_THREADS:-8}
pace=${FAULTS_PACE_US:-2000}
hold=${FAULTS_HOLD_S:-30}
filter=${FAULTS_FILTER:-}
build=${FAULTS_BUILD:-build/bench-faults}
bins=(test_faults test_faults_slow test_faults_cache)

echo "faults.sh: building ${bins[*]} in $build" >&2
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc)" --target "${bins[@]}" >/dev/null
rm -rf "$build/faults"

export FULCRUM_FAULTS_THREADS=$threads FULCRUM_FAULTS_PACE_US=$pace FULCRUM_FAULTS_HOLD_S=$hold
timeout=$((150 + 10 * hold))
rc=0
t0=$SECONDS
for b in "${bins[@]}"; do
  echo "faults.sh: $b: $threads threads, a request every ${pace} us each, ${hold} s more load at each wait" >&2
  args=(--jobs=1 --timeout "$timeout")
  [ -n "$filter" ] && args+=(--filter "$filter")
  if ! "$build/tests/integration/$b" "${args[@]}" 2>"$build/$b.log"; then
    echo "faults.sh: $b FAILED (its assertions, in $build/$b.log):" >&2
    grep -E '^\[(FAIL|----)\]' "$build/$b.log" | head -n 20 >&2
    rc=1
  fi
  grep -h 'Synthesis' "$build/$b.log" >&2 || true
done

echo
echo "Long variants: $threads client threads, pace ${pace} us, hold ${hold} s; $((SECONDS - t0)) s in all"
echo
echo "| case | sent | failed | lost | bad body | slowest ok (ms) | figures | failures by kind |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
for f in "$build"/faults/*.txt; do
  [ -e "$f" ] || continue
  # case=NAME sent=N ok=N failed=N lost=N bad_body=N max_ms=N EXTRA... (KINDS)
  # shellcheck disable=SC2016 # the backquotes are markdown
  sed -E 's/^case=([^ ]+) sent=([0-9]+) ok=[0-9]+ failed=([0-9]+) lost=([0-9]+) bad_body=([0-9]+) max_ms=([0-9]+) (.*) \((.*)\)$/| `\1` | \2 | \3 | \4 | \5 | \6 | \7 | \8 |/' "$f"
done
exit "$rc"
