#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A stand-in for dpipe-writer in connector tests: speaks the writer side of man:dpipe-connector(7)
on SOCKET and appends every stored record as one JSON line {"offset","source","seq","data"} to OUT.
Like the real writer it remembers the last seq per source (rebuilt from OUT at start), drops records
whose seq is not greater (counted as duplicates, and printed as "duplicate SOURCE SEQ" on stdout), and answers hello with last_seq.

  connector-fake-writer.py SOCKET OUT"""
import json
import os
import socket
import struct
import sys
import selectors

path, out = sys.argv[1], sys.argv[2]
last = {}
offset = 0
if os.path.exists(out):
    with open(out) as f:
        for line in f:
            r = json.loads(line)
            last[r['source']] = r['seq']
            offset = r['offset'] + 1
outf = open(out, 'a')

if os.path.exists(path):
    os.unlink(path)
ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
ls.bind(path)
ls.listen(16)
sel = selectors.DefaultSelector()
sel.register(ls, selectors.EVENT_READ)
bufs = {}


def handle(conn, ftype, payload):
    global offset
    if ftype == 1:
        msg = json.loads(payload)
        if msg.get('op') == 'hello':
            rep = {'op': 'hello', 'source': msg['source']}
            if msg['source'] in last:
                rep['last_seq'] = last[msg['source']]
            data = json.dumps(rep).encode()
            conn.sendall(struct.pack('<IHH', len(data), 1, 0) + data)
        return
    if ftype != 2:
        return
    batch_id, slen, _, count = struct.unpack('<QHHI', payload[:16])
    source = payload[16:16 + slen].decode()
    pos = 16 + slen
    stored = dups = 0
    first = offset
    for _ in range(count):
        dlen, _, seq, ts = struct.unpack('<IIQQ', payload[pos:pos + 24])
        data = payload[pos + 24:pos + 24 + dlen].decode()
        pos += 24 + dlen
        if source in last and seq <= last[source]:
            dups += 1
            print('duplicate %s %d' % (source, seq), flush=True)
            continue
        json.loads(data)  # the connector must only send valid JSON
        outf.write(json.dumps({'offset': offset, 'source': source, 'seq': seq, 'data': json.loads(data)}) + '\n')
        last[source] = seq
        offset += 1
        stored += 1
    outf.flush()
    ack = struct.pack('<QQIIiI', batch_id, first, stored, dups, 0, 0)
    conn.sendall(struct.pack('<IHH', len(ack), 3, 0) + ack)


while True:
    for key, _ in sel.select():
        s = key.fileobj
        if s is ls:
            c, _ = ls.accept()
            sel.register(c, selectors.EVENT_READ)
            bufs[c] = b''
            continue
        chunk = s.recv(1 << 20)
        if not chunk:
            sel.unregister(s)
            del bufs[s]
            s.close()
            continue
        b = bufs[s] + chunk
        while len(b) >= 8:
            size, ftype, _ = struct.unpack('<IHH', b[:8])
            if len(b) < 8 + size:
                break
            handle(s, ftype, b[8:8 + size])
            b = b[8 + size:]
        bufs[s] = b
