#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
# Load on dpiped's client server (test-dpiped-load.sh): 1,000 idle connections, one stalled
# subscriber that never reads, and 10 streaming subscribers that must each get every record in
# order, all at once on dpiped's one loop. Checks dpiped's memory stays bounded.
#   dpiped-load.py PORT DPIPED-PID RECORDS [GROWTH-LIMIT-KIB]
import json
import resource
import socket
import subprocess
import sys
import threading
import time

port, pid, records = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
limit_kib = int(sys.argv[4]) if len(sys.argv) > 4 else 20 * 1024
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def fail(msg):
    print("FAIL: " + msg, flush=True)
    sys.exit(1)


def rss_kib():
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    fail("no VmRSS")


def clients_property():
    out = subprocess.run(["busctl", "--system", "get-property", "org.dpipe.Pipeline1", "/org/dpipe/Pipeline1",
                          "org.dpipe.Pipeline1.Manager", "Clients"], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[1])


def connect():
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    return s, s.makefile("rb")


def reply(f):
    while True:
        line = f.readline()
        if not line:
            fail("connection closed")
        o = json.loads(line)
        if o.get("op") != "ping":
            return o


rss_start = rss_kib()

# 1,000 idle clients, each says hello once.
idle = []
for i in range(1000):
    s, f = connect()
    s.sendall(b"hello\n")
    idle.append((s, f))
for s, f in idle:
    if reply(f).get("op") != "hello":
        fail("no hello reply")
n = clients_property()
if n != 1000:
    fail("Clients is %d with 1000 connected" % n)
rss_idle = rss_kib()
print("rss: start %d KiB, with 1000 idle clients %d KiB" % (rss_start, rss_idle), flush=True)

# A subscriber that never reads, with the largest window: dpiped must not buffer the queue for it.
stalled, _ = connect()
stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
stalled.sendall(b'{"op":"subscribe","from":"earliest","window":1000000}\n')

# 10 streaming subscribers, each must see offsets 0..records-1 in order.
errors = []


def stream(k):
    try:
        s, f = connect()
        s.sendall(('{"op":"subscribe","from":"earliest","window":1000,"id":%d}\n' % k).encode())
        o = reply(f)
        if o != {"op": "ok", "offset": 0, "id": k}:
            raise Exception("subscribe reply %r" % o)
        expect = 0
        while expect < records:
            line = f.readline()
            if not line:
                raise Exception("closed at %d" % expect)
            o = json.loads(line)
            if o["op"] == "ping":
                s.sendall(b"pong\n")
                continue
            if o["op"] != "record" or o["offset"] != expect or o["source"] != "load" or o["data"]["i"] != expect + 1:
                raise Exception("expected record %d, got %s" % (expect, line[:120]))
            expect += 1
            if expect % 500 == 0:
                s.sendall(b"ack %d\n" % (expect - 1))
        s.sendall(b"quit\n")
        while reply(f).get("op") != "bye":
            pass
        s.close()
    except Exception as e:  # noqa: BLE001 - reported below
        errors.append("streamer %d: %s" % (k, e))


threads = [threading.Thread(target=stream, args=(k,)) for k in range(10)]
peak = 0
for t in threads:
    t.start()
while any(t.is_alive() for t in threads):
    peak = max(peak, rss_kib())
    time.sleep(0.1)
for t in threads:
    t.join()
if errors:
    fail("; ".join(errors))
rss_end = rss_kib()
print("rss: peak while streaming %d KiB, after %d KiB" % (peak, rss_end), flush=True)

# Bounded: the queue holds records x ~1 KiB; dpiped holds at most its output high-water mark and a
# window of offsets per subscriber, not the queue.
if peak - rss_idle > limit_kib:
    fail("dpiped grew by %d KiB while streaming" % (peak - rss_idle))
if rss_idle - rss_start > 32 * 1024:
    fail("1000 idle clients cost %d KiB" % (rss_idle - rss_start))

n = clients_property()
if n != 1001:
    fail("Clients is %d with 1000 idle and one stalled client" % n)

# The idle ones are all still served.
for s, f in idle[::50]:
    s.sendall(b"ping\n")
    if reply(f).get("op") != "pong":
        fail("an idle client got no pong")
print("OK", flush=True)
