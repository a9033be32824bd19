#!/usr/bin/env bash
# Fails when a C source is not formatted as .clang-format says.
set -euo pipefail
cd "$(dirname "$0")/.."
bad=$(git ls-files '*.c' '*.h' | while read -r f; do
        clang-format --dry-run -Werror "$f" >/dev/null 2>&1 || echo "$f"; done)
if [ -n "$bad" ]; then
  echo "not clang-formatted (run: clang-format -i FILE):" >&2
  echo "$bad" >&2
  exit 1
fi
