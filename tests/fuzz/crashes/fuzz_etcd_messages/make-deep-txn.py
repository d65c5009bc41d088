#!/usr/bin/env python3
"""make-deep-txn.py — writes F2's reproducer (tests/fuzz/crashes/README.md):
a TxnRequest nested through RequestOp.request_txn as deep as fits in the
server's default --max-request-bytes (1572864), prefixed with the
fuzz_etcd_messages type byte 3. Too big to commit (1.5 MiB), so generated:

    tests/fuzz/crashes/fuzz_etcd_messages/make-deep-txn.py /tmp/deep-txn
    build-fuzz/fuzz/fuzz_etcd_messages -rss_limit_mb=4096 /tmp/deep-txn
"""
import sys

LIMIT = 1572864


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def ld(field, data):
    return varint(field << 3 | 2) + varint(len(data)) + data


txn, depth = b"", 0
while True:
    nxt = ld(2, ld(4, txn))  # TxnRequest.success[0].request_txn = txn
    if len(nxt) > LIMIT:
        break
    txn, depth = nxt, depth + 1
with open(sys.argv[1], "wb") as f:
    f.write(bytes([3]) + txn)
print(f"{depth} levels, {len(txn)} bytes")
