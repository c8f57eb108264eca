#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Drives a dpipe sink daemon over its control socket without dpiped (man:dpipe-sink(7)).

  sink-ctl.py SOCKET add NAME KEY=VALUE... [--paused] [--pipeline-id=ID]   add a sink, print the reply
  sink-ctl.py SOCKET remove|pause|resume NAME
  sink-ctl.py SOCKET list                                 print {"op":"sinks",...}
  sink-ctl.py SOCKET wait NAME FIELD OP VALUE [TIMEOUT]   wait until a state report of NAME has
                                                          FIELD OP VALUE (OP: == != >= <=), print it
  sink-ctl.py SOCKET watch [SECONDS]                      print every message as a JSON line

Values that are all digits are sent as JSON numbers. Exit status 0 when the reply is ok.
Frames: u32 size, u16 type (1 = control JSON), u16 flags, all little-endian."""
import json
import socket
import struct
import sys
import time


def send(sock, obj):
    data = json.dumps(obj).encode()
    sock.sendall(struct.pack('<IHH', len(data), 1, 0) + data)


def frames(sock, deadline):
    buf = b''
    while True:
        while len(buf) >= 8:
            size, ftype, _ = struct.unpack('<IHH', buf[:8])
            if len(buf) < 8 + size:
                break
            payload, buf = buf[8:8 + size], buf[8 + size:]
            if ftype == 1:
                yield json.loads(payload)
        left = deadline - time.monotonic()
        if left <= 0:
            return
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            return
        if not chunk:
            return
        buf += chunk


def value(v):
    return int(v) if v.isdigit() else v


def matches(got, op, want):
    return ((op == '==' and got == want) or (op == '!=' and got != want) or
            (op == '>=' and got >= want) or (op == '<=' and got <= want))


def main():
    path, cmd, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    deadline = time.monotonic() + 10
    if cmd == 'add':
        req = {'op': 'add', 'id': 1, 'name': args[0], 'options': {}, 'paused': False}
        for a in args[1:]:
            if a == '--paused':
                req['paused'] = True
            elif a.startswith('--pipeline-id='):
                req['pipeline_id'] = a.split('=', 1)[1]
            else:
                k, v = a.split('=', 1)
                req['options'][k] = value(v)
        send(sock, req)
    elif cmd in ('remove', 'pause', 'resume'):
        send(sock, {'op': cmd, 'id': 1, 'name': args[0]})
    elif cmd == 'list':
        send(sock, {'op': 'list', 'id': 1})
    elif cmd == 'wait':
        name, field, op, want = args[0], args[1], args[2], value(args[3])
        deadline = time.monotonic() + (float(args[4]) if len(args) > 4 else 20)
        send(sock, {'op': 'list', 'id': 1})
        last = None
        for m in frames(sock, deadline):
            items = m.get('sinks', []) if m.get('op') == 'sinks' else [m] if m.get('op') == 'state' else []
            for st in items:
                if st.get('name') != name or field not in st:
                    continue
                last = st
                if matches(st[field], op, want):
                    print(json.dumps(st))
                    return 0
        print('timeout waiting for %s %s %s %s; last state: %s' % (name, field, op, want, json.dumps(last)),
              file=sys.stderr)
        return 1
    elif cmd == 'watch':
        deadline = time.monotonic() + (float(args[0]) if args else 10)
        for m in frames(sock, deadline):
            print(json.dumps(m), flush=True)
        return 0
    else:
        print('unknown command ' + cmd, file=sys.stderr)
        return 2
    for m in frames(sock, deadline):
        if m.get('id') == 1:
            print(json.dumps(m))
            return 0 if m.get('op') in ('ok', 'sinks') else 1
    print('no reply', file=sys.stderr)
    return 1


if __name__ == '__main__':
    sys.exit(main())
