/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "output.h"
#include "socket-util.h"

struct Output {
        sd_event *event;
        int fd;
        sd_event_source *io;
        Buffer buf;
        bool restore_blocking;
        output_done_t done;
        void *userdata;
};

static ssize_t output_write_some(Output *o) {
        ssize_t n = write(o->fd, buffer_begin(&o->buf), buffer_size(&o->buf));

        if (n < 0)
                return errno == EINTR ? 0 : -errno;
        buffer_consume(&o->buf, (size_t) n);
        return n;
}

static int output_io_handler(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Output *o = userdata;
        int r = output_flush(o);

        if (r == 1)
                return 0;
        (void) sd_event_source_set_enabled(s, SD_EVENT_OFF);
        if (o->done)
                o->done(o, r, o->userdata);
        return 0;
}

int output_flush(Output *o) {
        while (buffer_size(&o->buf) > 0) {
                ssize_t n = output_write_some(o);

                if (n == -EAGAIN) {
                        int r;

                        if (!o->io) {
                                r = sd_event_add_io(o->event, &o->io, o->fd, EPOLLOUT, output_io_handler, o);
                                if (r < 0)
                                        return r;
                        }
                        r = sd_event_source_set_enabled(o->io, SD_EVENT_ON);
                        return r < 0 ? r : 1;
                }
                if (n < 0)
                        return (int) n;
        }
        if (o->io)
                (void) sd_event_source_set_enabled(o->io, SD_EVENT_OFF);
        return 0;
}

int output_flush_blocking(Output *o, int timeout_ms) {
        while (buffer_size(&o->buf) > 0) {
                ssize_t n = output_write_some(o);

                if (n == -EAGAIN) {
                        struct pollfd p = { .fd = o->fd, .events = POLLOUT };

                        if (poll(&p, 1, timeout_ms) == 0)
                                return -ETIMEDOUT;
                        continue;
                }
                if (n < 0)
                        return (int) n;
        }
        return 0;
}

bool output_pending(const Output *o) {
        return buffer_size(&o->buf) > 0;
}

Buffer *output_buffer(Output *o) {
        return &o->buf;
}

/* "2>&1 | ...": O_NONBLOCK would hit our stderr too, and messages could be lost on a full pipe.
 * Then we rather write blocking. */
static bool shares_stderr(int fd, const struct stat *st) {
        struct stat e;

        return fd != STDERR_FILENO && fstat(STDERR_FILENO, &e) >= 0 && e.st_dev == st->st_dev && e.st_ino == st->st_ino;
}

int output_new(sd_event *e, int fd, output_done_t done, void *userdata, Output **ret) {
        Output *o;
        struct stat st;
        int flags;

        o = calloc(1, sizeof(Output));
        if (!o)
                return -ENOMEM;
        o->event = sd_event_ref(e);
        o->fd = fd;
        o->done = done;
        o->userdata = userdata;
        flags = fcntl(fd, F_GETFL);
        if (fstat(fd, &st) >= 0 && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode)) && flags >= 0 && !(flags & O_NONBLOCK) &&
            !shares_stderr(fd, &st) && fd_set_nonblock(fd, true) >= 0)
                o->restore_blocking = true;
        *ret = o;
        return 0;
}

Output *output_free(Output *o) {
        if (!o)
                return NULL;
        if (o->restore_blocking)
                (void) fd_set_nonblock(o->fd, false);
        sd_event_source_disable_unref(o->io);
        sd_event_unref(o->event);
        buffer_done(&o->buf);
        free(o);
        return NULL;
}
