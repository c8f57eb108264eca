#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
# A raw client of dpiped's TCP protocol for the tests (python3 standard library only).
#   dpiped-client.py PORT STEP...
# Steps: "send:LINE" sends LINE + "\n"; "raw:HEX" sends bytes; "recv:N" prints the next N lines
# skipping the server's pings (fails after 10 s); "recv-until:TEXT" prints lines up to the first that contains TEXT;
# "exec:CMD" runs a shell command; "long:N" sends a line of N bytes; "recv-records:N" prints N record lines skipping pings; "sleep:S"; "closed" waits until the
# server closes (prints the lines before); "ack-all" acks the last record printed.
import socket
import subprocess
import sys
import time

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
