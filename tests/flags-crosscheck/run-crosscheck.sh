#!/usr/bin/env bash
# run-crosscheck.sh DRIVER NPMDIR — installs @openfeature/flagd-core (pinned
# by package-lock.json) into NPMDIR unless present, then runs the cross-check.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
driver="$1"
npmdir="$2"
pkg="$npmdir/node_modules/@openfeature/flagd-core"
if [ ! -f "$pkg/package.json" ] || ! cmp -s "$here/package-lock.json" "$npmdir/package-lock.json"; then
  mkdir -p "$npmdir"
  cp "$here/package.json" "$here/package-lock.json" "$npmdir/"
  (cd "$npmdir" && npm ci --no-audit --no-fund --loglevel=error)
fi
exec node "$here/crosscheck.cjs" --driver "$driver" --flagd-core "$pkg" \
  --cases "${KEEL_FLAGS_CROSSCHECK_CASES:-12000}" --seed "${KEEL_FLAGS_CROSSCHECK_SEED:-20260101}"
