#!/usr/bin/env bash
# Installs the Debian packages Fulcrum needs — only those missing.
# Usage: scripts/deps.sh [build|test|demo|bench|fuzz]...   (default: build)
set -euo pipefail

build=(cmake make gcc libc6-dev pkg-config  # libc6-dev: gcc only recommends it
       libev-dev libstatgrab-dev libcjson-dev libsodium-dev
       libinih-dev uthash-dev libhttp-parser-dev libsystemd-dev
       help2man)          # man pages from --help (cmake/Packaging.cmake)
test=(libcriterion-dev clang-format iproute2 ansible-core ansible-lint yamllint
      python3 curl jq    # python3, curl, jq: tests/integration/test_netns*.sh
      valgrind           # tests/valgrind.sh (the valgrind stage of scripts/test.sh)
      chromium           # tests/integration/test_status_page.c
      dpkg-dev file man-db systemd python3-jinja2 python3-yaml)   # tests/packaging/test_package.sh
      # (file: CPack's shlibdeps; man-db: systemd-analyze verify runs man)
demo=(python3 wrk)
bench=(haproxy nginx-light libnginx-mod-stream varnish wrk procps python3 gnuplot-nox
       linux-perf strace)   # BENCH_PROFILE=1 of bench/run.sh
fuzz=(clang libclang-rt-14-dev)   # libFuzzer + ASan/UBSan runtimes for clang 14

want=()
for set in "${@:-build}"; do
  case "$set" in
    build) want+=("${build[@]}") ;;
    test)  want+=("${build[@]}" "${test[@]}") ;;
    demo)  want+=("${build[@]}" "${demo[@]}") ;;
    bench) want+=("${build[@]}" "${bench[@]}") ;;
    fuzz)  want+=("${build[@]}" "${fuzz[@]}") ;;
    *) echo "deps.sh: unknown set '$set' (build|test|demo|bench|fuzz)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "deps.sh: missing packages: ${missing[*]}; run as root to install them" >&2
  exit 1
fi
echo "deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
