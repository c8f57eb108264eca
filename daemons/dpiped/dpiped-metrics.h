/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* GET /metrics (interfaces.md §9): the Prometheus text format 0.0.4 of everything dpiped knows —
 * the queue, each source (counters from its connector), each subscription, the clients, the
 * writer's figures (from dpiped-writer.c) and the process itself. Served by libmicrohttpd without a
 * thread of its own: its epoll fd is an io source of dpiped's sd_event loop and its timeout a timer
 * there (MHD_run() when either fires). A scrape only reads what the loop keeps anyway; nothing on
 * the data path does any work for it. */

#include "buffer.h"
#include "dpiped-manager.h"
#include "socket-util.h"

typedef struct MetricsServer MetricsServer;

/* passed_fd: the listening socket systemd passed (named "metrics", dpiped-metrics.socket; taken
 * over, also on failure), or -EBADF to bind address (--metrics) here. A non-loopback address is
 * refused without allow_plaintext, like the client port (interfaces.md §8): the endpoint has no TLS
 * and no authentication. */
int metrics_server_new(Manager *m, int passed_fd, const SocketAddress *address, bool allow_plaintext,
                       MetricsServer **ret);
MetricsServer *metrics_server_free(MetricsServer *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(MetricsServer *, metrics_server_free);

/* The whole exposition, appended to b. */
int manager_metrics_format(Manager *m, Buffer *b);
