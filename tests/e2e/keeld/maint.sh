#!/usr/bin/env bash
# maint.sh — etcd's Maintenance service, /metrics, automatic compaction and
# snapshot restore on real keeld processes with the real etcdctl 3.4 (e2e).
# Every wait polls with a deadline (lib.sh's until_ok).
#
#   1. 3 nodes (quota 1 MiB, --snapshot-count 4 so the raft log, which
#      shares the quota's file in keel, stays short); move-leader to n1
#   2. recorded etcd sessions replayed against n1 (maint_replay.py):
#      endpoint status/health/hashkv, snapshot save, defrag, move-leader
#      (self, bad id), alarm list/disarm, version (122-130, 133, 136-142);
#      the snapshot file is etcd's shape (size % 512 == 32, sha256 trailer
#      of everything before: 206) and `keel snapshot status` verifies it
#   3. HashKV at one revision equal on all three nodes (hash and compact
#      revision); Hash answers
#   4. two-endpoint sessions (245-249, 251): status, health, move-leader to
#      n2 and back, snapshot save refused with two endpoints
#   5. /metrics: every documented name present; after puts the proposal,
#      applied-index, gRPC Put and key figures move; a watch moves
#      keel_watchers and keel_watch_events_sent_total
#   6. NOSPACE: 200 kB values until the quota refuses one; the recorded
#      nospace session (181-195): alarm list, status errors, health, reads,
#      del, txn, compaction, defrag, still alarmed, disarm, put works again;
#      a second NOSPACE listed and disarmed by `keel alarm list/disarm`
#   7. snapshot save -> `keel snapshot restore` x3 (bad inputs refused, no
#      directory left) -> a new cluster n4..n6 starts from it with every key,
#      takes writes; its periodic auto-compaction (retention 1s) compacts
#   8. quorum lost on n4: move-leader says "no leader endpoint given" (204)
#
# Usage: maint.sh <path to keeld> <path to keel>
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
fixtures=$here/../compat-fixtures
KEEL=$(cd "$(dirname "$2")" && pwd)/$(basename "$2")
[ -x "$ETCDCTL" ] || { echo "etcdctl missing (scripts/install-deps.sh: etcd-client)"; exit 1; }
[ -x "$KEEL" ] || { echo "keel not found at '$KEEL'"; exit 1; }
lib_init "$1" 6
LIB_ARGS=(--quota-backend-bytes 1048576 --snapshot-count 4)
fx() { # fx <NNN...>: the fixture files with those numbers
  local n
  for n in "$@"; do echo "$fixtures/$n"-*.txt; done
}
hexid() { printf '%x' "$(member_id "$1")"; } # as etcdctl prints ids
replay() { # replay <endpoints> <what> <args...>
  local eps=$1 what=$2
  shift 2
  if python3 "$here/maint_replay.py" "$eps" "$@" >"$LIB_TMP/replay.out" 2>&1; then
    ok "etcdctl matches etcd 3.4: $what ($(grep -c '^ok' "$LIB_TMP/replay.out") sessions)"
  else
    grep -v '^ok' "$LIB_TMP/replay.out" | head -60
    bad "etcdctl differs from etcd 3.4: $what"
  fi
}
metric() { # metric <node> <name with labels>: its value, or empty
  curl -s -m 2 "$(url "$1" /metrics)" | awk -v n="$2" '$1 == n { print $2 }'
}

# 1. start; n1 leads
for i in 1 2 3; do start_node "$i"; done
wait_healthy 1 2 3 || exit 1
N1=$(hexid 1)
N2=$(hexid 2)
out=$(ectl move-leader "$N1" 2>&1)
case "$out" in
  *"Leadership transferred from "*" to $N1") ok "move-leader to n1: $out" ;;
  *) bad "move-leader to n1: $out" ;;
esac
l=$(leader_node) && expect "n1 leads after move-leader" 1 "$l"

# 2. recorded sessions against n1 (state: a few keys and a compaction)
for k in foo bar baz; do ectl put "$k" "v-$k" >/dev/null; done
ectl put foo v2 >/dev/null
rev=$(ectl get foo -w json | json 'j["header"]["revision"]')
ectl compaction $((rev - 1)) >/dev/null
ETCDID=(--id 2e1259d415f2a040="$N1" --id 53be07ef8a27baa7="$N2")
replay "$(ep 1)" "status, health, hashkv, snapshot, defrag, move-leader, alarm" \
  "${ETCDID[@]}" $(fx 122 123 124 125 126 127 128 129 130 133 136 137 138 139 140 141 142)
( cd "$LIB_TMP" && ectl_at 1 snapshot save sha.db >/dev/null 2>&1 )
if python3 - "$LIB_TMP/sha.db" <<'EOF'
import hashlib, sys
d = open(sys.argv[1], 'rb').read()
sys.exit(0 if len(d) % 512 == 32 and hashlib.sha256(d[:-32]).digest() == d[-32:] else 1)
EOF
then ok "snapshot file: size % 512 = 32, last 32 bytes == sha256(all before) (206)"
else bad "snapshot file is not etcd's shape"; fi
out=$("$KEEL" snapshot status "$LIB_TMP/sha.db" -w json)
if grep -q '"integrity":"ok"' <<<"$out"; then
  ok "keel snapshot status: trailer verified"
else bad "keel snapshot status does not verify the trailer"; fi

# 3. HashKV equal on every node at one revision
rev=$(ectl put hk 1 -w json | json 'j["header"]["revision"]')
hashes() { ectl endpoint hashkv --rev "$rev" -w json 2>/dev/null |
  json '" ".join(sorted(set("%d/%d" % (e["HashKV"]["hash"], e["HashKV"]["compact_revision"]) for e in j))) + " " + str(len(j))'; }
same_hash() { h=$(hashes); [ "$(echo "$h" | wc -w)" = 2 ] && [ "${h##* }" = 3 ]; }
if until_ok 10000 same_hash; then ok "HashKV at revision $rev equal on 3 nodes ($h)"
else bad "HashKV differs at revision $rev: $(hashes)"; fi
out=$(ectl put hk 2 >/dev/null && ectl endpoint hashkv --rev "$rev" -w json | json 'len(set(e["HashKV"]["hash"] for e in j))')
expect "HashKV at the old revision unchanged by a later write" 1 "$out"

# 4. the two-endpoint sessions (n1 leads, n2 follows)
replay "$(ep 1),$(ep 2)" "two endpoints: status, health, move-leader, snapshot" \
  "${ETCDID[@]}" $(fx 245 246 247 248 249 251)
l=$(leader_node) && expect "n1 leads again after move-leader back" 1 "$l"

# 5. /metrics
page=$(curl -s -m 2 "$(url 1 /metrics)")
missing=""
for n in keel_raft_term keel_raft_commit_index keel_raft_applied_index \
  keel_raft_leader_changes_total keel_raft_is_leader \
  keel_proposals_committed_total keel_proposals_failed_total \
  keel_disk_fsync_duration_seconds_bucket keel_disk_fsync_duration_seconds_count \
  keel_apply_duration_seconds_bucket keel_apply_duration_seconds_sum \
  keel_peer_send_failures_total keel_peer_queue_bytes keel_grpc_requests_total \
  keel_grpc_request_duration_seconds_bucket keel_watchers \
  keel_watch_events_sent_total keel_db_size_bytes keel_keys_total; do
  grep -q "^$n[{ ]" <<<"$page" || missing="$missing $n"
done
expect "/metrics has every documented name" "" "$missing"
expect "/metrics: n1 is leader" 1 "$(metric 1 keel_raft_is_leader)"
PUT='keel_grpc_requests_total{method="/etcdserverpb.KV/Put",code="OK"}'
c0=$(metric 1 keel_proposals_committed_total)
a0=$(metric 1 keel_raft_applied_index)
p0=$(metric 1 "$PUT")
k0=$(metric 1 keel_keys_total)
f0=$(metric 1 keel_disk_fsync_duration_seconds_count)
for i in 1 2 3 4 5; do ectl_at 1 put "m$i" x >/dev/null; done
c1=$(metric 1 keel_proposals_committed_total)
a1=$(metric 1 keel_raft_applied_index)
p1=$(metric 1 "$PUT")
f1=$(metric 1 keel_disk_fsync_duration_seconds_count)
expect "keel_proposals_committed_total +5" $((c0 + 5)) "$c1"
expect "gRPC Put OK +5" $((${p0:-0} + 5)) "$p1"
[ "$a1" -ge $((a0 + 5)) ] && ok "keel_raft_applied_index moved ($a0 -> $a1)" || bad "applied index $a0 -> $a1"
[ "$f1" -gt "$f0" ] && ok "fsync histogram counted ($f0 -> $f1)" || bad "fsync count $f0 -> $f1"
keys_now() { [ "$(metric 1 keel_keys_total)" = $((k0 + 5)) ]; }
until_ok 3000 keys_now && ok "keel_keys_total +5" || bad "keel_keys_total $(metric 1 keel_keys_total), want $((k0 + 5))"
w0=$(metric 1 keel_watch_events_sent_total)
"$ETCDCTL" --endpoints="$(ep 1)" watch wkey >"$LIB_TMP/watch.out" 2>&1 &
wpid=$!
watching() { [ "$(metric 1 keel_watchers)" -ge 1 ]; }
until_ok 10000 watching && ok "keel_watchers >= 1 with a watch open" || bad "keel_watchers $(metric 1 keel_watchers)"
ectl put wkey 1 >/dev/null
events() { [ "$(metric 1 keel_watch_events_sent_total)" -gt "$w0" ]; }
until_ok 10000 events && ok "keel_watch_events_sent_total moved" || bad "watch events $(metric 1 keel_watch_events_sent_total)"
kill -TERM "$wpid" 2>/dev/null
wait "$wpid" 2>/dev/null
[ "$(metric 1 keel_db_size_bytes)" -gt 0 ] && ok "keel_db_size_bytes > 0" || bad "db size"

# 6. NOSPACE and its recovery, as the recorded session
head -c 200000 /dev/zero | tr '\0' 'b' >"$LIB_TMP/big"
nbig=0
for i in $(seq 1 20); do
  ectl_at 1 put "big$i" <"$LIB_TMP/big" >/dev/null 2>&1 || break
  nbig=$i
done
[ "$nbig" -ge 1 ] && [ "$nbig" -lt 20 ] && ok "quota refused a write after $nbig values of 200 kB" ||
  bad "quota: $nbig values fit"
nrev=$(ectl_at 1 get x -w json | json 'j["header"]["revision"]')
replay "$(ep 1)" "NOSPACE: alarm, status, reads, compact, defrag, disarm" \
  "${ETCDID[@]}" --sub 188:5="$nbig" --sub "190:compaction 7=compaction $nrev" \
  --sub "190:revision 7=revision $nrev" $(fx 181 182 183 184 185 186 187 188 189 190 191 192 193 194 195)
expect "no alarm left" "" "$(ectl alarm list)"
# keel's own alarm commands on a second NOSPACE
for i in $(seq 21 40); do
  ectl_at 1 put "big$i" <"$LIB_TMP/big" >/dev/null 2>&1 || break
done
want="memberID:$(member_id 1) alarm:NOSPACE"
expect "keel alarm list shows the NOSPACE of n1" "$want" "$("$KEEL" --endpoints="$(ep 2)" alarm list)"
expect "keel alarm disarm prints what it disarmed" "$want" "$("$KEEL" --endpoints="$(ep 3)" alarm disarm)"
expect "no alarm after keel alarm disarm" "" "$(ectl alarm list)"

# 7. snapshot save -> keel snapshot restore -> a new cluster from it
( cd "$LIB_TMP" && "$KEEL" --endpoints="$(ep 2)" snapshot save full.db >"$LIB_TMP/save.out" 2>&1 )
grep -q "sha256 verified" "$LIB_TMP/save.out" && ok "keel snapshot save verified the trailer" ||
  bad "keel snapshot save: $(cat "$LIB_TMP/save.out")"
keys_before=$(ectl get "" --from-key --keys-only | grep -c .)
newc=$(members_spec 4 5 6)
restore() { # restore <i> <file> [extra flags]
  local i=$1 f=$2
  shift 2
  "$KEEL" snapshot restore "$f" --data-dir "$(data_dir "$i")" --name "n$i" \
    --initial-cluster "$newc" --initial-advertise-peer-urls "$(peer_url "$i")" "$@"
}
head -c 5000 "$LIB_TMP/full.db" >"$LIB_TMP/short.db"
out=$(restore 4 "$LIB_TMP/short.db" 2>&1); rc=$?
[ $rc = 1 ] && [ ! -e "$(data_dir 4)" ] && ok "truncated file refused: $out" || bad "truncated: rc $rc $out"
cp "$LIB_TMP/full.db" "$LIB_TMP/flip.db"
printf 'Z' | dd of="$LIB_TMP/flip.db" bs=1 seek=300 conv=notrunc 2>/dev/null
out=$(restore 4 "$LIB_TMP/flip.db" 2>&1); rc=$?
[ $rc = 1 ] && [ ! -e "$(data_dir 4)" ] && [ ! -e "$(data_dir 4).restoring" ] &&
  ok "corrupt file refused, nothing left: $out" || bad "corrupt: rc $rc $out"
for i in 4 5 6; do
  out=$(restore "$i" "$LIB_TMP/full.db" 2>/dev/null); rc=$?
  case "$out" in *$'\r'*) bad "progress bar drawn with stdout not a terminal" ;; esac
  [ $rc = 0 ] && ok "n$i restored: $out" || bad "restore n$i: rc $rc $out"
done
if command -v script >/dev/null; then # a terminal: the progress bar
  out=$(script -qec "'$KEEL' snapshot restore '$LIB_TMP/full.db' --data-dir '$LIB_TMP/tty'" /dev/null)
  case "$out" in *$'\r['*'100%'*) ok "progress bar drawn on a terminal" ;;
    *) bad "no progress bar on a terminal: $out" ;; esac
fi
out=$(restore 4 "$LIB_TMP/full.db" 2>&1); rc=$?
[ $rc = 2 ] && ok "restore into an existing data dir refused: $out" || bad "existing dir: rc $rc $out"
for i in 1 2 3; do kill_node "$i"; done
for i in 4 5 6; do
  "$KEELD" --name "n$i" --data-dir "$(data_dir "$i")" \
    --listen-client-urls "$(url "$i" "")" --advertise-client-urls "$(url "$i" "")" \
    --listen-peer-urls "$(peer_url "$i")" --initial-advertise-peer-urls "$(peer_url "$i")" \
    --initial-cluster "$newc" --heartbeat-interval "$HB" --election-timeout "$ET" \
    --auto-compaction-mode periodic --auto-compaction-retention 1s \
    >>"$(log_of "$i")" 2>&1 &
  pids[$i]=$!
done
wait_healthy 4 5 6 || exit 1
expect "restored cluster has every key" "$keys_before" "$(ectl get "" --from-key --keys-only | grep -c .)"
expect "restored value" "v2" "$(ectl get foo --print-value-only)"
ids=$(ectl member list -w json | json '" ".join(sorted("%x" % m["ID"] for m in j["members"]))')
[ "$(echo "$ids" | wc -w)" = 3 ] && ! grep -q "$N1" <<<"$ids" && ok "restored cluster has 3 new members" ||
  bad "restored members: $ids"
r0=$(ectl put after-restore 1 -w json | json 'j["header"]["revision"]')
[ -n "$r0" ] && ok "restored cluster takes writes (revision $r0)" || bad "write after restore"
compacted() {
  local o
  o=$(ectl get after-restore --rev "$r0" 2>&1)
  grep -q "required revision has been compacted" <<<"$o"
}
ectl put after-restore 2 >/dev/null
if until_ok 15000 compacted; then ok "periodic auto-compaction (1s) compacted past revision $r0"
else bad "no automatic compaction within 15 s"; fi

# 8. no quorum: etcdctl finds no leader to move
kill_node 5
kill_node 6
noleader() { [ "$(status_json 4 | json 'j[0]["Status"].get("leader", 0)')" = 0 ]; }
until_ok 10000 noleader || bad "n4 still names a leader"
replay "$(ep 4)" "move-leader without quorum" --id 2e1259d415f2a040="$(hexid 4)" $(fx 204)

lib_sanitizer_check
exit $fail
