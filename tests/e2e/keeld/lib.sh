# lib.sh — what every keeld e2e script needs, sourced (not run):
#
#   . "$(dirname "$0")/lib.sh"
#   lib_init "$keeld" 5          # room for up to 5 nodes (ports picked now)
#   for i in 1 2 3; do start_node "$i"; done
#   wait_healthy 1 2 3 || exit 1
#   ectl put a 1                 # etcdctl 3.4 against every started node
#   ...
#   exit $fail                   # the EXIT trap kills every node
#
# Nodes are n1..nN on 127.0.0.1 with ports the kernel chose (so scripts run
# in parallel under ctest -j), data and logs in one mktemp directory that is
# removed on exit. The initial cluster is n1..n$LIB_INITIAL (3 unless set
# before start_node); a node started with `existing` joins it. Every wait
# polls an event with a deadline (until_ok); nothing sleeps for a fixed time
# to synchronise. On failure the last lines of every node's log are printed;
# a sanitizer report in any log fails the script.
#
# Variables a script may set before start_node: HB and ET (heartbeat and
# election timeout in ms), LIB_INITIAL (initial cluster size), LIB_ARGS (an
# array of extra keeld flags for every node).

: "${HB:=50}"
: "${ET:=500}"
: "${LIB_INITIAL:=3}"
declare -a LIB_ARGS
declare -a pids ports
fail=0
ETCDCTL=${ETCDCTL:-/usr/bin/etcdctl}
export ETCDCTL_API=3

ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fail=1; }
# expect <what> <want> <got>
expect() { if [ "$2" = "$3" ]; then ok "$1"; else bad "$1: got '$3', want '$2'"; fi; }
now_ms() { date +%s%3N; }
# until_ok <deadline ms> <command...>: runs the command every 20 ms until it
# succeeds (0) or the deadline passes (1).
until_ok() {
  local deadline=$(($(now_ms) + $1))
  shift
  until "$@"; do
    [ "$(now_ms)" -lt "$deadline" ] || return 1
    sleep 0.02
  done
}
# json <python expression over j> < document
json() { python3 -c "import json,sys; j=json.load(sys.stdin); print($1)"; }

lib_cleanup() {
  local i
  for i in "${!pids[@]}"; do
    if [ "${pids[$i]}" != 0 ]; then kill -9 "${pids[$i]}" 2>/dev/null || true; fi
  done
  wait 2>/dev/null || true
  if [ "$fail" != 0 ] && [ -n "${LIB_TMP:-}" ]; then
    for i in "$LIB_TMP"/n*.log; do
      [ -f "$i" ] && { echo "--- $(basename "$i") (last 30 lines)"; tail -30 "$i"; }
    done
  fi
  [ -n "${LIB_TMP:-}" ] && rm -rf "$LIB_TMP"
}

# lib_init <keeld> [max nodes]: checks the tools, picks 2*max free ports and
# the temporary directory, installs the EXIT trap.
lib_init() {
  KEELD=$1
  LIB_MAX=${2:-3}
  [ -x "$KEELD" ] || { echo "keeld not found at '$KEELD'"; exit 1; }
  command -v curl >/dev/null || { echo "curl missing (scripts/install-deps.sh)"; exit 1; }
  command -v python3 >/dev/null || { echo "python3 missing"; exit 1; }
  LIB_TMP=$(mktemp -d)
  trap lib_cleanup EXIT
  read -r -a ports < <(python3 -c '
import socket, sys
s = [socket.socket() for _ in range(2 * int(sys.argv[1]))]
for x in s: x.bind(("127.0.0.1", 0))
print(" ".join(str(x.getsockname()[1]) for x in s))
for x in s: x.close()' "$LIB_MAX")
  local i
  for i in $(seq 0 "$LIB_MAX"); do pids[$i]=0; done
}

peer_port() { echo "${ports[$(($1 - 1))]}"; }
client_port() { echo "${ports[$(($1 - 1 + LIB_MAX))]}"; }
ep() { echo "127.0.0.1:$(client_port "$1")"; }
# url <i> <path>: the node's client port over HTTP/1.1.
url() { echo "http://127.0.0.1:$(client_port "$1")$2"; }
peer_url() { echo "http://127.0.0.1:$(peer_port "$1")"; }
# members_spec <i...>: an --initial-cluster value for those nodes.
members_spec() {
  local s="" i
  for i in "$@"; do s="${s:+$s,}n$i=$(peer_url "$i")"; done
  echo "$s"
}
# The client endpoints of every node running now, comma separated.
eps() {
  local s="" i
  for i in $(seq 1 "$LIB_MAX"); do
    [ "${pids[$i]}" != 0 ] && s="${s:+$s,}$(ep "$i")"
  done
  echo "$s"
}
data_dir() { echo "$LIB_TMP/d$1"; }
log_of() { echo "$LIB_TMP/n$1.log"; }

# start_node <i> [existing [initial-cluster]] [-- extra keeld flags]: starts
# nI in the background (its log appended to log_of I). A node that joins
# (`existing`) gets the initial cluster plus itself unless one is given.
start_node() {
  local i=$1 ic state=new
  shift
  ic=$(members_spec $(seq 1 "$LIB_INITIAL"))
  if [ "${1:-}" = existing ]; then
    state=existing
    shift
    if [ -n "${1:-}" ] && [ "$1" != -- ]; then
      ic=$1
      shift
    else
      ic="$ic,n$i=$(peer_url "$i")"
    fi
  fi
  [ "${1:-}" = -- ] && shift
  "$KEELD" --name "n$i" --data-dir "$(data_dir "$i")" \
    --listen-client-urls "$(url "$i" "")" \
    --advertise-client-urls "$(url "$i" "")" \
    --listen-peer-urls "$(peer_url "$i")" \
    --initial-advertise-peer-urls "$(peer_url "$i")" \
    --initial-cluster "$ic" --initial-cluster-state $state \
    --heartbeat-interval "$HB" --election-timeout "$ET" \
    ${LIB_ARGS[@]+"${LIB_ARGS[@]}"} "$@" >>"$(log_of "$i")" 2>&1 &
  pids[$i]=$!
}

# kill_node <i> [signal]: kill -9 (default) and reap it.
kill_node() {
  local i=$1 sig=${2:-9}
  [ "${pids[$i]}" = 0 ] && return 0
  kill -"$sig" "${pids[$i]}" 2>/dev/null || true
  wait "${pids[$i]}" 2>/dev/null || true
  pids[$i]=0
}
# stop_node <i>: SIGTERM; sets LIB_RC (exit status) and LIB_MS (time taken).
stop_node() {
  local i=$1 t0
  t0=$(now_ms)
  kill -TERM "${pids[$i]}"
  LIB_RC=0
  wait "${pids[$i]}" || LIB_RC=$?
  LIB_MS=$(($(now_ms) - t0))
  pids[$i]=0
}
running() { [ "${pids[$1]}" != 0 ] && kill -0 "${pids[$1]}" 2>/dev/null; }

healthy() { [ "$(curl -s -o /dev/null -w '%{http_code}' -m 2 "$(url "$1" /health)")" = 200 ]; }
# wait_healthy <i...>: every node /health 200 within 15 s; reports each.
wait_healthy() {
  local i rc=0
  for i in "$@"; do
    if until_ok 15000 healthy "$i"; then ok "n$i /health 200"; else bad "n$i /health not 200"; rc=1; fi
  done
  return $rc
}

# etcdctl against every running node (ectl), or one node (ectl_at <i> ...).
ectl() { "$ETCDCTL" --endpoints="$(eps)" "$@"; }
ectl_at() {
  local i=$1
  shift
  "$ETCDCTL" --endpoints="$(ep "$i")" "$@"
}
# status_json <i>: etcdctl endpoint status -w json of one node.
status_json() { ectl_at "$1" endpoint status -w json 2>/dev/null; }
# member_id <i> / leader_id <i>: as that node reports them (decimal), empty
# when the node does not answer.
member_id() { status_json "$1" | json 'j[0]["Status"]["header"]["member_id"]' 2>/dev/null; }
leader_id() { status_json "$1" | json 'j[0]["Status"]["leader"]' 2>/dev/null; }
# leader_node: the index of the node every running node names as leader
# (echoes it and returns 0), or returns 1.
leader_node() {
  local i l="" li id
  for i in $(seq 1 "$LIB_MAX"); do
    running "$i" || continue
    li=$(leader_id "$i")
    [ -n "$li" ] && [ "$li" != 0 ] || return 1
    [ -z "$l" ] || [ "$l" = "$li" ] || return 1
    l=$li
  done
  [ -n "$l" ] || return 1
  for i in $(seq 1 "$LIB_MAX"); do
    running "$i" || continue
    id=$(member_id "$i")
    [ "$id" = "$l" ] && { echo "$i"; return 0; }
  done
  return 1
}
# lib_sanitizer_check: any sanitizer report in any node's log fails the run.
lib_sanitizer_check() {
  if grep -l "runtime error\|ERROR: AddressSanitizer\|ERROR: LeakSanitizer" "$LIB_TMP"/n*.log 2>/dev/null; then
    bad "sanitizer report in a node log"
  fi
}
