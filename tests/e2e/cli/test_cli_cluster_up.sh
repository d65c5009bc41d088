#!/usr/bin/env bash
# test_cli_cluster_up.sh — `keel cluster up|status|down` with real keeld
# processes:
#   - up (3 and 5 nodes): healthy, one leader, usable; a second up in the
#     same dir is refused; down stops every process; up again restarts the
#     stopped cluster with its data;
#   - interruptions: SIGINT and SIGTERM to keel while up waits for a node
#     that never becomes healthy (a stand-in keeld that hangs), and a node
#     that dies during start-up: every process started is gone afterwards;
#     SIGKILL to keel during up: `keel cluster down` stops what it left;
#   - usage and "no cluster" errors.
# Usage: test_cli_cluster_up.sh KEEL --keeld KEELD
KEEL=$1
ETCD_UP=$2
KEELD=${3:-}
. "$(dirname "$0")/lib.sh"

# pids_of DIR: the pids recorded in DIR's state file.
pids_of() { awk '/^node /{print $3}' "$1/cluster.state" 2>/dev/null; }
# gone PID: the process no longer exists (or is a zombie awaiting reaping).
gone() { [ ! -e "/proc/$1" ] || grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }
all_gone() { # all_gone DESC DIR
  local p left=""
  for p in $(pids_of "$2"); do gone "$p" || left="$left $p"; done
  # Nothing else that names the dir either (a process keel forgot).
  local stray
  stray=$(pgrep -f -- "$2/" || true)
  if [ -z "$left" ] && [ -z "$stray" ]; then ok "$1"; else
    fail "$1: still running:$left $stray"
    # Do not leave them behind for the next test.
    for p in $left $stray; do kill -9 "$p" 2>/dev/null; done
  fi
}
# until_nodes DIR N: waits (bounded) until DIR's state file names N nodes.
until_nodes() {
  local i
  for i in $(seq 1 400); do
    [ "$(pids_of "$1" | wc -l)" -ge "$2" ] && return 0
    sleep 0.02
  done
  return 1
}
DIRS=()
cleanup_dirs() { # keeps the script's exit status for lib.sh's cleanup
  local rc=$? d
  for d in "${DIRS[@]}"; do "$KEEL" cluster down --dir "$d" >/dev/null 2>&1; done
  return $rc
}
trap 'cleanup_dirs; cleanup' EXIT

# ---- up / status / down ---------------------------------------------------------
D=$WORK/c3
DIRS+=("$D")
expect_rc 0 "cluster up" "$KEEL" cluster up --dir "$D"
contains "prints the endpoints to export" "$OUT" "export KEEL_ENDPOINTS=127.0.0.1:"
contains "prints how to stop" "$OUT" "keel cluster down --dir $D"
EPS=$(echo "$OUT" | sed -n 's/.*export KEEL_ENDPOINTS=//p')
[ "$(pids_of "$D" | wc -l)" = 3 ] && ok "3 nodes recorded" || fail "state: $(cat "$D/cluster.state")"
for p in $(pids_of "$D"); do
  tr '\0' ' ' <"/proc/$p/cmdline" | grep -q keeld && ok "pid $p is keeld" || fail "pid $p is not keeld"
done
expect_rc 0 "cluster status" "$KEEL" cluster status --dir "$D"
[ "$(echo "$OUT" | grep -c 'running | healthy')" = 3 ] && ok "3 running and healthy" || fail "status: $OUT"
[ "$(echo "$OUT" | grep -c '| yes ')" = 1 ] && ok "one leader" || fail "leaders: $OUT"
expect_rc 0 "cluster status -w json" "$KEEL" cluster status --dir "$D" -w json
json_eq "json: 3 running and healthy, one leader" \
  '(len(j["nodes"]), sum(n["running"] and n["healthy"] for n in j["nodes"]), sum(n.get("leader",False) for n in j["nodes"]))' \
  "$OUT" '{"nodes":[{"running":true,"healthy":true,"leader":true},{"running":true,"healthy":true},{"running":true,"healthy":true}]}'
expect_rc 0 "put through the cluster" "$KEEL" --endpoints "$EPS" put up/k survives
expect_rc 1 "a second up in the same dir" "$KEEL" cluster up --dir "$D"
contains "says it runs" "$ERR" "already runs"
expect_rc 0 "cluster down" "$KEEL" cluster down --dir "$D"
contains "down reports" "$OUT" "stopped 3 nodes"
all_gone "down leaves no process" "$D"
expect_rc 1 "status after down" "$KEEL" cluster status --dir "$D"
contains "stopped" "$OUT" "stopped"
expect_rc 0 "down again" "$KEEL" cluster down --dir "$D"
contains "already stopped" "$OUT" "already stopped"
expect_rc 0 "up again restarts the cluster" "$KEEL" cluster up --dir "$D" -w simple
[ "$OUT" = "$EPS" ] && ok "same endpoints" || fail "endpoints $OUT vs $EPS"
expect_rc 0 "data survived" "$KEEL" --endpoints "$EPS" get up/k -w simple
[ "$(echo "$OUT" | tail -1)" = survives ] && ok "value read back" || fail "value: $OUT"
expect_rc 1 "up --nodes 5 in a dir with a 3-node cluster" "$KEEL" cluster up --dir "$D" --nodes 5
expect_rc 0 "down" "$KEEL" cluster down --dir "$D"
all_gone "down leaves no process" "$D"

D5=$WORK/c5
DIRS+=("$D5")
expect_rc 0 "cluster up --nodes 5" "$KEEL" cluster up --nodes 5 --dir "$D5"
expect_rc 0 "status of 5" "$KEEL" cluster status --dir "$D5" -w simple
[ "$(echo "$OUT" | grep -c 'running healthy')" = 5 ] && ok "5 healthy" || fail "status: $OUT"
expect_rc 0 "down 5" "$KEEL" cluster down --dir "$D5"
all_gone "5 nodes gone" "$D5"

# ---- errors -----------------------------------------------------------------------
expect_rc 2 "--nodes 4" "$KEEL" cluster up --nodes 4 --dir "$WORK/x"
expect_rc 3 "status without a cluster" "$KEEL" cluster status --dir "$WORK/none"
expect_rc 3 "down without a cluster" "$KEEL" cluster down --dir "$WORK/none"
expect_rc 1 "KEEL_KEELD that is not a program" env KEEL_KEELD=/nonexistent "$KEEL" cluster up --dir "$WORK/x"
contains "names it" "$ERR" "KEEL_KEELD=/nonexistent"

# ---- interruptions ------------------------------------------------------------------
# A stand-in keeld: node n3 hangs without ever serving (FAKE=hang) or node
# n2 fails at once (FAKE=die); the others are the real keeld.
cat >"$WORK/fake-keeld" <<EOF
#!/usr/bin/env bash
case "\$FAKE \$*" in
hang*"--name n3 "*) exec sleep 300 ;;
die*"--name n2 "*) echo "simulated start-up failure" >&2; exit 1 ;;
esac
exec "$KEELD" "\$@"
EOF
chmod +x "$WORK/fake-keeld"

interrupt_up() { # interrupt_up SIG DIR
  local sig=$1 d=$2
  DIRS+=("$d")
  FAKE=hang KEEL_KEELD="$WORK/fake-keeld" "$KEEL" cluster up --dir "$d" \
    >"$WORK/iu.out" 2>"$WORK/iu.err" &
  local pid=$!
  until_nodes "$d" 3 || fail "$sig: up did not start 3 processes"
  kill -"$sig" $pid
  wait $pid
  local rc=$?
  [ $rc = 130 ] && ok "$sig during up: exit 130" || fail "$sig during up: exit $rc: $(cat "$WORK/iu.err")"
  contains "$sig: says what it stopped" "$(cat "$WORK/iu.err")" "stopped the 3 keeld processes"
  all_gone "$sig during up leaves no process" "$d"
}
interrupt_up INT "$WORK/int"
interrupt_up TERM "$WORK/term"

DIRS+=("$WORK/die")
expect_rc 1 "a node that dies during up" env FAKE=die KEEL_KEELD="$WORK/fake-keeld" "$KEEL" cluster up --dir "$WORK/die"
contains "names the node" "$ERR" "n2 exited during start-up"
contains "shows its log" "$ERR" "simulated start-up failure"
all_gone "a failed up leaves no process" "$WORK/die"

# SIGKILL cannot be caught: the state file names what was started, and
# `keel cluster down` stops it.
DK=$WORK/killed
DIRS+=("$DK")
FAKE=hang KEEL_KEELD="$WORK/fake-keeld" "$KEEL" cluster up --dir "$DK" >/dev/null 2>&1 &
KP=$!
until_nodes "$DK" 3 || fail "SIGKILL: up did not start 3 processes"
kill -9 $KP
wait $KP 2>/dev/null
expect_rc 0 "down after keel was SIGKILLed during up" "$KEEL" cluster down --dir "$DK"
all_gone "down stops what a killed up left" "$DK"

finish
