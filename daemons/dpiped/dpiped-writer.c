/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>

#include "dpiped-writer.h"
#include "frame.h"
#include "json-util.h"
#include "log.h"
#include "socket-util.h"
#include "util.h"

#define WRITER_POLL_USEC USEC_PER_SEC
#define WRITER_BACKOFF_MAX_USEC (30 * USEC_PER_SEC)
#define WRITER_STATUS_STALE_USEC (5 * USEC_PER_SEC)
#define WRITER_FRAME_MAX (1024u * 1024u)

static void writer_link_disconnect(WriterLink *w) {
        w->io_event_source = sd_event_source_disable_unref(w->io_event_source);
        w->fd = safe_close(w->fd);
        w->connected = false;
        w->request_pending = false;
        buffer_clear(&w->in);
        buffer_clear(&w->out);
}

WriterLink *writer_link_free(WriterLink *w) {
        if (!w)
                return NULL;
        writer_link_disconnect(w);
        sd_event_source_disable_unref(w->timer);
        buffer_done(&w->in);
        buffer_done(&w->out);
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
        bool first = w->connected || w->backoff.attempt == 0;
        uint64_t delay;

        writer_link_disconnect(w);
        delay = backoff_next(&w->backoff);
        /* Once, not every retry: the metrics say it too (dpipe_writer_up 0). */
        if (first)
                log_debug_errno(error, "Metrics: %s the writer at %s: %m; retrying in %" PRIu64 " ms.", what,
                                w->socket_path, delay / USEC_PER_MSEC);
        writer_link_schedule(w, delay);
}

static int writer_link_flush(WriterLink *w) {
        ssize_t n;

        n = buffer_write_fd(&w->out, w->fd);
        if (n < 0)
                return (int) n;
        return sd_event_source_set_io_events(w->io_event_source, EPOLLIN | (buffer_size(&w->out) > 0 ? EPOLLOUT : 0));
}

static int writer_link_request(WriterLink *w) {
        _cleanup_json_ struct json_object *o = json_object_new_object();
        int r;

        if (!o)
                return -ENOMEM;
        json_object_object_add(o, "op", json_object_new_string("status"));
        r = frame_append_json(&w->out, o);
        if (r < 0)
                return r;
        w->request_pending = true;
        return writer_link_flush(w);
}

static int writer_link_process(WriterLink *w) {
        for (;;) {
                _cleanup_json_ struct json_object *o = NULL;
                Frame f;
                int r;

                r = frame_peek(&w->in, WRITER_FRAME_MAX, &f);
                if (r <= 0)
                        return r;
                if (f.type == FRAME_CONTROL && frame_parse_json(&f, &o) >= 0 &&
                    streq_ptr(json_get_string(o, "op"), "status")) {
                        json_object_put(w->status);
                        w->status = TAKE_PTR(o);
                        w->status_usec = now_usec(CLOCK_MONOTONIC);
                        w->request_pending = false;
                }
                buffer_consume(&w->in, FRAME_HEADER_SIZE + f.size);
        }
}

static int writer_link_io(sd_event_source *es, int fd, uint32_t revents, void *userdata) {
        WriterLink *w = userdata;
        int r;

        if (!w->connected) {
                r = socket_finish_connect(fd);
                if (r < 0) {
                        writer_link_fail(w, r, "failed to connect to");
                        return 0;
                }
                w->connected = true;
                backoff_reset(&w->backoff);
                r = writer_link_request(w);
                if (r < 0) {
                        writer_link_fail(w, r, "failed to write to");
                        return 0;
                }
        }
        if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                ssize_t n = buffer_read_fd(&w->in, fd, 4096);

                if (n == 0 || (n < 0 && n != -EAGAIN)) {
                        writer_link_fail(w, n == 0 ? -ECONNRESET : (int) n, "lost the connection to");
                        return 0;
                }
                r = writer_link_process(w);
                if (r < 0) {
                        writer_link_fail(w, r, "bad data from");
                        return 0;
                }
        }
        r = writer_link_flush(w);
        if (r < 0)
                writer_link_fail(w, r, "failed to write to");
        return 0;
}

static int writer_link_timer(sd_event_source *es, uint64_t usec, void *userdata) {
        WriterLink *w = userdata;
        int r;

        if (w->wanted && !w->wanted(w->userdata)) {
                /* No sources: let go, so that a socket-activated writer can exit when idle. */
                if (w->fd >= 0)
                        writer_link_disconnect(w);
                backoff_reset(&w->backoff);
                writer_link_schedule(w, WRITER_POLL_USEC);
                return 0;
        }
        if (w->fd < 0) {
                _cleanup_close_ int fd = socket_connect_unix(w->socket_path, true);

                if (fd < 0) {
                        writer_link_fail(w, fd, "failed to connect to");
                        return 0;
                }
                r = sd_event_add_io(w->event, &w->io_event_source, fd, EPOLLIN | EPOLLOUT, writer_link_io, w);
                if (r < 0) {
                        writer_link_fail(w, r, "failed to watch");
                        return 0;
                }
                w->fd = TAKE_FD(fd);
        } else if (w->connected && !w->request_pending) {
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
        w->fd = -EBADF;
        w->event = sd_event_ref(event);
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
        if (!w || !w->connected || !w->status)
                return NULL;
        if (now_usec(CLOCK_MONOTONIC) - w->status_usec > WRITER_STATUS_STALE_USEC)
                return NULL;
        return w->status;
}
