#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
# Test-only peer for guest/proto.h, in Python so the tests do not share the C
# codec they check.  Two roles:
#   agent_client.py fake-agent MODE   (run by kal as KAL_TEST_AGENT; fd 3 is the
#                                      socket) a hostile or broken agent
#   agent_client.py drive AGENT SCENARIO   start `AGENT --serve-fd 3` on a
#                                      socketpair and run a multi-session scenario
import os
import socket
import struct
import subprocess
import sys
import time

HDR = struct.Struct("<IHHI")
HELLO, PING, PONG, ERROR, OK = 0x01, 0x02, 0x03, 0x04, 0x05
SPAWN, SPAWNED, STDIN, STDIN_EOF, STDOUT, STDERR = 0x10, 0x11, 0x12, 0x13, 0x14, 0x15
RESIZE, SIGNAL, WAIT, EXIT, LIST, LIST_REPLY, DETACH = 0x16, 0x17, 0x18, 0x19, 0x1A, 0x1B, 0x1C
FILE_READ, FILE_WRITE, FILE_DATA, FILE_END, SYNC = 0x20, 0x21, 0x22, 0x23, 0x24


def frame(t, sid, payload=b""):
    return HDR.pack(len(payload), t, 0, sid) + payload


def s(x):
    b = x.encode() + b"\0"
    return struct.pack("<I", len(b)) + b


def strlist(v):
    return struct.pack("<I", len(v)) + b"".join(s(x) for x in v)


def spawn_payload(argv, flags=0, env=(), cwd=""):
    return (struct.pack("<IHHII", flags, 0, 0, 0xFFFFFFFF, 0xFFFFFFFF) + s("") + s(cwd) + s("")
            + strlist(argv) + strlist(list(env)))


class Conn:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def send(self, t, sid, payload=b""):
        self.sock.sendall(frame(t, sid, payload))

    def recv(self, timeout=10):
        self.sock.settimeout(timeout)
        while True:
            if len(self.buf) >= 12:
                n, t, fl, sid = HDR.unpack_from(self.buf)
                if len(self.buf) >= 12 + n:
                    p = self.buf[12:12 + n]
                    self.buf = self.buf[12 + n:]
                    return t, sid, p
            d = self.sock.recv(1 << 16)
            if not d:
                raise EOFError("agent closed the channel")
            self.buf += d


def fake_agent(mode):
    sock = socket.socket(fileno=3)
    c = Conn(sock)
    if mode == "version2":
        c.send(HELLO, 0, struct.pack("<II", 2, 65536) + s("kal-init future"))
    elif mode == "silent":
        c.send(HELLO, 0, struct.pack("<II", 1, 65536) + s("kal-init silent"))
    elif mode == "die":
        c.send(HELLO, 0, struct.pack("<II", 1, 65536) + s("kal-init dying"))
        c.recv()
        sys.exit(0)
    elif mode == "oversize":
        sock.sendall(HDR.pack(1 << 20, STDOUT, 0, 1))
    elif mode == "badexit":
        c.send(HELLO, 0, struct.pack("<II", 1, 65536) + s("kal-init"))
        c.send(EXIT, 1, b"\x07" + struct.pack("<iI", 0, 0))
    # then idle until kal goes away
    try:
        while c.sock.recv(65536):
            pass
    except OSError:
        pass


def drive(agent, scenario):
    a, b = socket.socketpair()
    proc = subprocess.Popen([agent, "--serve-fd", str(b.fileno())], pass_fds=(b.fileno(),))
    b.close()
    c = Conn(a)
    t, sid, p = c.recv()
    assert t == HELLO and struct.unpack_from("<I", p)[0] == 1, "agent says HELLO v1 first"
    c.send(HELLO, 0, struct.pack("<II", 1, 65536) + s("agent_client"))
    assert c.recv()[0] == HELLO
    c.pid = proc.pid
    globals()["scenario_" + scenario](c)
    a.close()
    proc.wait(timeout=10)
    print("ok")


def collect(c, sids):
    """Run until every session in sids has sent EXIT; returns {sid: (out, err, code)}."""
    res = {sid: [b"", b"", None] for sid in sids}
    while any(r[2] is None for r in res.values()):
        t, sid, p = c.recv()
        if t == STDOUT:
            res[sid][0] += p
        elif t == STDERR:
            res[sid][1] += p
        elif t == EXIT:
            res[sid][2] = struct.unpack_from("<i", p, 1)[0]
        elif t == ERROR:
            raise AssertionError("agent error for %d: %r" % (sid, p))
    return res


def rss_kib(pid):
    for line in open("/proc/%d/status" % pid):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def scenario_login(c):
    # KAL_SPAWN_LOGIN: argv[0] becomes "-" + basename, the path stays
    c.send(SPAWN, 1, spawn_payload(["/bin/sh", "-c", 'echo "$0"'], flags=0x8))
    assert collect(c, [1])[1][0] == b"-sh\n"


def scenario_flood(c):
    # a child writing at full speed while the host reads nothing: the agent's
    # memory stays bounded (channel cap), then everything still works
    c.send(SPAWN, 1, spawn_payload(["yes", "flood"]))
    time.sleep(2)
    rss = rss_kib(c.pid)
    assert rss < 8192, "agent RSS %d KiB with a stalled host" % rss
    c.send(SIGNAL, 1, struct.pack("<I", 9))
    res = collect(c, [1])
    assert res[1][2] == 137 and res[1][0].startswith(b"flood\n")
    c.send(SPAWN, 2, spawn_payload(["echo", "after"]))
    assert collect(c, [2])[2][0] == b"after\n"
    print("agent RSS with a stalled host: %d KiB" % rss)


def scenario_orphans(c):
    # double-forked orphans re-parent to the agent (subreaper here, PID 1 in a VM)
    c.send(SPAWN, 1, spawn_payload(["sh", "-c", "for i in 1 2 3 4 5; do (sleep 0.2 &); done"]))
    collect(c, [1])
    time.sleep(1.5)
    zombies = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            st = open("/proc/%s/stat" % d).read()
        except OSError:
            continue
        fields = st.rsplit(")", 1)[1].split()
        if fields[0] == "Z" and int(fields[1]) == c.pid:
            zombies.append(d)
    assert not zombies, "zombies left: %s" % zombies


def scenario_many(c):
    # 100 concurrent sessions, each its own output and exit status
    n = 100
    for i in range(1, n + 1):
        c.send(SPAWN, i, spawn_payload(["sh", "-c", "echo s%d; exit %d" % (i, i % 50)]))
    res = collect(c, range(1, n + 1))
    for i in range(1, n + 1):
        assert res[i][0] == b"s%d\n" % i, res[i]
        assert res[i][2] == i % 50, res[i]


def scenario_cap(c):
    # the session cap: spawn 256 sleepers, the 257th is refused, all are listed
    for i in range(1, 257):
        c.send(SPAWN, i, spawn_payload(["sleep", "30"]))
    c.send(SPAWN, 999, spawn_payload(["true"]))
    spawned, refused = 0, None
    while spawned < 256 or refused is None:
        t, sid, p = c.recv()
        if t == SPAWNED:
            spawned += 1
        elif t == ERROR and sid == 999:
            refused = p[8:-1].decode()
    assert refused == "too many sessions (at most 256)", refused
    c.send(LIST, 5000)
    t, sid, p = c.recv()
    assert t == LIST_REPLY and sid == 5000
    assert struct.unpack_from("<I", p)[0] == 256
    for i in range(1, 257):
        c.send(SIGNAL, i, struct.pack("<I", 9))
    res = collect(c, range(1, 257))
    assert all(r[2] == 137 for r in res.values())


def scenario_malformed(c):
    # bad payloads fail only their session; the agent keeps serving
    c.send(SPAWN, 1, b"\x00\x01\x02")
    t, sid, p = c.recv()
    assert t == ERROR and sid == 1 and b"malformed SPAWN frame" in p, (t, sid, p)
    c.send(SPAWN, 2, spawn_payload([]))  # no command
    t, sid, p = c.recv()
    assert t == ERROR and sid == 2
    c.send(RESIZE, 3, b"\x01")  # no such session: ignored
    c.send(SIGNAL, 77, struct.pack("<I", 9))
    t, sid, p = c.recv()
    assert t == ERROR and sid == 77 and b"no session 77" in p, p
    c.send(SPAWN, 4, spawn_payload(["echo", "still alive"]))
    res = collect(c, [4])
    assert res[4][0] == b"still alive\n" and res[4][2] == 0
    c.send(PING, 5, struct.pack("<Q", 42))
    assert c.recv() == (PONG, 5, struct.pack("<Q", 42))
    c.send(SYNC, 6)
    assert c.recv() == (OK, 6, b"")


def scenario_detach(c):
    # a detached session keeps only its last 64 KiB and hands them over on WAIT
    c.send(SPAWN, 1, spawn_payload(["sh", "-c", "head -c 200000 /dev/zero; echo END"],
                                   flags=0x4))
    t, sid, p = c.recv()
    assert t == SPAWNED
    time.sleep(1)
    c.send(WAIT, 1)
    out, err = b"", b""
    while True:
        t, sid, p = c.recv()
        if t == STDOUT:
            out += p
        elif t == STDERR:
            err += p
        elif t == EXIT:
            break
    assert out.endswith(b"END\n") and len(out) <= 65536, len(out)
    assert b"bytes of earlier output were dropped" in err, err


def scenario_files(c, tmp=None):
    tmp = os.environ["BATS_TEST_TMPDIR"]
    data = os.urandom(300000)
    c.send(FILE_WRITE, 1, struct.pack("<I", 0o640) + s(tmp + "/f.bin"))
    for i in range(0, len(data), 30000):
        c.send(FILE_DATA, 1, data[i:i + 30000])
    c.send(FILE_END, 1, struct.pack("<IQ", 0, 0))
    assert c.recv() == (OK, 1, b"")
    assert open(tmp + "/f.bin", "rb").read() == data
    assert os.stat(tmp + "/f.bin").st_mode & 0o777 == 0o640
    c.send(FILE_READ, 2, s(tmp + "/f.bin"))
    got = b""
    while True:
        t, sid, p = c.recv()
        if t == FILE_DATA:
            got += p
        else:
            assert t == FILE_END, t
            mode, size = struct.unpack("<IQ", p)
            break
    assert got == data and size == len(data) and mode == 0o640
    c.send(FILE_READ, 3, s(tmp + "/missing"))
    t, sid, p = c.recv()
    assert t == ERROR and b"open `" in p and b"No such file or directory" in p, p


if __name__ == "__main__":
    if sys.argv[1] in ("fake-agent", "--serve-fd"):
        fake_agent(os.environ.get("FAKE_AGENT_MODE", sys.argv[2]))
    else:
        drive(sys.argv[2], sys.argv[3])
