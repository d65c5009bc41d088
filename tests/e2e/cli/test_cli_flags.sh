#!/usr/bin/env bash
# test_cli_flags.sh — `keel flag ...` against a real 3-node keeld cluster
# started with `keel cluster up`:
#   import (--dry-run diff, one txn, deletes flags that left the file, the
#   guard against a concurrent change: a key added, a key deleted), export
#   and the round trip, eval (--context, --ctx, --type, reasons, exit codes),
#   set (validated: path-named errors, nothing stored), enable, disable,
#   delete, list, and watch showing a change made through another node.
# Usage: test_cli_flags.sh KEEL --keeld KEELD
KEEL=$1
ETCD_UP=$2
KEELD=${3:-}
. "$(dirname "$0")/lib.sh"
skip() { echo "skip: $* (not served by $BACKEND yet)"; }

start_etcd 3
K() { "$KEEL" --endpoints "$EPS" "$@"; }
E() { etcdctl --endpoints "$EPS" "$@"; }
# keys_revs PREFIX: "key mod_revision" lines of every key under PREFIX.
keys_revs() {
  E get "$1" --prefix -w json | python3 -c '
import json,sys,base64
for kv in json.load(sys.stdin).get("kvs",[]):
  print(base64.b64decode(kv["key"]).decode(), kv["mod_revision"])'
}
rev_now() { K get /none --count-only -w json | python3 -c 'import json,sys;print(json.load(sys.stdin)["header"]["revision"])'; }

cat >"$WORK/f1.json" <<'EOF'
{
  "$schema": "https://flagd.dev/schema/v0/flags.json",
  "flags": {
    "new-ui": {
      "state": "ENABLED",
      "variants": {"on": true, "off": false},
      "defaultVariant": "off",
      "targeting": {"if": [{"$ref": "isBeta"}, "on",
                           {"fractional": [["on", 50], ["off", 50]]}]},
      "metadata": {"owner": "web"}
    },
    "color": {"state": "ENABLED", "variants": {"red": "#f00", "blue": "#00f"},
              "defaultVariant": "red"},
    "ratio": {"state": "DISABLED",
              "variants": {"low": 0.1, "high": 1.0, "tiny": 2.5e-3},
              "defaultVariant": "low"},
    "old": {"state": "ENABLED", "variants": {"a": {"x": 1}}, "defaultVariant": "a"}
  },
  "$evaluators": {"isBeta": {"in": [{"var": "tier"}, ["beta", "internal"]]}}
}
EOF

# ---- import ------------------------------------------------------------------
expect_rc 0 "import --dry-run" K flag import web "$WORK/f1.json" --dry-run
contains "dry run lists an added flag" "$OUT" "+ new-ui"
contains "dry run lists \$evaluators" "$OUT" "+ \$evaluators"
contains "dry run summary" "$OUT" "dry run, nothing written: 5 added"
[ -z "$(keys_revs /flags/web/)" ] && ok "dry run wrote nothing" || fail "dry run wrote: $(keys_revs /flags/web/)"
expect_rc 0 "import" K flag import web "$WORK/f1.json"
contains "import summary" "$OUT" "imported: 5 added, 0 changed, 0 deleted"
KR=$(keys_revs /flags/web/)
[ "$(echo "$KR" | wc -l)" = 5 ] && ok "5 keys stored" || fail "keys: $KR"
[ "$(echo "$KR" | awk '{print $2}' | sort -u | wc -l)" = 1 ] && ok "all written at one revision (one txn)" || fail "revisions: $KR"
R1=$(rev_now)
expect_rc 0 "import again" K flag import web "$WORK/f1.json"
contains "nothing to do" "$OUT" "up to date: 0 added, 0 changed, 0 deleted"
[ "$(rev_now)" = "$R1" ] && ok "an unchanged import writes nothing" || fail "revision moved"
expect_rc 2 "import without FILE" K flag import web
expect_rc 3 "import of a missing file" K flag import web "$WORK/none.json"
printf '{"flags": {"x": {"state": "ON", "variants": {"a": 1}}}}' >"$WORK/bad.json"
expect_rc 1 "import of an invalid file" K flag import web "$WORK/bad.json"
contains "the error names the path" "$ERR" "flags.x.state"
[ "$(rev_now)" = "$R1" ] && ok "an invalid file writes nothing" || fail "revision moved"

# ---- export and the round trip -------------------------------------------------
expect_rc 0 "export to a file" K flag export web "$WORK/e1.json"
[ -e "$WORK/e1.json.part" ] && fail ".part left" || ok "no .part file"
r=$(python3 - "$WORK/f1.json" "$WORK/e1.json" <<'EOF'
import json,sys
a=json.load(open(sys.argv[1])); b=json.load(open(sys.argv[2]))
def norm(d): return (d["flags"], d.get("$evaluators"), d.get("$schema"))
print("same" if norm(a)==norm(b) else "differ:\n%r\n%r"%(norm(a),norm(b)))
EOF
)
[ "$r" = same ] && ok "export equals the imported file (flags, \$evaluators, \$schema)" || fail "round trip: $r"
expect_rc 0 "import of the export" K flag import web "$WORK/e1.json"
contains "round trip changes nothing" "$OUT" "up to date"
expect_rc 0 "export to stdout" K flag export web
[ "$OUT" = "$(cat "$WORK/e1.json")" ] && ok "stdout export equals the file" || fail "export stdout differs"
expect_rc 3 "export of an empty set" K flag export nothing

# ---- a changed file: one txn adds, changes and deletes ------------------------------
python3 - "$WORK/f1.json" "$WORK/f2.json" <<'EOF'
import json,sys
d=json.load(open(sys.argv[1]))
del d["flags"]["old"]
d["flags"]["color"]["defaultVariant"]="blue"
d["flags"]["added"]={"state":"ENABLED","variants":{"v1":"one","v2":"two"},"defaultVariant":"v2"}
json.dump(d,open(sys.argv[2],"w"),indent=1)
EOF
expect_rc 0 "dry run of a changed file" K flag import web "$WORK/f2.json" --dry-run
contains "changed flag and property" "$OUT" "~ color (defaultVariant)"
contains "deleted flag" "$OUT" "- old"
contains "added flag" "$OUT" "+ added"
expect_rc 0 "import of a changed file" K flag import web "$WORK/f2.json"
contains "summary" "$OUT" "imported: 1 added, 1 changed, 1 deleted"
KR=$(keys_revs /flags/web/)
case "$KR" in *"/flags/web/old "*) fail "old still stored" ;; *) ok "the flag that left the file is deleted" ;; esac
R2=$(echo "$KR" | awk '$1=="/flags/web/added"{print $2}')
[ "$(echo "$KR" | awk '$1=="/flags/web/color"{print $2}')" = "$R2" ] && ok "add and change in one revision" || fail "revs: $KR"
[ "$(rev_now)" = "$R2" ] && ok "one revision for the whole import" || fail "rev $(rev_now) vs $R2"

# ---- the guard: the set changes between the read and the write ---------------------------
guarded_import() { # guarded_import DESC FILE CMD...: CMD runs while import is paused
  local desc=$1 file=$2
  shift 2
  # Fresh files: a "paused" left by the previous run must not count.
  rm -f "$WORK/fifo" "$WORK/gi.out" "$WORK/gi.err"
  : >"$WORK/gi.err"
  mkfifo "$WORK/fifo"
  KEEL_TEST_FLAG_IMPORT_PAUSE=1 "$KEEL" --endpoints "$EPS" flag import web "$file" \
    <"$WORK/fifo" >"$WORK/gi.out" 2>"$WORK/gi.err" &
  local pid=$! i
  exec 7>"$WORK/fifo"
  for i in $(seq 1 400); do
    grep -q "paused" "$WORK/gi.err" && break
    sleep 0.05
  done
  grep -q "paused" "$WORK/gi.err" || fail "$desc: the import did not reach the pause"
  "$@" >/dev/null
  local before
  before=$(keys_revs /flags/web/)
  echo go >&7
  exec 7>&-
  wait $pid
  local rc=$?
  [ $rc = 1 ] && ok "$desc: import fails" || fail "$desc: import exit $rc: $(cat "$WORK/gi.out" "$WORK/gi.err")"
  contains "$desc: message" "$(cat "$WORK/gi.err")" "changed after it was read"
  [ "$(keys_revs /flags/web/)" = "$before" ] && ok "$desc: nothing written" || fail "$desc: the import wrote"
}
guarded_import "a key added meanwhile" "$WORK/f1.json" \
  E put /flags/web/sneaky '{"state":"ENABLED","variants":{"a":true},"defaultVariant":"a"}'
guarded_import "a key deleted meanwhile" "$WORK/f1.json" E del /flags/web/sneaky
guarded_import "a key changed meanwhile" "$WORK/f1.json" \
  E put /flags/web/added '{"state":"DISABLED","variants":{"v1":"one","v2":"two"},"defaultVariant":"v2"}'
expect_rc 0 "import after the conflicts" K flag import web "$WORK/f1.json"
contains "summary" "$OUT" "imported: 1 added, 1 changed, 1 deleted"

# ---- list / get -----------------------------------------------------------------
expect_rc 0 "flag list" K flag list
contains "the set is listed" "$OUT" "| web"
expect_rc 0 "flag list SET" K flag list web
contains "list row" "$OUT" "| ratio       | DISABLED | low"
expect_rc 0 "flag list SET -w json" K flag list web -w json
json_eq "list json" '[(f["key"], f.get("state")) for f in j["flags"]]' "$OUT" \
  '{"flags":[{"key":"$evaluators"},{"key":"color","state":"ENABLED"},{"key":"new-ui","state":"ENABLED"},{"key":"old","state":"ENABLED"},{"key":"ratio","state":"DISABLED"}]}'
expect_rc 3 "flag list of an empty set" K flag list nothing
expect_rc 0 "flag get" K flag get web color -w json
json_eq "get json definition" 'j["definition"]' "$OUT" \
  '{"definition":{"state":"ENABLED","variants":{"red":"#f00","blue":"#00f"},"defaultVariant":"red"}}'
expect_rc 3 "flag get of a missing flag" K flag get web nope
expect_rc 2 "bad set name" K flag get "a/b" x

# ---- eval --------------------------------------------------------------------------
expect_rc 0 "eval with --ctx" K flag eval web new-ui --ctx tier=beta -w json
json_eq "targeting match" '(j["value"], j["variant"], j["reason"])' "$OUT" \
  '{"value":true,"variant":"on","reason":"TARGETING_MATCH"}'
expect_rc 0 "eval with --context" K flag eval web new-ui --context '{"tier":"internal"}' -w simple
[ "$OUT" = "$(printf 'true\non\nTARGETING_MATCH')" ] && ok "simple output" || fail "eval simple: $OUT"
# fractional: sticky per targetingKey, both variants reachable.
seen=""
for u in u1 u2 u3 u4 u5 u6 u7 u8 u9 u10 u11 u12; do
  a=$(K flag eval web new-ui --ctx targetingKey=$u -w simple | sed -n 2p)
  b=$(K flag eval web new-ui --context "{\"targetingKey\":\"$u\"}" -w simple | sed -n 2p)
  [ "$a" = "$b" ] || fail "fractional not sticky for $u: $a vs $b"
  seen="$seen $a"
done
case "$seen" in *on*off* | *off*on*) ok "fractional rollout serves both variants, sticky" ;; *) fail "fractional: $seen" ;; esac
expect_rc 0 "no targeting key: default variant" K flag eval web new-ui -w json
json_eq "default" '(j["variant"], j["reason"])' "$OUT" '{"variant":"off","reason":"DEFAULT"}'
expect_rc 0 "static flag" K flag eval web color -w json
json_eq "static" '(j["value"], j["reason"])' "$OUT" '{"value":"#f00","reason":"STATIC"}'
expect_rc 0 "disabled flag" K flag eval web ratio -w json
json_eq "disabled: no value" '(j.get("value"), j["reason"])' "$OUT" '{"reason":"DISABLED"}'
expect_rc 3 "unknown flag exits 3" K flag eval web nope
contains "FLAG_NOT_FOUND" "$OUT" "FLAG_NOT_FOUND"
expect_rc 1 "type mismatch exits 1" K flag eval web color --type boolean
contains "TYPE_MISMATCH" "$OUT" "TYPE_MISMATCH"
expect_rc 0 "typed --ctx" K flag eval web new-ui --ctx 'tier:="beta"' -w simple
expect_rc 2 "bad --context" K flag eval web new-ui --context '[1]'
expect_rc 2 "bad --ctx" K flag eval web new-ui --ctx novalue
expect_rc 2 "bad --type" K flag eval web new-ui --type float

# ---- set (validated), enable, disable, delete ------------------------------------------
R3=$(rev_now)
expect_rc 1 "set of an invalid definition" K flag set web bad '{"state":"ENABLED","variants":{"on":true,"off":"no"}}'
contains "error names the path and rule" "$ERR" "/flags/web/bad: variants.off: all variants must be boolean"
expect_rc 1 "set with an unknown \$ref" K flag set web bad '{"state":"ENABLED","variants":{"on":true},"targeting":{"$ref":"nope"}}'
contains "ref error" "$ERR" "no such evaluator"
expect_rc 1 "set of text that is not JSON" K flag set web bad '{"state":'
expect_rc 1 "\$evaluators that would break a flag" K flag set web '$evaluators' '{}'
contains "names the flag" "$ERR" "/flags/web/new-ui"
expect_rc 1 "delete of \$evaluators still used" K flag delete web '$evaluators'
[ "$(rev_now)" = "$R3" ] && ok "nothing invalid written" || fail "revision moved"
expect_rc 0 "set from stdin" sh -c "echo '{\"state\":\"ENABLED\", \"variants\": {\"on\":true,\"off\":false}, \"defaultVariant\":\"on\"}' | '$KEEL' --endpoints '$EPS' flag set web beta"
[ "$(E get /flags/web/beta --print-value-only)" = '{"state":"ENABLED","variants":{"on":true,"off":false},"defaultVariant":"on"}' ] &&
  ok "stored as compact JSON" || fail "stored: $(E get /flags/web/beta --print-value-only)"
expect_rc 0 "disable" K flag disable web beta
expect_rc 0 "eval after disable" K flag eval web beta -w json
json_eq "disabled" 'j["reason"]' "$OUT" '{"reason":"DISABLED"}'
R4=$(rev_now)
expect_rc 0 "disable again" K flag disable web beta
contains "already" "$OUT" "already DISABLED"
[ "$(rev_now)" = "$R4" ] && ok "no write when the state is already right" || fail "revision moved"
expect_rc 0 "enable" K flag enable web beta
expect_rc 0 "eval after enable" K flag eval web beta -w json
json_eq "enabled" '(j["value"], j["reason"])' "$OUT" '{"value":true,"reason":"STATIC"}'
expect_rc 3 "enable of a missing flag" K flag enable web nope
expect_rc 0 "delete" K flag delete web beta
expect_rc 3 "delete again" K flag delete web beta
expect_rc 3 "get after delete" K flag get web beta

# ---- server-side validation: any writer --------------------------------------------------
if have flag-validation; then
  expect_rc 1 "etcdctl put of an invalid flag is refused" E put /flags/web/bad '{"state":"ENABLED","variants":{"a":true,"b":1}}'
  contains "server names the path" "$ERR" "variants"
  [ -z "$(E get /flags/web/bad --print-value-only)" ] && ok "nothing stored" || fail "stored"
else skip "server-side flag validation"; fi

# ---- watch: a change made through another node ------------------------------------------------
"$KEEL" --endpoints "${NODE[2]}" flag watch web --ctx tier=beta >"$WORK/fw" 2>"$WORK/fw.err" &
WPID=$!
for i in $(seq 1 200); do
  grep -q "^# set web" "$WORK/fw" && break
  sleep 0.05
done
contains "watch prints the set first" "$(cat "$WORK/fw")" "new-ui initial value=true variant=on reason=TARGETING_MATCH"
expect_rc 0 "disable through node 0" "$KEEL" --endpoints "${NODE[0]}" flag disable web new-ui
RD=$(echo "$OUT" | sed -n 's/.*(revision \([0-9]*\)).*/\1/p')
expect_rc 0 "delete through node 1" "$KEEL" --endpoints "${NODE[1]}" flag delete web color
RX=$(echo "$OUT" | sed -n 's/.*(revision \([0-9]*\)).*/\1/p')
for i in $(seq 1 200); do
  grep -q "^$RX color deleted" "$WORK/fw" && break
  sleep 0.05
done
kill -INT $WPID
wait $WPID
rc=$?
[ $rc = 0 ] && ok "flag watch exits 0 on SIGINT" || fail "flag watch exit $rc: $(cat "$WORK/fw.err")"
contains "watch shows the change and the new evaluation" "$(cat "$WORK/fw")" "$RD new-ui changed value=- variant=- reason=DISABLED"
contains "watch shows the delete" "$(cat "$WORK/fw")" "$RX color deleted"

finish
