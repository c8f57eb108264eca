#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
# A raw client of dpiped's client protocol for the tests (python3 standard library only).
#   dpiped-client.py PORT|/PATH/client.sock STEP...
# Steps: "send:LINE" sends LINE + "\n"; "raw:HEX" sends bytes; "recv:N" prints the next N lines
# skipping the server's pings (fails after 10 s); "recv-until:TEXT" prints lines up to the first that contains TEXT;
# "garbage:SEED" sends 2000 random lines; "exec:CMD" runs a shell command; "long:N" sends a line of N bytes; "recv-records:N" prints N record lines skipping pings; "sleep:S"; "closed" waits until the
# server closes (prints the lines before); "ack-all" acks the last record printed.
import socket
import subprocess
import sys
import time

if sys.argv[1].startswith("/"):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(sys.argv[1])
else:
    sock = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
f = sock.makefile("rb")
last_offset = None


def line():
    global last_offset
    b = f.readline()
    if not b:
        print("EOF")
        sys.exit(3)
    s = b.decode().rstrip("\n")
    if '"op":"record"' in s:
        last_offset = int(s.split('"offset":')[1].split(",")[0])
    return s


for step in sys.argv[2:]:
    kind, _, arg = step.partition(":")
    if kind == "send":
        sock.sendall(arg.encode() + b"\n")
    elif kind == "raw":
        sock.sendall(bytes.fromhex(arg))
    elif kind == "recv":
        n = 0
        while n < int(arg):
            s = line()
            if s == '{"op":"ping"}':
                continue
            print(s, flush=True)
            n += 1
    elif kind == "recv-until":
        while True:
            s = line()
            print(s, flush=True)
            if arg in s:
                break
    elif kind == "recv-records":
        n = 0
        while n < int(arg):
            s = line()
            if s == '{"op":"ping"}':
                continue
            print(s, flush=True)
            n += 1
    elif kind == "long":
        sock.sendall(b"a" * int(arg) + b"\n")
    elif kind == "exec":
        subprocess.run(arg, shell=True, check=True)
    elif kind == "garbage":
        # Seeded random lines: JSON-ish, inline-ish and binary, none longer than 4 KiB.
        import random
        rnd = random.Random(int(arg))
        parts = [b"{", b"}", b"\"", b"op", b":", b",", b"[", b"]", b"add", b"subscribe", b"ack", b" ", b"=",
                 b"\\", b"\x00", b"\r", b"1e999", b"-1", b"null", b"\xff\xfe", b"id", b"window", b"from"]
        for _ in range(2000):
            if rnd.random() < 0.3:
                junk = bytes(rnd.randrange(1, 256) for _ in range(rnd.randrange(0, 64))).replace(b"\n", b"")
            else:
                junk = b"".join(rnd.choice(parts) for _ in range(rnd.randrange(0, 40)))
            if b"quit" in junk:
                continue
            sock.sendall(junk + b"\n")
    elif kind == "sleep":
        time.sleep(float(arg))
    elif kind == "ack-all":
        sock.sendall(('{"op":"ack","offset":%d}\n' % last_offset).encode())
    elif kind == "closed":
        sock.settimeout(float(arg or 10))
        while True:
            b = f.readline()
            if not b:
                print("CLOSED", flush=True)
                break
            print(b.decode().rstrip("\n"), flush=True)
    else:
        sys.exit("unknown step " + step)
