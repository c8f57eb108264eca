/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* One connector connection: reads frames, hands batches and control messages to the manager, and
 * writes acks and replies back. While the manager is stalled, a connection stops reading at its
 * first batch (control messages before it are still answered, except a hello while unwritten
 * records are held); it also stops while the peer does not read its acks. */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "frame.h"
#include "log.h"
#include "socket-util.h"
#include "writer-conn.h"

#define CONN_READ_MIN (64u * 1024u)
#define CONN_READ_BUDGET (4u * 1024u * 1024u) /* per wakeup, so that one busy peer can not hog the loop */
#define CONN_OUT_MAX (1u * 1024u * 1024u)     /* acks the peer did not read yet: stop reading from it */

static const FrameConnOps conn_ops;

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
        c->id = ++m->next_conn_id;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) >= 0 && cred.pid > 0)
                snprintf(c->peer, sizeof(c->peer), "#%" PRIu64 " (pid %d, uid %u)", c->id, (int) cred.pid,
                         (unsigned) cred.uid);
        else
                snprintf(c->peer, sizeof(c->peer), "#%" PRIu64, c->id);
        socket_set_buffers(fd, 4 * 1024 * 1024);

        frame_conn_init(&c->conn, m->event,
                        &(FrameConnConfig) {
                                .frame_max = FRAME_SIZE_MAX,
                                .read_min = CONN_READ_MIN,
                                .read_budget = CONN_READ_BUDGET,
                                .out_max = CONN_OUT_MAX,
                        },
                        &conn_ops, c);
        r = frame_conn_adopt(&c->conn, fd);
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
        frame_conn_done(&c->conn);
        free(c);
        return NULL;
}

int conn_update_events(Conn *c) {
        return frame_conn_update_events(&c->conn);
}

int conn_flush(Conn *c) {
        int r;

        r = frame_conn_flush(&c->conn);
        if (r < 0)
                return log_debug_errno(r, "Connection %s: failed to write: %m", c->peer);
        return 0;
}

static int conn_on_frame(FrameConn *conn, const Frame *f) {
        Conn *c = conn->userdata;
        int r;

        switch (f->type) {
        case FRAME_BATCH:
                if (!manager_accepting(c->manager))
                        return FRAME_CONN_HOLD;
                r = manager_handle_batch(c->manager, c, f->payload, f->size);
                break;
        case FRAME_CONTROL:
                r = manager_handle_control(c->manager, c, f->payload, f->size);
                break;
        default:
                log_warning("Connection %s sent a frame of unexpected type %u, closing it.", c->peer,
                            (unsigned) f->type);
                return -EBADMSG;
        }
        if (r == -ENOSPC || r == -EDQUOT) {
                /* The frame stays in the buffer and is processed again when there is room. */
                manager_stall(c->manager, r);
                return FRAME_CONN_HOLD;
        }
        return r;
}

int conn_process(Conn *c) {
        return frame_conn_resume(&c->conn);
}

static void conn_on_closed(FrameConn *conn, int reason) {
        Conn *c = conn->userdata;

        if (reason == -EMSGSIZE)
                log_warning("Connection %s announced a frame larger than %u bytes, closing it.", c->peer,
                            FRAME_SIZE_MAX);
        else if (reason == 0)
                log_debug("Connection %s closed.", c->peer);
        else if (reason == -ECONNRESET)
                /* Hung up while we held its input: its unacked batches are its to resend. */
                log_debug("Connection %s hung up.", c->peer);
        else
                log_debug_errno(reason, "Connection %s: closing it: %m", c->peer);
        conn_free(c);
}

static const FrameConnOps conn_ops = {
        .frame = conn_on_frame,
        .closed = conn_on_closed,
};
