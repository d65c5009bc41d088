#!/bin/sh
# teeth.sh [SEEDS] [NODES] [EVENTS] — proves keel-sim catches real bugs.
# Plants each one-line bug below in a copy of raft/raft.c (the tree is not touched),
# builds a simulator from the copy and reports how many seeds it took to
# catch the bug. Output feeds tests/sim/README.md.
set -eu
cd "$(dirname "$0")/../.."
seeds=${1:-500}
nodes=${2:-3}
events=${3:-10000}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# name@exact line in raft.c@replacement
bugs='vote-without-up-to-date-check@    if (can_vote && up_to_date) {@    if (can_vote) {
commit-old-term-entries@  if (mci > r->committed && log_term_or0(r, mci) == r->term) {@  if (mci > r->committed) {
forget-to-persist-vote@  rd->hard_state.vote = r->vote;@  rd->hard_state.vote = 0;
read-index-without-heartbeat-round@      if (acks < quorum(r))@      if (0)
accept-append-from-stale-term@  } else if (m->term < r->term) {@  } else if (m->term < r->term && m->type != RAFT_MSG_APPEND) {
heartbeat-commit-beyond-match@  m->commit = p->match < r->committed ? p->match : r->committed;@  m->commit = r->committed;
two-conf-changes-at-once@  if (!committed_in_term(r) || r->pending_conf_index > r->applied)@  if (!committed_in_term(r))'

only=${ONLY:-}
echo "$bugs" | while IFS='@' read -r name from to; do
  if [ -n "$only" ] && [ "$only" != "$name" ]; then continue; fi
  python3 - "$from" "$to" raft/raft.c "$tmp/raft.c" <<'PY'
import sys
frm, to, src, dst = sys.argv[1:]
lines = open(src).read().split("\n")
hits = [i for i, l in enumerate(lines) if l == frm]
if len(hits) != 1:
    sys.exit("line matched %d times: %s" % (len(hits), frm))
lines[hits[0]] = to
open(dst, "w").write("\n".join(lines))
PY
  cc -O2 -std=gnu11 -Iraft -Icommon "$tmp/raft.c" raft/raft_memstore.c \
    common/keel_error.c common/keel_log.c tests/sim/sim.c -o "$tmp/sim"
  out=$("$tmp/sim" --seeds "$seeds" --nodes "$nodes" --events "$events" 2>&1 || true)
  first=$(echo "$out" | grep -m1 '^seed [0-9]* (event' | awk '{print $2}')
  what=$(echo "$out" | grep -m1 '^VIOLATION' | cut -d: -f2 | tr -d ' ')
  summary=$(echo "$out" | grep '^seeds:')
  echo "$name: first failing seed ${first:-none} ($what); $summary"
done
