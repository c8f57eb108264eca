#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
# Hostile clients of dpiped's client port for test-dpiped-limits.sh (python3 standard library only).
#
#   dpiped-slowloris.py PORT PID flood N BYTES      N clients each send BYTES of a line that never ends
#   dpiped-slowloris.py PORT PID bigline N BYTES    N clients each send one whole line of BYTES, get the
#                                                   reply and stay
#   dpiped-slowloris.py PORT PID trickle MS SECONDS one client sends a byte every MS ms, never a newline
#   dpiped-slowloris.py PORT PID connect N          N clients connect and say nothing
#   dpiped-slowloris.py PORT PID budget             (with --max-client-memory=2M) client A holds 1 MB
#                                                   of a line, B passes the budget, C pings, A ends
#                                                   its line and pings: prints the 4 replies
#
# flood, bigline and connect print one JSON object: dpiped's VmRSS (KiB) before and after (once dpiped
# has read everything sent: no bytes left in its sockets' receive queues), how many clients dpiped
# closed and the first error line each got, and whether a new client still gets a pong. trickle
# prints what the server sent and "CLOSED after S s" or "OPEN after S s".
import json
import resource
import socket
import sys
import time

port, pid, mode = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
# A thousand clients need more descriptors than the usual soft limit.
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def rss_kib():
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def unread_bytes():
    """Bytes clients sent that dpiped has not read yet (receive queues of its end of the port)."""
    total = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(table).read().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            f = line.split()
            if int(f[1].split(":")[1], 16) == port:
                total += int(f[4].split(":")[1], 16)
    return total


def wait_read(timeout=60):
    deadline = time.time() + timeout
    while unread_bytes() > 0:
        if time.time() > deadline:
            sys.exit("dpiped did not read what its clients sent within %d s" % timeout)
        time.sleep(0.05)
    time.sleep(0.2)  # and handled the last of it


def connect():
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    return s


def ping_ok():
    s = connect()
    s.sendall(b"ping\n")
    f = s.makefile("rb")
    while True:
        line = f.readline()
        if not line:
            return False
        if line.strip() == b'{"op":"pong"}':
            s.close()
            return True


def collect(socks):
    """Clients that dpiped closed, and the first line each got."""
    closed, errors = 0, {}
    for s in socks:
        s.setblocking(False)
        data = b""
        try:
            while True:
                b = s.recv(65536)
                if not b:
                    closed += 1
                    break
                data += b
        except (BlockingIOError, InterruptedError):
            pass
        except ConnectionResetError:
            closed += 1
        for line in data.split(b"\n"):
            if b'"op":"error"' in line:
                code = json.loads(line)["code"]
                errors[code] = errors.get(code, 0) + 1
                break
    return closed, errors


def report(before, socks):
    wait_read()
    after = rss_kib()
    closed, errors = collect(socks)
    print(json.dumps({"rss_before_kib": before, "rss_after_kib": after, "clients": len(socks),
                      "closed": closed, "errors": errors, "new_client_pong": ping_ok()}), flush=True)


if mode == "flood":
    n, size = int(sys.argv[4]), int(sys.argv[5])
    before = rss_kib()
    socks = []
    for _ in range(n):
        s = connect()
        try:
            s.sendall(b"a" * size)
        except (BrokenPipeError, ConnectionResetError):
            pass  # closed by dpiped: counted below
        socks.append(s)
    report(before, socks)
elif mode == "bigline":
    n, size = int(sys.argv[4]), int(sys.argv[5])
    before = rss_kib()
    socks = []
    line = b'{"op":"ping","pad":"' + b"x" * (size - 30) + b'"}\n'
    for _ in range(n):
        s = connect()
        s.sendall(line)
        f = s.makefile("rb")
        while f.readline().strip() != b'{"op":"pong"}':
            pass
        socks.append(s)
    report(before, socks)
elif mode == "connect":
    n = int(sys.argv[4])
    before = rss_kib()
    socks = [connect() for _ in range(n)]
    report(before, socks)
elif mode == "trickle":
    interval, seconds = int(sys.argv[4]) / 1000.0, float(sys.argv[5])
    s = connect()
    s.settimeout(interval)
    start = time.time()
    got = b""
    while time.time() - start < seconds:
        try:
            s.sendall(b"p")
        except (BrokenPipeError, ConnectionResetError):
            print(got.decode(errors="replace"), end="")
            print("CLOSED after %.1f s" % (time.time() - start), flush=True)
            sys.exit(0)
        try:
            b = s.recv(65536)
            if not b:
                print(got.decode(errors="replace"), end="")
                print("CLOSED after %.1f s" % (time.time() - start), flush=True)
                sys.exit(0)
            got += b
        except socket.timeout:
            pass
    print(got.decode(errors="replace"), end="")
    print("OPEN after %.1f s" % (time.time() - start), flush=True)
elif mode == "budget":
    a = connect()
    a.sendall(b"x" * 1000000)  # about half of the budget, held
    wait_read()
    b = connect()
    b.sendall(b"y" * 1000000)  # passes it
    print(b.makefile("rb").readline().decode().strip())
    c = connect()
    c.sendall(b"ping\n")  # a whole line costs nothing
    print(c.makefile("rb").readline().decode().strip())
    a.sendall(b"\nping\n")  # A's line ends: unknown_op, then pong
    f = a.makefile("rb")
    print(f.readline().decode().strip())
    print(f.readline().decode().strip())
else:
    sys.exit("unknown mode " + mode)
