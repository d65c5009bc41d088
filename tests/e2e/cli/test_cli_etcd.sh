#!/usr/bin/env bash
# test_cli_etcd.sh — every keel command against one real etcd 3.4 node,
# with etcdctl 3.4 run against the same server for the same operations
# (semantic content compared: keys, values, revisions), plus the error
# paths, exit codes, help and completion.
#
# The same script runs against keeld (a 3-node cluster from `keel cluster
# up`, ctest test_cli_keeld): the same checks, etcdctl 3.4 against the same
# keeld; the command families keeld does not serve yet (lib.sh KEELD_LACKS)
# are skipped and say so.
# Usage: test_cli_etcd.sh KEEL ETCD_UP | test_cli_etcd.sh KEEL --keeld KEELD
KEEL=$1
ETCD_UP=$2
KEELD=${3:-}
. "$(dirname "$0")/lib.sh"

if [ "$BACKEND" = keeld ]; then start_etcd 3; else start_etcd 1; fi
skip() { echo "skip: $* (not served by $BACKEND yet)"; }
K() { "$KEEL" --endpoints "$EPS" "$@"; }
E() { etcdctl --endpoints "$EPS" "$@"; }

# ---- put / get, compared with etcdctl -----------------------------------
expect_rc 0 "put" K put app/a 1
contains "put prints OK and the revision" "$OUT" "OK (revision"
E put app/b 2 >/dev/null
K put app/c 3 >/dev/null
K put app/a 11 >/dev/null
K put zz 9 >/dev/null
for flags in "app/a" "app/ --prefix" "app/ --prefix --limit 2" \
  "app/ --prefix --sort-by VALUE --order DESCEND" "app/ --prefix --keys-only" \
  "app/a --rev 2" "app/b --from-key" \
  "app/a app/c"; do
  # shellcheck disable=SC2086
  a=$(K get $flags -w json)
  # shellcheck disable=SC2086
  b=$(E get $flags -w json)
  json_eq "get $flags same as etcdctl" \
    '(j.get("kvs"),j.get("count"),j.get("more",False),j["header"]["revision"])' "$a" "$b"
done
json_eq "count-only count same as etcdctl's count" 'j["count"]' \
  "$(K get app/ --prefix --count-only -w json)" "$(E get app/ --prefix -w json)"
expect_rc 0 "get -w simple" K get app/a -w simple
[ "$OUT" = "$(E get app/a)" ] && ok "simple output equals etcdctl's" ||
  fail "simple: '$OUT' vs '$(E get app/a)'"
expect_rc 0 "get table" K get app/ --prefix
contains "table has a header" "$OUT" "| KEY"
contains "table has the value" "$OUT" "| app/a | 11"
expect_rc 0 "get -w yaml" K get app/a -w yaml
contains "yaml has the key" "$OUT" "key: app/a"
expect_rc 3 "get of a missing key exits 3" K get nope
contains "missing key message" "$ERR" "no key matches"
expect_rc 0 "count-only of nothing is 0, exit 0" K get nope --count-only -w simple
[ "$OUT" = 0 ] || fail "count-only: $OUT"

# ---- values that are not UTF-8 ------------------------------------------
printf 'a\001\377z' | K put bin/x >/dev/null
expect_rc 0 "binary value in a table" K get bin/x
contains "escaped in table" "$OUT" 'a\x01\xffz'
expect_rc 0 "binary value --hex" K get bin/x --hex -w simple
contains "hex output" "$OUT" '\x61\x01\xff\x7a'
json_eq "binary value json base64 equals etcdctl" 'j["kvs"]' \
  "$(K get bin/x -w json)" "$(E get bin/x -w json)"

# ---- put flags -----------------------------------------------------------
expect_rc 0 "put --prev-kv" K put app/a 12 --prev-kv -w json
json_eq "prev_kv value" 'j["prev_kv"]["value"]' "$OUT" '{"prev_kv":{"value":"MTE="}}'
if have lease; then
LEASE=$(K lease grant 100 -w simple | awk '{print $2}')
expect_rc 0 "put --lease" K put leased v --lease "$LEASE"
json_eq "lease attached (same as etcdctl sees)" 'j["kvs"][0]["lease"]' \
  "$(K get leased -w json)" "$(E get leased -w json)"
expect_rc 0 "put --ignore-value" K put leased --ignore-value --lease "$LEASE"
[ "$(K get leased -w simple | tail -1)" = v ] && ok "value kept" || fail "ignore-value"
else skip "put --lease"; fi
expect_rc 0 "value from stdin" sh -c "printf 'from stdin' | '$KEEL' --endpoints $EPS put stdin/k"
[ "$(E get stdin/k --print-value-only)" = "from stdin" ] && ok "stdin value" || fail "stdin value"
expect_rc 0 "value starting with - after --" K put dash -- -1
[ "$(E get dash --print-value-only)" = "-1" ] && ok "dash value" || fail "dash value"

# ---- lease -----------------------------------------------------------------
if have lease; then
expect_rc 0 "lease timetolive --keys" K lease timetolive "$LEASE" --keys
contains "ttl keys" "$OUT" "attached keys([leased])"
expect_rc 0 "lease list" K lease list
contains "lease listed" "$OUT" "$LEASE"
contains "etcdctl lists the same lease" "$(E lease list)" "$LEASE"
expect_rc 0 "lease keep-alive --once" K lease keep-alive --once "$LEASE"
contains "keepalived" "$OUT" "keepalived with TTL(100)"
"$KEEL" --endpoints "$EPS" lease keep-alive "$LEASE" >"$WORK/ka" 2>"$WORK/ka.err" &
KPID=$!
for i in $(seq 1 100); do
  grep -q keepalived "$WORK/ka" && break
  sleep 0.05
done
kill -INT $KPID
wait $KPID
rc=$?
[ $rc = 0 ] && ok "keep-alive exits 0 on SIGINT" || fail "keep-alive SIGINT exit $rc"
[ -s "$WORK/ka.err" ] && fail "keep-alive stderr on SIGINT: $(cat "$WORK/ka.err")" || ok "keep-alive stops quietly"
expect_rc 0 "lease revoke" K lease revoke "$LEASE"
expect_rc 3 "revoked lease: get of its key exits 3" K get leased
expect_rc 3 "timetolive of a gone lease exits 3" K lease timetolive "$LEASE"
expect_rc 3 "revoke of a gone lease exits 3" K lease revoke "$LEASE"
expect_rc 3 "keep-alive of a gone lease exits 3" K lease keep-alive --once "$LEASE"
else skip lease; fi

# ---- del -----------------------------------------------------------------
K put d/1 a >/dev/null
K put d/2 b >/dev/null
E put d/3 c >/dev/null
expect_rc 0 "del --prev-kv" K del d/1 --prev-kv -w simple
[ "$OUT" = "$(printf '1\nd/1\na')" ] && ok "del simple output" || fail "del output: $OUT"
a=$(K del d/ --prefix -w json)
json_eq "del --prefix count" 'j.get("deleted")' "$a" '{"deleted":2}'
b=$(E del d/ --prefix -w json)
json_eq "then etcdctl deletes nothing" 'j.get("deleted",0)' "$b" '{"deleted":0}'
expect_rc 0 "del of nothing is not an error" K del d/none

# ---- txn (etcdctl's stdin form), compared with etcdctl --------------------
K put t/k v1 >/dev/null
TXN=$(printf 'value("t/k") = "v1"\n\nput t/k v2\nget t/k\n\nput t/k failed\n')
expect_rc 0 "txn success branch" sh -c "printf '%s\n' '$TXN' | '$KEEL' --endpoints $EPS txn -w simple"
contains "txn SUCCESS" "$OUT" SUCCESS
contains "txn ran the get" "$OUT" "$(printf 't/k\nv2')"
b=$(printf '%s\n\n' "$TXN" | E txn -w json) # etcdctl now meets v2: failure
json_eq "etcdctl sees the same state (failure branch)" 'j.get("succeeded",False)' "$b" '{}'
[ "$(E get t/k --print-value-only)" = failed ] && ok "failure branch applied" || fail "txn failure"
a=$(printf 'mod("t/k") > "0"\n\nget t/k\n\n' | K txn -w json)
b=$(printf 'mod("t/k") > "0"\n\nget t/k\n\n\n' | E txn -w json)
json_eq "txn json: succeeded and kvs same as etcdctl" \
  '(j.get("succeeded"), j["responses"][0]["Response"]["ResponseRange"]["kvs"])' "$a" "$b"
expect_rc 0 "txn -i" sh -c "printf 'version(\"t/k\") = \"3\"\n\nput t/i yes\n\n' | '$KEEL' --endpoints $EPS txn -i"
contains "txn -i prompts on stderr" "$ERR" "compares:"
expect_rc 2 "txn with a bad compare is a usage error" sh -c "printf 'bogus(\"k\") = \"1\"\n\n\n' | '$KEEL' --endpoints $EPS txn"
contains "txn error names the line" "$ERR" "line 1"

# ---- watch ---------------------------------------------------------------
"$KEEL" --endpoints "$EPS" watch w/ --prefix --prev-kv >"$WORK/watch" 2>"$WORK/watch.err" &
WPID=$!
# The watch is registered once a put made after it shows up; keep writing a
# marker until it does (bounded), then the real writes.
for i in $(seq 1 100); do
  K put w/marker "$i" >/dev/null
  grep -q "PUT w/marker" "$WORK/watch" && break
  sleep 0.05
done
R1=$(K put w/a 1 -w json | python3 -c 'import json,sys;print(json.load(sys.stdin)["header"]["revision"])')
K put w/a 2 >/dev/null
R3=$(K del w/a -w json | python3 -c 'import json,sys;print(json.load(sys.stdin)["header"]["revision"])')
for i in $(seq 1 100); do grep -q "^$R3 DELETE" "$WORK/watch" && break; sleep 0.05; done
kill -TERM $WPID
wait $WPID
rc=$?
[ $rc = 0 ] && ok "watch exits 0 on SIGTERM" || fail "watch exit $rc"
contains "watch saw the put" "$(cat "$WORK/watch")" "$R1 PUT w/a = 1"
contains "watch saw prev-kv" "$(cat "$WORK/watch")" "PUT w/a = 2 (was: 1)"
contains "watch saw the delete" "$(cat "$WORK/watch")" "$R3 DELETE w/a"
# --rev replays history; -w simple like etcdctl's.
run_until_output INT "$WORK/replay" '^DELETE' "$KEEL" --endpoints "$EPS" watch w/a --rev "$R1" -w simple
[ "$WRC" = 0 ] && ok "watch --rev stopped by SIGINT exits 0" || fail "watch --rev exit $WRC"
OUT=$(cat "$WORK/replay")
[ "$OUT" = "$(printf 'PUT\nw/a\n1\nPUT\nw/a\n2\nDELETE\nw/a\n')" ] && ok "replayed events" ||
  fail "replay: $OUT"
events() { python3 -c 'import json,sys;print(json.dumps([e for l in open(sys.argv[1]) for e in json.loads(l)["Events"]]))' "$1"; }
run_until_output INT "$WORK/wj" "\"mod_revision\":$R3" "$KEEL" --endpoints "$EPS" watch w/a --rev "$R1" -w json
run_until_output TERM "$WORK/ej" "\"mod_revision\":$R3" etcdctl --endpoints "$EPS" watch w/a --rev "$R1" -w json
json_eq "watch --rev -w json events same as etcdctl" '(len(j), j)' "$(events "$WORK/wj")" "$(events "$WORK/ej")"
"$KEEL" --endpoints "$EPS" watch w/sig >"$WORK/wsig" 2>&1 &
WPID=$!
for i in $(seq 1 100); do
  K put w/sig "$i" >/dev/null
  grep -q "PUT w/sig" "$WORK/wsig" && break
  sleep 0.05
done
kill -INT $WPID
wait $WPID
rc=$?
[ $rc = 0 ] && ok "watch exits 0 on SIGINT" || fail "watch SIGINT exit $rc"

# ---- history / rollback ---------------------------------------------------
K put h/k one >/dev/null
K put other x >/dev/null
K put h/k two >/dev/null
RT=$(K put h/k three -w json | python3 -c 'import json,sys;print(json.load(sys.stdin)["header"]["revision"])')
expect_rc 0 "history" K history h/k -w simple
[ "$(echo "$OUT" | sed -n '2p;4p;6p' | tr '\n' ' ')" = "three two one " ] &&
  ok "history newest first" || fail "history: $OUT"
ONE_REV=$(echo "$OUT" | sed -n 5p)
json_eq "history revision matches etcdctl get --rev" 'j["kvs"][0]["value"]' \
  "$(E get h/k --rev "$ONE_REV" -w json)" '{"kvs":[{"value":"b25l"}]}'
expect_rc 0 "history --max 2" K history h/k --max 2 -w simple
[ "$(echo "$OUT" | wc -l)" = 4 ] && ok "history bounded" || fail "history --max: $OUT"
expect_rc 3 "history of a missing key exits 3" K history h/none
expect_rc 0 "rollback" K rollback h/k --to-rev "$ONE_REV"
[ "$(E get h/k --print-value-only)" = one ] && ok "rolled back value" || fail "rollback value"
expect_rc 3 "rollback to a revision where the key did not exist" K rollback h/k --to-rev 1
expect_rc 2 "rollback without --to-rev" K rollback h/k
# A concurrent change between the read and the guarded write.
mkfifo "$WORK/fifo"
KEEL_TEST_ROLLBACK_PAUSE=1 "$KEEL" --endpoints "$EPS" rollback h/k --to-rev "$RT" <"$WORK/fifo" >"$WORK/rb.out" 2>"$WORK/rb.err" &
RBP=$!
exec 7>"$WORK/fifo"
# The hook says "paused" once both reads are done.
for i in $(seq 1 200); do
  grep -q "paused" "$WORK/rb.err" && break
  sleep 0.05
done
E put h/k concurrent >/dev/null
echo go >&7
exec 7>&-
wait $RBP
rc=$?
[ $rc = 1 ] && ok "rollback fails on a concurrent change" || fail "rollback concurrent: exit $rc"
contains "rollback names the change" "$(cat "$WORK/rb.err")" "changed after it was read"
[ "$(E get h/k --print-value-only)" = concurrent ] && ok "nothing written" || fail "rollback wrote"

# ---- member / endpoint / alarm / defrag -----------------------------------
a=$(K member list -w json)
b=$(E member list -w json)
if have member-client-urls; then
  json_eq "member list same as etcdctl" '[ (m["ID"], m.get("name"), m["peerURLs"], m.get("clientURLs")) for m in j["members"]]' "$a" "$b"
else
  skip "clientURLs of other members in member list (docs/decisions/0861)"
  json_eq "member list same as etcdctl (ids, names, peer URLs)" '[ (m["ID"], m.get("name"), m["peerURLs"]) for m in j["members"]]' "$a" "$b"
fi
expect_rc 0 "member list table" K member list
contains "member table" "$OUT" "started"
if have member-change; then
expect_rc 0 "member add --learner" K member add l1 --peer-urls http://127.0.0.1:1 --learner -w json
LID=$(echo "$OUT" | python3 -c 'import json,sys;print("%x"%json.load(sys.stdin)["member"]["ID"])')
contains "etcdctl sees the learner" "$(E member list)" "$LID, unstarted, , http://127.0.0.1:1, , true"
expect_rc 0 "member update" K member update "$LID" --peer-urls http://127.0.0.1:2
contains "etcdctl sees the update" "$(E member list)" "http://127.0.0.1:2"
expect_rc 1 "promote of a learner not in sync fails" K member promote "$LID"
contains "promote says why" "$ERR" "learner"
expect_rc 0 "member remove" K member remove "$LID"
expect_rc 3 "remove of an unknown member exits 3" K member remove "$LID"
else skip "member add/update/promote/remove"; fi
expect_rc 2 "member add without --peer-urls" K member add x
expect_rc 0 "endpoint status" K endpoint status -w json
a=$OUT
b=$(E endpoint status -w json)
json_eq "endpoint status member/leader same as etcdctl" '[(s["Endpoint"], s["Status"]["header"]["member_id"], s["Status"]["leader"], s["Status"]["version"]) for s in j]' "$a" "$b"
expect_rc 0 "endpoint status table" K endpoint status
contains "status table" "$OUT" "IS LEADER"
expect_rc 0 "endpoint health" K endpoint health --cluster -w simple
contains "healthy" "$OUT" "is healthy"
if have alarm; then
expect_rc 0 "alarm list" K alarm list
expect_rc 0 "alarm disarm" K alarm disarm
else skip alarm; fi
if have defrag; then
expect_rc 0 "defrag" K defrag
contains "defrag output" "$OUT" "Finished defragmenting"
else skip defrag; fi

# ---- snapshot ----------------------------------------------------------------
if have snapshot; then
expect_rc 0 "snapshot save (not a terminal)" K snapshot save "$WORK/snap.db"
case "$OUT" in *$'\r'*) fail "progress bar drawn on a pipe" ;; *) ok "no progress bar on a pipe" ;; esac
contains "sha verified" "$OUT" "sha256 verified"
[ -e "$WORK/snap.db.part" ] && fail ".part left behind" || ok "no .part file"
contains "etcdctl reads the saved snapshot" "$(E snapshot status "$WORK/snap.db" -w simple 2>&1)" ","
expect_rc 0 "snapshot status" K snapshot status "$WORK/snap.db"
contains "integrity ok" "$OUT" "| ok"
contains "bbolt format" "$OUT" "bbolt"
cp "$WORK/snap.db" "$WORK/bad.db"
printf '\x00\x01' | dd of="$WORK/bad.db" bs=1 seek=5000 conv=notrunc 2>/dev/null
expect_rc 1 "snapshot status of a corrupted file" K snapshot status "$WORK/bad.db"
expect_rc 3 "snapshot status of a missing file" K snapshot status "$WORK/none.db"
script -qec "'$KEEL' --endpoints $EPS snapshot save '$WORK/tty.db'" /dev/null >"$WORK/tty.out" 2>&1
contains "progress bar on a terminal" "$(cat "$WORK/tty.out")" "100%"
else skip snapshot; fi

# ---- compact and compacted revisions -------------------------------------------
CUR=$(K get app/a -w json | python3 -c 'import json,sys;print(json.load(sys.stdin)["header"]["revision"])')
expect_rc 0 "compact --physical" K compact "$CUR" --physical
expect_rc 1 "get at a compacted revision" K get app/a --rev 2
if have hashkv; then
  contains "compacted error names the revisions" "$ERR" "revision 2 has been compacted; the oldest revision still available is $CUR"
else
  skip "the oldest revision in the get error (keel asks HashKV)"
  contains "compacted error" "$ERR" "revision 2 has been compacted"
fi
expect_rc 1 "watch from a compacted revision" K watch app/a --rev 2
if have watch-compact-rev; then
  contains "watch compacted error" "$ERR" "oldest revision still available is $CUR"
else
  # keeld's watch names compact revision + 1 (store/watch_hub.h: its
  # compaction at C drops revision C); etcd names C.
  skip "watch compact_revision equal to etcd's"
  contains "watch compacted error" "$ERR" "oldest revision still available is $((CUR + 1))"
fi
expect_rc 1 "get at a future revision" K get app/a --rev 999999
contains "future revision message" "$ERR" "in the future"

# ---- error paths -----------------------------------------------------------------
expect_rc 1 "no reachable endpoint" "$KEEL" --endpoints 127.0.0.1:1,127.0.0.1:9 --command-timeout 2s get k
contains "names the endpoints tried" "$ERR" "127.0.0.1:1, 127.0.0.1:9"
contains "suggests what to do" "$ERR" "KEEL_ENDPOINTS"
expect_rc 2 "unknown command" K frobnicate
contains "unknown command message" "$ERR" 'unknown command "frobnicate"'
expect_rc 2 "unknown flag" K get k --bogus
contains "unknown flag message" "$ERR" "unknown flag --bogus"
expect_rc 2 "flag of another command" K put k v --prefix
expect_rc 2 "missing argument" K put
expect_rc 2 "bad --write-out" K get k -w xml
expect_rc 2 "bad --rev" K get k --rev abc
expect_rc 2 "bad endpoint" "$KEEL" --endpoints not-an-ip:x get k
head -c 1600000 /dev/zero | tr '\0' v >"$WORK/big"
expect_rc 1 "value over etcd's 1.5 MiB request limit" sh -c "'$KEEL' --endpoints $EPS put big < '$WORK/big'"
contains "too large message" "$ERR" "too large"
head -c 3000000 /dev/zero | tr '\0' v >"$WORK/huge"
expect_rc 1 "value over keel's own limit" sh -c "'$KEEL' --endpoints $EPS put big < '$WORK/huge'"
contains "client-side limit message" "$ERR" "value too large"
expect_rc 3 "cluster status of a dir without a cluster" K cluster status --dir "$WORK/none"
contains "cluster status says how to start one" "$ERR" "keel cluster up"

# ---- endpoints from KEEL_ENDPOINTS and the config file ------------------------------
expect_rc 0 "KEEL_ENDPOINTS" env KEEL_ENDPOINTS="$EPS" "$KEEL" get app/a
mkdir -p "$HOME/.config/keel"
{
  printf '# keel config\nendpoints:\n'
  printf '  - %s\n' ${EPS//,/ }
  printf 'other: x\n'
} >"$HOME/.config/keel/config.yaml"
expect_rc 0 "config file endpoints" "$KEEL" get app/a --debug
contains "debug names the config file" "$ERR" "config.yaml"
expect_rc 1 "--endpoints wins over the config file" "$KEEL" --endpoints 127.0.0.1:1 --command-timeout 1s get app/a
rm -f "$HOME/.config/keel/config.yaml"

# ---- help, version, completion ------------------------------------------------------
expect_rc 0 "keel --help" "$KEEL" --help
for c in get put del txn watch "lease grant" "member list" "endpoint status" "snapshot save" compact defrag move-leader "alarm list" history rollback completion version; do
  contains "help lists $c" "$OUT" "$c"
done
for c in get put del txn watch "lease keep-alive" "member add" "endpoint health" "snapshot status" compact history rollback; do
  # shellcheck disable=SC2086
  "$KEEL" $c --help >"$WORK/h" 2>&1 || fail "keel $c --help exit code"
  grep -q "Usage: keel $c" "$WORK/h" && ok "keel $c --help" || fail "keel $c --help: $(cat "$WORK/h")"
done
expect_rc 2 "no command" "$KEEL"
expect_rc 0 "version" "$KEEL" version
expect_rc 0 "completion bash" "$KEEL" completion bash
"$KEEL" completion bash >"$WORK/comp.bash"
r=$(bash -c ". '$WORK/comp.bash'; COMP_WORDS=(keel ge); COMP_CWORD=1; _keel; echo \${COMPREPLY[*]}
COMP_WORDS=(keel get --pre); COMP_CWORD=2; _keel; echo \${COMPREPLY[*]}
COMP_WORDS=(keel lease ''); COMP_CWORD=2; _keel; echo \${COMPREPLY[*]}
COMP_WORDS=(keel get k -w ''); COMP_CWORD=4; _keel; echo \${COMPREPLY[*]}")
[ "$r" = "$(printf 'get\n--prefix\ngrant revoke keep-alive timetolive list\ntable simple json yaml')" ] &&
  ok "bash completion completes" || fail "bash completion: $r"
expect_rc 0 "completion zsh" "$KEEL" completion zsh
contains "zsh script" "$OUT" "#compdef keel"
expect_rc 2 "completion fish" "$KEEL" completion fish

finish
