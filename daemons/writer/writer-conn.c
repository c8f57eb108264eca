/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* One connector connection: reads frames, hands batches and control messages to the manager, and
 * writes acks and replies back. While the manager is stalled, a connection stops reading at its
 * first batch (control messages before it are still answered, except a hello while unwritten
 * records are held); it also stops while the peer does not read its acks. */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "frame.h"
#include "log.h"
#include "socket-util.h"
#include "writer-conn.h"

#define CONN_READ_MIN (64u * 1024u)
#define CONN_READ_BUDGET (4u * 1024u * 1024u) /* per wakeup, so that one busy peer can not hog the loop */
#define CONN_OUT_MAX (1u * 1024u * 1024u)     /* acks the peer did not read yet: stop reading from it */

static int conn_io(sd_event_source *s, int fd, uint32_t revents, void *userdata);

int conn_new(Manager *m, int fd, Conn **ret) {
        _cleanup_(conn_freep) Conn *c = NULL;
        struct ucred cred = {};
        socklen_t len = sizeof(cred);
        int r;

        c = calloc(1, sizeof(Conn));
        if (!c) {
                safe_close(fd);
                return -ENOMEM;
        }
        c->fd = fd;
        c->id = ++m->next_conn_id;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) >= 0 && cred.pid > 0)
                snprintf(c->peer, sizeof(c->peer), "#%" PRIu64 " (pid %d, uid %u)", c->id, (int) cred.pid,
                         (unsigned) cred.uid);
        else
                snprintf(c->peer, sizeof(c->peer), "#%" PRIu64, c->id);
        socket_set_buffers(fd, 4 * 1024 * 1024);

        r = sd_event_add_io(m->event, &c->io, fd, EPOLLIN, conn_io, c);
        if (r < 0)
                return r;

        c->manager = m;
        LIST_PREPEND(conns, m->conns, c);
        m->n_conns++;
        manager_conn_added(m, c);

        r = conn_update_events(c);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(c);
        return 0;
}

Conn *conn_free(Conn *c) {
        if (!c)
                return NULL;
        if (c->manager) {
                Manager *m = c->manager;

                LIST_REMOVE(conns, m->conns, c);
                m->n_conns--;
                manager_conn_removed(m, c);
        }
        sd_event_source_disable_unref(c->io);
        safe_close(c->fd);
        buffer_done(&c->in);
        buffer_done(&c->out);
        free(c);
        return NULL;
}

int conn_update_events(Conn *c) {
        uint32_t events = 0;

        if (!c->held && buffer_size(&c->out) < CONN_OUT_MAX)
                events |= EPOLLIN;
        if (buffer_size(&c->out) > 0)
                events |= EPOLLOUT;
        return sd_event_source_set_io_events(c->io, events);
}

int conn_flush(Conn *c) {
        ssize_t n;

        n = buffer_write_fd(&c->out, c->fd);
        if (n < 0)
                return log_debug_errno((int) n, "Connection %s: failed to write: %m", c->peer);
        return conn_update_events(c);
}

static int conn_handle_frame(Conn *c, const Frame *f) {
        switch (f->type) {
        case FRAME_BATCH:
                return manager_handle_batch(c->manager, c, f->payload, f->size);
        case FRAME_CONTROL:
                return manager_handle_control(c->manager, c, f->payload, f->size);
        default:
                log_warning("Connection %s sent a frame of unexpected type %u, closing it.", c->peer,
                            (unsigned) f->type);
                return -EBADMSG;
        }
}

int conn_process(Conn *c) {
        Manager *m = c->manager;
        int r;

        for (;;) {
                Frame f;

                if (buffer_size(&c->out) >= CONN_OUT_MAX)
                        return 0;
                r = frame_peek(&c->in, FRAME_SIZE_MAX, &f);
                if (r == -EMSGSIZE) {
                        log_warning("Connection %s announced a frame larger than %u bytes, closing it.", c->peer,
                                    FRAME_SIZE_MAX);
                        return -EBADMSG;
                }
                if (r <= 0)
                        return r;
                if (f.type == FRAME_BATCH && !manager_accepting(m)) {
                        c->held = true;
                        return 0;
                }
                r = conn_handle_frame(c, &f);
                if (r == -ENOSPC || r == -EDQUOT) {
                        /* The frame stays in the buffer and is processed again when there is room. */
                        c->held = true;
                        manager_stall(m, r);
                        return 0;
                }
                if (r < 0)
                        return r;
                buffer_consume(&c->in, FRAME_HEADER_SIZE + f.size);
        }
}

static size_t conn_read_room(Conn *c) {
        size_t have = buffer_size(&c->in);

        /* Make room for the whole frame whose header is already here. */
        if (have >= FRAME_HEADER_SIZE) {
                uint32_t size = le32_get((const uint8_t *) buffer_begin(&c->in));
                if (size <= FRAME_SIZE_MAX && FRAME_HEADER_SIZE + (size_t) size > have)
                        return MAX((size_t) CONN_READ_MIN, FRAME_HEADER_SIZE + (size_t) size - have);
        }
        return CONN_READ_MIN;
}

static int conn_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Conn *c = userdata;
        size_t budget = 0;
        int r;

        if (revents & EPOLLOUT) {
                r = conn_flush(c);
                if (r < 0) {
                        conn_free(c);
                        return 0;
                }
        }

        if (!(revents & EPOLLIN)) {
                if (revents & (EPOLLHUP | EPOLLERR)) {
                        /* Hung up while we held its input: its unacked batches are its to resend. */
                        log_debug("Connection %s hung up.", c->peer);
                        conn_free(c);
                }
                return 0;
        }

        while (!c->held && buffer_size(&c->out) < CONN_OUT_MAX && budget < CONN_READ_BUDGET) {
                ssize_t n;

                n = buffer_read_fd(&c->in, fd, conn_read_room(c));
                if (n == -EAGAIN)
                        break;
                if (n < 0) {
                        log_debug_errno((int) n, "Connection %s: failed to read, closing it: %m", c->peer);
                        conn_free(c);
                        return 0;
                }
                if (n == 0) {
                        /* Complete frames before the EOF still count. */
                        r = conn_process(c);
                        if (r >= 0 && buffer_size(&c->in) > 0 && !c->held)
                                log_debug("Connection %s closed in the middle of a frame.", c->peer);
                        log_debug("Connection %s closed.", c->peer);
                        conn_free(c);
                        return 0;
                }
                budget += (size_t) n;
                r = conn_process(c);
                if (r < 0) {
                        conn_free(c);
                        return 0;
                }
        }

        r = conn_update_events(c);
        if (r < 0) {
                log_warning_errno(r, "Connection %s: failed to update events, closing it: %m", c->peer);
                conn_free(c);
                return 0;
        }
        return 0;
}
