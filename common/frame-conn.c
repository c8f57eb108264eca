/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "frame-conn.h"
#include "log.h"
#include "macro.h"
#include "socket-util.h"
#include "util.h"

void frame_conn_init(FrameConn *c, sd_event *event, const FrameConnConfig *config, const FrameConnOps *ops,
                     void *userdata) {
        *c = (FrameConn) {
                .event = event,
                .ops = ops,
                .userdata = userdata,
                .config = *config,
                .fd = -EBADF,
                .backoff = config->backoff,
        };
}

void frame_conn_disconnect(FrameConn *c) {
        c->io = sd_event_source_disable_unref(c->io);
        c->fd = safe_close(c->fd);
        c->connected = false;
        c->held = false;
        buffer_clear(&c->in);
        buffer_clear(&c->out);
}

void frame_conn_cancel_retry(FrameConn *c) {
        c->retry_timer = sd_event_source_disable_unref(c->retry_timer);
}

void frame_conn_done(FrameConn *c) {
        frame_conn_disconnect(c);
        frame_conn_cancel_retry(c);
        buffer_done(&c->in);
        buffer_done(&c->out);
}

/* Ended from the loop's handler: closed() may free the owner, so nothing touches c after it. */
static void frame_conn_close(FrameConn *c, int reason) {
        frame_conn_disconnect(c);
        if (c->ops->closed)
                c->ops->closed(c, reason);
}

int frame_conn_update_events(FrameConn *c) {
        uint32_t events = 0;

        if (!c->io)
                return 0;
        if (!c->connected)
                return sd_event_source_set_io_events(c->io, EPOLLOUT);
        if (!c->held && (c->config.out_max == 0 || buffer_size(&c->out) < c->config.out_max))
                events |= EPOLLIN;
        if (buffer_size(&c->out) > 0)
                events |= EPOLLOUT;
        return sd_event_source_set_io_events(c->io, events);
}

int frame_conn_flush(FrameConn *c) {
        ssize_t n;

        if (!frame_conn_is_connected(c))
                return 0;
        n = buffer_write_fd(&c->out, c->fd);
        if (n < 0)
                return (int) n;
        return frame_conn_update_events(c);
}

int frame_conn_send_json(FrameConn *c, struct json_object *o) {
        int r;

        r = frame_append_json(&c->out, o);
        if (r < 0)
                return r;
        return frame_conn_flush(c);
}

static bool out_full(const FrameConn *c) {
        return c->config.out_max > 0 && buffer_size(&c->out) >= c->config.out_max;
}

/* The whole frames in the input, one frame() each. Returns 0 when it stopped (no whole frame left,
 * held, output full, or the owner disconnected), or a negative errno to end the connection. */
static int frame_conn_process(FrameConn *c) {
        int fd = c->fd;

        while (!c->held && !out_full(c)) {
                Frame f;
                int r;

                r = frame_peek(&c->in, c->config.frame_max, &f);
                if (r <= 0)
                        return r;
                r = c->ops->frame(c, &f);
                if (c->fd != fd)
                        return 0; /* the owner disconnected meanwhile */
                if (r == FRAME_CONN_HOLD) {
                        c->held = true;
                        return 0;
                }
                if (r < 0)
                        return r;
                buffer_consume(&c->in, FRAME_HEADER_SIZE + f.size);
        }
        return 0;
}

int frame_conn_resume(FrameConn *c) {
        int r;

        c->held = false;
        if (!frame_conn_is_connected(c))
                return 0;
        r = frame_conn_process(c);
        if (r < 0)
                return r;
        return frame_conn_update_events(c);
}

/* Room for the whole frame whose header is already here, at least read_min. */
static size_t frame_conn_read_room(const FrameConn *c) {
        size_t have = buffer_size(&c->in);

        if (have >= FRAME_HEADER_SIZE) {
                uint32_t size = le32_get((const uint8_t *) buffer_begin(&c->in));

                if (size <= c->config.frame_max && FRAME_HEADER_SIZE + (size_t) size > have)
                        return MAX(c->config.read_min, FRAME_HEADER_SIZE + (size_t) size - have);
        }
        return c->config.read_min;
}

/* Reads and handles input until the socket is drained, the budget is spent, or input must wait.
 * Returns 0, or what ends the connection (0 as reason for EOF is returned as -ESHUTDOWN). */
static int frame_conn_read(FrameConn *c) {
        size_t budget = 0;
        int fd = c->fd, r;

        while (!c->held && !out_full(c) && (c->config.read_budget == 0 || budget < c->config.read_budget)) {
                ssize_t n;

                n = buffer_read_fd(&c->in, c->fd, frame_conn_read_room(c));
                if (n == -EAGAIN)
                        break;
                if (n < 0)
                        return (int) n;
                if (n == 0) {
                        /* Whole frames before the end still count. */
                        r = frame_conn_process(c);
                        if (r < 0)
                                return r;
                        return c->fd == fd ? -ESHUTDOWN : 0;
                }
                budget += (size_t) n;
                r = frame_conn_process(c);
                if (r < 0)
                        return r;
                if (c->fd != fd)
                        return 0;
                /* A short read drained the socket: the next read would only say EAGAIN. */
                if ((size_t) n < c->config.read_min)
                        break;
        }
        return 0;
}

static int frame_conn_io(sd_event_source *es, int fd, uint32_t revents, void *userdata) {
        FrameConn *c = userdata;
        int r;

        if (!c->connected) {
                r = socket_finish_connect(fd);
                if (r < 0) {
                        frame_conn_close(c, r);
                        return 0;
                }
                c->connected = true;
                backoff_reset(&c->backoff);
                r = frame_conn_update_events(c);
                if (r >= 0 && c->ops->connected)
                        r = c->ops->connected(c);
                if (r < 0) {
                        if (c->fd == fd)
                                frame_conn_close(c, r);
                        return 0;
                }
                if (c->fd != fd)
                        return 0;
                revents &= ~EPOLLOUT; /* that was the connect */
        }

        if (revents & EPOLLOUT) {
                r = frame_conn_flush(c);
                if (r < 0) {
                        frame_conn_close(c, r);
                        return 0;
                }
        }
        if (revents & EPOLLIN) {
                r = frame_conn_read(c);
                if (r < 0) {
                        frame_conn_close(c, r == -ESHUTDOWN ? 0 : r);
                        return 0;
                }
                if (c->fd != fd)
                        return 0;
        } else if (revents & (EPOLLHUP | EPOLLERR)) {
                /* Gone while we did not read (held, or its output full). */
                frame_conn_close(c, -ECONNRESET);
                return 0;
        }
        r = frame_conn_update_events(c);
        if (r < 0) {
                frame_conn_close(c, r);
                return 0;
        }
        if (c->ops->dispatched)
                c->ops->dispatched(c);
        return 0;
}

int frame_conn_adopt(FrameConn *c, int fd) {
        int r;

        frame_conn_disconnect(c);
        r = sd_event_add_io(c->event, &c->io, fd, EPOLLIN, frame_conn_io, c);
        if (r < 0) {
                safe_close(fd);
                return r;
        }
        c->fd = fd;
        c->connected = true;
        return 0;
}

int frame_conn_connect(FrameConn *c, const char *path) {
        int fd, r;

        frame_conn_disconnect(c);
        fd = socket_connect_unix(path, true);
        if (fd < 0)
                return fd;
        if (c->config.socket_buffers > 0)
                socket_set_buffers(fd, c->config.socket_buffers);
        /* A Unix connect either completes at once or (backlog full) reports EAGAIN; either way
         * EPOLLOUT tells when the socket is usable, and SO_ERROR whether it worked. */
        r = sd_event_add_io(c->event, &c->io, fd, EPOLLOUT, frame_conn_io, c);
        if (r < 0) {
                safe_close(fd);
                return r;
        }
        c->fd = fd;
        return 0;
}

static int frame_conn_retry_fire(sd_event_source *es, uint64_t usec, void *userdata) {
        FrameConn *c = userdata;

        frame_conn_cancel_retry(c);
        if (c->ops->retry)
                c->ops->retry(c);
        return 0;
}

uint64_t frame_conn_schedule_retry(FrameConn *c) {
        uint64_t delay;
        int r;

        if (c->retry_timer)
                return 0;
        delay = backoff_next(&c->backoff);
        r = sd_event_add_time_relative(c->event, &c->retry_timer, CLOCK_MONOTONIC, delay, 0, frame_conn_retry_fire, c);
        if (r < 0)
                log_debug_errno(r, "Failed to arm a reconnect timer: %m");
        return delay;
}
