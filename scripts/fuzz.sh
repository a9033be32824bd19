#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/, clang with ASan+UBSan) into build/fuzz
# and runs each for SECONDS (default 60) on its seed corpus fuzz/corpus/<t>
# (regression inputs included) plus the inputs earlier runs found, kept in
# build/fuzz/corpus/<t>. Fails on any crash, leak, sanitizer report, hang
# or harness oracle; the input that did it is left in
# build/fuzz/artifacts/<t>/. See docs/fuzzing.md.
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]   (default: every target)
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:-60}
[ $# -gt 0 ] && shift
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(fuzz_proto fuzz_repl_frame fuzz_http fuzz_cfg)

declare -A max_len=([fuzz_proto]=1500 [fuzz_repl_frame]=65536 [fuzz_http]=32768 [fuzz_cfg]=4096)

scripts/deps.sh fuzz
echo "== build build/fuzz (clang, libFuzzer, ASan+UBSan)"
cmake -S . -B build/fuzz -DCMAKE_C_COMPILER=clang -DFULCRUM_FUZZ=ON -DFULCRUM_TESTS=OFF \
      -DFULCRUM_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build/fuzz -j"$(nproc)" --target fuzz >/dev/null

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
failed=0
for t in "${targets[@]}"; do
  [ -n "${max_len[$t]:-}" ] || { echo "fuzz.sh: unknown target '$t'" >&2; exit 2; }
  work=build/fuzz/corpus/$t arts=build/fuzz/artifacts/$t/ log=build/fuzz/$t.log
  mkdir -p "$work" "$arts"
  args=(-max_total_time="$secs" -max_len="${max_len[$t]}" -timeout=10 -rss_limit_mb=2048
        -print_final_stats=1 -artifact_prefix="$arts")
  [ -f "fuzz/$t.dict" ] && args+=(-dict="fuzz/$t.dict")
  echo "== fuzz $t for ${secs} s"
  if build/fuzz/fuzz/"$t" "${args[@]}" "$work" "fuzz/corpus/$t" >"$log" 2>&1; then
    done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec:[[:space:]]*//p' "$log")
    echo "   ok: ${done_line#*DONE   } exec/s(avg): ${rate:-?}"
  else
    failed=1
    echo "   FAILED ($log); the input is in $arts:" >&2
    grep -E "ERROR|runtime error|oracle|SUMMARY|Test unit written|^$t: " "$log" | head -20 >&2
  fi
done
[ $failed -eq 0 ] || { echo "== fuzzing found a problem" >&2; exit 1; }
echo "== fuzzing: no crash in ${targets[*]}"
