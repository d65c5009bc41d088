#!/usr/bin/env python3
"""compat_replay.py — replays recorded etcdctl 3.4 sessions
(tests/e2e/compat-fixtures/NNN-*.txt, made against the real etcd) against a
keeld endpoint and compares exit status, stdout and stderr after
normalising what differs between any two clusters: cluster/member ids, raft
terms, timestamps and client-side target names.

Usage: compat_replay.py ENDPOINT FIXTURE...
Prints one "ok"/"FAIL" line per fixture (with a diff for a failure); exit
status 1 if any failed. A fixture whose stdin was too large to record
("### note stdin: N bytes") is fed N bytes of 'x'.
"""
import difflib
import os
import re
import shlex
import subprocess
import sys
import tempfile


def parse(path):
    """Sections of a fixture: each holds the exact bytes written after its
    "### NAME" line (generate.sh's section()), minus the newline added
    after a section marked "(no trailing newline)"."""
    sec, cur, nonl = {}, None, {}
    with open(path, encoding="utf-8") as f:
        for ln in f.read().splitlines(keepends=True):
            m = re.match(r"^### (\w+)( \(no trailing newline\))?\n$", ln)
            if m:
                cur = m.group(1)
                sec[cur] = ""
                nonl[cur] = bool(m.group(2))
            elif cur is not None:
                sec[cur] += ln
    for k in sec:
        if nonl[k] and sec[k].endswith("\n"):
            sec[k] = sec[k][:-1]
    return sec


SUBS = [
    (re.compile(r'"(cluster_id|member_id|raft_term|ID|leader)":\d+'), r'"\1":N'),
    (re.compile(r'"(ClusterID|MemberID|RaftTerm)" : \d+'), r'"\1" : N'),
    (re.compile(r'"ts":"[^"]*"'), '"ts":T'),
    (re.compile(r'"target":"[^"]*"'), '"target":T'),
]


def norm(text):
    for rx, rep in SUBS:
        text = rx.sub(rep, text)
    return text


def main():
    ep, fixtures = sys.argv[1], sys.argv[2:]
    failed = 0
    work = tempfile.mkdtemp()
    for fx in fixtures:
        name = os.path.basename(fx)
        s = parse(fx)
        cmd = s["command"].strip().replace("${ENDPOINTS}", ep)
        stdin = s.get("stdin", "").encode()
        note = s.get("note", "")
        m = re.search(r"stdin: (\d+) bytes", note)
        if m:
            stdin = b"x" * int(m.group(1))
        env = dict(os.environ, ETCDCTL_API="3")
        p = subprocess.run(shlex.split(cmd), input=stdin, capture_output=True,
                           cwd=work, env=env, timeout=30)
        want = (int(s["exit"].strip()), norm(s.get("stdout", "")),
                norm(s.get("stderr", "")))
        got = (p.returncode, norm(p.stdout.decode(errors="replace")),
               norm(p.stderr.decode(errors="replace")))
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
