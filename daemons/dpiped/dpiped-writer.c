/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "dpiped-writer.h"
#include "json-util.h"
#include "log.h"
#include "socket-util.h"
#include "util.h"

#define WRITER_POLL_USEC USEC_PER_SEC
#define WRITER_BACKOFF_MAX_USEC (30 * USEC_PER_SEC)
#define WRITER_STATUS_STALE_USEC (5 * USEC_PER_SEC)
#define WRITER_FRAME_MAX (1024u * 1024u)

static void writer_link_disconnect(WriterLink *w) {
        frame_conn_disconnect(&w->conn);
        w->request_pending = false;
}

WriterLink *writer_link_free(WriterLink *w) {
        if (!w)
                return NULL;
        frame_conn_done(&w->conn);
        sd_event_source_disable_unref(w->timer);
        json_object_put(w->status);
        free(w->socket_path);
        sd_event_unref(w->event);
        free(w);
        return NULL;
}

static void writer_link_schedule(WriterLink *w, uint64_t usec) {
        (void) sd_event_source_set_time_relative(w->timer, usec);
        (void) sd_event_source_set_enabled(w->timer, SD_EVENT_ONESHOT);
}

static void writer_link_fail(WriterLink *w, int error, const char *what) {
        bool first = w->up || w->backoff.attempt == 0;
        uint64_t delay;

        writer_link_disconnect(w);
        w->up = false;
        delay = backoff_next(&w->backoff);
        /* Once, not every retry: the metrics say it too (dpipe_writer_up 0). */
        if (first)
                log_debug_errno(error, "Metrics: %s the writer at %s: %m; retrying in %" PRIu64 " ms.", what,
                                w->socket_path, delay / USEC_PER_MSEC);
        writer_link_schedule(w, delay);
}

static int writer_link_request(WriterLink *w) {
        _cleanup_json_ struct json_object *o = json_object_new_object();
        int r;

        if (!o)
                return -ENOMEM;
        json_object_object_add(o, "op", json_object_new_string("status"));
        r = frame_conn_send_json(&w->conn, o);
        if (r < 0)
                return r;
        w->request_pending = true;
        return 0;
}

static int writer_link_connected(FrameConn *conn) {
        WriterLink *w = conn->userdata;

        w->up = true;
        backoff_reset(&w->backoff);
        return writer_link_request(w);
}

static int writer_link_frame(FrameConn *conn, const Frame *f) {
        WriterLink *w = conn->userdata;
        _cleanup_json_ struct json_object *o = NULL;

        if (f->type == FRAME_CONTROL && frame_parse_json(f, &o) >= 0 && streq_ptr(json_get_string(o, "op"), "status")) {
                json_object_put(w->status);
                w->status = TAKE_PTR(o);
                w->status_usec = now_usec(CLOCK_MONOTONIC);
                w->request_pending = false;
        }
        return 0;
}

static void writer_link_closed(FrameConn *conn, int reason) {
        WriterLink *w = conn->userdata;

        writer_link_fail(w, reason == 0 ? -ECONNRESET : reason,
                         !w->up                                         ? "failed to connect to"
                         : reason == -EMSGSIZE || reason == -EBADMSG ? "bad data from"
                                                                        : "lost the connection to");
}

static const FrameConnOps writer_link_ops = {
        .connected = writer_link_connected,
        .frame = writer_link_frame,
        .closed = writer_link_closed,
};

static int writer_link_timer(sd_event_source *es, uint64_t usec, void *userdata) {
        WriterLink *w = userdata;
        int r;

        if (w->wanted && !w->wanted(w->userdata)) {
                /* No sources: let go, so that a socket-activated writer can exit when idle. */
                if (frame_conn_is_open(&w->conn))
                        writer_link_disconnect(w);
                w->up = false;
                backoff_reset(&w->backoff);
                writer_link_schedule(w, WRITER_POLL_USEC);
                return 0;
        }
        if (!frame_conn_is_open(&w->conn)) {
                r = frame_conn_connect(&w->conn, w->socket_path);
                if (r < 0) {
                        writer_link_fail(w, r, "failed to connect to");
                        return 0;
                }
        } else if (frame_conn_is_connected(&w->conn) && !w->request_pending) {
                r = writer_link_request(w);
                if (r < 0) {
                        writer_link_fail(w, r, "failed to write to");
                        return 0;
                }
        }
        /* A writer that stops answering (stalled loop) shows as stale, not as a frozen snapshot. */
        writer_link_schedule(w, WRITER_POLL_USEC);
        return 0;
}

int writer_link_new(sd_event *event, const char *runtime_dir, WriterLinkWantedFunc wanted, void *userdata,
                    WriterLink **ret) {
        _cleanup_(writer_link_freep) WriterLink *w = NULL;
        int r;

        w = calloc(1, sizeof(WriterLink));
        if (!w)
                return -ENOMEM;
        w->event = sd_event_ref(event);
        frame_conn_init(&w->conn, event, &(FrameConnConfig) { .frame_max = WRITER_FRAME_MAX, .read_min = 4096 },
                        &writer_link_ops, w);
        w->wanted = wanted;
        w->backoff = BACKOFF_INIT(WRITER_POLL_USEC, WRITER_BACKOFF_MAX_USEC, false);
        w->userdata = userdata;
        w->socket_path = path_join(runtime_dir, "writer.sock");
        if (!w->socket_path)
                return -ENOMEM;
        r = sd_event_add_time_relative(event, &w->timer, CLOCK_MONOTONIC, 0, 0, writer_link_timer, w);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(w);
        return 0;
}

struct json_object *writer_link_status(WriterLink *w) {
        if (!w || !frame_conn_is_connected(&w->conn) || !w->status)
                return NULL;
        if (now_usec(CLOCK_MONOTONIC) - w->status_usec > WRITER_STATUS_STALE_USEC)
                return NULL;
        return w->status;
}
