#!/usr/bin/env bash
# check-style.sh — fails when a tracked C file is not formatted per
# .clang-format. Fix with: scripts/check-style.sh --fix
set -euo pipefail
cd "$(dirname "$0")/.."
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  mapfile -t files < <(git ls-files --cached --others --exclude-standard '*.c' '*.h')
else
  mapfile -t files < <(find . -path ./build -prune -o -path './build-*' -prune -o \( -name '*.c' -o -name '*.h' \) -print)
fi
existing=()
for f in "${files[@]}"; do [ -f "$f" ] && existing+=("$f"); done
[ ${#existing[@]} -eq 0 ] && { echo "style: no C files"; exit 0; }
if [ "${1:-}" = "--fix" ]; then
  clang-format -i "${existing[@]}"
  exit 0
fi
clang-format --dry-run -Werror "${existing[@]}"
echo "style: ${#existing[@]} files formatted"
