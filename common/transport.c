/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <unistd.h>

#include "transport.h"

int transport_handshake(Transport *t) {
        return t->tls ? tls_conn_handshake(t->tls) : 1;
}

ssize_t transport_read(Transport *t, void *buf, size_t size) {
        ssize_t n;

        if (t->tls)
                return tls_conn_read(t->tls, buf, size);
        n = read(t->fd, buf, size);
        if (n < 0)
                return errno == EAGAIN || errno == EINTR ? -EAGAIN : -errno;
        return n;
}

ssize_t transport_write(Transport *t, Buffer *b) {
        ssize_t n;

        if (!t->tls)
                return buffer_write_fd(b, t->fd);
        if (buffer_size(b) == 0)
                return 0;
        n = tls_conn_write(t->tls, buffer_begin(b), buffer_size(b));
        if (n > 0)
                buffer_consume(b, (size_t) n);
        return n;
}

uint32_t transport_events(const Transport *t) {
        return t->tls ? tls_conn_events(t->tls) : 0;
}

const char *transport_error(const Transport *t) {
        return t->tls ? tls_conn_error(t->tls) : NULL;
}

void transport_done(Transport *t) {
        if (!t->tls)
                return;
        tls_conn_shutdown(t->tls);
        t->tls = tls_conn_free(t->tls);
}
