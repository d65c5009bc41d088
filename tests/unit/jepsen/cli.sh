#!/usr/bin/env bash
# cli.sh — keel-jepsen's command line: exit codes (0 valid, 1 invalid,
# 2 unknown or unreadable), messages that name FILE:LINE, stdin, and usage
# errors.   usage: cli.sh BUILD/bin/keel-jepsen
set -uo pipefail
bin=${1:?usage: cli.sh KEEL_JEPSEN}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail=0

# expect CODE PATTERN -- ARGS...: runs keel-jepsen ARGS, checks the exit code
# and that stdout+stderr match the extended regex PATTERN.
expect() {
  local want=$1 pattern=$2
  shift 3
  local out
  out=$("$bin" "$@" 2>&1)
  local got=$?
  if [ "$got" != "$want" ] || ! grep -Eq -- "$pattern" <<<"$out"; then
    echo "FAIL: keel-jepsen $* -> exit $got (want $want), output:" >&2
    echo "$out" >&2
    echo "(wanted /$pattern/)" >&2
    fail=1
  fi
}

cat >"$dir/reg-ok.edn" <<'H'
{:index 0, :time 0, :type :invoke, :process 0, :f :write, :value 1}
{:index 1, :time 1, :type :ok, :process 0, :f :write, :value 1}
{:index 2, :time 2, :type :invoke, :process 1, :f :read, :value nil}
{:index 3, :time 3, :type :ok, :process 1, :f :read, :value 1}
H
cat >"$dir/reg-bad.edn" <<'H'
{:type :invoke, :process 0, :f :write, :value 1}
{:type :ok, :process 0, :f :write, :value 1}
{:type :invoke, :process 1, :f :read, :value nil}
{:type :ok, :process 1, :f :read, :value 2}
H
cat >"$dir/set-bad.edn" <<'H'
{:type :invoke, :process 0, :f :add, :value [:s 1]}
{:type :ok, :process 0, :f :add, :value [:s 1]}
{:type :invoke, :process 1, :f :read, :value [:s nil]}
{:type :ok, :process 1, :f :read, :value [:s #{}]}
H
cat >"$dir/kv-ok.edn" <<'H'
{:process 0, :type :invoke, :f :append, :key "k", :value "x"}
{:process 0, :type :ok, :f :append, :key "k", :value "x"}
{:process 0, :type :invoke, :f :get, :key "k", :value nil}
{:process 0, :type :ok, :f :get, :key "k", :value "x"}
H
printf '{:type :invoke, :process 0, :f :read, :value nil}\n{:type :ok, :process 0 :f :read}\n{:oops' >"$dir/broken.edn"

expect 0 '^VALID: linearizable; 2 ops on 1 key' -- check --model register "$dir/reg-ok.edn"
expect 1 '^INVALID: the history is not linearizable' -- check --model register "$dir/reg-bad.edn"
expect 1 'value 2\}  lines 3-4   <- no order explains this completion' -- check --model register "$dir/reg-bad.edn"
expect 1 '^INVALID: key :s is not consistent: element 1 was acknowledged \(line 2\)' -- check --model set "$dir/set-bad.edn"
expect 0 '^VALID' -- check --model kv --threads 1 "$dir/kv-ok.edn"
expect 2 'broken.edn:3:1: .*never closed' -- check --model register "$dir/broken.edn"
expect 2 'reg-ok.edn:1: :f :write is not an op of this model' -- check --model kv "$dir/reg-ok.edn"
expect 2 'No such file' -- check --model register "$dir/missing.edn"
expect 2 "--model: 'cas' is not register, set or kv" -- check --model cas "$dir/reg-ok.edn"
expect 2 '--model is required' -- check "$dir/reg-ok.edn"
expect 2 "--time-limit: 'x' is not" -- check --model register --time-limit x "$dir/reg-ok.edn"
expect 2 "--threads: '0' is not" -- check --model register --threads 0 "$dir/reg-ok.edn"
expect 2 "unknown command 'bogus'" -- bogus
# stdin
out=$("$bin" check --model register - <"$dir/reg-bad.edn")
[ $? = 1 ] && grep -q '^INVALID' <<<"$out" || { echo "FAIL: stdin" >&2; fail=1; }
# the converter: a log in, EDN that checks out
printf 'INFO  jepsen.util - 0\t:invoke\t:write\t3\nINFO  jepsen.util - 0\t:ok\t:write\t3\nINFO  jepsen.util - 1\t:invoke\t:cas\t[3 4]\nINFO  jepsen.util - 1\t:info\t:cas\t:timed-out\n' >"$dir/ok.log"
"$bin" convert-etcd-log "$dir/ok.log" >"$dir/ok.edn" || { echo "FAIL: convert" >&2; fail=1; }
grep -q '{:index 3, :time 3, :type :info, :process 1, :f :cas, :value \[3 4\], :error :timed-out}' "$dir/ok.edn" ||
  { echo "FAIL: converted info line:" >&2; cat "$dir/ok.edn" >&2; fail=1; }
expect 0 '^VALID' -- check --model register "$dir/ok.edn"
printf 'INFO  jepsen.util - 0\t:invoke\t:write\t3\nINFO jepsen.util 0 :ok :write 3\n' >"$dir/etcd.log"
expect 2 'etcd.log:2: expected' -- convert-etcd-log "$dir/etcd.log"
[ $fail = 0 ] && echo "cli: all cases passed"
exit $fail
