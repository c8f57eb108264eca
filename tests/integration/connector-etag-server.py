#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A static file server that validates with ETag only (no Last-Modified), for connector tests:
serves files of DIR with ETag = hash of the content, answers If-None-Match with 304, and logs
"STATUS PATH" per request on stdout.

  connector-etag-server.py PORT DIR"""
import hashlib
import http.server
import os
import sys

port, root = int(sys.argv[1]), sys.argv[2]


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        path = os.path.join(root, self.path.lstrip('/').split('?')[0])
        try:
            body = open(path, 'rb').read()
        except OSError:
            self.send_response(404)
            self.send_header('Content-Length', '0')
            self.end_headers()
            print('404', self.path, flush=True)
            return
        etag = '"%s"' % hashlib.sha1(body).hexdigest()
        if self.headers.get('If-None-Match') == etag:
            self.send_response(304)
            self.send_header('ETag', etag)
            self.end_headers()
            print('304', self.path, flush=True)
            return
        self.send_response(200)
        self.send_header('ETag', etag)
        self.send_header('Content-Type', 'application/x-ndjson')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        print('200', self.path, flush=True)

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(('127.0.0.1', port), Handler).serve_forever()
