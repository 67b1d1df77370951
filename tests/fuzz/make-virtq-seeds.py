#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
# Writes seed inputs for tests/fuzz/fuzz-virtq.c (layout in its header):
# a well-formed chain for the queue loop, a loop, an out-of-range head, and
# for each device a register script that brings it to DRIVER_OK and kicks.
import os
import struct
import sys

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus", "virtq")
os.makedirs(out, exist_ok=True)


def desc(addr, ln, flags, nxt):
    return struct.pack("<QIHH", addr, ln, flags, nxt)


def put(img, off, data):
    img[off:off + len(data)] = data


def queue_seed(name, descs, heads):
    img = bytearray(0x3000)
    for i, d in enumerate(descs):
        put(img, i * 16, d)
    put(img, 0x1000, struct.pack("<HH", 0, len(heads)) + b"".join(struct.pack("<H", h) for h in heads))
    with open(os.path.join(out, name), "wb") as f:
        f.write(bytes([0, 3]) + struct.pack("<H", 0) + img)


queue_seed("queue-good", [desc(0x2800, 16, 1, 1), desc(0x2900, 64, 2, 0)], [0])
queue_seed("queue-loop", [desc(0x2800, 16, 1, 1), desc(0x2900, 16, 1, 0)], [0])
queue_seed("queue-head", [desc(0x2800, 16, 0, 0)], [9])


def reg(off, val):
    return struct.pack("<HBI", off, 6, val)


for kind, name in [(0, "rng"), (1, "blk"), (2, "console"), (3, "pmem"), (5, "net")]:
    script = b"".join([
        reg(0x70, 1), reg(0x70, 3), reg(0x24, 1), reg(0x20, 1), reg(0x70, 0xb),
    ])
    nq = 2 if name in ("console", "net") else 1
    for q in range(nq):
        base = 0x1000 + q * 0x3000
        script += b"".join([
            reg(0x30, q), reg(0x38, 8), reg(0x80, base), reg(0x84, 0),
            reg(0x90, base + 0x1000), reg(0x94, 0), reg(0xa0, base + 0x2000), reg(0xa4, 0),
            reg(0x44, 1),
        ])
    script += reg(0x70, 0xf)
    for q in range(nq):
        script += reg(0x50, q)
    img = bytearray(0x8000)
    put(img, 0, script)
    for q in range(nq):
        base = 0x1000 + q * 0x3000
        if name == "blk":
            chain = [desc(0x7000, 16, 1, 1), desc(0x7200, 512, 3, 2), desc(0x7100, 1, 2, 0)]
            put(img, 0x7000, struct.pack("<IIQ", 0, 0, 0))
        elif name == "pmem":
            chain = [desc(0x7000, 4, 1, 1), desc(0x7100, 4, 2, 0)]
        elif name == "console" and q == 1:
            chain = [desc(0x7000, 32, 0, 0)]
        elif name == "net" and q == 0:
            chain = [desc(0x7200, 12 + 1514, 2, 0)]  # a receive buffer for a queued frame
        elif name == "net":
            chain = [desc(0x7000, 12 + 42, 0, 0)]  # header + an ARP-sized frame
        else:
            chain = [desc(0x7200, 64, 2, 0)]
        for i, d in enumerate(chain):
            put(img, base + i * 16, d)
        put(img, base + 0x1000, struct.pack("<HHH", 0, 1, 0))
    with open(os.path.join(out, "dev-" + name), "wb") as f:
        f.write(bytes([1 | (kind << 1), 0]) + struct.pack("<H", 0) + img)
