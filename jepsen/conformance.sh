#!/usr/bin/env bash
# conformance.sh — the checkers against the published linearizability test
# histories (porcupine's test_data, kept in shared/testdata/porcupine): every
# verdict in EXPECTED.txt must be reproduced, and the 102 etcd register
# histories must all be checked within 60 seconds.
#
#   jepsen/conformance.sh BUILD/bin/keel-jepsen SHARED_DIR [WORK_DIR]
#
# The etcd logs are converted to EDN with `keel-jepsen convert-etcd-log`; the
# kv logs are EDN already. Prints one line per history and the totals; exits
# non-zero on any mismatch, a missing file, or a missing data directory.
set -euo pipefail

bin=${1:?usage: conformance.sh KEEL_JEPSEN SHARED_DIR [WORK_DIR]}
shared=${2:?usage: conformance.sh KEEL_JEPSEN SHARED_DIR [WORK_DIR]}
data="$shared/testdata/porcupine"
expected="$data/EXPECTED.txt"
if [ ! -f "$expected" ]; then
  echo "FAIL: $expected not found: the conformance data is missing." >&2
  echo "Set KEEL_SHARED_DIR (cmake -DKEEL_SHARED_DIR=...) to the directory" >&2
  echo "holding testdata/porcupine (default: <source>/../shared)." >&2
  exit 1
fi
work=${3:-$(mktemp -d)}
mkdir -p "$work"
[ -z "${3:-}" ] && trap 'rm -rf "$work"' EXIT

now() { date +%s.%N; }
add() { awk -v a="$1" -v t0="$2" -v t1="$3" 'BEGIN { printf "%.3f", a + t1 - t0 }'; }
fail=0
n_etcd=0
n_kv=0
etcd_secs=0
kv_secs=0

while read -r file verdict _; do
  case "$file" in
  test_data/jepsen/*) kind=etcd ;;
  test_data/kv/*) kind=kv ;;
  *) continue ;;
  esac
  case "$verdict" in
  linearizable) want=0 ;;
  NOT_linearizable) want=1 ;;
  *) continue ;; # NO_TEST: the empty etcd_095.log
  esac
  src="$data/${file#test_data/}"
  if [ ! -f "$src" ]; then
    echo "FAIL: $src listed in EXPECTED.txt is missing" >&2
    fail=1
    continue
  fi
  name=$(basename "$src")
  out="$work/$name.out"
  if [ $kind = etcd ]; then
    edn="$work/${name%.log}.edn"
    t0=$(now)
    if ! "$bin" convert-etcd-log "$src" >"$edn"; then
      echo "FAIL: $name: conversion failed" >&2
      fail=1
      continue
    fi
    set +e
    "$bin" check --model register --time-limit 60 "$edn" >"$out" 2>&1
    got=$?
    set -e
    t1=$(now)
    etcd_secs=$(add "$etcd_secs" "$t0" "$t1")
    n_etcd=$((n_etcd + 1))
  else
    t0=$(now)
    set +e
    "$bin" check --model kv --time-limit 2 "$src" >"$out" 2>&1
    got=$?
    set -e
    t1=$(now)
    kv_secs=$(add "$kv_secs" "$t0" "$t1")
    n_kv=$((n_kv + 1))
  fi
  verdict_line=$(head -1 "$out")
  if [ "$got" != "$want" ]; then
    echo "FAIL: $name: expected exit $want ($verdict), got $got: $verdict_line" >&2
    fail=1
  elif [ "$want" = 1 ] && ! grep -q '<- no order explains this completion' "$out"; then
    echo "FAIL: $name: invalid but no witness printed:" >&2
    cat "$out" >&2
    fail=1
  else
    echo "ok   $name  $verdict_line"
  fi
done <"$expected"

echo "etcd register histories: $n_etcd checked in $etcd_secs s (conversion included)"
echo "kv histories: $n_kv checked in $kv_secs s"
if [ "$n_etcd" != 102 ] || [ "$n_kv" != 6 ]; then
  echo "FAIL: expected 102 etcd and 6 kv histories in EXPECTED.txt" >&2
  fail=1
fi
if awk -v s="$etcd_secs" 'BEGIN { exit !(s > 60) }'; then
  echo "FAIL: the etcd histories took $etcd_secs s, over the 60 s bound" >&2
  fail=1
fi
exit $fail
