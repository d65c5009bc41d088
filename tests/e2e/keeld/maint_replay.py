#!/usr/bin/env python3
"""maint_replay.py — replays the recorded etcd 3.4 sessions of the
Maintenance commands (endpoint status/health/hashkv, snapshot save, defrag,
move-leader, alarm, the NOSPACE set) against keeld, with compat_replay.py's
parser and normalisation plus what the fixtures README lists as differing
between any two clusters for these commands:

  - endpoint addresses (127.0.0.1:PORT) -> EP
  - etcd's member ids in commands and expected output -> keel's (--id),
    hex and decimal, so "move-leader ID" and "memberID:N alarm:NOSPACE"
    are still checked
  - DB size, raft term/index/applied index, header revisions, hashes,
    compact revisions, the server version (3.4.23 / 3.4.0), "took"
  - table cell padding (widths follow those values)
  - etcdctl's info log lines (timestamps, sizes): only their "msg" is kept
  - endpoint health with several endpoints: lines in any order
  - per fixture substitutions (--sub NNN:OLD=NEW) in the command and the
    expected stdout, for values that depend on how much a quota held (the
    README: del count, compaction revision)

Usage: maint_replay.py ENDPOINTS [--id ETCDHEX=KEELHEX]... [--sub NNN:OLD=NEW]...
       FIXTURE...
"""
import os
import re
import shlex
import subprocess
import sys
import tempfile
import difflib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compat_replay import parse, norm  # noqa: E402

EXTRA = [
    (re.compile(r'\{"level":"info".*?"msg":"([^"]*)".*\}'), r'info \1'),
    (re.compile(r'(http://)?127\.0\.0\.1:\d+'), 'EP'),
    (re.compile(r'\b3\.4\.(23|0)\b'), 'VER'),
    (re.compile(r'\b\d+(\.\d+)? ?[kMG]?B\b'), 'SIZE'),
    (re.compile(r'"(dbSize|dbSizeInUse|raftIndex|raftAppliedIndex|raftTerm|'
                r'revision|hash|compact_revision)":\d+'), r'"\1":N'),
    (re.compile(r'took = [\d.]+[µmn]?s'), 'took = T'),
    (re.compile(r'"took":"[^"]*"'), '"took":T'),
    # simple endpoint status: ..., isLeader, isLearner, term, index, applied
    (re.compile(r'(true|false), (true|false), \d+, \d+, \d+, '),
     r'\1, \2, T, I, A, '),
    # simple hashkv: "EP, 1234"
    (re.compile(r'^EP, \d+$', re.M), 'EP, H'),
]
TABLE_ROW = re.compile(r'^\|.*\|$', re.M)
TABLE_RULE = re.compile(r'^\+[-+]+\+$', re.M)


def table_cells(m):
    cells = [c.strip() for c in m.group(0).strip('|').split('|')]
    # a table of endpoint status: term, index, applied index columns
    if len(cells) == 10 and cells[0] == 'EP':
        cells[6:9] = ['T', 'I', 'A']
    return '|' + '|'.join(cells) + '|'


def normalise(text, ids, health):
    for etcd_id, keel_id in ids:
        text = text.replace(etcd_id, keel_id)
    text = norm(text)
    for rx, rep in EXTRA:
        text = rx.sub(rep, text)
    text = TABLE_ROW.sub(table_cells, text)
    text = TABLE_RULE.sub('+-+', text)
    if health:
        text = '\n'.join(sorted(text.splitlines()))
    return text


def main():
    args = sys.argv[1:]
    ep = args.pop(0)
    ids, subs, fixtures = [], {}, []
    while args:
        a = args.pop(0)
        if a == '--id':
            etcd_hex, keel_hex = args.pop(0).split('=')
            ids.append((etcd_hex, keel_hex))
            ids.append((str(int(etcd_hex, 16)), str(int(keel_hex, 16))))
        elif a == '--sub':
            num, rest = args.pop(0).split(':', 1)
            old, new = rest.split('=', 1)
            subs.setdefault(num, []).append((old, new))
        else:
            fixtures.append(a)
    failed = 0
    work = tempfile.mkdtemp()
    for fx in fixtures:
        name = os.path.basename(fx)
        s = parse(fx)
        cmd = s["command"].strip()
        want_out = s.get("stdout", "")
        for old, new in subs.get(name[:3], []):
            cmd = cmd.replace(old, new)
            want_out = want_out.replace(old, new)
        for etcd_id, keel_id in ids:
            cmd = cmd.replace(etcd_id, keel_id)
        cmd = cmd.replace("${ENDPOINTS}", ep)
        stdin = s.get("stdin", "").encode()
        env = dict(os.environ, ETCDCTL_API="3")
        p = subprocess.run(shlex.split(cmd), input=stdin, capture_output=True,
                           cwd=work, env=env, timeout=30)
        health = "endpoint health" in cmd
        want = (int(s["exit"].strip()), normalise(want_out, ids, health),
                normalise(s.get("stderr", ""), ids, health))
        got = (p.returncode,
               normalise(p.stdout.decode(errors="replace"), [], health),
               normalise(p.stderr.decode(errors="replace"), [], health))
        if want == got:
            print(f"ok   compat {name}")
            continue
        failed += 1
        print(f"FAIL compat {name}: {cmd}")
        if want[0] != got[0]:
            print(f"     exit {got[0]}, etcd {want[0]}")
        for i, what in ((1, "stdout"), (2, "stderr")):
            if want[i] != got[i]:
                for d in difflib.unified_diff(want[i].splitlines(),
                                              got[i].splitlines(),
                                              "etcd " + what, "keel " + what,
                                              lineterm="", n=1):
                    print("     " + d)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
