#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Drives a dpipe connector over its control socket without dpiped (man:dpipe-connector(7)).

  connector-ctl.py SOCKET add NAME KEY=VALUE... [--paused]   add a source, print the reply
  connector-ctl.py SOCKET remove|pause|resume NAME
  connector-ctl.py SOCKET list                                print {"op":"sources",...}
  connector-ctl.py SOCKET wait NAME FIELD OP VALUE [TIMEOUT]  wait until a state report of NAME has
                                                              FIELD OP VALUE (OP: == >= <=), print it
  connector-ctl.py SOCKET watch [SECONDS]                     print every message as a JSON line
  connector-ctl.py SOCKET add-many PREFIX COUNT KEY=VALUE...  add PREFIX0..PREFIX<COUNT-1>; {i} in a
                                                              value is replaced by the index
  connector-ctl.py SOCKET totals                              print "SOURCES ACTIVE RECORDS SKIPPED"

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
    if v.isdigit():
        return int(v)
    return v


def main():
    path, cmd, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    deadline = time.monotonic() + 10
    if cmd == 'add':
        opts = {}
        paused = False
        for a in args[1:]:
            if a == '--paused':
                paused = True
                continue
            k, v = a.split('=', 1)
            opts[k] = value(v) if k.endswith('_ms') or k.endswith('_bytes') else v
        send(sock, {'op': 'add', 'id': 1, 'name': args[0], 'options': opts, 'paused': paused})
    elif cmd in ('remove', 'pause', 'resume'):
        send(sock, {'op': cmd, 'id': 1, 'name': args[0]})
    elif cmd == 'list':
        send(sock, {'op': 'list', 'id': 1})
    elif cmd == 'add-many':
        prefix, count = args[0], int(args[1])
        for i in range(count):
            opts = {}
            for a in args[2:]:
                k, v = a.split('=', 1)
                v = v.replace('{i}', str(i))
                opts[k] = value(v) if k.endswith('_ms') or k.endswith('_bytes') else v
            send(sock, {'op': 'add', 'id': 1000 + i, 'name': '%s%d' % (prefix, i), 'options': opts})
        deadline = time.monotonic() + 30
        ok = 0
        for m in frames(sock, deadline):
            if isinstance(m.get('id'), int) and m['id'] >= 1000:
                if m.get('op') != 'ok':
                    print(json.dumps(m), file=sys.stderr)
                    return 1
                ok += 1
                if ok == count:
                    print('added %d' % ok)
                    return 0
        return 1
    elif cmd == 'totals':
        send(sock, {'op': 'list', 'id': 1})
        for m in frames(sock, deadline):
            if m.get('op') == 'sources':
                ss = m['sources']
                print(len(ss), sum(1 for x in ss if x['state'] == 'active'), sum(x['records'] for x in ss),
                      sum(x['skipped'] for x in ss))
                return 0
        return 1
    elif cmd == 'wait':
        name, field, op, want = args[0], args[1], args[2], value(args[3])
        deadline = time.monotonic() + (float(args[4]) if len(args) > 4 else 20)
        send(sock, {'op': 'list', 'id': 1})
        for m in frames(sock, deadline):
            items = m.get('sources', []) if m.get('op') == 'sources' else [m] if m.get('op') == 'state' else []
            for st in items:
                if st.get('name') != name or field not in st:
                    continue
                got = st[field]
                if (op == '==' and got == want) or (op == '>=' and got >= want) or (op == '<=' and got <= want):
                    print(json.dumps(st))
                    return 0
        print('timeout waiting for %s %s %s %s' % (name, field, op, want), file=sys.stderr)
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
            return 0 if m.get('op') in ('ok', 'sources') else 1
    print('no reply', file=sys.stderr)
    return 1


if __name__ == '__main__':
    sys.exit(main())
