#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Peers that send what a source should not, for the tests of the connectors' limits and checks.

  edge-server.py tcp PORT FILE     sends FILE's bytes to every connection, then keeps it open
  edge-server.py http PORT DIR     serves DIR's files (Content-Type by extension: .json
                                   application/json, .jsonl application/x-ndjson, .csv text/csv,
                                   .html text/html), and bodies that never end:
                                     /endless.json    200, a JSON array that never closes
                                     /endless.jsonl   200, JSON lines without end ({"i":N,"p":...})
                                     /endless-error   500, a body without end
                                     /endless.txt     200 text/plain, one line that never ends
                                   Each request is logged as "STATUS PATH" on stdout."""
import os
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TYPES = {'.json': 'application/json', '.jsonl': 'application/x-ndjson', '.csv': 'text/csv', '.html': 'text/html'}


def serve_tcp(port, path):
    data = open(path, 'rb').read()
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(('127.0.0.1', port))
    s.listen(16)

    def one(c):
        try:
            c.sendall(data)
            while c.recv(4096):
                pass
        except OSError:
            pass

    while True:
        c, _ = s.accept()
        threading.Thread(target=one, args=(c,), daemon=True).start()


class Handler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.0'  # bodies end when the connection does

    def log_message(self, *args):
        pass

    def endless(self, status, ctype, head, chunk):
        self.send_response(status)
        self.send_header('Content-Type', ctype)
        self.end_headers()
        print(status, self.path, flush=True)
        try:
            self.wfile.write(head)
            while True:
                self.wfile.write(chunk)
        except OSError:
            pass

    def do_GET(self):
        path = self.path.split('?')[0]
        if path == '/endless.json':
            return self.endless(200, 'application/json', b'[', b'{"x":"' + b'a' * 1000 + b'"},' * 1024)
        if path == '/endless-error':
            return self.endless(500, 'text/plain', b'', b'e' * 65536)
        if path == '/endless.txt':
            return self.endless(200, 'text/plain', b'', b'x' * 65536)
        if path == '/endless.jsonl':
            self.send_response(200)
            self.send_header('Content-Type', 'application/x-ndjson')
            self.end_headers()
            print(200, self.path, flush=True)
            i = 0
            try:
                while True:
                    lines = b''.join(b'{"i":%d,"p":"%s"}\n' % (i + k, b'p' * 100) for k in range(1000))
                    self.wfile.write(lines)
                    i += 1000
            except OSError:
                pass
            return
        f = os.path.join(self.server.root, path.lstrip('/'))
        if not os.path.isfile(f):
            self.send_response(404)
            self.end_headers()
            print(404, self.path, flush=True)
            return
        data = open(f, 'rb').read()
        self.send_response(200)
        self.send_header('Content-Type', TYPES.get(os.path.splitext(f)[1], 'application/octet-stream'))
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        print(200, self.path, flush=True)


def main():
    kind, port = sys.argv[1], int(sys.argv[2])
    if kind == 'tcp':
        serve_tcp(port, sys.argv[3])
    srv = ThreadingHTTPServer(('127.0.0.1', port), Handler)
    srv.daemon_threads = True
    srv.root = sys.argv[3]
    srv.serve_forever()


if __name__ == '__main__':
    main()
