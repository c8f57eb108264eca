#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
# A stand-in connector for dpiped's tests: listens on connector-<type>.sock, speaks the control
# protocol of docs/ARCHITECTURE.md (FRAME_CONTROL frames), logs every message it gets as one JSON
# line, acks requests with "ok", reports "add"ed sources as active (or paused), and answers
# "remove"/"pause"/"resume" like a connector would. An address of "refuse:..." is refused with an
# error, to test how dpiped reports that; the "check" of an address "refuse-check:..." is refused.
# When dpiped closes a connection it logs {"event": "closed"}.
import json
import os
import socket
import struct
import sys
import threading

path, log_path = sys.argv[1], sys.argv[2]
log = open(log_path, "a", buffering=1)
try:
    os.unlink(path)
except FileNotFoundError:
    pass
srv = socket.socket(socket.AF_UNIX)
srv.bind(path)
srv.listen(8)

lock = threading.Lock()


def write_log(line):
    with lock:
        log.write(line + "\n")


def serve(conn):
    def send(o):
        b = json.dumps(o).encode()
        try:
            conn.sendall(struct.pack("<IHH", len(b), 1, 0) + b)
        except OSError:
            pass  # dpiped went away; the recv() below notices

    send({"op": "hello", "type": os.path.basename(path)[10:-5], "version": 1})
    buf = b""
    checks_only = None
    while True:
        try:
            d = conn.recv(65536)
        except OSError:
            break
        if not d:
            break
        buf += d
        while len(buf) >= 8:
            n, t, _f = struct.unpack("<IHH", buf[:8])
            if len(buf) < 8 + n:
                break
            o = json.loads(buf[8:8 + n])
            buf = buf[8 + n:]
            op = o.get("op")
            address = o.get("options", {}).get("address", "")
            if op == "check":
                checks_only = checks_only is None or checks_only
                # A check comes on a connection of its own and is not logged: the log is what a
                # connector is told to run.
                if address.startswith("refuse-check:"):
                    send({"op": "error", "id": o["id"], "message": "refused by the fake connector's check"})
                else:
                    send({"op": "ok", "id": o["id"]})
                continue
            checks_only = False
            write_log(json.dumps(o, sort_keys=True))
            if op == "add" and address.startswith("refuse:"):
                send({"op": "error", "id": o["id"], "message": "refused by the fake connector"})
                continue
            if "id" in o:
                send({"op": "ok", "id": o["id"]})
            if op in ("add", "resume", "pause"):
                paused = o.get("paused") if op == "add" else op == "pause"
                send({"op": "state", "name": o["name"], "state": "paused" if paused else "active",
                      "records": 7, "bytes": 700, "last_record_us": 1, "last_heartbeat_us": 2,
                      "reconnects": 1})
    if not checks_only:
        write_log('{"event": "closed"}')
    conn.close()


while True:
    conn, _ = srv.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
