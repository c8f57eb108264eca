/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* QueueReader: follows the queue from any offset, the way dpiped streams it to clients, without a
 * connection to the writer (it reads the files; queue-watch.c says when to read again). Also
 * queue_bounds(). See docs/queue-format.md, "Readers and notification". */

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "queue-format.h"
#include "util.h"

/* A directory listing younger than this after the directory's last change proves nothing about
 * later changes (see reader_next_segment()). */
#define DIR_STAMP_RACY_NSEC INT64_C(100000000)

struct QueueReader {
        char *dir;
        int dir_fd;
        SegmentCursor cursor;  /* cursor.fd < 0: no segment open */
        uint64_t seg_first;
        bool index_seek; /* positioned through the index: a bad record there falls back to the start */
        uint64_t target; /* offset of the next record to return (at least) */
        /* The directory's mtime at the last listing that found no segment after seg_first, when that
         * listing can be trusted to have seen every file created before a later mtime change. */
        bool dir_stamp_valid;
        struct timespec dir_mtime;
};

QueueReader *queue_reader_free(QueueReader *r) {
        if (!r)
                return NULL;
        safe_close(r->cursor.fd);
        segment_cursor_done(&r->cursor);
        safe_close(r->dir_fd);
        free(r->dir);
        free(r);
        return NULL;
}

static int open_dir_lazily(const char *dir, int *fd) {
        if (*fd >= 0)
                return 1;
        *fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (*fd < 0) {
                *fd = -EBADF;
                return errno == ENOENT ? 0 : -errno;
        }
        return 1;
}

/* Opens the segment holding r->target (or the first one, clamping the target up). Returns 1 when a
 * segment is open, 0 when there is none yet. */
static int reader_open_segment(QueueReader *r) {
        _cleanup_free_ SegmentRef *list = NULL;
        _cleanup_close_ int fd = -EBADF;
        uint8_t h[QUEUE_SEGMENT_HEADER_SIZE];
        struct stat st;
        char name[32];
        size_t n = 0, i;
        uint64_t pos;
        ssize_t k;
        int q;

        q = open_dir_lazily(r->dir, &r->dir_fd);
        if (q <= 0)
                return q;
        q = segments_list(r->dir_fd, false, &list, &n);
        if (q < 0)
                return q;
        if (n == 0)
                return 0;
        if (r->target < list[0].first)
                r->target = list[0].first;
        for (i = n - 1; i > 0 && list[i].first > r->target; i--)
                ;

        segment_name(name, list[i].first, "seg");
        fd = openat(r->dir_fd, name, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return errno == ENOENT ? -EAGAIN : -errno; /* removed by retention just now */
        k = pread(fd, h, sizeof(h), 0);
        if (k < 0)
                return -errno;
        if ((size_t) k < sizeof(h))
                return 0; /* being created */
        if (segment_header_check(h, list[i].first, NULL) < 0)
                return -EBADMSG;
        if (fstat(fd, &st) < 0)
                return -errno;

        pos = index_lookup(r->dir_fd, list[i].first, r->target, (uint64_t) st.st_size);
        r->cursor.fd = TAKE_FD(fd);
        q = segment_cursor_seek(&r->cursor, pos);
        if (q < 0) {
                r->cursor.fd = safe_close(r->cursor.fd);
                return q;
        }
        r->index_seek = pos != QUEUE_SEGMENT_HEADER_SIZE;
        r->seg_first = list[i].first;
        r->dir_stamp_valid = false;
        return 1;
}

static int64_t timespec_nsec(const struct timespec *ts) {
        return (int64_t) ts->tv_sec * 1000000000 + ts->tv_nsec;
}

/* The first offset of the segment after the open one, if there is one.
 *
 * A reader that follows the writer gets here at every wake-up, while a new segment appears only
 * once per segment size: listing the directory each time (open, getdents, close: ~6 syscalls) was
 * most of a live reader's syscalls. Creating, renaming or removing a segment changes the
 * directory's mtime, so as long as it is the one seen by the last listing that found nothing
 * newer, nothing newer exists: one fstat() instead. File systems stamp times with a coarse clock
 * (a tick of up to 10 ms), so a file created in the same tick as a listing could leave the mtime
 * as it was: a listing taken less than DIR_STAMP_RACY_NSEC after the mtime is not trusted, and the
 * next call lists again (as git treats a "racily clean" index). */
static int reader_next_segment(QueueReader *r, uint64_t *ret_first) {
        _cleanup_free_ SegmentRef *list = NULL;
        struct timespec now;
        struct stat st;
        size_t n = 0;
        int q;

        /* The time before the fstat(): every change after the listing is later than it. */
        if (clock_gettime(CLOCK_REALTIME, &now) < 0)
                return -errno;
        if (fstat(r->dir_fd, &st) < 0)
                return -errno;
        if (r->dir_stamp_valid && st.st_mtim.tv_sec == r->dir_mtime.tv_sec &&
            st.st_mtim.tv_nsec == r->dir_mtime.tv_nsec)
                return 0;

        q = segments_list(r->dir_fd, false, &list, &n);
        if (q < 0)
                return q;
        for (size_t i = 0; i < n; i++)
                if (list[i].first > r->seg_first) {
                        *ret_first = list[i].first;
                        return 1;
                }
        r->dir_mtime = st.st_mtim;
        r->dir_stamp_valid = timespec_nsec(&now) - timespec_nsec(&st.st_mtim) >= DIR_STAMP_RACY_NSEC;
        return 0;
}

/* Retention may remove the chosen segment between listing and opening: list again. */
static int reader_open_segment_retry(QueueReader *r) {
        int q = -EAGAIN;

        for (unsigned attempt = 0; attempt < 64 && q == -EAGAIN; attempt++)
                q = reader_open_segment(r);
        return q == -EAGAIN ? 0 : q;
}

int queue_reader_open(const char *dir, uint64_t offset, QueueReader **ret) {
        _cleanup_(queue_reader_freep) QueueReader *r = NULL;
        int q;

        r = calloc(1, sizeof(QueueReader));
        if (!r)
                return -ENOMEM;
        r->dir_fd = r->cursor.fd = -EBADF;
        r->target = offset;
        r->dir = strdup(dir);
        if (!r->dir)
                return -ENOMEM;
        q = reader_open_segment_retry(r);
        if (q < 0)
                return q;
        *ret = TAKE_PTR(r);
        return 0;
}

int queue_reader_next(QueueReader *r, QueueRecord *ret) {
        assert(r);
        assert(ret);

        for (;;) {
                QueueRecord rec;
                uint64_t next_first = 0;
                int q;

                if (r->cursor.fd < 0) {
                        q = reader_open_segment_retry(r);
                        if (q <= 0)
                                return q;
                }

                q = segment_cursor_next(&r->cursor, &rec, NULL);
                if (q == -EBADMSG && r->index_seek) {
                        r->index_seek = false;
                        q = segment_cursor_seek(&r->cursor, QUEUE_SEGMENT_HEADER_SIZE);
                        if (q < 0)
                                return q;
                        continue;
                }
                if (q > 0) {
                        r->index_seek = false;
                        if (rec.offset < r->target)
                                continue;
                        r->target = rec.offset + 1;
                        *ret = rec;
                        return 1;
                }
                if (q < 0 && q != -EPIPE)
                        return q;
                if (q == -EPIPE) {
                        /* The file ends inside a record: it is being written, or it was torn by a
                         * crash and the writer's recovery will cut it and write other bytes there.
                         * Read it again from its start next time, never glue old and new bytes. */
                        q = segment_cursor_seek(&r->cursor, r->cursor.pos);
                        if (q < 0)
                                return q;
                }

                /* The end of what this segment holds now. Done with it only once a newer segment
                 * exists, and after one more read: the writer may have appended just before rolling. */
                q = reader_next_segment(r, &next_first);
                if (q <= 0)
                        return q;
                q = segment_cursor_next(&r->cursor, &rec, NULL);
                if (q > 0) {
                        /* Put it back by re-reading: simplest is to handle it right here. */
                        r->index_seek = false;
                        if (rec.offset >= r->target) {
                                r->target = rec.offset + 1;
                                *ret = rec;
                                return 1;
                        }
                        continue;
                }
                if (q < 0 && q != -EPIPE && q != -EBADMSG)
                        return q;
                /* Any bytes left are a torn record that the writer's recovery cuts: skip them. The
                 * offsets between here and the next segment do not exist (quarantined). */
                r->cursor.fd = safe_close(r->cursor.fd);
                buffer_clear(&r->cursor.buf);
                r->target = MAX(r->target, next_first);
        }
}

int queue_reader_seek(QueueReader *r, uint64_t offset) {
        assert(r);

        r->cursor.fd = safe_close(r->cursor.fd);
        buffer_clear(&r->cursor.buf);
        r->target = offset;
        return 0;
}

uint64_t queue_reader_offset(QueueReader *r) {
        return r->target;
}

int queue_bounds(const char *dir, uint64_t *ret_first, uint64_t *ret_next) {
        _cleanup_free_ SegmentRef *list = NULL;
        _cleanup_close_ int dir_fd = -EBADF;
        _cleanup_(segment_cursor_done) SegmentCursor c = { .fd = -EBADF };
        uint64_t first, next, v = 0;
        struct stat st;
        char name[32];
        size_t n = 0;
        int r;

        r = open_dir_lazily(dir, &dir_fd);
        if (r < 0)
                return r;
        if (r == 0) {
                first = next = 0;
                goto finish;
        }
        r = segments_list(dir_fd, false, &list, &n);
        if (r < 0)
                return r;
        if (n == 0) {
                (void) next_offset_file_read(dir_fd, &v);
                first = next = v;
                goto finish;
        }
        first = list[0].first;
        next = list[n - 1].first;

        segment_name(name, list[n - 1].first, "seg");
        c.fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC);
        if (c.fd >= 0 && fstat(c.fd, &st) >= 0) {
                uint64_t pos = index_lookup(dir_fd, list[n - 1].first, UINT64_MAX, (uint64_t) st.st_size);

                for (bool retried = false;;) {
                        QueueRecord rec;

                        r = segment_cursor_seek(&c, pos);
                        if (r < 0)
                                break;
                        while ((r = segment_cursor_next(&c, &rec, NULL)) > 0)
                                next = rec.offset + 1;
                        if (r == -EBADMSG && !retried && pos != QUEUE_SEGMENT_HEADER_SIZE) {
                                pos = QUEUE_SEGMENT_HEADER_SIZE;
                                retried = true;
                                continue;
                        }
                        break;
                }
                c.fd = safe_close(c.fd);
        }

finish:
        if (ret_first)
                *ret_first = first;
        if (ret_next)
                *ret_next = next;
        return 0;
}

