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

keeld=$1
command -v curl >/dev/null || { echo "curl missing (scripts/install-deps.sh)"; exit 1; }
command -v python3 >/dev/null || { echo "python3 missing"; exit 1; }

HB=50
ET=500
tmp=$(mktemp -d)
declare -a pids=(0 0 0 0)

cleanup() {
  for i in 1 2 3; do
    if [ "${pids[$i]}" != 0 ]; then kill -9 "${pids[$i]}" 2>/dev/null || true; fi
  done
  wait 2>/dev/null || true
  if [ "${fail:-0}" != 0 ]; then
    for i in 1 2 3; do echo "--- log of n$i (last 30 lines)"; tail -30 "$tmp/n$i.log" || true; done
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# Six free ports (peer 1-3, client 1-3), chosen by the kernel.
read -r -a ports < <(python3 -c '
import socket
s=[socket.socket() for _ in range(6)]
for x in s: x.bind(("127.0.0.1",0))
print(" ".join(str(x.getsockname()[1]) for x in s))
for x in s: x.close()')
peer() { echo "${ports[$(($1 - 1))]}"; }
client() { echo "${ports[$(($1 + 2))]}"; }
cluster="n1=http://127.0.0.1:$(peer 1),n2=http://127.0.0.1:$(peer 2),n3=http://127.0.0.1:$(peer 3)"

start() { # start <i>
  local i=$1
  "$keeld" --name "n$i" --data-dir "$tmp/d$i" \
    --listen-client-urls "http://127.0.0.1:$(client "$i")" \
    --listen-peer-urls "http://127.0.0.1:$(peer "$i")" \
    --initial-advertise-peer-urls "http://127.0.0.1:$(peer "$i")" \
    --initial-cluster "$cluster" --heartbeat-interval $HB \
    --election-timeout $ET --snapshot-count 100 --unsafe-test-endpoints >>"$tmp/n$i.log" 2>&1 &
  pids[$i]=$!
}

fail=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fail=1; }

now_ms() { date +%s%3N; }
# until_ok <deadline ms> <command...>: polls every 20 ms.
until_ok() {
  local deadline=$(($(now_ms) + $1)); shift
  until "$@"; do
    [ "$(now_ms)" -lt "$deadline" ] || return 1
    sleep 0.02
  done
}
healthy() { [ "$(curl -s -o /dev/null -w '%{http_code}' -m 2 "http://127.0.0.1:$(client "$1")/health")" = 200 ]; }
status() { curl -s -m 2 "http://127.0.0.1:$(client "$1")/test/status" || true; }
field() { sed -n "s/.*\"$1\":\"\\{0,1\\}\\([0-9a-z]*\\)\"\\{0,1\\}.*/\\1/p"; }
leader_of() { status "$1" | field leader; }
id_of() { status "$1" | field id; }
put() { curl -s -m 5 -XPOST "http://127.0.0.1:$(client "$1")/test/put?key=$2" --data-binary "$3"; }
get() { curl -s -m 5 "http://127.0.0.1:$(client "$1")/test/get?key=$2"; }

# 1. election
for i in 1 2 3; do start "$i"; done
for i in 1 2 3; do
  if until_ok 15000 healthy "$i"; then ok "n$i /health 200"; else bad "n$i /health not 200"; exit 1; fi
done
declare -a ids
for i in 1 2 3; do ids[$i]=$(id_of "$i"); done
leader=$(leader_of 1)
lnode=0
for i in 1 2 3; do [ "${ids[$i]}" = "$leader" ] && lnode=$i; done
[ "$lnode" != 0 ] && ok "leader is n$lnode" || { bad "no leader known ($leader)"; exit 1; }
for i in 1 2 3; do
  [ "$(leader_of "$i")" = "$leader" ] && ok "n$i agrees on the leader" || bad "n$i names another leader"
done
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$(client 1)/version")
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
kill -9 "${pids[$lnode]}"
wait "${pids[$lnode]}" 2>/dev/null || true
pids[$lnode]=0
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
start "$lnode"
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
kill -9 "${pids[$fnode]}"
wait "${pids[$fnode]}" 2>/dev/null || true
pids[$fnode]=0
alive=()
for i in 1 2 3; do [ "$i" != "$fnode" ] && alive+=("$i"); done
export -f put
export ports_str="${ports[*]}"
t0=$(now_ms)
seq 1 400 | xargs -P 8 -I{} bash -c '
  read -r -a ports <<<"$ports_str"
  i=$(( {} % 2 == 0 ? '"${alive[0]}"' : '"${alive[1]}"' ))
  curl -s -m 5 -XPOST "http://127.0.0.1:${ports[$((i + 2))]}/test/put?key=s{}" --data-binary "w{}"' \
  >"$tmp/bulk.out"
n_ok=$(grep -c revision "$tmp/bulk.out" || true)
echo "     400 writes, 8 concurrent curl clients, 2 of 3 nodes: $(($(now_ms) - t0)) ms"
[ "$n_ok" = 400 ] && ok "400 concurrent writes with a follower down" || bad "$n_ok of 400 concurrent writes acknowledged"
grep -q "log compacted" "$tmp/n${alive[0]}.log" && ok "the log was compacted" || bad "no log compaction logged"
start "$fnode"
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
t0=$(now_ms)
kill -TERM "${pids[$lnode]}"
set +e
wait "${pids[$lnode]}"
rc=$?
set -e
dt=$(($(now_ms) - t0))
pids[$lnode]=0
echo "     SIGTERM to the leader n$lnode: exit $rc after ${dt} ms"
[ "$rc" = 0 ] && ok "SIGTERM exit status 0" || bad "SIGTERM exit status $rc"
[ "$dt" -le 2000 ] && ok "SIGTERM exit within 2 s" || bad "SIGTERM took ${dt} ms"
grep -q "leadership handed over" "$tmp/n$lnode.log" && ok "leadership handed over before exit" || bad "no leadership hand-over logged"
rest=()
for i in 1 2 3; do [ "$i" != "$lnode" ] && rest+=("$i"); done
until_ok 5000 healthy "${rest[0]}" && ok "the other two serve after the stop" || bad "cluster unhealthy after SIGTERM"
put "${rest[1]}" after-stop yes | grep -q '"revision"' && ok "write after the stop" || bad "write after the stop failed"

# Sanitizer builds: any report in any node's log fails the test.
if grep -l "runtime error\|ERROR: AddressSanitizer\|ERROR: LeakSanitizer" "$tmp"/n*.log; then
  bad "sanitizer report in a node log"
fi

exit $fail
