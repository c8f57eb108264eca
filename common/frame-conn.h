/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* One framed connection on a Unix socket (frame.h), on the process's sd_event: the read loop, the
 * output buffer, flow control, and for the connecting side the non-blocking connect and the
 * backoff between attempts. Both ends of every link between dpipe processes use it: dpiped's links
 * to the connectors and sink daemons and their control servers (daemons/lib/service-control.c),
 * the connectors' link to the writer and the writer's connections, dpiped's option checks and its
 * metrics link to the writer.
 *
 * The owner embeds a FrameConn, gives it callbacks, and keeps the protocol: what a frame means,
 * what to send on connect, whether to try again. Rules for the callbacks:
 *   - connected() and frame() may send, and may call frame_conn_disconnect() (the loop notices and
 *     stops); they must not free the owner: they return a negative errno to end the connection.
 *   - closed() is called from the event loop only, after the connection was closed by this module
 *     (EOF, an error, a callback's error): the owner may log, call frame_conn_schedule_retry(), or
 *     free itself (nothing touches the FrameConn afterwards). So may dispatched() and retry().
 * A connection ended by the owner itself (frame_conn_disconnect()) gets no closed() call. */

#include <stdbool.h>
#include <stddef.h>
#include <systemd/sd-event.h>

#include "backoff.h"
#include "buffer.h"
#include "frame.h"

/* frame() returns this to keep the frame in the input and stop reading until frame_conn_resume()
 * (the writer, while its queue has no room). */
#define FRAME_CONN_HOLD 1

typedef struct FrameConn FrameConn;

typedef struct FrameConnOps {
        int (*connected)(FrameConn *c);                /* connecting side: the connect completed */
        int (*frame)(FrameConn *c, const Frame *f);    /* a whole frame, valid until it returns */
        void (*closed)(FrameConn *c, int reason);      /* reason: negative errno, 0 = the peer closed */
        void (*retry)(FrameConn *c);                   /* the retry timer fired (connecting side) */
        void (*dispatched)(FrameConn *c);              /* after each wakeup that left it open; may free the owner */
} FrameConnOps;

typedef struct FrameConnConfig {
        uint32_t frame_max;   /* a larger frame ends the connection (-EMSGSIZE) */
        size_t read_min;      /* room asked for per read (more when a frame is bigger) */
        size_t read_budget;   /* bytes read per wakeup before the loop gets its turn (0: no limit) */
        size_t out_max;       /* no input is read or handled while this much output waits (0: no limit) */
        int socket_buffers;   /* SO_SNDBUF/SO_RCVBUF of connections made (0: the kernel's) */
        Backoff backoff;      /* between connection attempts (connecting side) */
} FrameConnConfig;

struct FrameConn {
        sd_event *event;
        const FrameConnOps *ops;
        void *userdata;
        FrameConnConfig config;

        int fd;
        sd_event_source *io;
        Buffer in;
        Buffer out;
        bool connected; /* the connect completed (at once for an accepted connection) */
        bool held;      /* frame() returned FRAME_CONN_HOLD */

        /* The connecting side. */
        Backoff backoff;
        sd_event_source *retry_timer;
};

void frame_conn_init(FrameConn *c, sd_event *event, const FrameConnConfig *config, const FrameConnOps *ops,
                     void *userdata);
/* Closes the connection and stops retrying; the buffers' memory is freed. */
void frame_conn_done(FrameConn *c);

/* An accepted connection: takes fd (also on failure). */
int frame_conn_adopt(FrameConn *c, int fd);
/* Starts a non-blocking connect to the socket at path; connected() follows from the loop. Returns
 * a negative errno if it failed at once (nothing is left open; the owner decides about a retry). */
int frame_conn_connect(FrameConn *c, const char *path);
/* Closes the connection (no closed() call); the buffers are emptied, a retry timer stays armed. */
void frame_conn_disconnect(FrameConn *c);
/* Arms the retry timer with the next backoff delay, unless it is armed already; retry() is called
 * when it fires. Returns the delay. */
uint64_t frame_conn_schedule_retry(FrameConn *c);
static inline bool frame_conn_retry_pending(const FrameConn *c) {
        return c->retry_timer != NULL;
}
void frame_conn_cancel_retry(FrameConn *c);

static inline bool frame_conn_is_open(const FrameConn *c) {
        return c->fd >= 0;
}
static inline bool frame_conn_is_connected(const FrameConn *c) {
        return c->fd >= 0 && c->connected;
}

/* Writes what is buffered in c->out and waits for room for the rest. A negative errno if the
 * connection failed (the owner disconnects). */
int frame_conn_flush(FrameConn *c);
/* Appends one FRAME_CONTROL JSON object to c->out and flushes. */
int frame_conn_send_json(FrameConn *c, struct json_object *o);
/* After FRAME_CONN_HOLD: handles the input that waits and reads again. A negative errno if the
 * connection must end (the owner closes it: it was not called from the loop's handler). */
int frame_conn_resume(FrameConn *c);
/* Sets the events to wait for from the state: input unless held or too much output waits, output
 * while some waits. */
int frame_conn_update_events(FrameConn *c);
