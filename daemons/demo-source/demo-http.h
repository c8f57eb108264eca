/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The batch side: REST over HTTP with libmicrohttpd, driven from our sd-event loop (MHD's epoll
 * fd is one more io source; no MHD threads).
 *   GET /records?offset=N&limit=M[&field=value...]  → {"records":[...],"next_offset":K,"total":T}
 *   GET /records/<i>                                → the row
 *   GET /health                                     → {"status":"ok",...}
 * Errors are JSON bodies {"error":NAME,"status":N,"message":M} with status 400, 404, 405 or 414.
 * Pages carry an ETag (data generation + request) and If-None-Match gives 304. */

#include "demo-manager.h"

int http_server_new(Manager *m, const char *listen, HttpServer **ret);
HttpServer *http_server_free(HttpServer *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(HttpServer *, http_server_free);
