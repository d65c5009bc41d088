#!/usr/bin/env bash
# cluster.sh — README command A: install what is missing, build, and run a
# local 3-node keel cluster in the foreground on 127.0.0.1 until Ctrl-C.
#
#   client (etcd v3 API, HTTP): 127.0.0.1:2379, :22379, :32379
#   peer:                       127.0.0.1:2380, :22380, :32380
#   data and logs:              $KEEL_CLUSTER_DIR (default /tmp/keel-cluster)
#
# Data survives a restart of this script (same names, same data dirs); start
# over with `rm -rf /tmp/keel-cluster`. Ctrl-C (or SIGTERM) stops all three
# nodes gracefully; nothing is left running.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target keeld >/dev/null

dir=${KEEL_CLUSTER_DIR:-/tmp/keel-cluster}
mkdir -p "$dir"
client=(2379 22379 32379)
peer=(2380 22380 32380)
cluster="n1=http://127.0.0.1:2380,n2=http://127.0.0.1:22380,n3=http://127.0.0.1:32380"

pids=()
stop() {
  trap - INT TERM
  echo "cluster: stopping"
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
  echo "cluster: stopped (data kept in $dir)"
}
trap 'stop; exit 0' INT TERM

for i in 0 1 2; do
  n=n$((i + 1))
  build/bin/keeld --name "$n" --data-dir "$dir/$n" \
    --listen-client-urls "http://127.0.0.1:${client[$i]}" \
    --advertise-client-urls "http://127.0.0.1:${client[$i]}" \
    --listen-peer-urls "http://127.0.0.1:${peer[$i]}" \
    --initial-advertise-peer-urls "http://127.0.0.1:${peer[$i]}" \
    --initial-cluster "$cluster" --initial-cluster-state new \
    >>"$dir/$n.log" 2>&1 &
  pids+=($!)
done

# Wait (bounded) until every node reports a leader and serves a
# linearizable read.
deadline=$((SECONDS + 30))
for i in 0 1 2; do
  until [ "$(curl -s -o /dev/null -w '%{http_code}' -m 1 "http://127.0.0.1:${client[$i]}/health")" = 200 ]; do
    if [ $SECONDS -ge $deadline ] || ! kill -0 "${pids[$i]}" 2>/dev/null; then
      echo "cluster: n$((i + 1)) did not become healthy; see $dir/n$((i + 1)).log" >&2
      stop
      exit 1
    fi
    sleep 0.2 # polling interval of a bounded readiness wait
  done
done

cat <<MSG
cluster: 3 nodes healthy
  endpoints: 127.0.0.1:2379,127.0.0.1:22379,127.0.0.1:32379
  health:    curl http://127.0.0.1:2379/health
  logs:      $dir/n1.log n2.log n3.log
Press Ctrl-C to stop.
MSG
wait "${pids[@]}"
