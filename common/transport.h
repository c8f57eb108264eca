/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The byte stream under a line protocol connection: a plain socket, or TLS on it (tls.h). The
 * connection code reads and writes through these calls and adds transport_events() to the events
 * it waits for; it does not need to know which of the two it has. */

#include <stdint.h>
#include <sys/types.h>

#include "buffer.h"
#include "tls.h"

typedef struct Transport {
        int fd;
        TlsConn *tls; /* NULL: plain */
} Transport;

/* Returns 1 when the stream is ready for data (at once for a plain socket), 0 while a TLS
 * handshake waits for the socket, negative on failure. */
int transport_handshake(Transport *t);
/* Reads into buf (size >= TLS_READ_MIN): bytes read, 0 at the end, -EAGAIN, or a negative errno. */
ssize_t transport_read(Transport *t, void *buf, size_t size);
/* Writes what b holds, as much as the socket takes, and consumes it from b: bytes written (maybe 0),
 * or a negative errno. */
ssize_t transport_write(Transport *t, Buffer *b);
/* EPOLLIN/EPOLLOUT that the stream needs beyond what the caller waits for anyway (TLS). */
uint32_t transport_events(const Transport *t);
/* Why the last operation failed, for TLS; NULL for a plain socket (use %m). */
const char *transport_error(const Transport *t);
/* Ends the TLS session politely (best effort) and frees it; the fd stays open. */
void transport_done(Transport *t);
