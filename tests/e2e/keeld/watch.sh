#!/usr/bin/env bash
# watch.sh — the real etcdctl 3.4 `watch` against a 3-node keeld cluster
# (e2e). Writes go through keeld's TEST-ONLY /test/put (--unsafe-test-
# endpoints), on different nodes. Every wait polls a file or an endpoint
# with a deadline; nothing waits for a fixed time.
#
#   1. `etcdctl watch --prefix /w/` (live, from "now"): 60 puts through all
#      three nodes arrive exactly once, in order (PUT / key / value)
#   2. `etcdctl watch --prefix --rev N /w/k`: the same 60 replayed from
#      history, exactly once, in order
#   3. `etcdctl watch --prev-kv --rev R /w/p`: the overwrite shows the
#      previous value first
#   5. bulk: 500 x 4 KiB puts from 8 parallel writers; a live `-w json`
#      watcher and a --rev replay both get all, once, in revision order
#      (run before step 4, while all nodes are up)
#   6. `etcdctl watch -i` + `progress`: answered with the current revision
#   4. kill -9 the node the live watcher (endpoints n1,n2,n3) is connected
#      to, then 20 more puts: etcdctl reconnects to another endpoint and
#      resumes after the last revision it saw — the 20 arrive exactly once
#   8. kill -9 the other survivor: the watcher's node, leaderless, ends the
#      stream after 3 election timeouts with "etcdserver: no leader"; etcdctl
#      (as against etcd) prints it and exits 5
#   7. SIGTERM the last node with watch streams open: it exits 0
#
# Usage: watch.sh <path to keeld>
set -euo pipefail

keeld=$1
for c in curl python3 etcdctl ss; do
  command -v $c >/dev/null || { echo "$c missing (scripts/install-deps.sh)"; exit 1; }
done
export ETCDCTL_API=3

HB=50
ET=500
tmp=$(mktemp -d)
declare -a pids=(0 0 0 0)
wpids=()

cleanup() {
  for p in "${wpids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  for i in 1 2 3; do
    if [ "${pids[$i]}" != 0 ]; then kill -9 "${pids[$i]}" 2>/dev/null || true; fi
  done
  wait 2>/dev/null || true
  if [ "${fail:-0}" != 0 ]; then
    for i in 1 2 3; do echo "--- log of n$i (last 20 lines)"; tail -20 "$tmp/n$i.log" || true; done
    for f in "$tmp"/[!b]*.out "$tmp"/*.err; do [ -f "$f" ] && { echo "--- $f (last 12 lines)"; tail -12 "$f"; }; done
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

read -r -a ports < <(python3 -c '
import socket
s=[socket.socket() for _ in range(6)]
for x in s: x.bind(("127.0.0.1",0))
print(" ".join(str(x.getsockname()[1]) for x in s))
for x in s: x.close()')
peer() { echo "${ports[$(($1 - 1))]}"; }
client() { echo "${ports[$(($1 + 2))]}"; }
cluster="n1=http://127.0.0.1:$(peer 1),n2=http://127.0.0.1:$(peer 2),n3=http://127.0.0.1:$(peer 3)"
eps="127.0.0.1:$(client 1),127.0.0.1:$(client 2),127.0.0.1:$(client 3)"

start() {
  local i=$1
  "$keeld" --name "n$i" --data-dir "$tmp/d$i" \
    --listen-client-urls "http://127.0.0.1:$(client "$i")" \
    --listen-peer-urls "http://127.0.0.1:$(peer "$i")" \
    --initial-advertise-peer-urls "http://127.0.0.1:$(peer "$i")" \
    --initial-cluster "$cluster" --heartbeat-interval $HB \
    --election-timeout $ET --unsafe-test-endpoints >>"$tmp/n$i.log" 2>&1 &
  pids[$i]=$!
}

fail=0
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
healthy() { [ "$(curl -s -o /dev/null -w '%{http_code}' -m 2 "http://127.0.0.1:$(client "$1")/health")" = 200 ]; }
# put <node> <key> <value>: prints the revision, fails when not acknowledged.
put() {
  local out
  out=$(curl -s -m 5 -XPOST "http://127.0.0.1:$(client "$1")/test/put?key=$2" --data-binary "$3")
  echo "$out" | sed -n 's/.*"revision":\([0-9]*\).*/\1/p' | grep . || { echo "put $2 via n$1: $out" >&2; return 1; }
}
# lines <file> <n>: the file has at least n lines.
lines() { [ "$(wc -l <"$1")" -ge "$2" ]; }
contains() { grep -q -- "$2" "$1"; }
# The PUT/key/value triples of `etcdctl watch` output for keys matching $2.
events() { python3 - "$1" "$2" <<'EOF'
import sys, re
ls = open(sys.argv[1]).read().split("\n")
out, i = [], 0
while i + 2 < len(ls):
    if ls[i] in ("PUT", "DELETE"):
        if re.match(sys.argv[2], ls[i + 1]): out.append("%s %s %s" % (ls[i], ls[i + 1], ls[i + 2]))
        i += 3
    else:
        i += 1
print("\n".join(out))
EOF
}

for i in 1 2 3; do start "$i"; done
for i in 1 2 3; do
  until_ok 15000 healthy "$i" || { bad "n$i /health not 200"; exit 1; }
done
ok "3 nodes healthy"

# 1. live watch from "now" on all endpoints.
touch "$tmp/live.out" "$tmp/rev.out" "$tmp/prev.out"
etcdctl --endpoints "$eps" watch --prefix /w/ >"$tmp/live.out" 2>"$tmp/live.err" &
wpids+=($!)
live=$!
# The stream is up once a write made after it shows: write markers until one
# is seen (events before the first seen marker are not expected).
n=0
seen_marker() { contains "$tmp/live.out" "^/w/sync"; }
until seen_marker; do
  n=$((n + 1))
  put $(((n % 3) + 1)) "/w/sync$n" x >/dev/null || true
  until_ok 300 seen_marker && break
  [ $n -lt 50 ] || { bad "live watch never showed an event"; exit 1; }
done
ok "live watch established after $n marker write(s)"
expect=""
first_rev=0
for k in $(seq 1 60); do
  rev=$(put $(((k % 3) + 1)) "/w/k$k" "v$k") || { bad "put /w/k$k"; exit 1; }
  [ $first_rev != 0 ] || first_rev=$rev
  expect+="PUT /w/k$k v$k"$'\n'
done
expect=${expect%$'\n'}
if until_ok 10000 contains "$tmp/live.out" "^/w/k60$"; then
  got=$(events "$tmp/live.out" '^/w/k')
  [ "$got" = "$expect" ] && ok "live: 60 events through 3 nodes, each once, in order" ||
    { bad "live: events differ"; diff <(echo "$expect") <(echo "$got") | head; }
else
  bad "live: /w/k60 never arrived"
fi

# 2. history replay from the first write's revision.
etcdctl --endpoints "127.0.0.1:$(client 2)" watch --prefix --rev "$first_rev" /w/k >"$tmp/rev.out" 2>"$tmp/rev.err" &
wpids+=($!)
if until_ok 10000 contains "$tmp/rev.out" "^/w/k60$"; then
  got=$(events "$tmp/rev.out" '^/w/k')
  [ "$got" = "$expect" ] && ok "--rev $first_rev: 60 events replayed, each once, in order" ||
    { bad "--rev: events differ"; diff <(echo "$expect") <(echo "$got") | head; }
else
  bad "--rev: /w/k60 never arrived"
fi

# 3. --prev-kv: an overwrite shows the previous key-value first.
put 3 /w/p old >/dev/null
r2=$(put 1 /w/p new)
etcdctl --endpoints "127.0.0.1:$(client 3)" watch --prev-kv --rev "$r2" /w/p >"$tmp/prev.out" 2>"$tmp/prev.err" &
wpids+=($!)
if until_ok 10000 lines "$tmp/prev.out" 5; then
  got=$(head -5 "$tmp/prev.out" | tr '\n' ' ')
  [ "$got" = "PUT /w/p old /w/p new " ] && ok "--prev-kv: '$got'" || bad "--prev-kv printed '$got'"
else
  bad "--prev-kv: printed '$(tr '\n' ' ' <"$tmp/prev.out")'"
fi

# 5 (before the kill, with all three nodes). Bulk: 500 puts of 4 KiB
# (2 MiB) from 8 parallel writers (more than a gRPC stream buffer, more than one
# catch-up turn): a live watcher started first and a --rev replay started
# after both get all of them, each once, in revision order.
r0=$(put 1 /b/start x)
touch "$tmp/bulk-live.out" "$tmp/bulk-rev.out"
etcdctl --endpoints "127.0.0.1:$(client 1)" watch -w json --prefix --rev $((r0 + 1)) /b/ >"$tmp/bulk-live.out" 2>"$tmp/bulk-live.err" &
wpids+=($!)
blive=$!
val=$(head -c 4096 /dev/zero | tr '\0' v)
export val
tb=$(now_ms)
seq 1 500 | xargs -P 8 -I{} sh -c 'curl -s -m 10 -XPOST "http://127.0.0.1:$0/test/put?key=/b/{}" --data-binary "$val" >/dev/null' \
  "$(client 2)"
ok "500 bulk puts in $(($(now_ms) - tb)) ms"
etcdctl --endpoints "127.0.0.1:$(client 3)" watch -w json --prefix --rev $((r0 + 1)) /b/ >"$tmp/bulk-rev.out" 2>"$tmp/bulk-rev.err" &
wpids+=($!)
brev=$!
# bulk_check <file>: prints "<events> <ok>" (ok: distinct keys /b/1..500,
# mod_revision strictly increasing, no event above its header revision,
# header revision never going back).
bulk_check() { python3 - "$1" <<'EOF'
import sys, json, base64
revs, keys, hdr, good = [], set(), 0, True
for line in open(sys.argv[1]):
    line = line.strip()
    if not line.startswith("{"): continue
    try: r = json.loads(line)
    except ValueError: continue
    h = int(r.get("Header", {}).get("revision", 0))
    if h < hdr: good = False
    hdr = max(hdr, h)
    for e in r.get("Events") or []:
        kv = e["kv"]
        revs.append(int(kv["mod_revision"]))
        keys.add(base64.b64decode(kv["key"]).decode())
        if int(kv["mod_revision"]) > h: good = False
good = good and all(a < b for a, b in zip(revs, revs[1:])) and keys == {"/b/%d" % i for i in range(1, 501)} and len(revs) == 500
print(len(revs), "ok" if good else "bad")
EOF
}
bulk_done() { [ "$(bulk_check "$1" | cut -d' ' -f1)" -ge 500 ]; }
t0=$(now_ms)
for f in bulk-live bulk-rev; do
  if until_ok 30000 bulk_done "$tmp/$f.out"; then
    res=$(bulk_check "$tmp/$f.out")
    [ "${res#* }" = ok ] && ok "$f: 500 x 4 KiB events, each once, in order" || bad "$f: $res"
  else
    bad "$f: only $(bulk_check "$tmp/$f.out") events"
  fi
done
ok "bulk delivered within $(($(now_ms) - t0)) ms after the writes"
kill "$blive" "$brev" 2>/dev/null || true

# 6. `etcdctl watch -i`: a progress request on the stream is answered with
# the current revision (the stream's watchers are in sync).
mkfifo "$tmp/cmd"
touch "$tmp/prog.out"
etcdctl --endpoints "127.0.0.1:$(client 1)" watch -i <"$tmp/cmd" >"$tmp/prog.out" 2>"$tmp/prog.err" &
wpids+=($!)
exec 7>"$tmp/cmd"
echo "watch --prefix /w/" >&7
# The watch is up once a write made after it shows (the last write is then
# the current revision: nothing else writes meanwhile).
n=0
seen_progress() { contains "$tmp/prog.out" "^/w/progress$"; }
until seen_progress; do
  n=$((n + 1))
  rp=$(put 2 /w/progress x) || true
  until_ok 300 seen_progress && break
  [ $n -lt 50 ] || { bad "watch -i: no event"; break; }
done
echo progress >&7
if until_ok 10000 contains "$tmp/prog.out" "^progress notify: "; then
  got=$(sed -n 's/^progress notify: //p' "$tmp/prog.out" | head -1)
  [ "$got" = "$rp" ] && ok "watch -i progress: 'progress notify: $got'" || bad "progress notify: $got, want $rp"
else
  bad "watch -i: no progress notify"
fi
exec 7>&-

# 4. kill the node the live watcher is connected to.
victim=0
for i in 1 2 3; do
  if ss -tnp 2>/dev/null | grep "pid=$live," | grep -q "127.0.0.1:$(client "$i") "; then victim=$i; fi
done
[ $victim != 0 ] || { bad "cannot tell which node the live watcher uses"; exit 1; }
kill -9 "${pids[$victim]}"
{ wait "${pids[$victim]}"; } 2>/dev/null || true
pids[$victim]=0
rest=()
for i in 1 2 3; do [ $i != $victim ] && rest+=("$i"); done
until_ok 15000 healthy "${rest[0]}" || { bad "no leader after killing n$victim"; exit 1; }
ok "killed n$victim (the live watcher's node); cluster healthy"
expect2=""
for k in $(seq 61 80); do
  put "${rest[$((k % 2))]}" "/w/k$k" "v$k" >/dev/null || { bad "put /w/k$k"; exit 1; }
  expect2+="PUT /w/k$k v$k"$'\n'
done
expect2="$expect"$'\n'"${expect2%$'\n'}"
if until_ok 15000 contains "$tmp/live.out" "^/w/k80$"; then
  got=$(events "$tmp/live.out" '^/w/k')
  [ "$got" = "$expect2" ] && ok "etcdctl reconnected: 80 events, each once, in order" ||
    { bad "after the kill: events differ"; diff <(echo "$expect2") <(echo "$got") | head; }
else
  bad "after the kill: /w/k80 never arrived (etcdctl did not resume)"
fi
kill -0 "$live" 2>/dev/null && ok "etcdctl watch still running" || bad "etcdctl watch exited: $(cat "$tmp/live.err")"

# 8. Leader loss: kill -9 the other survivor, so the live watcher's node
# has no leader: after 3 election timeouts it ends the watch stream with
# "etcdserver: no leader" (hasleader, etcd's monitorLeader), and etcdctl
# 3.4 — as against etcd — gives the watch up: it prints the reason and
# exits 5.
wnode=0
for i in "${rest[@]}"; do
  if ss -tnp 2>/dev/null | grep "pid=$live," | grep -q "127.0.0.1:$(client "$i") "; then wnode=$i; fi
done
[ $wnode != 0 ] || { bad "cannot tell which node the live watcher uses now"; exit 1; }
other=${rest[0]}
[ "$other" != $wnode ] || other=${rest[1]}
kill -9 "${pids[$other]}"
{ wait "${pids[$other]}"; } 2>/dev/null || true
pids[$other]=0
t0=$(now_ms)
gone() { ! kill -0 "$live" 2>/dev/null; }
if until_ok 10000 gone; then
  st=0
  wait "$live" 2>/dev/null || st=$?
  ok "n$wnode without a leader ended the watch stream after $(($(now_ms) - t0)) ms; etcdctl exit $st"
  [ $st = 5 ] || bad "etcdctl exit status $st, want 5"
  grep -q "watch was canceled (etcdserver: no leader)" "$tmp/live.err" && ok "etcdctl: '$(head -1 "$tmp/live.err")'" ||
    bad "etcdctl said: $(cat "$tmp/live.err")"
  grep -q "no leader: watch streams ended" "$tmp/n$wnode.log" && ok "n$wnode logged it" || bad "n$wnode did not log it"
else
  bad "n$wnode kept its watch stream without a leader"
fi
rest=($wnode)

# 7. SIGTERM the last node while watch streams are open: each exits 0
# (the service drops its streams; under a sanitizer build a leak would make
# the exit status non-zero).
for i in "${rest[@]}"; do kill -TERM "${pids[$i]}"; done
for i in "${rest[@]}"; do
  st=0
  wait "${pids[$i]}" || st=$?
  pids[$i]=0
  [ $st = 0 ] && ok "n$i stopped on SIGTERM with exit 0 (watch streams open)" || bad "n$i exit status $st on SIGTERM"
done

[ $fail = 0 ] && echo "PASS" || echo "FAILED"
exit $fail
