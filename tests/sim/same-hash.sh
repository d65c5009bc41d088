#!/bin/sh
# same-hash.sh SIM SEED — runs one seed twice (3 and 5 nodes) and fails
# unless both runs print the same trace hash.
set -eu
sim=$1
seed=$2
for nodes in 3 5; do
  a=$("$sim" --seed "$seed" --nodes "$nodes" | grep '^hash ')
  b=$("$sim" --seed "$seed" --nodes "$nodes" | grep '^hash ')
  echo "nodes=$nodes run1: $a run2: $b"
  [ -n "$a" ] && [ "$a" = "$b" ] || { echo "hash differs"; exit 1; }
done
