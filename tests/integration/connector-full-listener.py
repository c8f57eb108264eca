#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A TCP listener whose accept queue is full and never drained: a connect() to PORT neither
succeeds nor fails, so a connector's connect timeout is what ends it. Prints "ready".

  connector-full-listener.py PORT"""
import socket, sys, time
s = socket.socket(); s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen(0)
cs = []
for i in range(3):
    c = socket.socket(); c.setblocking(False)
    try: c.connect(('127.0.0.1', int(sys.argv[1])))
    except BlockingIOError: pass
    cs.append(c)
print("ready", flush=True)
time.sleep(60)
