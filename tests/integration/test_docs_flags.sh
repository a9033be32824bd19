#!/usr/bin/env bash
# test_docs_flags.sh BUILD_DIR SOURCE_DIR - docs/operations.md cannot drift
# from the daemons: every flag each binary's --help lists must be named in
# that daemon's section (`flag` or `--flag`); the flags every daemon has
# (--config, --check-config, --help, --version) in section 2.
set -uo pipefail
build=$1 doc=$2/docs/operations.md
fails=0 passes=0

# section HEADING-REGEX: the lines from that "## " heading to the next one.
section() {
  awk -v re="$1" '/^## / { on = ($0 ~ re) } on' "$doc"
}

common="config check-config help version"
declare -A heading=(
  [agent]='^## [0-9]+\. fulcrum-agent'
  [monitor]='^## [0-9]+\. fulcrum-monitor'
  [balancer]='^## [0-9]+\. fulcrum-balancer'
  [cache]='^## [0-9]+\. fulcrum-cache'
)
general=$(section '^## [0-9]+\. Configuration')
[ -n "$general" ] || { echo "FAIL: no '## N. Configuration' section in $doc"; exit 1; }
for d in agent monitor balancer cache; do
  bin="$build/$d/fulcrum-$d"
  text=$(section "${heading[$d]}")
  if [ -z "$text" ]; then echo "FAIL: no section for fulcrum-$d in $doc"; fails=$((fails + 1)); continue; fi
  flags=$("$bin" --help | sed -n 's/^  --\([a-z0-9-]*\).*/\1/p')
  [ -n "$flags" ] || { echo "FAIL: fulcrum-$d --help lists no flags"; fails=$((fails + 1)); continue; }
  missing=()
  for f in $flags; do
    where=$text
    case " $common " in *" $f "*) where=$general ;; esac
    if grep -qE -- "\`(--)?${f}[ =\`]" <<< "$where"; then
      passes=$((passes + 1))
    else
      missing+=("--$f")
    fi
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "FAIL: fulcrum-$d: not in docs/operations.md: ${missing[*]}"
    fails=$((fails + ${#missing[@]}))
  else
    echo "ok: fulcrum-$d: all $(wc -w <<< "$flags") flags documented"
  fi
done
echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]
