#!/usr/bin/env bash
# cluster.sh — README command A: install what is missing, build, and start a
# local 3-node cluster in the foreground.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"

if [ ! -x build/bin/keel ] || [ ! -x build/bin/keeld ]; then
  echo "cluster: keeld and the keel CLI are not built yet (issues 5 and 6);" >&2
  echo "cluster: there is no cluster to start in this version." >&2
  exit 1
fi
exec build/bin/keel cluster up --nodes 3 --dir "${KEEL_CLUSTER_DIR:-/tmp/keel-cluster}" "$@"
