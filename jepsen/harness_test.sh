#!/usr/bin/env bash
# harness_test.sh — ctest `jepsen_harness_etcd` (label jepsen): one short
# real run of the harness against etcd 3.4 (register + partition, 30 s, 3
# nodes in network namespaces), then proofs of a clean teardown:
#   1. the run is VALID, exits 0, and writes every run-directory file;
#   2. afterwards no namespace of its slot, no process on its data dirs, and
#      the host's iptables rules unchanged;
#   3. SIGINT in the middle of a run still tears everything down (exit 2);
#   4. `keel-jepsen cleanup` removes a planted leftover namespace and the
#      process inside it.
# Needs root (namespaces, iptables) and etcd/etcdctl: exits 77 (ctest:
# skipped, not passed) without them.
set -uo pipefail
BIN=$1
WORK=$2
fail() { echo "FAIL: $*"; exit 1; }
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root"; exit 77; }
command -v etcd >/dev/null && command -v etcdctl >/dev/null ||
  { echo "SKIP: etcd/etcdctl not installed"; exit 77; }
rm -rf "$WORK" && mkdir -p "$WORK"
rules_before=$(iptables-save | grep -v '^#')

leftovers() { # $1 run dir, $2 slot
  local ns procs
  ns=$(ip netns list | awk '{print $1}' | grep -E "^kjh$2[cn]" || true)
  [ -z "$ns" ] || fail "namespaces left behind: $ns"
  procs=$(pgrep -f -- "--data-dir=$1/" || true)
  [ -z "$procs" ] || fail "processes left behind: $procs"
  [ "$(iptables-save | grep -v '^#')" = "$rules_before" ] ||
    fail "host iptables rules changed"
}

# 1. A real run.
RUN=$WORK/partition
SEED=${KEEL_JEPSEN_SEED:-$RANDOM}
"$BIN" test --target etcd --workload register --nemesis partition --nodes 3 \
  --time-limit 30 --interval 5 --seed "$SEED" --run-dir "$RUN" \
  >"$WORK/out.txt" 2>"$WORK/err.txt"
code=$?
cat "$WORK/out.txt"
[ $code = 0 ] || { cat "$WORK/err.txt"; fail "exit $code (seed $SEED)"; }
grep -q '^VALID: ' "$WORK/out.txt" || fail "no VALID verdict line"
grep -q '^{:valid? true' "$RUN/results.edn" || fail "results.edn not valid"
for f in history.edn nemesis.edn n1.log n2.log n3.log latency.png \
  timeline.html check.txt; do
  [ -s "$RUN/$f" ] || fail "$f missing or empty"
done
# The nemesis acted and is in the history as :info :nemesis ops.
[ "$(grep -c ':process :nemesis' "$RUN/history.edn")" -ge 4 ] ||
  fail "nemesis events missing from history.edn"
grep -q 'drops' "$RUN/nemesis.edn" || fail "no partition in nemesis.edn"
ok=$(grep -c ':type :ok' "$RUN/history.edn")
[ "$ok" -ge 50 ] || fail "only $ok :ok ops"
slot=$(sed -n 's/.*healthy in .* (slot \([0-9]\)).*/\1/p' "$WORK/err.txt")
[ -n "$slot" ] || fail "slot not reported"
leftovers "$RUN" "$slot"
echo "ok: run valid ($ok ops ok, seed $SEED), teardown clean"

# 3. SIGINT mid-run.
RUN2=$WORK/interrupted
"$BIN" test --target etcd --workload register --nemesis partition,kill \
  --nodes 3 --time-limit 120 --interval 2 --run-dir "$RUN2" \
  >"$WORK/out2.txt" 2>"$WORK/err2.txt" &
pid=$!
# Wait (bounded) for the first fault to be in force, then interrupt.
for _ in $(seq 1 600); do
  grep -q 'nemesis start' "$WORK/err2.txt" 2>/dev/null && break
  kill -0 $pid 2>/dev/null || break
  sleep 0.1
done
grep -q 'nemesis start' "$WORK/err2.txt" || { cat "$WORK/err2.txt"; fail "run 2 never started a fault"; }
kill -INT $pid
wait $pid
code=$?
[ $code = 2 ] || fail "interrupted run exit $code, want 2"
grep -q '^UNKNOWN: .*interrupted' "$WORK/out2.txt" || fail "no interrupted verdict"
slot2=$(sed -n 's/.*healthy in .* (slot \([0-9]\)).*/\1/p' "$WORK/err2.txt")
leftovers "$RUN2" "$slot2"
echo "ok: SIGINT tore everything down"

# 4. cleanup removes a planted leftover (slot 7's name space, if free).
if flock -n /run/lock/keel-jepsen-7.lock true 2>/dev/null; then
  ip netns add kjh7cleftover || fail "cannot plant a namespace"
  ip netns exec kjh7cleftover sleep 600 &
  sleeper=$!
  for _ in $(seq 1 50); do
    [ -n "$(ip netns pids kjh7cleftover)" ] && break
    sleep 0.1
  done
  "$BIN" cleanup >"$WORK/cleanup.txt" || fail "cleanup failed"
  cat "$WORK/cleanup.txt"
  ip netns list | grep -q kjh7cleftover && fail "cleanup left the namespace"
  wait $sleeper 2>/dev/null
  grep -q 'killed process' "$WORK/cleanup.txt" || fail "cleanup killed nothing"
  echo "ok: cleanup removed the planted leftovers"
fi
echo "PASS"
