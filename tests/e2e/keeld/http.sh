#!/usr/bin/env bash
# http.sh — keeld's HTTP endpoints and validation on write, against a real
# 3-node cluster (e2e). The data is tests/e2e/http/seed.tsv, written with
# etcdctl (seed_etcdctl.py): revision 2 (profiles, flags), revision 3
# (billing-dev's port changed, tag release-1 = revision 2). Every wait polls
# an event with a deadline.
#
#   1. Spring Cloud Config Server forms, read on n2 and n3: Environment JSON
#      (name, profiles, label, version, sources most specific first, typed
#      values, X-Keel-Revision), the v2 media type ({value, origin}),
#      URL-encoded profiles (dev%2Cdb), .yml .yaml .properties .json (the
#      merged document, placeholders resolved), labels rev-N and a tag from
#      /config-tags/ in both path forms; 404 for an unknown label, a future
#      revision, no sources, a path that is no endpoint; 400 for a bad
#      escape; 405 for POST; HEAD
#   2. linearizable: a write acknowledged through the leader is in the very
#      next /config and OFREP response of a follower (20 times each)
#   3. OFREP with curl: one flag, bulk with ETag, If-None-Match -> 304, a
#      change makes a new ETag; --ofrep-default-flag-set without the header
#   4. validation on write (etcdctl, through a follower and the leader): an
#      invalid definition is refused with InvalidArgument and the message
#      naming key, JSON path and rule, nothing stored (the revision does not
#      move); a valid one is accepted; a txn with one invalid put writes
#      nothing; a $ref to a missing evaluator is refused, with the
#      evaluator in the same txn accepted; an $evaluators write that breaks
#      a stored flag is refused; not JSON is refused
#   5. n1 and n2 killed: n3 answers /config and OFREP with 503 and a JSON
#      reason ("no leader")
#
# Usage: http.sh <path to keeld>
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
. "$here/lib.sh"
# /test/put: fast writes for step 2; OFREP's set when no header names one
LIB_ARGS=(--unsafe-test-endpoints --ofrep-default-flag-set web)
lib_init "$1" 3
command -v etcdctl >/dev/null || { echo "etcdctl missing (scripts/install-deps.sh)"; exit 1; }
tmp=$LIB_TMP
# The system python3 when there is one: a version manager's shim costs
# about half a second per call, and this script parses JSON ~100 times.
PY=python3
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3
json() { "$PY" -c "import json,sys; j=json.load(sys.stdin); print($1)"; }

for i in 1 2 3; do start_node "$i"; done
wait_healthy 1 2 3 || exit 1
# the leader, from one `etcdctl endpoint status` of all three nodes
leader=$(ectl endpoint status -w json | json '
[i + 1 for i, e in enumerate(j) if e["Status"]["header"]["member_id"] == e["Status"]["leader"]][0]')
follower=1
[ "$leader" = 1 ] && follower=2
far=$((6 - leader - follower)) # the other follower
ok "n$leader leads; followers n$follower, n$far"
revs=$("$PY" "$here/../http/seed_etcdctl.py" "$here/../http/seed.tsv" "$(ep 1)" |
  sed -n 's/^REVISION //p' | tr '\n' ' ')
expect "seed revisions" "2 3 " "$revs"

# get <node> <path> [curl args...]: body in $tmp/body, head in $tmp/head,
# the status code echoed.
get() {
  local i=$1 p=$2
  shift 2
  curl -s -m 10 -D "$tmp/head" -o "$tmp/body" -w '%{http_code}' "$@" "$(url "$i" "$p")"
}
body() { cat "$tmp/body"; }
jbody() { json "$1" <"$tmp/body"; }
header() { sed -n "s/^$1: *//Ip" "$tmp/head" | tr -d '\r'; }
V2='application/vnd.spring-cloud.config-server.v2+json'

# --- 1. config server forms ---------------------------------------------------
for n in 2 3; do
  expect "n$n Environment JSON 200" 200 "$(get $n /config/billing/dev)"
  expect "n$n Environment name/profiles/label/version/state" \
    "billing ['dev'] None 3 None" \
    "$(jbody 'j["name"], j["profiles"], j["label"], j["version"], j["state"]' | tr -d '(),')"
  expect "n$n sources most specific first" \
    "['keel:billing-dev', 'keel:billing', 'keel:application']" \
    "$(jbody '[s["name"] for s in j["propertySources"]]')"
  expect "n$n typed values" "7171 8080 hello" \
    "$(jbody '" ".join(str(j["propertySources"][i]["source"][k]) for i, k in ((0, "server.port"), (1, "server.port"), (2, "greeting")))')"
  expect "n$n X-Keel-Revision" 3 "$(header X-Keel-Revision)"
done

expect "v2 media type 200" 200 "$(get 2 /config/billing/dev -H "Accept: $V2")"
expect "v2 Content-Type" "$V2" "$(header Content-Type)"
expect "v2 {value, origin}" "{'value': 7171, 'origin': '/config/billing/dev/server.port'}" \
  "$(jbody 'j["propertySources"][0]["source"]["server.port"]')"

expect "URL-encoded profiles 200" 200 "$(get 3 /config/billing/dev%2Cdb)"
expect "URL-encoded profiles decoded" \
  "['dev', 'db'] ['keel:billing-db', 'keel:application-db', 'keel:billing-dev', 'keel:billing', 'keel:application']" \
  "$(jbody 'j["profiles"], [s["name"] for s in j["propertySources"]]' | sed 's/^(//; s/)$//; s/\], \[/] [/')"

for ext in yml yaml; do
  expect ".$ext 200" 200 "$(get 3 /config/billing-dev.$ext)"
  expect ".$ext merged document" "$(printf 'greeting: hello\nname: billing\nserver:\n  port: 7171\nservers:\n- dev-only')" "$(body)"
done
expect ".properties 200" 200 "$(get 2 /config/billing-db.properties)"
grep -qx 'db.url=jdbc\\:mysql\\://db/billing' "$tmp/body" &&
  ok ".properties: placeholders resolved, escaped" || bad ".properties: $(body)"
grep -qx 'server.port=8080' "$tmp/body" && grep -qx 'servers\[2\]=c' "$tmp/body" &&
  ok ".properties: merged values and lists" || bad ".properties: $(body)"
expect ".json 200" 200 "$(get 3 /config/billing-dev.json)"
expect ".json merged document" \
  "{'greeting': 'hello', 'name': 'billing', 'server': {'port': 7171}, 'servers': ['dev-only']}" "$(jbody j)"

expect "label rev-2 200" 200 "$(get 3 /config/billing/dev/rev-2)"
expect "label rev-2: version and value" "2 7070" \
  "$(jbody 'j["version"], j["propertySources"][0]["source"]["server.port"]' | tr -d "(),'")"
expect "label rev-2 flat form" 200 "$(get 2 /config/rev-2/billing-dev.properties)"
grep -qx 'server.port=7070' "$tmp/body" && ok "rev-2 flat form value" || bad "rev-2 flat: $(body)"
expect "tag release-1 200" 200 "$(get 3 /config/billing/dev/release-1)"
expect "tag release-1: label, version, value" "release-1 2 7070" \
  "$(jbody 'j["label"], j["version"], j["propertySources"][0]["source"]["server.port"]' | tr -d "(),'")"
expect "tag release-1 flat form" 200 "$(get 3 /config/release-1/billing-dev.yml)"
grep -q '^  port: 7070$' "$tmp/body" && ok "tag flat form value" || bad "tag flat: $(body)"

expect "unknown label 404" 404 "$(get 3 /config/billing/dev/nope)"
expect "unknown label JSON error" "404 label 'nope' not found" \
  "$(jbody 'j["status"], j["message"].split(":")[0]' | tr -d "(),'" | sed "s/label nope/label 'nope'/")"
expect "future revision 404" 404 "$(get 3 /config/billing/dev/rev-999)"
expect "no sources 404" 404 "$(get 2 /config/nope/dev/rev-1)"
jbody 'j["message"]' | grep -q "no configuration for application 'nope'" &&
  ok "no sources: JSON error names the application" || bad "no sources: $(body)"
expect "no such endpoint 404" 404 "$(get 3 /config/billing)"
expect "bad escape 400" 400 "$(get 3 /config/billing/dev%zz)"
expect "POST 405" 405 "$(get 3 /config/billing/dev -X POST)"
expect "HEAD 200" 200 "$(get 3 /config/billing/dev -I)"
# (with -I curl writes the head as the output: nothing may follow it)
cmp -s "$tmp/head" "$tmp/body" && ok "HEAD: the head only" || bad "HEAD: $(body)"

# --- 2. linearizable reads across nodes -------------------------------------
# Written through the leader (acknowledged once a quorum has it: the far
# follower may not have applied it yet), read on a follower: only a read
# that waits for the read index sees it every time. The writes use keeld's
# TEST-ONLY /test/put (a put through the log, as fast as curl) — what is
# tested is the read.
lin=0
tput() { curl -s -m 5 -XPOST "$(url "$leader" "/test/put?key=$1")" --data-binary "$2" | grep -q revision; }
for k in $(seq 1 20); do
  tput /config/billing/dev/counter "i:$k" || { lin=1; bad "write $k not acknowledged"; break; }
  get "$far" /config/billing-dev.properties >/dev/null
  grep -qx "counter=$k" "$tmp/body" || { lin=1; bad "write $k through n$leader not in n$far's next /config response"; break; }
  tput /flags/web/num "{\"state\":\"ENABLED\",\"variants\":{\"v\":$k},\"defaultVariant\":\"v\"}" ||
    { lin=1; bad "flag write $k not acknowledged"; break; }
  get "$far" /ofrep/v1/evaluate/flags/num -X POST -H 'X-Keel-Flag-Set: web' --data '{}' >/dev/null
  [ "$(jbody 'j["value"]')" = "$k" ] || { lin=1; bad "flag write $k through n$leader not in n$far's next OFREP response"; break; }
done
[ $lin = 0 ] && ok "20 writes through the leader n$leader each in follower n$far's next /config and OFREP response"

# --- 3. OFREP ------------------------------------------------------------------
expect "OFREP one flag 200" 200 \
  "$(get 2 /ofrep/v1/evaluate/flags/color -X POST -H 'X-Keel-Flag-Set: web' --data '{"context":{"tier":"gold"}}')"
expect "OFREP one flag body" "color #00f blue TARGETING_MATCH" \
  "$(jbody 'j["key"], j["value"], j["variant"], j["reason"]' | tr -d "(),'")"
expect "OFREP missing flag 404" 404 \
  "$(get 2 /ofrep/v1/evaluate/flags/nope -X POST -H 'X-Keel-Flag-Set: web' --data '{}')"
expect "OFREP missing flag code" FLAG_NOT_FOUND "$(jbody 'j["errorCode"]')"
expect "OFREP without X-Keel-Flag-Set: the default set" "200 #f00" \
  "$(get 2 /ofrep/v1/evaluate/flags/color -X POST --data '{}') $(jbody 'j["value"]')"
expect "OFREP X-Keel-Flag-Set names another set" 404 \
  "$(get 2 /ofrep/v1/evaluate/flags/color -X POST -H 'X-Keel-Flag-Set: api' --data '{}')"
expect "OFREP bulk 200" 200 "$(get 3 /ofrep/v1/evaluate/flags -X POST -H 'X-Keel-Flag-Set: web' --data '{}')"
etag=$(header ETag)
expect "OFREP bulk flags" "['bool-flag', 'color', 'num', 'rollout']" "$(jbody 'sorted(f["key"] for f in j["flags"])')"
expect "OFREP If-None-Match 304" 304 \
  "$(get 2 /ofrep/v1/evaluate/flags -X POST -H 'X-Keel-Flag-Set: web' -H "If-None-Match: $etag" --data '{}')"
ectl_at 1 put /flags/web/color '{"state":"DISABLED","variants":{"red":"#f00"},"defaultVariant":"red"}' >/dev/null
expect "OFREP changed set 200" 200 \
  "$(get 3 /ofrep/v1/evaluate/flags -X POST -H 'X-Keel-Flag-Set: web' -H "If-None-Match: $etag" --data '{}')"
[ "$(header ETag)" != "$etag" ] && ok "OFREP new ETag after a change" || bad "ETag unchanged"

# --- 4. validation on write ------------------------------------------------------
rev_now() { ectl_at "$1" get / -w json | json 'j["header"]["revision"]'; }
mixed='{"state":"ENABLED","variants":{"off":false,"on":"yes"},"defaultVariant":"off"}'
want='/flags/web/new-ui: variants.on: all variants must be boolean'
for n in "$follower" "$leader"; do
  r0=$(rev_now "$n")
  if ectl_at "$n" put /flags/web/new-ui "$mixed" >"$tmp/out" 2>"$tmp/err"; then
    bad "n$n: invalid flag accepted"
  else
    grep -q "Error: rpc error: code = InvalidArgument desc = $want\$" "$tmp/err" &&
      ok "n$n: invalid flag refused: InvalidArgument, '$want'" || bad "n$n: refusal: $(cat "$tmp/err")"
  fi
  expect "n$n: nothing stored" "" "$(ectl_at "$n" get /flags/web/new-ui)"
  expect "n$n: revision unchanged" "$r0" "$(rev_now "$n")"
done
if ectl_at "$follower" put /flags/web/bad-json '{"state": ' 2>"$tmp/err"; then
  bad "not JSON accepted"
else
  grep -q "InvalidArgument desc = /flags/web/bad-json: " "$tmp/err" && ok "not JSON refused, key named" ||
    bad "not JSON: $(cat "$tmp/err")"
fi
good='{"state":"ENABLED","variants":{"on":true,"off":false},"defaultVariant":"on"}'
expect "valid flag accepted" OK "$(ectl_at "$follower" put /flags/web/new-ui "$good" 2>&1)"
expect "valid flag stored" "$good" "$(ectl_at 3 get --print-value-only /flags/web/new-ui)"

r0=$(rev_now 1)
txn() { "$PY" -c '
import json, sys
a = sys.argv[1:]
print()
for k, v in zip(a[::2], a[1::2]):
    print("put", k, json.dumps(v))
print(); print()' "$@"; }
if txn /flags/web/t1 "$good" /plain/t2 x /flags/web/t3 "$mixed" | ectl_at "$follower" txn >"$tmp/out" 2>"$tmp/err"; then
  bad "txn with one invalid put accepted: $(cat "$tmp/out")"
else
  grep -q "InvalidArgument desc = /flags/web/t3: variants.on: all variants must be boolean" "$tmp/err" &&
    ok "txn with one invalid put refused, naming it" || bad "txn refusal: $(cat "$tmp/err")"
fi
expect "txn: none of its keys stored" "" "$(ectl_at 1 get /flags/web/t1; ectl_at 1 get /plain/t2; ectl_at 1 get /flags/web/t3)"
expect "txn: revision unchanged" "$r0" "$(rev_now 1)"

ref='{"state":"ENABLED","variants":{"on":true,"off":false},"defaultVariant":"off","targeting":{"if":[{"$ref":"beta"},"on","off"]}}'
if ectl_at "$leader" put /flags/web/beta-ui "$ref" 2>"$tmp/err"; then
  bad "dangling \$ref accepted"
else
  grep -q "InvalidArgument desc = /flags/web/beta-ui: " "$tmp/err" && ok "dangling \$ref refused" ||
    bad "dangling \$ref: $(cat "$tmp/err")"
fi
evals='{"beta":{"in":[{"var":"email"},["a@x"]]}}'
txn /flags/web/beta-ui "$ref" '/flags/web/$evaluators' "$evals" | ectl_at "$leader" txn >"$tmp/out" 2>"$tmp/err" &&
  ok "\$ref with its evaluator in the same txn accepted" || bad "txn with evaluator: $(cat "$tmp/err")"
expect "OFREP evaluates the \$ref" "on TARGETING_MATCH" \
  "$(get 3 /ofrep/v1/evaluate/flags/beta-ui -X POST -H 'X-Keel-Flag-Set: web' \
     --data '{"context":{"email":"a@x"}}' >/dev/null; jbody 'j["variant"], j["reason"]' | tr -d "(),'")"
if ectl_at 3 put '/flags/web/$evaluators' '{"other":{"==":[1,1]}}' 2>"$tmp/err"; then
  bad "evaluators breaking a stored flag accepted"
else
  grep -q 'breaks the stored flag /flags/web/beta-ui' "$tmp/err" && ok "evaluators breaking a stored flag refused" ||
    bad "evaluators: $(cat "$tmp/err")"
fi

# --- 5. no leader ------------------------------------------------------------------
kill_node 1
kill_node 2
noleader() { [ "$(get 3 /config/billing/dev)" = 503 ] && jbody 'j["message"]' | grep -q "no leader"; }
if until_ok 10000 noleader; then
  ok "n3 without a leader: /config 503, JSON reason '$(jbody 'j["message"]')'"
else
  bad "n3 without a leader: /config $(body)"
fi
expect "n3 without a leader: OFREP 503" 503 \
  "$(get 3 /ofrep/v1/evaluate/flags/color -X POST -H 'X-Keel-Flag-Set: web' --data '{}')"
jbody 'j["errorDetails"]' | grep -q "no leader" && ok "OFREP 503 JSON reason" || bad "OFREP 503: $(body)"

lib_sanitizer_check
exit $fail
