#!/usr/bin/env python3
"""seed_etcdctl.py SEED ENDPOINT [ETCDCTL] - writes a seed file (the format
of seed.tsv: KEY<TAB>VALUE lines, "--" starts the next txn, "#" comments)
to a keel (or etcd) node with the real etcdctl, one `etcdctl txn` per group,
so each group is one revision. Prints "REVISION n" per txn. Values go in
Go-quoted form (etcdctl's txn reader unquotes them with %q), so JSON and
${placeholders} arrive byte for byte. Exits 1 naming the line on failure."""
import json
import os
import subprocess
import sys


def main():
    seed, endpoint = sys.argv[1], sys.argv[2]
    etcdctl = sys.argv[3] if len(sys.argv) > 3 else "etcdctl"
    groups, cur = [], []
    with open(seed, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if line == "--":
                if cur:
                    groups.append(cur)
                cur = []
                continue
            if not line or line.startswith("#"):
                continue
            if "\t" not in line:
                sys.exit(f"{seed}:{n}: want KEY<TAB>VALUE")
            key, value = line.split("\t", 1)
            if any(c.isspace() for c in key) or not value.isascii():
                sys.exit(f"{seed}:{n}: keys without blanks, ASCII values")
            cur.append((key, value))
    if cur:
        groups.append(cur)
    for g in groups:
        # compares, blank line, success ops, blank line, failure ops
        text = "\n" + "".join(f"put {k} {json.dumps(v)}\n" for k, v in g) + "\n\n"
        p = subprocess.run(
            [etcdctl, f"--endpoints={endpoint}", "txn", "-w", "json"],
            input=text, capture_output=True, text=True,
            env=dict(os.environ, ETCDCTL_API="3"), timeout=30)
        if p.returncode != 0:
            sys.exit(f"etcdctl txn failed ({p.returncode}): {p.stderr.strip()}")
        print("REVISION", json.loads(p.stdout)["header"]["revision"], flush=True)


if __name__ == "__main__":
    main()
