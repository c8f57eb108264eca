# SPDX-License-Identifier: LGPL-2.1-or-later
"""The client side of the control protocol that connectors and sink daemons share
(man:dpipe-connector(7), man:dpipe-sink(7)), for connector-ctl.py and sink-ctl.py (CTL below): they
play dpiped.

  CTL SOCKET add NAME KEY=VALUE... [--paused] [--pipeline-id=ID]  add one, print the reply
  CTL SOCKET check KEY=VALUE... [--pipeline-id=ID]  have the options checked (values sent as text, as
                                                dpipectl sends them), print the reply
  CTL SOCKET remove|pause|resume NAME
  CTL SOCKET list                                   print the reply ({"op":"sources"|"sinks",...})
  CTL SOCKET wait NAME FIELD OP VALUE [TIMEOUT]     wait until a state report of NAME has FIELD OP VALUE
                                                (OP: == != >= <=), print it
  CTL SOCKET watch [SECONDS]                        print every message as a JSON line
Exit status 0 when the reply is ok.

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


def request(args, convert):
    """The options, paused and pipeline_id of an add or check from KEY=VALUE... arguments."""
    req = {'options': {}}
    for a in args:
        if a == '--paused':
            req['paused'] = True
        elif a.startswith('--pipeline-id='):
            req['pipeline_id'] = a.split('=', 1)[1]
        else:
            k, v = a.split('=', 1)
            req['options'][k] = convert(k, v)
    return req


def reply(sock, deadline, ok_ops):
    for m in frames(sock, deadline):
        if m.get('id') == 1:
            print(json.dumps(m))
            return 0 if m.get('op') in ok_ops else 1
    print('no reply', file=sys.stderr)
    return 1


def run(argv, plural, convert, extra=None):
    """Runs one command against the control socket argv[1]. plural: "sources" or "sinks", the list
    reply's op; convert(key, text): the JSON value of an add's option; extra(sock, cmd, args): the
    caller's own commands (None if cmd is not one)."""
    path, cmd, args = argv[1], argv[2], argv[3:]
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    deadline = time.monotonic() + 10
    if cmd == 'add':
        req = request(args[1:], convert)
        send(sock, dict(req, op='add', id=1, name=args[0], paused=req.get('paused', False)))
    elif cmd == 'check':
        send(sock, dict(request(args, lambda k, v: v), op='check', id=1))
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
            items = m.get(plural, []) if m.get('op') == plural else [m] if m.get('op') == 'state' else []
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
        rc = extra(sock, cmd, args) if extra else None
        if rc is None:
            print('unknown command ' + cmd, file=sys.stderr)
            return 2
        return rc
    return reply(sock, deadline, ('ok', plural))
