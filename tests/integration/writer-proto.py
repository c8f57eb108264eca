#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Speaks the connector <-> writer framing (docs/ARCHITECTURE.md, common/frame.h, common/batch.h)
for the writer's integration tests.

    writer-proto.py SOCKET hello SOURCE           prints the writer's JSON reply
    writer-proto.py SOCKET batch SOURCE ID SEQ... sends one batch of records {"seq":N}, prints the ack as JSON
    writer-proto.py SOCKET status                 prints the writer's status reply
    writer-proto.py SOCKET records SOURCE ID SEQ=DATA... [-- ID SEQ=DATA...]...
                                                  sends batches of records with the DATA given (Python
                                                  escapes: \\n, \\xff), one after the other on one
                                                  connection; prints every frame the writer answers
                                                  with, one JSON line each (acks with "record")
    writer-proto.py SOCKET garbage                sends a frame of an unknown type; exits 0 if the
                                                  writer closes the connection
    writer-proto.py SOCKET notify-listen OUT      binds a datagram socket like systemd's
                                                  NOTIFY_SOCKET and appends every message to OUT
"""
import json
import socket
import struct
import sys

FRAME_CONTROL, FRAME_BATCH, FRAME_ACK = 1, 2, 3


def frame(t, payload):
    return struct.pack('<IHH', len(payload), t, 0) + payload


def recv_exact(s, n):
    b = b''
    while len(b) < n:
        chunk = s.recv(n - len(b))
        if not chunk:
            raise EOFError('connection closed by the writer')
        b += chunk
    return b


def recv_frame(s):
    size, t, _ = struct.unpack('<IHH', recv_exact(s, 8))
    return t, recv_exact(s, size)


def notify_listen(path, out):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    with open(out, 'a') as f:
        while True:
            msg = s.recv(65536)
            f.write(msg.decode(errors='replace').replace('\n', ' ') + '\n')
            f.flush()


def main():
    path, cmd = sys.argv[1], sys.argv[2]
    if cmd == 'notify-listen':
        notify_listen(path, sys.argv[3])
        return
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(path)
    if cmd == 'hello':
        s.sendall(frame(FRAME_CONTROL, json.dumps({'op': 'hello', 'source': sys.argv[3]}).encode()))
        t, p = recv_frame(s)
        assert t == FRAME_CONTROL, t
        print(p.decode())
    elif cmd == 'status':
        s.sendall(frame(FRAME_CONTROL, b'{"op":"status"}'))
        t, p = recv_frame(s)
        print(p.decode())
    elif cmd == 'batch':
        src = sys.argv[3].encode()
        batch_id = int(sys.argv[4])
        seqs = [int(x) for x in sys.argv[5:]]
        recs = b''
        for q in seqs:
            d = json.dumps({'seq': q}).encode()
            recs += struct.pack('<IIQQ', len(d), 0, q, 1000 + q) + d
        s.sendall(frame(FRAME_BATCH, struct.pack('<QHHI', batch_id, len(src), 0, len(seqs)) + src + recs))
        t, p = recv_frame(s)
        assert t == FRAME_ACK, t
        bid, first, stored, dups, err, _ = struct.unpack('<QQIIiI', p)
        print(json.dumps({'batch_id': bid, 'first_offset': first, 'stored': stored, 'duplicates': dups, 'error': err}))
    elif cmd == 'records':
        src = sys.argv[3].encode()
        batches, cur = [], sys.argv[4:]
        while cur:
            n = cur.index('--') if '--' in cur else len(cur)
            batches.append(cur[:n])
            cur = cur[n + 1:]
        for b in batches:
            batch_id, recs = int(b[0]), b''
            for item in b[1:]:
                q, d = item.split('=', 1)
                d = d.encode('latin-1').decode('unicode_escape').encode('latin-1')
                recs += struct.pack('<IIQQ', len(d), 0, int(q), 1000) + d
            s.sendall(frame(FRAME_BATCH, struct.pack('<QHHI', batch_id, len(src), 0, len(b) - 1) + src + recs))
            while True:  # control messages about the batch, then its ack
                t, p = recv_frame(s)
                if t == FRAME_CONTROL:
                    print(p.decode(), flush=True)
                    continue
                assert t == FRAME_ACK, t
                bid, first, stored, dups, err, rec = struct.unpack('<QQIIiI', p)
                print(json.dumps({'batch_id': bid, 'first_offset': first, 'stored': stored, 'duplicates': dups,
                                  'error': err, 'record': rec}), flush=True)
                break
    elif cmd == 'garbage':
        s.sendall(frame(77, b'nonsense'))
        try:
            data = s.recv(100)
        except ConnectionResetError:
            data = b''
        sys.exit(0 if data == b'' else 1)
    else:
        sys.exit('unknown command ' + cmd)


if __name__ == '__main__':
    main()
