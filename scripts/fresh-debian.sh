#!/usr/bin/env bash
# scripts/fresh-debian.sh [demo|test] [DIR]
#   Runs one of the README's two commands (./scripts/demo.sh or
#   ./scripts/test.sh; default test) in a minimal Debian 12 made with
#   debootstrap --variant=minbase in DIR (default: a new temporary
#   directory), on a clone of this repository's HEAD: the set-up contract
#   checked against a machine that has nothing but the base system.
#   Needs root and Debian's archive (the host's apt sources are copied in).
#   Not part of scripts/test.sh: it installs every package again (minutes).
#
#   The chroot shares the host's network (loopback ports) and kernel; its
#   root, /proc, /sys, /dev, /run and /tmp are mounted for it and unmounted
#   on exit. DIR is removed unless FRESH_KEEP=1 (then a second run in the
#   same DIR skips debootstrap and reuses the installed packages).
set -euo pipefail

what=${1:-test}
case $what in
  demo | test) ;;
  *) echo "usage: scripts/fresh-debian.sh [demo|test] [DIR]" >&2; exit 2 ;;
esac
[ "$(id -u)" -eq 0 ] || { echo "fresh-debian.sh: needs root (debootstrap, chroot, mounts)" >&2; exit 1; }
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
given=${2:-}
ROOT=${given:-$(mktemp -d "${TMPDIR:-/tmp}/fulcrum-fresh.XXXXXX")}
mkdir -p "$ROOT" && ROOT=$(cd "$ROOT" && pwd)
chmod 0755 "$ROOT" # the new / (mktemp made it 0700: no user but root could open a file)
mirror=${FRESH_MIRROR:-http://deb.debian.org/debian}

cleanup() {
  local rc=$?
  # Deepest first; -l: a test's leftover mount must not keep the rest mounted.
  findmnt -rn -o TARGET | sort -r | while read -r m; do
    case $m in "$ROOT" | "$ROOT"/*) umount -l "$m" || true ;; esac
  done
  if [ "${FRESH_KEEP:-0}" != 1 ] && [ -z "$given" ]; then
    # Never with a mount left inside: /dev and /sys are the host's own.
    if findmnt -rn -o TARGET | grep -qF "$ROOT"; then
      echo "fresh-debian.sh: mounts left under $ROOT, not removing it" >&2
    else
      rm -rf --one-file-system "$ROOT"
    fi
  fi
  exit "$rc"
}
trap cleanup EXIT

if [ ! -x "$ROOT/usr/bin/apt-get" ]; then
  command -v debootstrap >/dev/null || {
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
  }
  echo "==> debootstrap --variant=minbase bookworm $ROOT"
  debootstrap --variant=minbase bookworm "$ROOT" "$mirror" >"$ROOT.debootstrap.log" 2>&1 ||
    { tail -20 "$ROOT.debootstrap.log" >&2; exit 1; }
  rm -f "$ROOT.debootstrap.log"
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    rm -f "$ROOT/etc/apt/sources.list"
    cp /etc/apt/sources.list.d/debian.sources "$ROOT/etc/apt/sources.list.d/"
  fi
fi
cp /etc/resolv.conf "$ROOT/etc/" 2>/dev/null || true
rm -rf "$ROOT/root/fulcrum"
git clone -q "$SRC" "$ROOT/root/fulcrum"

# The root a mount point of its own ("ip netns" remounts / as a slave).
mount --bind "$ROOT" "$ROOT"
mount --make-private "$ROOT"
mount -t proc proc "$ROOT/proc"
for m in sys dev; do
  mount --rbind "/$m" "$ROOT/$m"
  mount --make-rslave "$ROOT/$m"
done
mount -t tmpfs tmpfs "$ROOT/run"
mount -t tmpfs tmpfs "$ROOT/tmp"

echo "==> ./scripts/$what.sh in $ROOT (a clone of $(git -C "$SRC" rev-parse --short HEAD))"
chroot "$ROOT" /usr/bin/env -i HOME=/root TERM="${TERM:-dumb}" \
  PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  /bin/bash -c "cd /root/fulcrum && ./scripts/$what.sh"
