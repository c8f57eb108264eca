#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A stand-in for dpipe-source's TCP side (dpipe-source(1)) for connector tests: serves COUNT rows
{"i":N,"name":"row-N"} with seq N to every peer that sends "subscribe [N]", RATE rows per second
(0 = as fast as possible), answers pings, and logs each subscribe line to stdout.

  connector-fake-source.py PORT COUNT [RATE [POISON_AT]]

With POISON_AT, the first connection that reaches row POISON_AT gets a record with seq 2^64-1 before
it (a peer that sends a seq nothing can follow); later connections do not."""
import json
import socket
import sys
import threading
import time

port, count = int(sys.argv[1]), int(sys.argv[2])
rate = float(sys.argv[3]) if len(sys.argv) > 3 else 0
poison_at = int(sys.argv[4]) if len(sys.argv) > 4 else None
poisoned = threading.Event()


def serve(c):
    f = c.makefile('rb')
    lock = threading.Lock()

    def reader(state):
        for line in f:
            line = line.decode().strip()
            if line.startswith('subscribe'):
                parts = line.split()
                state['from'] = int(parts[1]) if len(parts) > 1 else 0
                print(line, flush=True)
                state['go'].set()
            elif line == '{"op":"ping"}' or line == 'ping':
                with lock:
                    c.sendall(b'{"op":"pong"}\n')
        state['go'].set()

    state = {'go': threading.Event(), 'from': None}
    threading.Thread(target=reader, args=(state,), daemon=True).start()
    state['go'].wait()
    if state['from'] is None:
        return
    try:
        for i in range(state['from'], count):
            if i == poison_at and not poisoned.is_set():
                poisoned.set()
                rec = {'op': 'record', 'seq': 2**64 - 1, 'data': {'poison': True}}
                with lock:
                    c.sendall((json.dumps(rec, separators=(',', ':')) + '\n').encode())
            rec = {'op': 'record', 'seq': i, 'data': {'i': i, 'name': 'row-%d' % i}}
            with lock:
                c.sendall((json.dumps(rec, separators=(',', ':')) + '\n').encode())
            if rate:
                time.sleep(1 / rate)
        while True:
            time.sleep(1)
    except OSError:
        pass


s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', port))
s.listen(64)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
