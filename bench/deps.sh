#!/usr/bin/env bash
# Installs the Debian packages the Step 2 benchmark needs — only those missing.
# Usage: bench/deps.sh        (as root; the build set comes from scripts/deps.sh)
set -euo pipefail

want=(haproxy nginx-light libnginx-mod-stream wrk procps python3)

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "bench/deps.sh: missing packages: ${missing[*]}; run as root to install them" >&2
  exit 1
fi
echo "bench/deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
