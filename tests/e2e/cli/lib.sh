# lib.sh — shared helpers for the keel CLI e2e scripts (sourced).
# Needs: KEEL (path to build/bin/keel), ETCD_UP (path to etcd_up), or for a
# keeld cluster started with `keel cluster up`: ETCD_UP=--keeld and KEELD
# (path to keeld). BACKEND is then "etcd" or "keeld"; `have FEATURE` tells
# whether the backend serves a command family (etcd: all of them; keeld:
# those not listed in KEELD_LACKS).
set -u
FAILS=0
for tool in python3 etcdctl ss script; do
  command -v $tool >/dev/null || {
    echo "FAIL: the CLI e2e tests need $tool on PATH" >&2
    exit 1
  }
done
WORK=$(mktemp -d /tmp/keel-cli-e2e-XXXXXX)
export HOME=$WORK/home # no user config leaks into the tests
mkdir -p "$HOME"
unset KEEL_ENDPOINTS ETCDCTL_ENDPOINTS XDG_CONFIG_HOME
export ETCDCTL_API=3

BACKEND=etcd
if [ "${ETCD_UP:-}" = --keeld ]; then
  BACKEND=keeld
  export KEEL_KEELD=$KEELD
fi
# What keeld does not serve yet (space-separated feature names used with
# `have`); the list shrinks as the services land.
# member-client-urls: MemberList gives only the answering member's client
# URLs (docs/decisions/0861); hashkv: no Maintenance/HashKV; watch-compact-
# rev: a watch from a compacted revision is canceled with compact_revision
# C + 1 where etcd says C; flag-validation: writes under /flags/ are not
# checked by the server.
KEELD_LACKS=${KEELD_LACKS-"lease snapshot defrag alarm move-leader member-change member-client-urls hashkv watch-compact-rev flag-validation"}
have() {
  [ "$BACKEND" = etcd ] && return 0
  case " $KEELD_LACKS " in *" $1 "*) return 1 ;; esac
  return 0
}

cleanup() {
  local rc=$?
  if [ -n "${KEELD_DIR:-}" ]; then
    "$KEEL" cluster down --dir "$KEELD_DIR" >/dev/null 2>&1 || {
      echo "FAIL: keel cluster down in cleanup" >&2
      rc=1
    }
    # A sanitizer report in a node's log fails the run (as in
    # tests/e2e/keeld/lib.sh).
    if grep -l "runtime error\|ERROR: AddressSanitizer\|ERROR: LeakSanitizer" \
      "$KEELD_DIR"/n*.log 2>/dev/null; then
      echo "FAIL: sanitizer report in a keeld log (above)" >&2
      rc=1
    fi
  fi
  if [ -n "${ETCD_PID:-}" ]; then
    echo quit >&"${ETCD[1]}" 2>/dev/null
    wait "$ETCD_PID" 2>/dev/null
  fi
  rm -rf "$WORK"
  exit $rc
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  FAILS=$((FAILS + 1))
}
ok() { echo "ok: $*"; }

# start_etcd N: starts N nodes; sets EPS (comma list) and NODE[i]. With
# the keeld backend: `keel cluster up --nodes N` (N 1, 3 or 5), NODE_PID[i].
start_etcd() {
  if [ "$BACKEND" = keeld ]; then
    start_keeld "$1"
    return
  fi
  coproc ETCD { exec "$ETCD_UP" "$1"; }
  ETCD_PID=$ETCD_PID
  NODE=()
  local line
  while read -r line <&"${ETCD[0]}"; do
    case "$line" in
    ENDPOINTS*) EPS=${line#ENDPOINTS } ;;
    NODE*) set -- $line; NODE[$2]=$3 ;;
    READY) return 0 ;;
    esac
  done
  echo "etcd did not start" >&2
  exit 1
}

start_keeld() {
  KEELD_DIR=$WORK/cluster
  EPS=$("$KEEL" cluster up --nodes "$1" --dir "$KEELD_DIR" -w simple) || {
    echo "keel cluster up failed" >&2
    exit 1
  }
  NODE=()
  NODE_PID=()
  local i=0 tag name pid start cport pport
  while read -r tag name pid start cport pport; do
    [ "$tag" = node ] || continue
    NODE[$i]=127.0.0.1:$cport
    NODE_PID[$i]=$pid
    i=$((i + 1))
  done <"$KEELD_DIR/cluster.state"
}

kill_node() {
  if [ "$BACKEND" = keeld ]; then
    kill -9 "${NODE_PID[$1]}"
    local i
    for i in $(seq 1 200); do
      [ -e "/proc/${NODE_PID[$1]}" ] || return 0
      # keel cluster up's children are reparented away: a killed one may
      # linger as a zombie until its new parent reaps it.
      grep -q '^State:.*Z' "/proc/${NODE_PID[$1]}/status" 2>/dev/null && return 0
      sleep 0.01
    done
    fail "node $1 (pid ${NODE_PID[$1]}) survived kill -9"
    return
  fi
  echo "kill $1" >&"${ETCD[1]}"
  local line
  read -r line <&"${ETCD[0]}"
  [ "$line" = "KILLED $1" ] || fail "kill node $1: got '$line'"
}

# expect_rc CODE DESC CMD...: runs CMD, checks its exit code; output in
# $OUT, stderr in $ERR.
expect_rc() {
  local want=$1 desc=$2
  shift 2
  "$@" >"$WORK/out" 2>"$WORK/err"
  local rc=$?
  OUT=$(cat "$WORK/out")
  ERR=$(cat "$WORK/err")
  if [ "$rc" != "$want" ]; then
    fail "$desc: exit $rc, want $want; stdout: $OUT; stderr: $ERR"
    return 1
  fi
  ok "$desc"
}

contains() { # contains DESC HAYSTACK NEEDLE
  case "$2" in
  *"$3"*) ok "$1" ;;
  *) fail "$1: '$3' not in: $2" ;;
  esac
}

# JSON comparison of the semantic content (python3 reads both).
json_eq() { # json_eq DESC EXPR JSON_A JSON_B : EXPR applied to each (j)
  local r
  r=$(python3 -c '
import json,sys
expr=sys.argv[1]
a=json.loads(sys.argv[2]); b=json.loads(sys.argv[3])
fa=eval(expr,{"j":a}); fb=eval(expr,{"j":b})
print("same" if fa==fb else "differ: %r vs %r"%(fa,fb))' "$2" "$3" "$4" 2>&1)
  if [ "$r" = same ]; then ok "$1"; else fail "$1: $r"; fi
}

# run_until_output SIG FILE PATTERN CMD...: runs CMD in the background with
# its stdout in FILE, waits (bounded, 20 s) until FILE matches PATTERN (grep
# -E), then sends SIG and waits; the exit code is in WRC. (A background job
# of a script starts with SIGINT ignored: keel's libuv handler still gets
# it, etcdctl does not, so etcdctl gets TERM.)
run_until_output() {
  local sig=$1 file=$2 pat=$3
  shift 3
  "$@" >"$file" 2>"$file.err" &
  local pid=$! i
  for i in $(seq 1 400); do
    grep -qE "$pat" "$file" && break
    sleep 0.05
  done
  kill -"$sig" $pid
  wait $pid
  WRC=$?
}

finish() {
  if [ "$FAILS" -ne 0 ]; then
    echo "$FAILS check(s) failed" >&2
    exit 1
  fi
  echo "all checks passed"
  exit 0
}
