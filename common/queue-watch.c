/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Notification that new records landed: inotify on the queue directory. Every flush modifies the
 * active segment (IN_MODIFY) and every roll creates a file (IN_CREATE, or IN_MOVED_TO when the spare
 * is renamed). We chose inotify over a socket from the writer because readers then need no
 * connection to the writer, work while it is down (socket activation, restarts), and any number of
 * them can follow the queue. */

#include <errno.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "queue.h"
#include "util.h"

int queue_watch_open(const char *dir, int *ret_fd) {
        _cleanup_close_ int fd = -EBADF;

        fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (fd < 0)
                return -errno;
        if (inotify_add_watch(fd, dir, IN_MODIFY | IN_CREATE | IN_MOVED_TO | IN_DELETE | IN_ONLYDIR) < 0)
                return -errno;
        *ret_fd = TAKE_FD(fd);
        return 0;
}

void queue_watch_drain(int fd) {
        char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));

        while (read(fd, buf, sizeof(buf)) > 0)
                ;
}
