#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A raw-socket client of dpipe-source's TCP side, for tests: sends the given lines, then prints
every line received (pings too with --show-pings), and "#EOF" when the server closes.

  source-client.py PORT [--send-file PATH] [--send LINE]... [--lines N] [--timeout S] [--pong] [--rcvbuf BYTES]
                        [--sleep S] [--show-pings] [--stay S] [--duration S]

--lines N stops after N printed lines; --timeout S stops waiting after S seconds of silence;
--pong answers server pings; --rcvbuf shrinks the receive buffer (a slow client); --sleep S waits
S seconds after sending before reading; --stay S keeps the connection S more seconds at the end
(silent), then prints "#OPEN" if the server did not close it."""
import argparse
import select
import socket
import sys
import time

p = argparse.ArgumentParser()
p.add_argument('port', type=int)
p.add_argument('--send', action='append', default=[])
p.add_argument('--send-file', help='send this file\'s bytes first (for lines too long for argv)')
p.add_argument('--lines', type=int, default=0)
p.add_argument('--timeout', type=float, default=10)
p.add_argument('--pong', action='store_true')
p.add_argument('--rcvbuf', type=int, default=0)
p.add_argument('--sleep', type=float, default=0)
p.add_argument('--show-pings', action='store_true')
p.add_argument('--stay', type=float, default=0)
p.add_argument('--duration', type=float, default=0, help='stop reading after S seconds in all')
a = p.parse_args()

s = socket.socket()
if a.rcvbuf:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, a.rcvbuf)
s.connect(('127.0.0.1', a.port))
if a.send_file:
    with open(a.send_file, 'rb') as f:
        try:
            s.sendall(f.read())
        except OSError:
            pass
for line in a.send:
    s.sendall(line.encode() + b'\n')
if a.sleep:
    time.sleep(a.sleep)

out = sys.stdout
buf = b''
printed = 0
eof = False
end = time.time() + a.duration if a.duration else None
while not eof and (a.lines == 0 or printed < a.lines):
    wait = a.timeout if end is None else min(a.timeout, end - time.time())
    if wait <= 0:
        break
    r, _, _ = select.select([s], [], [], wait)
    if not r:
        break
    data = s.recv(65536)
    if not data:
        eof = True
    buf += data
    while b'\n' in buf and (a.lines == 0 or printed < a.lines):
        line, buf = buf.split(b'\n', 1)
        text = line.decode()
        if text == '{"op":"ping"}':
            if a.pong:
                s.sendall(b'{"op":"pong"}\n')
            if not a.show_pings:
                continue
        out.write(text + '\n')
        printed += 1
out.flush()
if eof:
    print('#EOF', flush=True)
elif a.stay:
    deadline = time.time() + a.stay
    closed = False
    while time.time() < deadline and not closed:
        r, _, _ = select.select([s], [], [], max(0, deadline - time.time()))
        if r:
            data = s.recv(65536)
            if not data:
                closed = True
            elif a.pong and b'{"op":"ping"}' in data:
                s.sendall(b'{"op":"pong"}\n')
    print('#EOF' if closed else '#OPEN', flush=True)
s.close()
