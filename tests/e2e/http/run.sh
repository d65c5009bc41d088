#!/usr/bin/env bash
# run.sh SERVER NPMDIR — installs the npm clients (pinned by package-lock.json)
# into NPMDIR with `npm ci` unless already there, then runs clients.test.cjs
# against the test server (SERVER: the http_testserver binary).
#
# run.sh --keeld KEELD NPMDIR — the same clients against a real 3-node keeld
# cluster (tests/e2e/keeld/lib.sh): seed.tsv is written with etcdctl
# (seed_etcdctl.py, one txn per group), the clients talk to n3 and the flag
# change goes through n1.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
mode=testserver
if [ "$1" = --keeld ]; then
  mode=keeld
  shift
fi
server="$1"
npmdir="$2"
command -v node >/dev/null || { echo "node missing (scripts/install-deps.sh)"; exit 1; }
if [ ! -f "$npmdir/node_modules/cloud-config-client/package.json" ] ||
   ! cmp -s "$here/package-lock.json" "$npmdir/package-lock.json"; then
  mkdir -p "$npmdir"
  cp "$here/package.json" "$here/package-lock.json" "$npmdir/"
  (cd "$npmdir" && npm ci --no-audit --no-fund --loglevel=error)
fi
if [ "$mode" = testserver ]; then
  exec node "$here/clients.test.cjs" "$server" "$here/seed.tsv" "$npmdir/node_modules"
fi

command -v etcdctl >/dev/null || { echo "etcdctl missing (scripts/install-deps.sh)"; exit 1; }
. "$here/../keeld/lib.sh"
lib_init "$server" 3
for i in 1 2 3; do start_node "$i"; done
wait_healthy 1 2 3 || exit 1
revs=$(python3 "$here/seed_etcdctl.py" "$here/seed.tsv" "$(ep 1)" | sed -n 's/^REVISION //p' | tr '\n' ' ')
ok "seeded through n1 at revisions $revs"
if KEEL_E2E_REVISIONS="$revs" KEEL_E2E_WRITE_ENDPOINT="$(ep 1)" \
   node "$here/clients.test.cjs" "$(url 3 "")" "$here/seed.tsv" "$npmdir/node_modules"; then
  ok "npm clients against keeld n3"
else
  bad "npm clients against keeld n3"
fi
lib_sanitizer_check
exit $fail
