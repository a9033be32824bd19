#!/usr/bin/env bash
# Installs the Debian packages the benchmarks need — only those missing:
# the build set plus haproxy, nginx-light, libnginx-mod-stream, varnish, wrk,
# procps, python3, gnuplot-nox (the lists live in scripts/deps.sh).
set -euo pipefail
exec "$(dirname "$0")/../scripts/deps.sh" bench
