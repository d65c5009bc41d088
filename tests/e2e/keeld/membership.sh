#!/usr/bin/env bash
# membership.sh — membership changes on keeld processes (e2e), through the
# TEST-ONLY endpoints: a follower refuses to propose a change (no
# forwarding yet); the leader adds a learner (no process: learners do not
# count, so writes still commit) and every node lists it; the learner is
# removed; a new member n5 is added as a learner, started with
# --initial-cluster-state existing, joins (learns the cluster id, replays
# the log) and serves the data, is promoted to voter and survives a
# restart; after the log was compacted (--snapshot-count 20) n6 joins the
# same way but catches up by snapshot; a voter is removed and stops itself with status 0; the rest go
# on serving writes; the removal survives a restart of a member. Every wait
# polls with a deadline.
#
# Usage: membership.sh <path to keeld>
set -euo pipefail

keeld=$1
command -v curl >/dev/null || { echo "curl missing (scripts/install-deps.sh)"; exit 1; }

HB=50
ET=500
tmp=$(mktemp -d)
declare -a pids=(0 0 0 0 0 0 0)
fail=0

cleanup() {
  for i in 1 2 3 5 6; do
    if [ "${pids[$i]}" != 0 ]; then kill -9 "${pids[$i]}" 2>/dev/null || true; fi
  done
  wait 2>/dev/null || true
  if [ "$fail" != 0 ]; then
    for i in 1 2 3 5 6; do echo "--- log of n$i (last 30 lines)"; tail -30 "$tmp/n$i.log" || true; done
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

read -r -a ports < <(python3 -c '
import socket
s=[socket.socket() for _ in range(12)]
for x in s: x.bind(("127.0.0.1",0))
print(" ".join(str(x.getsockname()[1]) for x in s))
for x in s: x.close()')
peer() { echo "${ports[$(($1 - 1))]}"; }
client() { echo "${ports[$(($1 + 5))]}"; }
cluster="n1=http://127.0.0.1:$(peer 1),n2=http://127.0.0.1:$(peer 2),n3=http://127.0.0.1:$(peer 3)"

start() { # start <i> [existing]
  local i=$1 ic=$cluster state=new
  if [ "${2:-}" = existing ]; then
    ic="$cluster,n$i=http://127.0.0.1:$(peer "$i")"
    state=existing
  fi
  "$keeld" --name "n$i" --data-dir "$tmp/d$i" \
    --listen-client-urls "http://127.0.0.1:$(client "$i")" \
    --listen-peer-urls "http://127.0.0.1:$(peer "$i")" \
    --initial-advertise-peer-urls "http://127.0.0.1:$(peer "$i")" \
    --initial-cluster "$ic" --initial-cluster-state $state \
    --heartbeat-interval $HB --snapshot-count 20 \
    --election-timeout $ET --unsafe-test-endpoints >>"$tmp/n$i.log" 2>&1 &
  pids[$i]=$!
}
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fail=1; }
now_ms() { date +%s%3N; }
until_ok() {
  local deadline=$(($(now_ms) + $1)); shift
  until "$@"; do
    [ "$(now_ms)" -lt "$deadline" ] || return 1
    sleep 0.02
  done
}
url() { echo "http://127.0.0.1:$(client "$1")$2"; }
healthy() { [ "$(curl -s -o /dev/null -w '%{http_code}' -m 2 "$(url "$1" /health)")" = 200 ]; }
field() { sed -n "s/.*\"$1\":\"\\{0,1\\}\\([0-9a-z]*\\)\"\\{0,1\\}.*/\\1/p"; }
status() { curl -s -m 2 "$(url "$1" /test/status)" || true; }
members() { curl -s -m 2 "$(url "$1" /test/members)" || true; }
member_op() { curl -s -m 5 -XPOST "$(url "$1" "/test/member?$2")"; }
put() { curl -s -m 5 -XPOST "$(url "$1" "/test/put?key=$2")" --data-binary "$3"; }
get() { curl -s -m 5 "$(url "$1" "/test/get?key=$2")"; }

for i in 1 2 3; do start "$i"; done
for i in 1 2 3; do until_ok 15000 healthy "$i" || { bad "n$i not healthy"; exit 1; }; done
ok "3 nodes healthy"
declare -a ids
for i in 1 2 3; do ids[$i]=$(status "$i" | field id); done
leader=$(status 1 | field leader)
lnode=0
for i in 1 2 3; do [ "${ids[$i]}" = "$leader" ] && lnode=$i; done
followers=()
for i in 1 2 3; do [ "$i" != "$lnode" ] && followers+=("$i"); done
[ "$lnode" != 0 ] && ok "leader is n$lnode" || { bad "no leader"; exit 1; }
[ "$(members "$lnode" | grep -o '"id"' | wc -l)" = 3 ] && ok "3 members listed" || bad "member list: $(members "$lnode")"

# A follower does not forward membership changes (yet).
r=$(member_op "${followers[0]}" "op=add-learner&name=n4&peer=http://127.0.0.1:$(peer 4)")
case "$r" in *KEEL_ENOTLEADER*) ok "follower refuses a membership change: not leader" ;; *) bad "follower answered: $r" ;; esac

# Add a learner (no process behind it): every node lists it, writes commit.
r=$(member_op "$lnode" "op=add-learner&name=n4&peer=http://127.0.0.1:$(peer 4)")
case "$r" in *'"ok"'*) ok "learner n4 added" ;; *) bad "add learner: $r" ;; esac
listed_learner() { members "$1" | grep -q '"name":"n4","peer":"[^"]*","learner":true'; }
for i in 1 2 3; do until_ok 5000 listed_learner "$i" && ok "n$i lists n4 as a learner" || bad "n$i does not list the learner"; done
put "${followers[1]}" with-learner yes | grep -q revision && ok "writes commit with an absent learner" || bad "write with a learner failed"
r=$(member_op "$lnode" "op=add-learner&name=n4&peer=http://127.0.0.1:$(peer 4)")
case "$r" in *KEEL_EMEMBER*|*KEEL_EBUSY*) ok "adding it twice is refused ($r)" ;; *) bad "second add: $r" ;; esac
n4=$(members "$lnode" | sed -n 's/.*"id":"\([0-9a-f]*\)","name":"n4".*/\1/p')
r=$(member_op "$lnode" "op=remove&id=$n4")
case "$r" in *'"ok"'*) ok "learner removed" ;; *) bad "remove learner: $r" ;; esac

# A real new member: add n5 as a learner, start it with
# --initial-cluster-state existing; it joins and catches up; promote it.
r=$(member_op "$lnode" "op=add-learner&name=n5&peer=http://127.0.0.1:$(peer 5)")
case "$r" in *'"ok"'*) ok "learner n5 added" ;; *) bad "add n5: $r" ;; esac
start 5 existing
until_ok 15000 healthy 5 && ok "n5 joined: /health 200 (linearizable read through the leader)" || bad "n5 did not become healthy"
grep -q "learned the cluster id" "$tmp/n5.log" && ok "n5 learnt the cluster id from its peers" || bad "n5 did not learn the cluster id"
! grep -q "installed snapshot" "$tmp/n5.log" && grep -q "applied membership change.*type=0" "$tmp/n5.log" &&
  ok "n5 replayed the log from index 1 (bootstrap entries, no snapshot)" || bad "n5 did not replay the log"
[ "$(get 5 with-learner)" = yes ] && ok "n5 serves data written before it joined" || bad "n5 lacks the earlier write"
n5=$(status 5 | field id)
r=$(member_op "$lnode" "op=promote&id=$n5")
case "$r" in *'"ok"'*) ok "n5 promoted to voter" ;; *) bad "promote n5: $r" ;; esac
voter5() { members 5 | grep -q '"name":"n5","peer":"[^"]*","learner":false'; }
until_ok 5000 voter5 && ok "n5 lists itself as a voter" || bad "n5 is not a voter: $(members 5)"
put 5 via-n5 yes | grep -q revision && ok "write through n5 (forwarded to the leader)" || bad "write through n5 failed"
kill -TERM "${pids[5]}"; wait "${pids[5]}" || true; pids[5]=0
start 5 existing
until_ok 15000 healthy 5 && ok "n5 restarts with its stored cluster id" || bad "n5 unhealthy after a restart"

# After 40 more writes the log is compacted past its start: n6 joins by
# snapshot (the configuration and the member list come with it).
for k in $(seq 1 40); do put "$lnode" "c$k" "x$k" >/dev/null; done
until_ok 5000 grep -q "log compacted" "$tmp/n$lnode.log" && ok "the leader compacted its log" || bad "no compaction at the leader"
r=$(member_op "$lnode" "op=add-learner&name=n6&peer=http://127.0.0.1:$(peer 6)")
case "$r" in *'"ok"'*) ok "learner n6 added" ;; *) bad "add n6: $r" ;; esac
start 6 existing
until_ok 15000 healthy 6 && ok "n6 joined: /health 200" || bad "n6 did not become healthy"
grep -q "installed snapshot" "$tmp/n6.log" && ok "n6 caught up by snapshot" || bad "n6 did not install a snapshot"
[ "$(get 6 c40)" = x40 ] && [ "$(get 6 with-learner)" = yes ] && ok "n6 serves the data" || bad "n6 lacks data"
[ "$(members 6 | grep -o '"id"' | wc -l)" = 5 ] && ok "n6 lists the 5 members (came with the snapshot)" || bad "n6 members: $(members 6)"
r=$(member_op "$lnode" "op=remove&id=$(status 6 | field id)")
case "$r" in *'"ok"'*) ok "learner n6 removed again" ;; *) bad "remove n6: $r" ;; esac
exited6() { ! kill -0 "${pids[6]}" 2>/dev/null; }
until_ok 5000 exited6 && { wait "${pids[6]}" || true; pids[6]=0; ok "n6 stopped itself"; } || bad "n6 still running"

# Remove a voter: it applies its own removal and stops with status 0.
victim=${followers[0]}
r=$(member_op "$lnode" "op=remove&id=${ids[$victim]}")
case "$r" in *'"ok"'*) ok "voter n$victim removed" ;; *) bad "remove voter: $r" ;; esac
exited() { ! kill -0 "${pids[$victim]}" 2>/dev/null; }
if until_ok 5000 exited; then
  set +e; wait "${pids[$victim]}"; rc=$?; set -e
  pids[$victim]=0
  [ "$rc" = 0 ] && ok "the removed member stopped itself with status 0" || bad "removed member exit status $rc"
  grep -q "removed from the cluster" "$tmp/n$victim.log" && ok "it logged its removal" || bad "no removal logged"
else
  bad "the removed member is still running"
fi
rest=("$lnode" "${followers[1]}" 5)
for i in "${rest[@]}"; do
  [ "$(members "$i" | grep -o '"id"' | wc -l)" = 3 ] && ok "n$i lists 3 members" || bad "n$i members: $(members "$i")"
done
put "${rest[1]}" after-remove yes | grep -q revision && ok "the three members commit writes" || bad "write after the removal failed"

# The removal is durable: restart a surviving follower; still 3 members,
# and the cluster elects and serves.
f=${rest[1]}
kill -TERM "${pids[$f]}"; wait "${pids[$f]}" || true; pids[$f]=0
start "$f"
until_ok 15000 healthy "$f" && ok "restarted n$f healthy" || bad "restarted n$f unhealthy"
[ "$(members "$f" | grep -o '"id"' | wc -l)" = 3 ] && ok "the member list survived the restart" || bad "after restart: $(members "$f")"
[ "$(get "$f" after-remove)" = yes ] && ok "data survived the restart" || bad "after-remove missing"

if grep -l "runtime error\|ERROR: AddressSanitizer\|ERROR: LeakSanitizer" "$tmp"/n*.log; then
  bad "sanitizer report in a node log"
fi
exit $fail
