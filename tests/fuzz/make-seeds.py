#!/usr/bin/env python3
"""make-seeds.py — writes the hand-made binary seeds of tests/fuzz/corpus/.

The protobuf seeds are encoded here by hand from the wire rules (tag =
field << 3 | wire type; 0 varint, 2 length-delimited) and the field numbers
of proto/etcd/rpc.proto and proto/raft.proto, so that they do not depend on
our own encoder. Text seeds (the YAML config files) are plain files in the
corpus and not written here. Run from anywhere; rewrites only its own files:

    tests/fuzz/make-seeds.py
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def varint(n):
    n &= (1 << 64) - 1  # negative int64 values are ten-byte varints
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def v(field, n):
    return varint(field << 3) + varint(n)


def b(field, data):
    if isinstance(data, str):
        data = data.encode()
    return varint(field << 3 | 2) + varint(len(data)) + data


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# --- fuzz_etcd_messages: byte 0 is the index in the target's table --------

range_req = (b(1, "foo") + b(2, "fop") + v(3, 10) + v(4, 5) + v(5, 2) +
             v(6, 3) + v(7, 1) + v(8, 1) + v(10, 1) + v(11, 99) + v(12, 2) +
             v(13, 50))
put_req = b(1, "foo") + b(2, "bar") + v(3, 7587861254523043600) + v(4, 1)
delete_req = b(1, "/config/") + b(2, "/config0") + v(3, 1)
compare_value = v(1, 0) + v(2, 3) + b(3, "foo") + b(7, "bar")
compare_mod = v(1, 2) + v(2, 2) + b(3, "a") + v(6, 42) + b(64, "b")
op_put = b(2, put_req)
op_range = b(1, range_req)
op_delete = b(3, delete_req)
inner_txn = b(1, compare_mod) + b(2, op_put) + b(3, op_range)
txn_req = (b(1, compare_value) + b(1, compare_mod) + b(2, op_put) +
           b(2, b(4, inner_txn)) + b(3, op_range) + b(3, op_delete))
watch_create = (b(1, "/config/") + b(2, "/config0") + v(3, 17) + v(4, 1) +
                b(5, bytes([0, 1])) + v(6, 1) + v(7, 3) + v(8, 1))
etcd = {
    "range": (0, range_req),
    "put": (1, put_req),
    "delete_range": (2, delete_req),
    "txn_nested": (3, txn_req),
    "compaction": (4, v(1, 1000) + v(2, 1)),
    "watch_create": (5, b(1, watch_create)),
    "watch_cancel": (5, b(2, v(1, 3))),
    "watch_progress": (5, b(3, b"")),
    "lease_grant": (6, v(1, 60) + v(2, 0x1234)),
    "lease_revoke": (7, v(1, 0x1234)),
    "lease_keepalive": (8, v(1, 0x1234)),
    "lease_ttl": (9, v(1, 0x1234) + v(2, 1)),
    "lease_leases": (10, b""),
    "member_add": (11, b(1, "http://127.0.0.1:2380") +
                   b(1, "http://[::1]:2380") + v(2, 1)),
    "member_remove": (12, v(1, 0xdeadbeef)),
    "status": (17, b""),
    "hash_kv": (20, v(1, 12)),
    "authenticate": (27, b(1, "root") + b(2, "secret")),
    "user_add": (28, b(1, "alice") + b(2, "pw") + b(3, v(1, 1))),
    "role_grant": (39, b(1, "billing-ro") +
                   b(2, v(1, 0) + b(2, "/config/billing/") +
                     b(3, "/config/billing0"))),
    # near-valid: each breaks one rule of the encoding
    "put_truncated": (1, put_req[:-3]),
    "put_len_past_end": (1, b"\x0a\x7f" + b"foo"),
    "put_wrong_wire_type": (1, v(1, 5) + b(2, "bar")),
    "put_unknown_field": (1, put_req + b(15, "extra") + v(100, 1)),
    "put_negative_lease": (1, b(1, "k") + v(3, -1)),
    "watch_filters_unpacked": (5, b(1, b(1, "k") + v(5, 0) + v(5, 1))),
    "watch_two_oneofs": (5, b(2, v(1, 3)) + b(1, b(1, "k"))),
    "txn_bad_nested_len": (3, b"\x12\x05\x22\x40" + inner_txn[:3]),
    "varint_overlong": (6, b"\x08" + b"\xff" * 10 + b"\x01"),
}
for name, (idx, body) in etcd.items():
    write("fuzz_etcd_messages", name, bytes([idx]) + body)

# --- fuzz_peer_frame: 4-byte big-endian length + keelraft.PeerFrame -------
# The target's transport is member "fuzz-a" (id 1) of cluster 0x1111 with
# token "fuzz-token"; it knows member "fuzz-b" (id 2).


def frame(body):
    return struct.pack(">I", len(body)) + body


hello = (v(1, 1) + v(2, 0x1111) + b(3, "fuzz-token") + v(4, 2) +
         b(5, "fuzz-b"))
hello_frame = frame(b(1, hello))
entry = v(1, 3) + v(2, 8) + v(3, 0) + b(4, put_req)
append = (v(1, 1) + v(2, 2) + v(3, 1) + v(4, 3) + v(5, 3) + v(6, 7) +
          b(7, entry) + b(7, v(1, 3) + v(2, 9) + v(3, 2)) + v(8, 7))
heartbeat = v(1, 7) + v(2, 2) + v(3, 1) + v(4, 3) + v(8, 7)
snapshot = v(1, 9) + v(2, 2) + v(3, 1) + v(4, 3) + b(13, v(2, 0) +
                                                     b(3, b"\0" * 32) + v(4, 1))
forward_req = v(1, 77) + b(2, b"\x0a\x03foo")
forward_resp = v(1, 77) + v(2, -5020) + b(4, "invalid")
peer = {
    "hello_only": hello_frame,
    "hello_append": hello_frame + frame(b(2, append)),
    "hello_heartbeat_x3": hello_frame + frame(b(2, heartbeat)) * 3,
    "hello_snapshot": hello_frame + frame(b(2, snapshot)),
    "hello_forward": hello_frame + frame(b(3, forward_req)) +
                     frame(b(4, forward_resp)),
    # near-valid
    "hello_wrong_token": frame(b(1, hello.replace(b"fuzz-token",
                                                  b"fuzz-tokem"))),
    "hello_unknown_member": frame(b(1, v(1, 1) + v(2, 0x1111) +
                                    b(3, "fuzz-token") + v(4, 3) +
                                    b(5, "fuzz-c"))),
    "hello_bad_version": frame(b(1, v(1, 2) + hello[2:])),
    # a joining member's Hello: cluster id 0 (omitted), accepted from a
    # known member with the right token (peer.h)
    "hello_join_cluster_id_0": frame(b(1, hello.replace(v(2, 0x1111), b""))) +
    frame(b(2, heartbeat)),
    "first_not_hello": frame(b(2, heartbeat)),
    "hello_twice": hello_frame + hello_frame,
    "empty_frame_after_hello": hello_frame + frame(b""),
    "oversized_length": hello_frame + struct.pack(">I", 4097) + b"\x12",
    "huge_length": struct.pack(">I", 0xFFFFFFFF) + b"\x0a\x00",
    "partial_body": hello_frame + struct.pack(">I", 40) + b(2, heartbeat),
    "partial_header": hello_frame + b"\x00\x00",
}
for name, data in peer.items():
    write("fuzz_peer_frame", name, data)

# --- fuzz_watch_hub: every byte is a choice of the driver ----------------
# (fuzz_watch_hub.c: pick(n) reads one byte for n <= 256, value % n.)
# A scripted start: limits, no initial history, no failures, then
# create-watch / write / drain / catch-up cycles; and pseudo-random runs of
# several lengths (fixed seeds, so the files do not change).
import random

head = bytes([1,            # scan_limit: none (pick(3) != 0)
              5, 200, 10, 255, 3,  # backlogs, max_batch_events
              0,            # no initial history
              63])          # fail rate: none
cycle = bytes([45, 0, 0, 1, 0, 0, 0, 0,  # watch: stream 0, key "a", exact,
                                          # start now, flags 0
               10, 1, 0, 0, 1, 1,        # write: one put of "a" = "v1"
               60, 0, 99, 5,             # drain stream 0
               80, 9, 199])              # catch-up
write("fuzz_watch_hub", "scripted", head + cycle * 8)
for n, size in enumerate([64, 512, 2048, 8192]):
    rnd = random.Random(1000 + n)
    write("fuzz_watch_hub", f"random_{size}",
          bytes(rnd.getrandbits(8) for _ in range(size)))
short = bytearray(head)
short[-1] = 0  # pick(64) == 0: allocations fail
write("fuzz_watch_hub", "short_of_memory",
      bytes(short) + bytes(random.Random(7).getrandbits(8) for _ in range(1024)))
