/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The real-time side: a TCP server speaking the line protocol of dpiped(8) and dpipe-source(1). Every client
 * has its own cursor (the seq of the next row), its own pacing (--rate) and a bounded output
 * buffer. Without a rate, rows are copied into the buffer only while it is below a low-water mark
 * and the socket takes them: the client's own reading paces the stream. With a rate, rows fall due
 * on a clock; a client whose pending output passes --client-buffer is sent an error line and
 * disconnected, so memory never grows with a slow reader. */

#include "socket-util.h"
#include "demo-manager.h"

int tcp_server_new(Manager *m, const char *listen, TcpServer **ret);
TcpServer *tcp_server_free(TcpServer *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(TcpServer *, tcp_server_free);

/* Rows were appended (--follow) or the whole data replaced (reload): wake waiting subscribers. */
void tcp_server_data_changed(TcpServer *s);
size_t tcp_server_n_clients(const TcpServer *s);
