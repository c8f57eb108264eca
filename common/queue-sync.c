/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Durability: queue_sync() on the caller's thread, and the pieces of disk work that dpipe-writer
 * hands to its sync thread so that its loop never waits for the file system — the sync itself
 * (queue_sync_begin()/queue_sync_end()), the reservation of the next segment's file (the spare), and
 * the early writeback of what was written. See docs/queue-format.md, "Writing and durability". */

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "queue-internal.h"
#include "util.h"

#define WRITEBACK_CHUNK (1024u * 1024u) /* queue_writeback_begin() hands out whole aligned ones */

int queue_sync_sealed(Queue *q) {
        if (q->sealed_fd < 0)
                return 0;
        if (fdatasync(q->sealed_fd) < 0)
                return -errno;
        q->sealed_fd = safe_close(q->sealed_fd);
        q->sealed_inflight = false;
        return 0;
}

int queue_sync(Queue *q) {
        int r;

        assert(q);

        r = queue_flush(q);
        if (r < 0)
                return r;
        r = queue_sync_sealed(q);
        if (r < 0)
                return r;
        /* What an unfinished queue_sync_begin() covers is not durable yet either. */
        if (q->need_data_sync || q->inflight_data) {
                if (fdatasync(q->active_fd) < 0)
                        return -errno;
                q->need_data_sync = false;
        }
        if (q->need_dir_sync || q->inflight_dir) {
                if (fsync(q->dir_fd) < 0)
                        return -errno;
                q->need_dir_sync = false;
        }
        return 0;
}

int queue_sync_begin(Queue *q, int ret_fds[static 3]) {
        _cleanup_close_ int sealed_fd = -EBADF, data_fd = -EBADF, dir_fd = -EBADF;
        int r;

        assert(q);
        assert(ret_fds);

        if (q->sync_in_flight)
                return -EBUSY;
        r = queue_flush(q);
        if (r < 0)
                return r;
        if (!q->need_data_sync && !q->need_dir_sync && q->sealed_fd < 0)
                return 0;

        if (q->sealed_fd >= 0) {
                sealed_fd = fcntl(q->sealed_fd, F_DUPFD_CLOEXEC, 3);
                if (sealed_fd < 0)
                        return -errno;
        }

        /* Duplicates: the caller may close, roll or unlink the segment while the sync runs. */
        if (q->need_data_sync) {
                data_fd = fcntl(q->active_fd, F_DUPFD_CLOEXEC, 3);
                if (data_fd < 0)
                        return -errno;
        }
        if (q->need_dir_sync) {
                dir_fd = fcntl(q->dir_fd, F_DUPFD_CLOEXEC, 3);
                if (dir_fd < 0)
                        return -errno;
        }
        q->inflight_data = q->need_data_sync;
        q->inflight_dir = q->need_dir_sync;
        q->sealed_inflight = q->sealed_fd >= 0;
        q->need_data_sync = q->need_dir_sync = false;
        q->sync_in_flight = true;
        ret_fds[0] = TAKE_FD(sealed_fd);
        ret_fds[1] = TAKE_FD(data_fd);
        ret_fds[2] = TAKE_FD(dir_fd);
        return 1;
}

void queue_sync_end(Queue *q, int error) {
        assert(q);

        if (!q->sync_in_flight)
                return;
        if (error < 0) {
                /* Not durable after all: the next sync (or roll) does it again. */
                q->need_data_sync = q->need_data_sync || q->inflight_data;
                q->need_dir_sync = q->need_dir_sync || q->inflight_dir;
        } else if (q->sealed_inflight)
                q->sealed_fd = safe_close(q->sealed_fd);
        q->sync_in_flight = q->inflight_data = q->inflight_dir = q->sealed_inflight = false;
}

bool queue_sync_in_flight(Queue *q) {
        return q->sync_in_flight;
}

int queue_spare_begin(Queue *q, int *ret_fd, uint64_t *ret_size) {
        _cleanup_close_ int fd = -EBADF;
        int dup_fd;

        assert(q);
        assert(ret_fd);
        assert(ret_size);

        if (q->no_fallocate || q->spare_state != SPARE_NONE || q->active_fd < 0 ||
            q->active_size < q->opts.segment_size / 2 || (q->spare_failed && q->spare_failed_first == q->active_first))
                return 0;
        fd = openat(q->dir_fd, SPARE_FILE, O_RDWR | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
        if (fd < 0)
                return -errno;
        dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (dup_fd < 0) {
                int r = -errno;
                (void) unlinkat(q->dir_fd, SPARE_FILE, 0);
                return r;
        }
        q->spare_fd = TAKE_FD(fd);
        q->spare_state = SPARE_RESERVING;
        *ret_fd = dup_fd;
        *ret_size = q->opts.segment_size;
        return 1;
}

void queue_spare_end(Queue *q, int error) {
        assert(q);

        if (q->spare_state != SPARE_RESERVING)
                return;
        if (error >= 0) {
                q->spare_state = SPARE_READY;
                return;
        }
        /* No room, or no fallocate(): the roll creates the segment and reserves as before (and
         * finds out about either itself). Not again before that roll: on a full disk every commit
         * would create and remove the file. */
        q->spare_failed = true;
        q->spare_failed_first = q->active_first;
        (void) unlinkat(q->dir_fd, SPARE_FILE, 0);
        q->spare_fd = safe_close(q->spare_fd);
        q->spare_state = SPARE_NONE;
}

int queue_writeback_begin(Queue *q, int *ret_fd, uint64_t *ret_offset, uint64_t *ret_length) {
        uint64_t end;
        int fd;

        assert(q);
        assert(ret_fd);
        assert(ret_offset);
        assert(ret_length);

        if (q->writeback_pos > q->active_size)
                q->writeback_pos = q->active_size / WRITEBACK_CHUNK * WRITEBACK_CHUNK; /* cut back */
        /* Whole chunks only, never the partly filled last block: once that block is on disk, the
         * next write() that extends the file moves the on-disk size (ext4: the inode's i_data_sem
         * and a journal handle) and so waits for the conversion of the blocks just written back,
         * which holds both. Writing back after every write() made that wait part of every write;
         * this way only the periodic fdatasync() writes the last block. */
        end = q->active_size / WRITEBACK_CHUNK * WRITEBACK_CHUNK;
        if (end <= q->writeback_pos)
                return 0;
        /* A duplicate: the caller may roll (and close) the segment before the writeback runs. */
        fd = fcntl(q->active_fd, F_DUPFD_CLOEXEC, 3);
        if (fd < 0)
                return -errno;
        *ret_fd = fd;
        *ret_offset = q->writeback_pos;
        *ret_length = end - q->writeback_pos;
        q->writeback_pos = end;
        return 1;
}
