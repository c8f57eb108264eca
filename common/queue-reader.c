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
        uint64_t seg_expect; /* no record of the open segment from here on has a lower offset */
        bool index_seek; /* positioned through the index: a bad record there falls back to the start */
        uint64_t target; /* offset of the next record to return (at least) */
        /* Damaged bytes skipped in the open segment since the last record returned: a loss found
         * right after them is reported with their position. */
        bool damaged;
        uint64_t damage_pos;
        /* A loss to report before anything else, and the last one reported. */
        bool loss_pending;
        QueueLoss loss;
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

/* Offsets up to end - 1 from the target on have no record (in segment first): to be reported before
 * anything else. */
static void reader_lose(QueueReader *r, uint64_t first, uint64_t end, bool damaged, uint64_t position) {
        if (end <= r->target)
                return;
        r->loss = (QueueLoss) {
                .first = MAX(r->target, first),
                .last = end - 1,
                .damaged = damaged,
                .position = position,
        };
        segment_name(r->loss.segment, first, "seg");
        r->loss_pending = true;
}

/* Opens the segment holding r->target (or the first one, clamping the target up: retention removed
 * what was before, which is not a loss). Returns 1 when a segment is open, 0 when there is none yet,
 * -EAGAIN to look again. */
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
        if (segment_header_check(h, list[i].first, NULL) < 0) {
                /* A damaged header: nothing in the file can be trusted to belong to this queue. Its
                 * offsets are lost; go on with the next segment. The last one is where the writer
                 * appends: wait there until its recovery has moved the file away. */
                if (i + 1 == n)
                        return 0;
                reader_lose(r, list[i].first, list[i + 1].first, true, 0);
                r->target = list[i + 1].first;
                return -EAGAIN;
        }
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
        r->seg_first = r->seg_expect = list[i].first;
        r->damaged = false;
        r->dir_stamp_valid = false;
        return 1;
}

static int64_t timespec_nsec(const struct timespec *ts) {
        return (int64_t) ts->tv_sec * 1000000000 + ts->tv_nsec;
}

/* The first offset of the segment after the open one, if there is one, and whether the open one
 * is still in the directory (retention removes segments oldest first: when it is still there, no
 * segment after it was removed by retention).
 *
 * A reader that follows the writer gets here at every wake-up, while a new segment appears only
 * once per segment size: listing the directory each time (open, getdents, close: ~6 syscalls) was
 * most of a live reader's syscalls. Creating, renaming or removing a segment changes the
 * directory's mtime, so as long as it is the one seen by the last listing that found nothing
 * newer, nothing newer exists: one fstat() instead. File systems stamp times with a coarse clock
 * (a tick of up to 10 ms), so a file created in the same tick as a listing could leave the mtime
 * as it was: a listing taken less than DIR_STAMP_RACY_NSEC after the mtime is not trusted, and the
 * next call lists again (as git treats a "racily clean" index). */
static int reader_next_segment(QueueReader *r, uint64_t *ret_first, bool *ret_current_exists) {
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
                        *ret_current_exists = i > 0 && list[i - 1].first == r->seg_first;
                        return 1;
                }
        r->dir_mtime = st.st_mtim;
        r->dir_stamp_valid = timespec_nsec(&now) - timespec_nsec(&st.st_mtim) >= DIR_STAMP_RACY_NSEC;
        return 0;
}

/* Retention may remove the chosen segment between listing and opening: list again. A segment with a
 * damaged header is skipped the same way, once its loss was reported. */
static int reader_open_segment_retry(QueueReader *r) {
        int q = -EAGAIN;

        for (unsigned attempt = 0; attempt < 64 && q == -EAGAIN && !r->loss_pending; attempt++)
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

/* The rest of reader_take(): a record that is not the one expected next. */
static int reader_take_other(QueueReader *r, const QueueRecord *rec, uint64_t pos) {
        int q;

        r->seg_expect = rec->offset + 1;
        if (rec->offset < r->target) {
                /* Before the target (the index put us a little earlier): read on. */
                r->index_seek = false;
                return 0;
        }
        if (r->index_seek) {
                /* The index entry pointed past the target: it is not to be trusted. */
                r->index_seek = false;
                r->seg_expect = r->seg_first;
                q = segment_cursor_seek(&r->cursor, QUEUE_SEGMENT_HEADER_SIZE);
                return q < 0 ? q : 0;
        }
        /* Offsets from the target up to this record have none: lost. */
        reader_lose(r, r->seg_first, rec->offset, r->damaged, r->damage_pos);
        r->loss_pending = false;
        r->target = rec->offset;
        r->damaged = false;
        q = segment_cursor_seek(&r->cursor, pos);
        return q < 0 ? q : QUEUE_READER_LOST;
}

/* A record read from the open segment at pos: returns QUEUE_READER_RECORD with it, 0 to read on
 * (it is before the target), or QUEUE_READER_LOST when offsets before it have no record (it is read
 * again afterwards). Inline, with the record expected next first: it is every record's path. */
static inline int reader_take(QueueReader *r, const QueueRecord *rec, uint64_t pos, QueueRecord *ret) {
        if (_unlikely_(rec->offset != r->target))
                return reader_take_other(r, rec, pos);
        r->index_seek = r->damaged = false;
        r->target = r->seg_expect = rec->offset + 1;
        *ret = *rec;
        return QUEUE_READER_RECORD;
}

/* The bytes at the cursor are not a valid record: damage (the writer only ever appends whole
 * records, and a torn one shows as a file that ends inside it). Positions the cursor at the next
 * valid record of the segment and returns 1, or returns 0 when the file holds none (yet). */
static int reader_resync(QueueReader *r) {
        uint64_t pos, offset;
        int q;

        q = segment_resync(r->cursor.fd, r->cursor.pos, r->seg_expect, UINT64_MAX, &pos, &offset);
        if (q <= 0)
                return q;
        if (!r->damaged) {
                r->damaged = true;
                r->damage_pos = r->cursor.pos;
        }
        q = segment_cursor_seek(&r->cursor, pos);
        return q < 0 ? q : 1;
}

int queue_reader_next(QueueReader *r, QueueRecord *ret) {
        assert(r);
        assert(ret);

        for (;;) {
                QueueRecord rec;
                uint64_t pos, next_first = 0, left_at;
                bool current_exists = false;
                int q;

                if (r->loss_pending) {
                        r->loss_pending = false;
                        return QUEUE_READER_LOST;
                }
                if (r->cursor.fd < 0) {
                        q = reader_open_segment_retry(r);
                        if (r->loss_pending)
                                continue;
                        if (q <= 0)
                                return q;
                }

                q = segment_cursor_next(&r->cursor, &rec, &pos);
                if (q > 0) {
                        q = reader_take(r, &rec, pos, ret);
                        if (q != 0)
                                return q;
                        continue;
                }
                if (q == -EBADMSG && r->index_seek) {
                        /* The index entry pointed at no record: it is not to be trusted. */
                        r->index_seek = false;
                        r->seg_expect = r->seg_first;
                        q = segment_cursor_seek(&r->cursor, QUEUE_SEGMENT_HEADER_SIZE);
                        if (q < 0)
                                return q;
                        continue;
                }
                if (q == -EBADMSG) {
                        q = reader_resync(r);
                        if (q < 0)
                                return q;
                        if (q > 0)
                                continue;
                        /* No valid record after the damage (yet): the writer may append some. */
                } else if (q == -EPIPE) {
                        /* The file ends inside a record: it is being written, or it was torn by a
                         * crash and the writer's recovery will cut it and write other bytes there.
                         * Read it again from its start next time, never glue old and new bytes. */
                        q = segment_cursor_seek(&r->cursor, r->cursor.pos);
                        if (q < 0)
                                return q;
                } else if (q < 0)
                        return q;

                /* The end of what this segment holds now. Done with it only once a newer segment
                 * exists, and after one more read: the writer may have appended just before rolling. */
                q = reader_next_segment(r, &next_first, &current_exists);
                if (q <= 0)
                        return q;
                q = segment_cursor_next(&r->cursor, &rec, &pos);
                if (q > 0) {
                        q = reader_take(r, &rec, pos, ret);
                        if (q != 0)
                                return q;
                        continue;
                }
                if (q == -EPIPE || q == -EBADMSG) {
                        /* Bytes that are no record in a segment the writer has left: damage, since its
                         * recovery cuts a torn tail before it writes on. Valid records may follow. */
                        left_at = r->cursor.pos;
                        q = reader_resync(r);
                        if (q < 0)
                                return q;
                        if (q > 0)
                                continue;
                        if (!r->damaged) {
                                r->damaged = true;
                                r->damage_pos = left_at;
                        }
                } else if (q < 0)
                        return q;

                /* Done with this segment. The offsets up to the next segment that have no record here
                 * are lost, unless retention removed this segment (and maybe more) meanwhile. */
                r->cursor.fd = safe_close(r->cursor.fd);
                buffer_clear(&r->cursor.buf);
                if (current_exists)
                        reader_lose(r, r->seg_first, next_first, r->damaged, r->damage_pos);
                r->damaged = false;
                r->target = MAX(r->target, next_first);
        }
}

const QueueLoss *queue_reader_loss(QueueReader *r) {
        return &r->loss;
}

int queue_reader_seek(QueueReader *r, uint64_t offset) {
        assert(r);

        r->cursor.fd = safe_close(r->cursor.fd);
        buffer_clear(&r->cursor.buf);
        r->target = offset;
        r->damaged = r->loss_pending = false;
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

