/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <systemd/sd-event.h>

#include "buffer.h"
#include "frame-conn.h"
#include "list.h"
#include "writer-manager.h"

/* One connector connection on writer.sock. */
struct Conn {
        Manager *manager;
        LIST_FIELDS(Conn, conns);
        uint64_t id;
        FrameConn conn;   /* held: a batch waits in the input buffer until the manager has room again */
        char peer[64];    /* "#3 pid 123 uid 0", for the log */
        unsigned pending; /* acks waiting for durability */
};

int conn_new(Manager *m, int fd, Conn **ret);
Conn *conn_free(Conn *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(Conn *, conn_free);

/* Processes complete frames already in the input buffer (after a stall ends); < 0: free c. */
int conn_process(Conn *c);
/* Queues data for the peer and writes what the socket takes. */
int conn_flush(Conn *c);
/* Recomputes which events the connection waits for (input held while stalled). */
int conn_update_events(Conn *c);
