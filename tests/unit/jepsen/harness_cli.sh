#!/usr/bin/env bash
# harness_cli.sh — `keel-jepsen test` refuses bad command lines before
# touching anything: exit 2 and a message naming what was wrong. No root,
# no servers needed.
set -uo pipefail
BIN=$1
fails=0
expect() { # expect CODE PATTERN -- args...
  local code=$1 pat=$2
  shift 3
  local out
  out=$("$BIN" "$@" 2>&1)
  local got=$?
  if [ "$got" != "$code" ] || ! grep -q -- "$pat" <<<"$out"; then
    echo "FAIL: keel-jepsen $* -> exit $got, want $code and /$pat/:"
    echo "$out" | head -5
    fails=$((fails + 1))
  fi
}
expect 2 "'nuke' is not a nemesis" -- test --nemesis kill,nuke
expect 2 "only 'etcd' exists" -- test --target zookeeper --nemesis kill
expect 2 "only 'register' exists" -- test --workload bank --nemesis kill
expect 2 "partition nemesis needs --net netns" -- test --nemesis partition --net loopback
expect 2 "--nodes: '2' is not a number in 3..7" -- test --nodes 2
expect 2 "--time-limit: 'x'" -- test --time-limit x
expect 2 "--net: 'bridge' is not netns or loopback" -- test --net bridge
expect 2 "too many faults" -- test --nemesis kill --interval 0.5 --time-limit 86400
expect 2 "unexpected argument" -- test --nemesis kill extra
expect 0 "unsafe-local-reads" -- test --help
[ $fails = 0 ] && echo "PASS" || exit 1
