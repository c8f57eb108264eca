#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A reader of dpiped's client protocol for the scale-out test (python3 standard library only).

  stream-reader.py PORT|/PATH/client.sock OUT NAME [WINDOW]

Subscribes with the durable name NAME from "earliest" (or where NAME committed), answers pings,
acks every record it wrote, and appends each record line to OUT as it arrives (flushed). Exits 0
when the server closes the connection, 1 on an error line from the server."""
import json
import socket
import sys
import time

addr, out_path, name = sys.argv[1], sys.argv[2], sys.argv[3]
window = int(sys.argv[4]) if len(sys.argv) > 4 else 2000
if addr.startswith('/'):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(addr)
else:
    sock = socket.create_connection(('127.0.0.1', int(addr)))
sock.sendall((json.dumps({'op': 'subscribe', 'from': 'committed', 'name': name, 'window': window}) + '\n').encode())
out = open(out_path, 'a', encoding='utf-8')
buf = b''
last_ack = time.monotonic()
pending = None
while True:
    sock.settimeout(0.2)
    try:
        chunk = sock.recv(1 << 16)
        if not chunk:
            sys.exit(0)
        buf += chunk
    except socket.timeout:
        pass
    lines = buf.split(b'\n')
    buf = lines.pop()
    reply = b''
    for line in lines:
        msg = json.loads(line)
        op = msg.get('op')
        if op == 'record':
            out.write(line.decode() + '\n')
            pending = msg['offset']
        elif op == 'ping':
            reply += b'{"op":"pong"}\n'
        elif op == 'error':
            print(line.decode(), file=sys.stderr)
            sys.exit(1)
        else:
            print(line.decode(), file=sys.stderr)
    out.flush()
    if pending is not None:
        reply += ('{"op":"ack","offset":%d}\n' % pending).encode()
        pending = None
    if reply:
        sock.sendall(reply)
