#!/usr/bin/env bash
# run-target.sh — how ctest runs a libFuzzer target (cmake/KeelFuzz.cmake).
#
#   run-target.sh replay BINARY SEEDS WORK
#       Runs every file of SEEDS once: a seed that crashes, leaks or trips a
#       sanitizer fails the test (the corpus as a regression suite).
#   run-target.sh fuzz BINARY SEEDS WORK SECONDS MAX_LEN [DICT]
#       Fuzzes for SECONDS from SEEDS (with the libFuzzer dictionary DICT). New inputs go to WORK/corpus (wiped
#       first, so nothing grows across runs), never into the source tree; a
#       crashing input is kept in WORK/artifacts/ and the test fails.
set -euo pipefail
mode=$1 bin=$2 seeds=$3 work=$4
rm -rf "$work"
mkdir -p "$work/corpus" "$work/artifacts"
log=$work/log
mapfile -t files < <(find "$seeds" -type f | sort)
if [ ${#files[@]} -eq 0 ]; then
  echo "no seeds in $seeds" >&2
  exit 1
fi
rc=0
case $mode in
replay)
  "$bin" -artifact_prefix="$work/artifacts/" "${files[@]}" >"$log" 2>&1 || rc=$?
  ;;
fuzz)
  dict=${7:-}
  # A fixed seed: the same binary and corpus mutate the same way on every
  # run, so the suite's verdict does not depend on luck (KEEL_FUZZ_SEED
  # overrides it; scripts/fuzz.sh explores with random seeds).
  "$bin" "$work/corpus" "$seeds" -seed="${KEEL_FUZZ_SEED:-1}" \
    -max_total_time="$5" -max_len="$6" \
    ${dict:+-dict="$dict"} \
    -timeout=10 -rss_limit_mb=1024 -artifact_prefix="$work/artifacts/" \
    -print_final_stats=1 >"$log" 2>&1 || rc=$?
  ;;
*)
  echo "usage: $0 replay|fuzz BINARY SEEDS WORK [SECONDS MAX_LEN]" >&2
  exit 2
  ;;
esac
if [ $rc -ne 0 ]; then
  tail -n 60 "$log"
  echo "$(basename "$bin") $mode: FAILED (exit $rc); log: $log" >&2
  ls "$work/artifacts" >&2
  exit 1
fi
if [ "$mode" = replay ]; then
  echo "$(basename "$bin"): ${#files[@]} seeds replayed"
else
  grep -E '^#[0-9]+.*(DONE|pulse)' "$log" | tail -n 1 || true
  grep -E '^stat::(number_of_executed_units|average_exec_per_sec)' "$log" || true
fi
