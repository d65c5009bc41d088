#!/usr/bin/env bash
# etcdctl_compat.sh — the real etcdctl (3.4) and curl against the client-port
# transport with the test scaffolding handlers (grpc_testserver): put/get,
# endpoint status, an unknown-method error, and HTTP/1.1 /health on the
# same port. Usage: etcdctl_compat.sh <path to grpc_testserver>
set -euo pipefail

server=$1
command -v etcdctl >/dev/null || { echo "etcdctl missing (scripts/install-deps.sh)"; exit 1; }
command -v curl >/dev/null || { echo "curl missing (scripts/install-deps.sh)"; exit 1; }

tmp=$(mktemp -d)
fifo=$tmp/out
mkfifo "$fifo"
"$server" >"$fifo" 2>"$tmp/server.log" &
pid=$!
cleanup() {
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

# Wait for the readiness line (not for time).
exec 3<"$fifo"
read -r -t 20 line <&3 || { echo "FAIL: server did not report a port"; cat "$tmp/server.log"; exit 1; }
port=${line#LISTENING port=}
[[ "$port" =~ ^[0-9]+$ ]] || { echo "FAIL: bad readiness line: $line"; exit 1; }
echo "server listening on port $port"

fail=0
check() { # check <name> <expected> <actual>
  if [ "$2" == "$3" ]; then
    echo "ok   $1"
  else
    echo "FAIL $1"
    echo "  expected: $(printf '%q' "$2")"
    echo "  actual:   $(printf '%q' "$3")"
    fail=1
  fi
}

export ETCDCTL_API=3
ep=127.0.0.1:$port
ctl() { etcdctl --endpoints="$ep" --command-timeout=5s "$@" 2>&1; }

check "etcdctl put" "OK" "$(ctl put foo bar)"
check "etcdctl get" $'foo\nbar' "$(ctl get foo)"
check "etcdctl put again" "OK" "$(ctl put foo baz)"
check "etcdctl get --print-value-only" "baz" "$(ctl get foo --print-value-only)"
check "etcdctl get missing key" "" "$(ctl get nothing-here)"
json=$(ctl get foo -w json)
case "$json" in
  *'"kvs":[{"key":"Zm9v","create_revision":2,"mod_revision":3,"version":2,"value":"YmF6"}]'*) echo "ok   etcdctl get -w json" ;;
  *) echo "FAIL etcdctl get -w json: $json"; fail=1 ;;
esac
status=$(ctl endpoint status -w simple)
case "$status" in
  "$ep, 5555666677778888, 3.4.0, 4.1 kB, true, false, 2, 3, 3, "*) echo "ok   etcdctl endpoint status" ;;
  *) echo "FAIL etcdctl endpoint status: $status"; fail=1 ;;
esac
out=$(ctl endpoint health)
case "$out" in
  "$ep is healthy: successfully committed proposal: took = "*) echo "ok   etcdctl endpoint health" ;;
  *) echo "FAIL etcdctl endpoint health: $out"; fail=1 ;;
esac
# An API the scaffold does not serve: etcdctl shows the gRPC status.
out=$(ctl del foo || true)
case "$out" in
  *"unknown method DeleteRange for service etcdserverpb.KV"*) echo "ok   unknown method reaches etcdctl" ;;
  *) echo "FAIL unknown method: $out"; fail=1 ;;
esac
# A 1.6 MB value fits under the 2 MiB transport limit.
head -c 1600000 /dev/zero | tr '\0' y >"$tmp/mid"
check "etcdctl put 1.6 MB value" "OK" "$(ctl put mid <"$tmp/mid")"
check "etcdctl get 1.6 MB value" "1600000" "$(ctl get mid --print-value-only | tr -d '\n' | wc -c)"
# A value past the 2 MiB limit (etcdctl reads it from stdin): refused with
# grpc-go's wording (etcdctl's own 2 MiB send limit may say it first).
head -c 2200000 /dev/zero | tr '\0' x >"$tmp/big"
out=$(ctl put big <"$tmp/big" || true)
case "$out" in
  *"trying to send message larger than max"*|*"received message larger than max"*) echo "ok   oversized put refused: ${out:0:120}" ;;
  *) echo "FAIL oversized put: ${out:0:300}"; fail=1 ;;
esac

check "curl /health" '200 {"health":"true","reason":""}' \
  "$(curl -s -w '%{http_code}' -o "$tmp/body" "http://$ep/health"; echo -n " "; cat "$tmp/body")"
check "curl unknown path" "404" "$(curl -s -o /dev/null -w '%{http_code}' "http://$ep/nope")"
check "curl POST /echo" "hello" "$(curl -s --data-binary hello "http://$ep/echo")"

# curl speaking HTTP/2 (prior knowledge) on the same port: a gRPC message
# with the compressed flag set is refused with grpc-go's status and text,
# as a trailers-only response.
printf '\x01\x00\x00\x00\x03abc' >"$tmp/compressed"
hdrs=$(curl -s --http2-prior-knowledge -D - -o /dev/null \
  -H 'content-type: application/grpc' -H 'te: trailers' \
  --data-binary @"$tmp/compressed" "http://$ep/etcdserverpb.KV/Put" | tr -d '\r' || true)
case "$hdrs" in
  *"grpc-status: 13"*"grpc-message: grpc: compressed flag set with identity or empty encoding"*)
    echo "ok   compressed flag refused (INTERNAL)" ;;
  *) echo "FAIL compressed flag: $hdrs"; fail=1 ;;
esac
# A plain HTTP/2 request without the gRPC content-type: 415. It has no body
# so that the request is complete when the answer comes: with a body still
# on its way the server answers and then resets the stream with NO_ERROR
# (RFC 9113 section 8.1, as grpc-go does), which curl 7.88 reports as a
# stream error.
code=$(curl -s --http2-prior-knowledge -o /dev/null -w '%{http_code}' \
  -X POST "http://$ep/etcdserverpb.KV/Put" || true)
check "HTTP/2 without application/grpc gets 415" "415" "$code"

# SIGTERM: graceful shutdown, exit 0.
kill -TERM "$pid"
set +e
wait "$pid"
rc=$?
set -e
check "server exits 0 on SIGTERM" "0" "$rc"
exit $fail
