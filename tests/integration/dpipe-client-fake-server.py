#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
# A stand-in for dpiped's client port (dpiped(8), CLIENT PROTOCOL), used by the dpipe-client tests to
# exercise what a real dpiped cannot be made to do on demand: drop a connection in the middle of a
# stream, or enforce the flow-control window strictly. It serves RECORDS records (offsets 0..n-1),
# pings every --heartbeat-ms, honours acks and "window", and logs every request it gets as one
# JSON line to --log.
import argparse, json, os, select, shlex, socket, sys, time

ap = argparse.ArgumentParser()
ap.add_argument("--port", type=int, required=True)
ap.add_argument("--records", type=int, default=100)
ap.add_argument("--heartbeat-ms", type=int, default=1000)
ap.add_argument("--drop-after", type=int, default=0, help="close the first connection after sending this many records")
ap.add_argument("--close-at-end", action="store_true", help="close the stream after the last record")
ap.add_argument("--log", default=None)
a = ap.parse_args()

log = open(a.log, "a", buffering=1) if a.log else None
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", a.port))
srv.listen(8)
conns = {}
connections_seen = 0
dropped = False

def record(off):
    return json.dumps({"op": "record", "offset": off, "source": "fake", "ts_us": 1700000000000000 + off,
                       "data": {"n": off, "name": "row %d" % off, "text": 'quote " and, comma'}},
                      separators=(",", ":"))

def handle(c, st, line):
    line = line.rstrip("\r")
    if not line:
        return
    if line.startswith("{"):
        req = json.loads(line)
    else:
        w = shlex.split(line)
        req = {"op": w[0]}
        if w[0] == "subscribe":
            req["from"] = w[1] if len(w) > 1 else "latest"
        if w[0] == "ack":
            req["offset"] = int(w[1])
        if w[0] in ("add", "remove", "pause", "start"):
            req["name"] = w[1] if len(w) > 1 else None
    if log:
        log.write(json.dumps(req) + "\n")
    op = req.get("op")
    out = None
    if op == "hello":
        out = {"op": "hello", "version": 1, "server": "fake-dpiped 0", "heartbeat_ms": a.heartbeat_ms}
    elif op == "ping":
        out = {"op": "pong"}
    elif op == "pong":
        pass
    elif op == "list":
        out = {"op": "sources", "sources": [{"name": "fake", "type": "tcp", "state": "active", "address": "127.0.0.1:1", "records": a.records}]}
    elif op == "subscribe":
        f = req.get("from", "latest")
        st["next"] = 0 if f == "earliest" else (a.records if f == "latest" else int(f))
        st["acked"] = st["next"] - 1
        st["window"] = int(req.get("window", 10000))
        st["sub"] = True
        out = {"op": "ok"}
    elif op == "ack":
        st["acked"] = max(st["acked"], int(req["offset"]))
    elif op == "quit":
        c.sendall(b'{"op":"bye"}\n')
        raise EOFError
    elif op in ("add", "remove", "pause", "start"):
        if req.get("name") == "nosuch":
            out = {"op": "error", "code": "no_such_source", "message": "No source named nosuch."}
        else:
            out = {"op": "ok"}
    else:
        out = {"op": "error", "code": "unknown_op", "message": "Unknown op %s." % op}
    if "id" in req and out is not None:
        out["id"] = req["id"]
    if out is not None:
        c.sendall((json.dumps(out, separators=(",", ":")) + "\n").encode())

last_ping = time.monotonic()
while True:
    rl = [srv] + list(conns)
    r, _, _ = select.select(rl, [], [], 0.05)
    for s in r:
        if s is srv:
            c, _ = srv.accept()
            connections_seen += 1
            conns[c] = {"buf": b"", "sub": False, "next": 0, "acked": -1, "window": 10000, "sent": 0, "n": connections_seen}
            continue
        st = conns[s]
        try:
            d = s.recv(65536)
            if not d:
                raise EOFError
            st["buf"] += d
            while b"\n" in st["buf"]:
                line, st["buf"] = st["buf"].split(b"\n", 1)
                handle(s, st, line.decode())
        except (EOFError, ConnectionError):
            s.close()
            del conns[s]
    for s, st in list(conns.items()):
        try:
            if st["sub"]:
                chunk = []
                while st["next"] < a.records and st["next"] - st["acked"] <= st["window"] and len(chunk) < 500:
                    if a.drop_after and not dropped and st["sent"] >= a.drop_after:
                        dropped = True
                        raise EOFError
                    chunk.append(record(st["next"]))
                    st["next"] += 1
                    st["sent"] += 1
                if chunk:
                    s.sendall(("\n".join(chunk) + "\n").encode())
                if a.close_at_end and st["next"] >= a.records and st["acked"] >= a.records - 1:
                    raise EOFError
        except (EOFError, ConnectionError):
            s.close()
            del conns[s]
    if time.monotonic() - last_ping >= a.heartbeat_ms / 1000:
        last_ping = time.monotonic()
        for s in list(conns):
            try:
                s.sendall(b'{"op":"ping"}\n')
            except ConnectionError:
                pass
