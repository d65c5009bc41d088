#!/usr/bin/env bash
# cluster.sh — three keeld processes on 127.0.0.1 (e2e). Every wait polls an
# HTTP endpoint (/health, /test/status) with a deadline; nothing waits for a
# fixed time. Writes go through keeld's TEST-ONLY endpoints
# (--unsafe-test-endpoints) until the etcd gRPC services land.
#
#   1. start 3 nodes -> a leader is elected; /health is 200 on all three
#   2. writes through every node (followers forward to the leader)
#   3. kill -9 the leader -> the others elect a new leader within 3 election
#      timeouts; writes go on
#   4. restart the killed node -> it catches up: every write acknowledged
#      before and after the kill reads back (linearizable) on every node
#   5. kill -9 a follower, 400 writes (--snapshot-count 100: the log is
#      compacted past it), restart it -> it catches up by snapshot; every
#      write reads back on it
#   6. SIGTERM the leader -> exit status 0 within 2 s; the rest still serve
#
# Usage: cluster.sh <path to keeld>
set -euo pipefail

. "$(dirname "$0")/lib.sh"
LIB_ARGS=(--snapshot-count 100 --unsafe-test-endpoints)
lib_init "$1" 3

status() { curl -s -m 2 "$(url "$1" /test/status)" || true; }
field() { sed -n "s/.*\"$1\":\"\\{0,1\\}\\([0-9a-z]*\\)\"\\{0,1\\}.*/\\1/p"; }
leader_of() { status "$1" | field leader; }
id_of() { status "$1" | field id; }
put() { curl -s -m 5 -XPOST "$(url "$1" "/test/put?key=$2")" --data-binary "$3"; }
get() { curl -s -m 5 "$(url "$1" "/test/get?key=$2")"; }
tmp=$LIB_TMP

# 1. election
for i in 1 2 3; do start_node "$i"; done
wait_healthy 1 2 3 || exit 1
declare -a ids
for i in 1 2 3; do ids[$i]=$(id_of "$i"); done
leader=$(leader_of 1)
lnode=0
for i in 1 2 3; do [ "${ids[$i]}" = "$leader" ] && lnode=$i; done
[ "$lnode" != 0 ] && ok "leader is n$lnode" || { bad "no leader known ($leader)"; exit 1; }
for i in 1 2 3; do
  [ "$(leader_of "$i")" = "$leader" ] && ok "n$i agrees on the leader" || bad "n$i names another leader"
done
code=$(curl -s -o /dev/null -w '%{http_code}' "$(url 1 /version)")
[ "$code" = 200 ] && ok "/version 200" || bad "/version $code"

# 2. writes through every node
acked=()
for k in $(seq 1 30); do
  i=$(((k % 3) + 1))
  if put "$i" "k$k" "v$k" | grep -q '"revision"'; then acked+=("$k"); fi
done
[ "${#acked[@]}" = 30 ] && ok "30 writes acknowledged through all nodes" || bad "only ${#acked[@]} of 30 writes acknowledged"

# 3. kill -9 the leader
t0=$(now_ms)
kill_node "$lnode"
others=()
for i in 1 2 3; do [ "$i" != "$lnode" ] && others+=("$i"); done
new_leader() {
  local l
  l=$(leader_of "${others[0]}")
  [ -n "$l" ] && [ "$l" != 0000000000000000 ] && [ "$l" != "$leader" ] &&
    [ "$(leader_of "${others[1]}")" = "$l" ]
}
if until_ok 10000 new_leader; then
  dt=$(($(now_ms) - t0))
  echo "     new leader after ${dt} ms (election timeout ${ET} ms)"
  [ "$dt" -le $((3 * ET)) ] && ok "new leader within 3 election timeouts" || bad "new leader after ${dt} ms > $((3 * ET))"
else
  bad "no new leader after the kill"; exit 1
fi
for i in "${others[@]}"; do until_ok 5000 healthy "$i" && ok "n$i /health 200 after the kill" || bad "n$i unhealthy after the kill"; done
for k in $(seq 31 60); do
  i=${others[$((k % 2))]}
  if put "$i" "k$k" "v$k" | grep -q '"revision"'; then acked+=("$k"); fi
done
[ "${#acked[@]}" = 60 ] && ok "30 more writes with one node down" || bad "${#acked[@]} of 60 writes acknowledged"

# 4. restart the killed node: it catches up
start_node "$lnode"
until_ok 15000 healthy "$lnode" && ok "restarted n$lnode /health 200" || bad "restarted n$lnode unhealthy"
missing=0
for i in 1 2 3; do
  for k in "${acked[@]}"; do
    v=$(get "$i" "k$k")
    [ "$v" = "v$k" ] || { missing=$((missing + 1)); [ $missing -lt 5 ] && echo "     n$i k$k = '$v'"; }
  done
done
[ "$missing" = 0 ] && ok "every acknowledged write reads back on every node" || bad "$missing reads wrong"

# 5. a follower misses more than the log keeps: snapshot catch-up
leader=$(leader_of 1)
fnode=0
for i in 1 2 3; do [ "${ids[$i]}" != "$leader" ] && fnode=$i; done
kill_node "$fnode"
alive=()
for i in 1 2 3; do [ "$i" != "$fnode" ] && alive+=("$i"); done
export -f put
export ep_a ep_b
ep_a=$(url "${alive[0]}" "") ep_b=$(url "${alive[1]}" "")
t0=$(now_ms)
seq 1 400 | xargs -P 8 -I{} bash -c '
  if [ $(( {} % 2 )) = 0 ]; then e=$ep_a; else e=$ep_b; fi
  curl -s -m 5 -XPOST "$e/test/put?key=s{}" --data-binary "w{}"' \
  >"$tmp/bulk.out"
n_ok=$(grep -c revision "$tmp/bulk.out" || true)
echo "     400 writes, 8 concurrent curl clients, 2 of 3 nodes: $(($(now_ms) - t0)) ms"
[ "$n_ok" = 400 ] && ok "400 concurrent writes with a follower down" || bad "$n_ok of 400 concurrent writes acknowledged"
grep -q "log compacted" "$tmp/n${alive[0]}.log" && ok "the log was compacted" || bad "no log compaction logged"
start_node "$fnode"
until_ok 15000 healthy "$fnode" && ok "restarted n$fnode /health 200" || bad "restarted n$fnode unhealthy"
grep -q "installed snapshot" "$tmp/n$fnode.log" && ok "n$fnode caught up by snapshot" || bad "n$fnode did not install a snapshot"
missing=0
for k in $(seq 1 400) ; do
  v=$(get "$fnode" "s$k")
  [ "$v" = "w$k" ] || { missing=$((missing + 1)); [ $missing -lt 5 ] && echo "     n$fnode s$k = '$v'"; }
done
for k in "${acked[@]}"; do
  [ "$(get "$fnode" "k$k")" = "v$k" ] || missing=$((missing + 1))
done
[ "$missing" = 0 ] && ok "every write reads back on the node restored from the snapshot" || bad "$missing reads wrong after the snapshot"
put "$fnode" after-snap yes | grep -q '"revision"' && ok "write through the restored node" || bad "write through the restored node failed"

# 6. SIGTERM the leader: exit 0 within 2 s
leader=$(leader_of "${others[0]}")
lnode=0
for i in 1 2 3; do [ "${ids[$i]}" = "$leader" ] && lnode=$i; done
[ "$lnode" != 0 ] || { bad "no leader before SIGTERM"; exit 1; }
stop_node "$lnode"
rc=$LIB_RC dt=$LIB_MS
echo "     SIGTERM to the leader n$lnode: exit $rc after ${dt} ms"
[ "$rc" = 0 ] && ok "SIGTERM exit status 0" || bad "SIGTERM exit status $rc"
[ "$dt" -le 2000 ] && ok "SIGTERM exit within 2 s" || bad "SIGTERM took ${dt} ms"
grep -q "leadership handed over" "$tmp/n$lnode.log" && ok "leadership handed over before exit" || bad "no leadership hand-over logged"
rest=()
for i in 1 2 3; do [ "$i" != "$lnode" ] && rest+=("$i"); done
until_ok 5000 healthy "${rest[0]}" && ok "the other two serve after the stop" || bad "cluster unhealthy after SIGTERM"
put "${rest[1]}" after-stop yes | grep -q '"revision"' && ok "write after the stop" || bad "write after the stop failed"

# Sanitizer builds: any report in any node's log fails the test.
lib_sanitizer_check

exit $fail
