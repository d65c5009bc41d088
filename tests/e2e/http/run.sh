#!/usr/bin/env bash
# run.sh SERVER NPMDIR — installs the npm clients (pinned by package-lock.json)
# into NPMDIR with `npm ci` unless already there, then runs clients.test.cjs
# against the test server.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
server="$1"
npmdir="$2"
command -v node >/dev/null || { echo "node missing (scripts/install-deps.sh)"; exit 1; }
if [ ! -f "$npmdir/node_modules/cloud-config-client/package.json" ] ||
   ! cmp -s "$here/package-lock.json" "$npmdir/package-lock.json"; then
  mkdir -p "$npmdir"
  cp "$here/package.json" "$here/package-lock.json" "$npmdir/"
  (cd "$npmdir" && npm ci --no-audit --no-fund --loglevel=error)
fi
exec node "$here/clients.test.cjs" "$server" "$here/seed.tsv" "$npmdir/node_modules"
