#!/usr/bin/env bash
# fuzz.sh — builds the libFuzzer targets (build-fuzz, clang, KEEL_FUZZ=ON) and
# runs each for a while from a copy of its seed corpus.
#
#   scripts/fuzz.sh [--seconds N] [--max-len BYTES] [TARGET...]
#
# N defaults to 600 (the issue's 10 minutes per target). --max-len is passed
# to libFuzzer as -max_len (default: its own). No TARGET means every
# target in build-fuzz/fuzz/. Each run works in build-fuzz/fuzz-runs/TARGET/
# (corpus/ starts as a copy of tests/fuzz/corpus/TARGET and keeps what the run
# found; artifacts/ holds any crashing input; log is libFuzzer's output);
# tests/fuzz/TARGET.dict, if present, is its libFuzzer dictionary.
# Prints one Markdown table line per target, ready for docs/security.md:
#   | target | date (UTC) | seconds | executions | exec/s | cov | ft | result |
# Exits non-zero if any target crashed, leaked, hung or tripped a sanitizer.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=600
max_len=
targets=()
while [ $# -gt 0 ]; do
  case $1 in
  --seconds) seconds=$2; shift 2 ;;
  --max-len) max_len=$2; shift 2 ;;
  -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
  -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
  *) targets+=("$1"); shift ;;
  esac
done

scripts/install-deps.sh
cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DKEEL_FUZZ=ON >/dev/null
cmake --build build-fuzz -j2 --target keel_fuzz_targets >/dev/null

if [ ${#targets[@]} -eq 0 ]; then
  for f in build-fuzz/fuzz/fuzz_*; do [ -x "$f" ] && targets+=("$(basename "$f")"); done
fi

status=0
lines=()
for t in "${targets[@]}"; do
  bin=build-fuzz/fuzz/$t
  seeds=tests/fuzz/corpus/$t
  dict=tests/fuzz/$t.dict
  [ -f "$dict" ] || dict=
  [ -x "$bin" ] || { echo "fuzz.sh: no target $t" >&2; exit 2; }
  work=build-fuzz/fuzz-runs/$t
  rm -rf "$work"
  mkdir -p "$work/artifacts"
  cp -r "$seeds" "$work/corpus"
  date=$(date -u +%Y-%m-%dT%H:%MZ)
  echo "== $t: $seconds s from $(find "$seeds" -type f | wc -l) seeds" >&2
  rc=0
  "$bin" "$work/corpus" -max_total_time="$seconds" ${max_len:+-max_len="$max_len"} \
    ${dict:+-dict="$dict"} \
    -timeout=10 -rss_limit_mb=2048 -artifact_prefix="$work/artifacts/" \
    -print_final_stats=1 >"$work/log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/log" | tail -1)
  last=$(grep -E '^#[0-9]+' "$work/log" | tail -1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  if [ $rc -eq 0 ]; then
    result="no crash, leak or sanitizer report"
  else
    status=1
    result="FAILED (exit $rc): $(ls "$work/artifacts" | tr '\n' ' ')"
    grep -E 'ERROR|SUMMARY|^fuzz_' "$work/log" | head -5 >&2 || true
  fi
  lines+=("| $t | $date | $seconds | ${execs:-?} | ${rate:-?} | ${cov:-?} | ${ft:-?} | $result |")
  echo "${lines[-1]}" >&2
done

echo
echo "| target | date (UTC) | seconds | executions | exec/s | cov | ft | result |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
printf '%s\n' "${lines[@]}"
exit $status
