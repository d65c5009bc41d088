#!/usr/bin/env bash
# Regenerates the etcd 3.4 ground-truth fixtures in this folder by running the
# real etcd 3.4 server and etcdctl 3.4 on loopback (see README.md). Not part of
# the test suite: keel's e2e test only reads the *.txt files this writes.
#
# usage: tests/e2e/compat-fixtures/generate.sh [--with-perf]
#   --with-perf  also run `check perf --load=l` (60 s of heavy load; off by default)
set -u
# job control, and `env --default-signal=INT` below: background jobs (watch,
# keep-alive) must not keep an inherited "SIGINT ignored", so kill -INT ends them
set -m
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=$HERE
WITH_PERF=0
[ "${1:-}" = "--with-perf" ] && WITH_PERF=1
CPORT=${COMPAT_CLIENT_PORT:-23790}
PPORT=${COMPAT_PEER_PORT:-23800}
EP=127.0.0.1:$CPORT
WORK=$(mktemp -d /tmp/keel-compat.XXXXXX)
ETCD_PID=
ETCD2_PID=
cleanup() {
  if [ -n "$ETCD2_PID" ] && kill -0 "$ETCD2_PID" 2>/dev/null; then
    kill "$ETCD2_PID"; wait "$ETCD2_PID" 2>/dev/null
  fi
  if [ -n "$ETCD_PID" ] && kill -0 "$ETCD_PID" 2>/dev/null; then
    kill "$ETCD_PID"; wait "$ETCD_PID" 2>/dev/null
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

start_etcd() { # extra etcd flags...
  etcd --name default --data-dir "$WORK/data" \
    --listen-client-urls "http://$EP" --advertise-client-urls "http://$EP" \
    --listen-peer-urls "http://127.0.0.1:$PPORT" \
    --initial-advertise-peer-urls "http://127.0.0.1:$PPORT" \
    --initial-cluster "default=http://127.0.0.1:$PPORT" \
    --listen-metrics-urls "" "$@" >"$WORK/etcd.log" 2>&1 &
  ETCD_PID=$!
  for _ in $(seq 1 100); do
    etcdctl --endpoints="$EP" --dial-timeout=1s endpoint health >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "etcd did not become healthy; log:" >&2; cat "$WORK/etcd.log" >&2; exit 1
}
stop_etcd() {
  kill "$ETCD_PID"; wait "$ETCD_PID" 2>/dev/null; ETCD_PID=
  rm -rf "$WORK/data"
}

# section NAME FILE: writes "### NAME" then the file's exact bytes; a section
# whose bytes do not end in a newline gets "### NAME (no trailing newline)".
section() {
  local name=$1 f=$2
  if [ -s "$f" ] && [ "$(tail -c1 "$f" | od -An -c | tr -d ' ')" != '\n' ]; then
    printf '### %s (no trailing newline)\n' "$name"; cat "$f"; printf '\n'
  else
    printf '### %s\n' "$name"; cat "$f"
  fi
}

N=0
# run NAME [STDIN-TEXT|-] ARGS... : runs `etcdctl --endpoints=EP ARGS` in $WORK
run() {
  local name=$1 stdin=$2; shift 2
  N=$((N + 1))
  local file; file=$(printf '%s/%03d-%s.txt' "$OUT" "$N" "$name")
  printf '%s' "$stdin" >"$WORK/stdin"
  (cd "$WORK" && etcdctl --endpoints="$EP" "$@" <"$WORK/stdin" >"$WORK/out" 2>"$WORK/err")
  local rc=$?
  {
    printf '### command\netcdctl --endpoints=${ENDPOINTS}'
    printf ' %q' "$@"; printf '\n'
    if [ "${#stdin}" -gt 4096 ]; then # e.g. put-too-large: describe, don't copy
      printf '### note\nstdin: %d bytes, made in generate.sh, not recorded here\n' "${#stdin}"
    elif [ -n "$stdin" ]; then
      section stdin "$WORK/stdin"
    fi
    printf '### exit\n%d\n' "$rc"
    section stdout "$WORK/out"
    section stderr "$WORK/err"
  } >"$file"
}
# runbg NAME SECONDS ARGS...: like run, but the command is ended by SIGINT
# after SECONDS (for watch / keep-alive); the caller runs other commands in
# between via the hook function `during` if defined.
runbg() {
  local name=$1 secs=$2; shift 2
  N=$((N + 1))
  local file; file=$(printf '%s/%03d-%s.txt' "$OUT" "$N" "$name")
  (cd "$WORK" && exec env --default-signal=INT etcdctl --endpoints="$EP" "$@" </dev/null >"$WORK/bgout" 2>"$WORK/bgerr") &
  local pid=$!
  sleep 0.5
  if declare -F during >/dev/null; then during; fi
  sleep "$secs"
  kill -INT "$pid" 2>/dev/null
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" # never leave it behind
  wait "$pid"; local rc=$?
  {
    printf '### command\netcdctl --endpoints=${ENDPOINTS}'
    printf ' %q' "$@"; printf '\n'
    printf '### note\nended by SIGINT after the `during` hook commands in generate.sh ran\n'
    printf '### exit\n%d\n' "$rc"
    section stdout "$WORK/bgout"
    section stderr "$WORK/bgerr"
  } >"$file"
  unset -f during
}

rm -f "$OUT"/[0-9][0-9][0-9]-*.txt
[ "$WITH_PERF" = 1 ] && rm -f "$OUT/check-perf-l.txt"
start_etcd

# ---- put / get -------------------------------------------------------------
run put '' put foo bar                                  # rev 2
run put-more '' put foo1 bar1                           # rev 3
run put-more '' put foo2 bar2                           # rev 4
run put-more '' put fop x                               # rev 5
run put-more '' put zoo z                               # rev 6
run put-stdin-value 'from-stdin' put stdinkey           # rev 7
run get '' get foo
run get-json '' get foo -w json
run get-fields '' get foo -w fields
run get-simple '' get foo -w simple
run get-hex '' get foo --hex
run get-print-value-only '' get foo --print-value-only
run get-missing '' get nosuchkey
run get-missing-json '' get nosuchkey -w json
run get-prefix '' get foo --prefix
run get-prefix-limit '' get foo --prefix --limit 2
run get-prefix-limit-json '' get foo --prefix --limit 2 -w json
run get-prefix-keys-only '' get foo --prefix --keys-only
run get-prefix-keys-only-json '' get foo --prefix --keys-only -w json
run get-count-only-unknown-flag '' get foo --prefix --count-only   # etcdctl 3.4 has no --count-only
run get-from-key '' get --from-key foo1
run get-from-key-empty '' get --from-key ''
run get-range '' get foo foo2
run get-sort-modify-desc '' get foo --prefix --sort-by=MODIFY --order=DESCEND
run get-sort-key-desc '' get '' --prefix --sort-by=KEY --order=DESCEND
run get-sort-value-asc '' get foo --prefix --sort-by=VALUE --order=ASCEND
run get-sort-create '' get '' --from-key --sort-by=CREATE
run get-limit-desc '' get '' --prefix --limit 1 --order=DESCEND
run get-rev-1 '' get foo --rev=1
run get-rev-2 '' get foo --rev=2 -w json
run get-rev-future '' get foo --rev=1000
run get-bad-sort '' get foo --sort-by=NOPE
run get-consistency-s '' get foo --consistency=s
run put-prev-kv '' put foo bar-2 --prev-kv                     # rev 8
run put-prev-kv-json '' put foo bar-3 --prev-kv -w json        # rev 9
run put-json '' put foo bar-4 -w json                          # rev 10
run put-ignore-value-missing '' put nokey --ignore-value
run put-ignore-value '' put foo --ignore-value                 # rev 11 (value bar-4)
run put-ignore-lease-nolease '' put foo newval --ignore-lease  # rev 12
run put-bad-lease '' put foo bar --lease=1234abcd
run put-no-args '' put
run get-after-puts '' get foo -w json
run put-too-large "$(head -c 1600000 /dev/zero | tr '\0' 'a')" put bigkey
run put-empty-value '' put emptyval ''

# ---- del -------------------------------------------------------------------
run del '' del foo1
run del-missing '' del foo1
run del-prefix-prev-kv '' del fo --prefix --prev-kv
run del-json '' del zoo -w json
run del-from-key '' del --from-key stdin
run get-all-after-del '' get '' --prefix

# ---- txn -------------------------------------------------------------------
run put-txn-setup '' put k1 v1
run put-txn-setup '' put k2 v2
TXN1='value("k1") = "v1"

put k1 "v1-new"
get k2

put k3 "should-not-happen"


'
run txn-success "$TXN1" txn
run txn-failure "$TXN1" txn
run txn-json "$TXN1" txn -w json
TXN2='mod("missing") = "0"
create("k2") > "0"
version("k2") = "1"

get missing
put k4 v4

get k1


'
run txn-compare-missing "$TXN2" txn
TXN2b='
put k0 v0

put k4 v4
del k4


'
run txn-put-del-same-key-in-failure-branch "$TXN2b" txn
TXN3='
put a 1
put a 2



'
run txn-duplicate-key "$TXN3" txn
TXN4='
get k --prefix



'
run txn-get-prefix "$TXN4" txn
TXN5='value("k1") = "v1-new"

del k --prefix --prev-kv


'
run txn-del-prefix "$TXN5" txn -w json
TXN6='lease("k1") = "0"

put k1 withlease


'
run txn-lease-compare-panics "$TXN6" txn   # etcdctl 3.4 bug: lease() compare panics client-side
run txn-empty $'\n\n\n' txn -w json
run txn-bad-syntax 'value(k1) == "x"

' txn

# ---- lease -----------------------------------------------------------------
run lease-grant '' lease grant 600
LEASE=$(etcdctl --endpoints="$EP" lease grant 600 -w json | sed -n 's/.*"ID":\([0-9]*\).*/\1/p')
LHEX=$(printf '%x' "$LEASE")
run lease-grant-json '' lease grant 300 -w json
run put-with-lease '' put leased v --lease="$LHEX"
run put-with-lease2 '' put leased2 v --lease="$LHEX"
run lease-list '' lease list
run lease-list-json '' lease list -w json
run lease-timetolive '' lease timetolive "$LHEX"
run lease-timetolive-keys '' lease timetolive "$LHEX" --keys
run lease-timetolive-keys-json '' lease timetolive "$LHEX" --keys -w json
run lease-keep-alive-once '' lease keep-alive --once "$LHEX"
run lease-keep-alive-once-json '' lease keep-alive --once "$LHEX" -w json
runbg lease-keep-alive 2 lease keep-alive "$LHEX"
run lease-revoke '' lease revoke "$LHEX"
run lease-revoke-again '' lease revoke "$LHEX"
run lease-timetolive-revoked '' lease timetolive "$LHEX"
run lease-keep-alive-revoked '' lease keep-alive --once "$LHEX"
run get-leased-after-revoke '' get leased --prefix
run lease-grant-zero '' lease grant 0
run lease-grant-huge '' lease grant 9000000001
run lease-grant-bad '' lease grant abc
run lease-revoke-bad-id '' lease revoke zz
run lease-short '' lease grant 1
SHORT=$(etcdctl --endpoints="$EP" lease grant 1 -w json | sed -n 's/.*"ID":\([0-9]*\).*/\1/p')
run lease-timetolive-short '' lease timetolive "$(printf '%x' "$SHORT")"

# ---- watch -----------------------------------------------------------------
run put-watch-setup '' put w1 a
during() {
  etcdctl --endpoints="$EP" put w1 b >/dev/null
  etcdctl --endpoints="$EP" put w2 c >/dev/null
  etcdctl --endpoints="$EP" del w1 >/dev/null
}
runbg watch-prefix 1 watch w --prefix
during() {
  etcdctl --endpoints="$EP" put w1 d >/dev/null
  etcdctl --endpoints="$EP" del w1 >/dev/null
}
runbg watch-prefix-prev-kv-json 1 watch w --prefix --prev-kv -w json
WREV=$(etcdctl --endpoints="$EP" get w2 -w json | sed -n 's/.*"mod_revision":\([0-9]*\).*/\1/p')
during() {
  etcdctl --endpoints="$EP" put w1 e >/dev/null
  etcdctl --endpoints="$EP" put w1 f >/dev/null
}
runbg watch-key-prev-kv 1 watch w1 --prev-kv
runbg watch-rev-history 1 watch w --prefix --rev="$((WREV - 3))"
runbg watch-key 1 watch w2 --rev="$WREV" -w fields
run watch-interactive 'watch w2 --rev=1
' watch -i
during() { etcdctl --endpoints="$EP" put wi x >/dev/null; }
N=$((N + 1))
(cd "$WORK" && { printf 'watch wi\n'; sleep 2; } | etcdctl --endpoints="$EP" watch -i >"$WORK/bgout" 2>"$WORK/bgerr") &
WIPID=$!
sleep 0.7; etcdctl --endpoints="$EP" put wi x >/dev/null; wait "$WIPID"; rc=$?
{ printf '### command\netcdctl --endpoints=${ENDPOINTS} watch -i\n### stdin\nwatch wi\n### note\nstdin held open 2 s; `put wi x` ran meanwhile; EOF then\n### exit\n%d\n' "$rc"
  section stdout "$WORK/bgout"; section stderr "$WORK/bgerr"; } >"$(printf '%s/%03d-watch-interactive-live.txt' "$OUT" "$N")"
unset -f during

# ---- compaction ------------------------------------------------------------
CUR=$(etcdctl --endpoints="$EP" get w2 -w json | sed -n 's/.*"revision":\([0-9]*\).*/\1/p' | head -1)
run compaction '' compaction 5
run compaction-physical '' compaction --physical 6
run compaction-again '' compaction 6
run compaction-older '' compaction 3
run compaction-future '' compaction 100000
run get-compacted-rev '' get w2 --rev=4
run get-at-compact-rev '' get w2 --rev=6
runbg watch-compacted-rev 1 watch w2 --rev=2
run compaction-json '' compaction 7 -w json

# ---- member ----------------------------------------------------------------
run member-list '' member list
run member-list-json '' member list -w json
run member-list-table '' member list -w table
run member-list-fields '' member list -w fields
run member-add-learner '' member add m3 --peer-urls=http://127.0.0.1:23803 --learner
run member-list-with-learner '' member list
run member-list-with-learner-json '' member list -w json
LID=$(etcdctl --endpoints="$EP" member list | awk -F', ' '$6=="true" {print $1}' | head -1)
run member-add-dup-peer '' member add m4 --peer-urls=http://127.0.0.1:23803 --learner
run member-promote-unstarted '' member promote "$LID"
run member-update-learner '' member update "$LID" --peer-urls=http://127.0.0.1:23804
run member-remove-learner '' member remove "$LID"
run member-remove-missing '' member remove "$LID"
SELF=$(etcdctl --endpoints="$EP" member list | cut -d, -f1)
run member-update-self '' member update "$SELF" --peer-urls=http://127.0.0.1:$PPORT
run member-update-missing '' member update 1234 --peer-urls=http://127.0.0.1:23805
run member-promote-voter '' member promote "$SELF"
run member-promote-missing '' member promote 1234
run member-add-json '' member add m5 --peer-urls=http://127.0.0.1:23806 --learner -w json
LID=$(etcdctl --endpoints="$EP" member list | awk -F', ' '$6=="true" {print $1}' | head -1)
etcdctl --endpoints="$EP" member remove "$LID" >/dev/null
run member-remove-bad-id '' member remove xyz

# ---- endpoint --------------------------------------------------------------
run endpoint-status '' endpoint status
run endpoint-status-json '' endpoint status -w json
run endpoint-status-table '' endpoint status -w table
run endpoint-status-cluster '' endpoint status --cluster
run endpoint-health '' endpoint health
run endpoint-health-json '' endpoint health -w json
run endpoint-health-cluster '' endpoint health --cluster
run endpoint-hashkv '' endpoint hashkv
run endpoint-hashkv-json '' endpoint hashkv -w json
N=$((N + 1))
(cd "$WORK" && etcdctl --endpoints=127.0.0.1:1 --dial-timeout=1s endpoint health >"$WORK/out" 2>"$WORK/err"); rc=$?
{ printf '### command\netcdctl --endpoints=127.0.0.1:1 --dial-timeout=1s endpoint health\n### note\nnothing listens on 127.0.0.1:1\n### exit\n%d\n' "$rc"
  section stdout "$WORK/out"; section stderr "$WORK/err"; } >"$(printf '%s/%03d-endpoint-health-unreachable.txt' "$OUT" "$N")"
N=$((N + 1))
(cd "$WORK" && etcdctl --endpoints=127.0.0.1:1 --dial-timeout=1s get foo >"$WORK/out" 2>"$WORK/err"); rc=$?
{ printf '### command\netcdctl --endpoints=127.0.0.1:1 --dial-timeout=1s get foo\n### note\nnothing listens on 127.0.0.1:1\n### exit\n%d\n' "$rc"
  section stdout "$WORK/out"; section stderr "$WORK/err"; } >"$(printf '%s/%03d-get-unreachable.txt' "$OUT" "$N")"

# ---- maintenance -----------------------------------------------------------
run snapshot-save '' snapshot save snap.db
run snapshot-status '' snapshot status snap.db -w table
run snapshot-status-json '' snapshot status snap.db -w json
run defrag '' defrag
run defrag-cluster '' defrag --cluster
run move-leader-self '' move-leader "$SELF"
run move-leader-missing '' move-leader 1234
run alarm-list '' alarm list
run alarm-disarm '' alarm disarm
run version '' version

# ---- auth ------------------------------------------------------------------
run user-add-root '' user add root --new-user-password=rootpw
run user-add-alice '' user add alice --new-user-password=alicepw
run user-add-dup '' user add alice --new-user-password=x
run role-add '' role add reader
run role-add-dup '' role add reader
run role-grant-permission '' role grant-permission reader read foo
run role-grant-permission-prefix '' role grant-permission reader readwrite k --prefix
run role-get '' role get reader
run role-get-json '' role get reader -w json
run role-list '' role list
run user-grant-role '' user grant-role alice reader
run user-get '' user get alice
run user-get-detail '' user get alice --detail
run user-get-json '' user get alice -w json
run user-list '' user list
run auth-enable-noroot-role '' auth enable
run user-grant-root '' user grant-role root root
run auth-enable '' auth enable
run auth-get-nouser '' get foo
run auth-get-wrongpw '' get foo --user=alice:wrong
run auth-get-alice '' get foo --user=alice:alicepw
run auth-put-denied '' put foo x --user=alice:alicepw
run auth-put-allowed '' put k9 x --user=alice:alicepw
run auth-endpoint-health-nouser '' endpoint health
run auth-user-list-alice '' user list --user=alice:alicepw
run auth-user-list-root '' user list --user=root:rootpw
run auth-delete-root-role '' user revoke-role root root --user=root:rootpw
run auth-disable-nouser '' auth disable
run auth-disable '' auth disable --user=root:rootpw
run role-revoke-permission '' role revoke-permission reader foo
run role-revoke-permission-missing '' role revoke-permission reader nope
run user-revoke-role '' user revoke-role alice reader
run user-passwd $'newpw\n' user passwd alice --interactive=false
run user-delete '' user delete alice
run user-delete-missing '' user delete alice
run user-get-missing '' user get alice
run role-delete '' role delete reader
run role-get-missing '' role get reader

if [ "$WITH_PERF" = 1 ]; then
  run check-perf-l '' check perf --load=l
  mv "$(printf '%s/%03d-check-perf-l.txt' "$OUT" "$N")" "$OUT/check-perf-l.txt"
  N=$((N - 1))
fi
stop_etcd

# ---- NOSPACE alarm: a fresh etcd with a tiny backend quota -------------------
start_etcd --quota-backend-bytes=$((1024 * 1024))
head -c 200000 /dev/zero | tr '\0' 'b' >"$WORK/big"
for i in $(seq 1 20); do
  etcdctl --endpoints="$EP" put "big$i" <"$WORK/big" >/dev/null 2>&1 || break
done
run nospace-put '' put another value
run nospace-alarm-list '' alarm list
run nospace-alarm-list-json '' alarm list -w json
run nospace-endpoint-status '' endpoint status
run nospace-endpoint-status-json '' endpoint status -w json
run nospace-endpoint-health '' endpoint health
run nospace-get '' get big1 --keys-only
run nospace-del '' del big --prefix   # count varies (how many 200 kB values fit)
run nospace-txn-get $'\n\nget big1 --keys-only\n\n\n' txn
NREV=$(etcdctl --endpoints="$EP" get x -w json | sed -n 's/.*"revision":\([0-9]*\).*/\1/p')
run nospace-compact '' compaction "$NREV"
run nospace-defrag '' defrag
run nospace-put-still-alarmed '' put another value
run nospace-alarm-disarm '' alarm disarm
run nospace-alarm-list-after '' alarm list
run nospace-put-after-disarm '' put another value
stop_etcd

# ---- quorum loss: adding a voting member to a one-member cluster -------------
start_etcd
run member-add-voter '' member add m2 --peer-urls=http://127.0.0.1:23802
run member-add-second-voter '' member add m3 --peer-urls=http://127.0.0.1:23803
run noquorum-put '' put k v
run noquorum-get '' get k
run noquorum-get-serializable '' get k --consistency=s
run noquorum-endpoint-health '' endpoint health
run noquorum-endpoint-status '' endpoint status
run noquorum-member-list '' member list
SELF=$(etcdctl --endpoints="$EP" member list | awk -F', ' '$3=="default" {print $1}')
run noquorum-move-leader '' move-leader "$SELF"
stop_etcd
# ---- extra checks of server-side rules, on a fresh etcd --------------------------
start_etcd
# watch -i with a progress request; a 2-put txn, a prefix delete and a lease
# expiry while it runs (one response per revision, expiry = DELETE event)
N=$((N + 1))
(cd "$WORK" && { printf 'watch p --prefix\nprogress\n'; sleep 5; } |
  etcdctl --endpoints="$EP" watch -i -w json >"$WORK/bgout" 2>"$WORK/bgerr") &
WIPID=$!
sleep 0.7
printf '\nput p1 a\nput p2 b\n\n\n' | etcdctl --endpoints="$EP" txn >/dev/null
etcdctl --endpoints="$EP" del p --prefix >/dev/null
PL=$(etcdctl --endpoints="$EP" lease grant 2 -w json | sed -n 's/.*"ID":\([0-9]*\).*/\1/p')
etcdctl --endpoints="$EP" put p3 c --lease="$(printf '%x' "$PL")" >/dev/null
wait "$WIPID"; rc=$?
{ printf '### command\netcdctl --endpoints=${ENDPOINTS} watch -i -w json\n### stdin\nwatch p --prefix\nprogress\n'
  printf '### note\nstdin held open 5 s; meanwhile: txn {put p1 a; put p2 b}, del p --prefix, put p3 c with a 2 s lease that then expires; EOF then\n'
  printf '### exit\n%d\n' "$rc"
  section stdout "$WORK/bgout"; section stderr "$WORK/bgerr"; } >"$(printf '%s/%03d-extra-watch-progress-txn-delete-expiry.txt' "$OUT" "$N")"
# the saved snapshot = bbolt db + sha256(db) (32 bytes) appended
(cd "$WORK" && etcdctl --endpoints="$EP" snapshot save sha.db >/dev/null 2>&1)
SZ=$(stat -c %s "$WORK/sha.db")
HEAD_SHA=$(head -c $((SZ - 32)) "$WORK/sha.db" | sha256sum | cut -d' ' -f1)
TAIL_SHA=$(tail -c 32 "$WORK/sha.db" | od -An -tx1 | tr -d ' \n')
N=$((N + 1))
{ printf '### command\netcdctl --endpoints=${ENDPOINTS} snapshot save sha.db, then shell checks\n'
  printf '### exit\n0\n### stdout\n'
  printf 'size %% 512 = %d\n' $((SZ % 512))
  if [ "$HEAD_SHA" = "$TAIL_SHA" ]; then
    echo "last 32 bytes == sha256(all bytes before them)"
  else
    echo "last 32 bytes != sha256(rest): $TAIL_SHA vs $HEAD_SHA"
  fi
  printf '### stderr\n'; } >"$(printf '%s/%03d-extra-snapshot-trailing-sha256.txt' "$OUT" "$N")"
run extra-put-empty-key '' put '' v
run extra-get-empty-key '' get ''
run extra-put-ignore-lease-missing '' put nokey v --ignore-lease
run extra-put-ignore-value-with-value '' put k v --ignore-value
run extra-member-add-existing-peer-url '' member add x --peer-urls=http://127.0.0.1:$PPORT --learner
run extra-member-add-learner-1 '' member add l1 --peer-urls=http://127.0.0.1:23811 --learner
sleep 1 # etcd derives new member ids from the URLs and the time in seconds
run extra-member-add-learner-2 '' member add l2 --peer-urls=http://127.0.0.1:23812 --learner
sleep 1
run extra-member-add-learner-same-url '' member add l3 --peer-urls=http://127.0.0.1:23811 --learner
LID=$(etcdctl --endpoints="$EP" member list | awk -F', ' '$6=="true" {print $1}' | head -1)
etcdctl --endpoints="$EP" member remove "$LID" >/dev/null
TXNBIG=$'\n'
for i in $(seq 1 129); do TXNBIG+="put big$i v"$'\n'; done
TXNBIG+=$'\n\n'
run extra-txn-129-ops "$TXNBIG" txn
TXNOK=$'\n'
for i in $(seq 1 128); do TXNOK+="put ok$i v"$'\n'; done
TXNOK+=$'\n\n'
run extra-txn-128-ops "$TXNOK" txn -w json
run extra-lease-keepalive-setup '' lease grant 600
KL=$(etcdctl --endpoints="$EP" lease grant 600 -w json | sed -n 's/.*"ID":\([0-9]*\).*/\1/p')
KLHEX=$(printf '%x' "$KL")
during() { etcdctl --endpoints="$EP" lease revoke "$KLHEX" >/dev/null; }
runbg extra-lease-keep-alive-then-revoked 1 lease keep-alive "$KLHEX"
etcdctl --endpoints="$EP" user add root --new-user-password=rootpw >/dev/null
etcdctl --endpoints="$EP" user add bob --new-user-password=bobpw >/dev/null
etcdctl --endpoints="$EP" role add r >/dev/null
etcdctl --endpoints="$EP" role grant-permission r read a >/dev/null
etcdctl --endpoints="$EP" user grant-role bob r >/dev/null
run extra-get-with-user-auth-disabled '' get a --user=bob:bobpw
etcdctl --endpoints="$EP" auth enable >/dev/null
run extra-auth-watch-denied '' watch zzz --user=bob:bobpw
run extra-auth-member-add-nonroot '' member add y --peer-urls=http://127.0.0.1:23821 --learner --user=bob:bobpw
run extra-auth-member-list-nonroot '' member list --user=bob:bobpw
run extra-auth-endpoint-status-nonroot '' endpoint status --user=bob:bobpw
run extra-auth-endpoint-health-nonroot '' endpoint health --user=bob:bobpw
run extra-auth-defrag-nonroot '' defrag --user=bob:bobpw
run extra-auth-snapshot-nonroot '' snapshot save s.db --user=bob:bobpw
run extra-auth-lease-grant-nonroot '' lease grant 60 --user=bob:bobpw
run extra-auth-alarm-list-nonroot '' alarm list --user=bob:bobpw
run extra-auth-compaction-nonroot '' compaction 1 --user=bob:bobpw
run extra-auth-user-get-self '' user get bob --user=bob:bobpw
run extra-auth-user-add-empty '' user add '' --new-user-password=x --user=root:rootpw
run extra-auth-grant-missing-role '' user grant-role bob nosuchrole --user=root:rootpw
run extra-auth-revoke-ungranted-role '' user revoke-role root r --user=root:rootpw
run extra-auth-status '' auth status --user=root:rootpw
stop_etcd

# ---- two members: a learner joins, is promoted, takes the leadership ----------
start_etcd
EP2=127.0.0.1:$((CPORT + 1))
PEER2=http://127.0.0.1:$((PPORT + 1))
run cluster-member-add-learner '' member add m2 --peer-urls=$PEER2 --learner
etcd --name m2 --data-dir "$WORK/data2" \
  --listen-client-urls "http://$EP2" --advertise-client-urls "http://$EP2" \
  --listen-peer-urls "$PEER2" --initial-advertise-peer-urls "$PEER2" \
  --initial-cluster "default=http://127.0.0.1:$PPORT,m2=$PEER2" \
  --initial-cluster-state existing --listen-metrics-urls "" >"$WORK/etcd2.log" 2>&1 &
ETCD2_PID=$!
for _ in $(seq 1 100); do
  etcdctl --endpoints="$EP" member list 2>/dev/null | grep -q ", started, m2," && break
  sleep 0.1
done
sleep 1 # let the learner catch up with the leader's log before promoting
run cluster-member-list-learner-started '' member list -w table
run cluster-endpoint-status-learner '' endpoint status --cluster -w table
EP_SAVE=$EP; EP=$EP2
run cluster-learner-get-linearizable '' get foo
run cluster-learner-get-serializable '' get foo --consistency=s
run cluster-learner-put '' put foo bar
runbg cluster-learner-watch 2 watch foo
run cluster-learner-member-list '' member list
EP=$EP_SAVE
LID=$(etcdctl --endpoints="$EP" member list | awk -F', ' '$3=="m2" {print $1}')
SELF=$(etcdctl --endpoints="$EP" member list | awk -F', ' '$3=="default" {print $1}')
run cluster-member-promote '' member promote "$LID"
run cluster-member-list-promoted '' member list
EP_SAVE=$EP; EP="$EP,$EP2"
run cluster-endpoint-status-two '' endpoint status -w table
run cluster-endpoint-health-two '' endpoint health
run cluster-move-leader '' move-leader "$LID"
run cluster-endpoint-status-after-move '' endpoint status
run cluster-move-leader-back '' move-leader "$SELF"
run cluster-defrag-cluster '' defrag --cluster
run cluster-snapshot-two-endpoints '' snapshot save two.db
EP=$EP_SAVE
run cluster-member-remove-voter '' member remove "$LID"
kill "$ETCD2_PID"; wait "$ETCD2_PID" 2>/dev/null; ETCD2_PID=
stop_etcd

echo "wrote $N fixtures to $OUT"
