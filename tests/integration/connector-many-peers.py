#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Many raw TCP peers in one process for connector tests: listens on PORT and sends each accepted
connection COUNT JSON lines {"peer":N,"n":i} (N counts connections), then keeps it open and idle.

  connector-many-peers.py PORT COUNT"""
import resource
import selectors
import socket
import sys

soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
port, count = int(sys.argv[1]), int(sys.argv[2])
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(('127.0.0.1', port))
ls.listen(4096)
sel = selectors.DefaultSelector()
sel.register(ls, selectors.EVENT_READ)
peers = 0
conns = []
while True:
    for key, _ in sel.select():
        if key.fileobj is ls:
            c, _ = ls.accept()
            data = ''.join('{"peer":%d,"n":%d}\n' % (peers, i) for i in range(count)).encode()
            c.setblocking(True)
            c.sendall(data)
            c.setblocking(False)
            sel.register(c, selectors.EVENT_READ)
            conns.append(c)
            peers += 1
        else:
            try:
                if not key.fileobj.recv(4096):
                    sel.unregister(key.fileobj)
                    key.fileobj.close()
            except OSError:
                sel.unregister(key.fileobj)
                key.fileobj.close()
