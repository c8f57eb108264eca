/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Durability (common/queue-sync.c), driven through common/queue.h the way dpipe-writer uses it:
 * queue_sync(), the sync thread's queue_sync_begin()/queue_sync_end(), rolls while a sync is in
 * flight, roll_when_synced, early writeback and the spare segment. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cmocka.h>

#include "frame.h"
#include "queue-test-util.h"
#include "queue.h"
#include "util.h"

/* Every fdatasync() of the queue library lands here (a definition in the test program takes
 * precedence over libc's), so that a test can tell whether a given file was synced. */
static struct {
        dev_t dev;
        ino_t ino;
        unsigned calls; /* on the watched file */
} fdatasync_watch;

int fdatasync(int fd) {
        struct stat st;

        if (fdatasync_watch.ino != 0 && fstat(fd, &st) >= 0 && st.st_ino == fdatasync_watch.ino &&
            st.st_dev == fdatasync_watch.dev)
                fdatasync_watch.calls++;
        return (int) syscall(SYS_fdatasync, fd);
}

static void fdatasync_watch_path(const char *path) {
        struct stat st;

        assert_int_equal(stat(path, &st), 0);
        fdatasync_watch.dev = st.st_dev;
        fdatasync_watch.ino = st.st_ino;
        fdatasync_watch.calls = 0;
}

static bool same_file(int fd, const char *path) {
        struct stat a, b;

        assert_int_equal(fstat(fd, &a), 0);
        assert_int_equal(stat(path, &b), 0);
        return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

/* queue_sync_begin() for a queue without roll_when_synced: there is never a sealed segment. */
static int sync_begin(Queue *q, int *ret_data_fd, int *ret_dir_fd) {
        int fds[3] = { -EBADF, -EBADF, -EBADF }, r;

        r = queue_sync_begin(q, fds);
        assert_true(fds[0] < 0);
        if (r > 0) {
                *ret_data_fd = fds[1];
                *ret_dir_fd = fds[2];
        }
        return r;
}

/* queue_sync_begin()/queue_sync_end(): what dpipe-writer's sync thread is handed, and that a failed
 * sync is done again. */
static void test_sync_begin_end(void **state) {
        char *tmp = make_tmp(), *dir = qdir_of(tmp), *seg0;
        Queue *q = NULL;
        int data_fd = -EBADF, dir_fd = -EBADF;

        assert_int_equal(queue_open(dir, &(QueueOptions) {}, &q), 0);
        seg0 = segment_path(dir, 0);

        /* queue_open() left everything durable. */
        assert_int_equal(sync_begin(q, &data_fd, &dir_fd), 0);
        assert_false(queue_sync_in_flight(q));

        /* Appended records: written by begin (a reader sees them while the sync runs), and the
         * fd to sync is the segment's. */
        append_n(q, "s", 1, 10, 0);
        assert_int_equal(sync_begin(q, &data_fd, &dir_fd), 1);
        assert_true(queue_sync_in_flight(q));
        assert_int_equal(queue_pending_bytes(q), 0);
        assert_true(data_fd >= 0);
        assert_true(same_file(data_fd, seg0));
        assert_int_equal(dir_fd, -EBADF);
        assert_int_equal(read_all(dir, 0, NULL, 0), 10);
        /* One at a time. */
        assert_int_equal(sync_begin(q, &(int) { -EBADF }, &(int) { -EBADF }), -EBUSY);
        assert_int_equal(fdatasync(data_fd), 0);
        data_fd = safe_close(data_fd);
        queue_sync_end(q, 0);
        assert_false(queue_sync_in_flight(q));
        assert_int_equal(sync_begin(q, &data_fd, &dir_fd), 0);

        /* A failed sync: the next one covers the same bytes again. */
        append_n(q, "s", 11, 5, 10);
        assert_int_equal(sync_begin(q, &data_fd, &dir_fd), 1);
        data_fd = safe_close(data_fd);
        queue_sync_end(q, -EIO);
        assert_int_equal(sync_begin(q, &data_fd, &dir_fd), 1);
        assert_true(same_file(data_fd, seg0));
        data_fd = safe_close(data_fd);
        queue_sync_end(q, 0);
        assert_int_equal(sync_begin(q, &data_fd, &dir_fd), 0);

        /* Written while a sync was in flight: not covered by it. */
        append_n(q, "s", 16, 5, 15);
        assert_int_equal(sync_begin(q, &data_fd, &dir_fd), 1);
        data_fd = safe_close(data_fd);
        append_n(q, "s", 21, 5, 20);
        assert_int_equal(queue_flush(q), 0);
        queue_sync_end(q, 0);
        assert_int_equal(sync_begin(q, &data_fd, &dir_fd), 1);
        data_fd = safe_close(data_fd);
        queue_sync_end(q, 0);

        /* queue_sync() (hello, exit) while a sync is in flight syncs what that one covers itself:
         * it may not have finished. */
        append_n(q, "s", 26, 5, 25);
        assert_int_equal(sync_begin(q, &data_fd, &dir_fd), 1);
        data_fd = safe_close(data_fd);
        fdatasync_watch_path(seg0);
        assert_int_equal(queue_sync(q), 0);
        assert_int_equal(fdatasync_watch.calls, 1);
        queue_sync_end(q, 0);
        /* Nothing new: no sync at all. */
        assert_int_equal(queue_sync(q), 0);
        assert_int_equal(fdatasync_watch.calls, 1);
        fdatasync_watch.ino = 0;

        assert_int_equal(read_all(dir, 0, NULL, 0), 30);
        queue_free(q);
        free(seg0);
        free(dir);
        rm_rf(tmp);
}

/* A segment roll makes the old segment durable before the new one exists, also when the sync of its
 * last bytes was handed out (queue_sync_begin()) and has not been reported yet. The roll here is
 * retention's (the active segment is older than --retention-sec), the one that can find nothing
 * written since the last queue_sync_begin(). */
static void test_sync_in_flight_roll(void **state) {
        char *tmp = make_tmp(), *dir = qdir_of(tmp), *seg;
        QueueOptions o = { .retention_usec = 1000 };
        Queue *q = NULL;
        int data_fd = -EBADF, dir_fd = -EBADF;

        assert_int_equal(queue_open(dir, &o, &q), 0);

        /* Control: after a completed sync the roll has nothing to sync. */
        append_n(q, "s", 1, 10, 0);
        assert_int_equal(queue_sync(q), 0);
        seg = segment_path(dir, 0);
        fdatasync_watch_path(seg);
        free(seg);
        usleep(5000);
        assert_true(queue_apply_retention(q) > 0);
        assert_int_equal(fdatasync_watch.calls, 0);
        assert_int_equal(queue_first_offset(q), 10);

        /* The sync of the last bytes is in flight: the roll syncs the segment itself. */
        append_n(q, "s", 11, 10, 10);
        assert_int_equal(sync_begin(q, &data_fd, &dir_fd), 1);
        seg = segment_path(dir, 10);
        assert_true(same_file(data_fd, seg));
        fdatasync_watch_path(seg);
        free(seg);
        usleep(5000);
        assert_true(queue_apply_retention(q) > 0);
        assert_int_equal(fdatasync_watch.calls, 1);
        fdatasync_watch.ino = 0;
        /* The old segment is gone (retention), the fd handed out still works. */
        assert_int_equal(fdatasync(data_fd), 0);
        data_fd = safe_close(data_fd);
        dir_fd = safe_close(dir_fd);
        queue_sync_end(q, 0);

        /* The new segment and its directory entry still need a sync: the one that ended covered
         * neither. */
        assert_int_equal(sync_begin(q, &data_fd, &dir_fd), 1);
        seg = segment_path(dir, 20);
        assert_true(same_file(data_fd, seg));
        free(seg);
        assert_true(dir_fd >= 0);
        data_fd = safe_close(data_fd);
        dir_fd = safe_close(dir_fd);
        queue_sync_end(q, 0);
        assert_int_equal(sync_begin(q, &data_fd, &dir_fd), 0);

        queue_free(q);
        free(dir);
        rm_rf(tmp);
}

/* roll_when_synced (dpipe-writer with its sync thread): a full segment rolls at once, without an
 * fdatasync() on the caller's thread; records go on landing in the new segment (readers see them at
 * once), and the next sync job covers the old segment before the new one. */
static void test_roll_when_synced(void **state) {
        char *tmp = make_tmp(), *dir = qdir_of(tmp), *seg0, *seg1, *seg2;
        QueueOptions o = { .segment_size = 4096, .roll_when_synced = true };
        Queue *q = NULL;
        int fds[3];
        uint64_t offsets[500];
        struct stat st;

        assert_int_equal(queue_open(dir, &o, &q), 0);
        seg0 = segment_path(dir, 0);
        seg1 = segment_path(dir, 80);
        fdatasync_watch_path(seg0);

        /* ~4.3 KiB: full; it rolls right away, nothing synced on this thread. */
        append_n(q, "s", 1, 80, 0);
        assert_int_equal(queue_flush(q), 0);
        assert_int_equal(access(seg1, F_OK), 0);
        assert_int_equal(fdatasync_watch.calls, 0);

        /* Records after the roll are written to the new segment and visible at once. */
        append_n(q, "s", 81, 10, 80);
        assert_int_equal(queue_flush(q), 0);
        assert_int_equal(queue_pending_bytes(q), 0);
        assert_int_equal(fdatasync_watch.calls, 0);
        assert_int_equal(read_all(dir, 0, offsets, 500), 90);
        for (uint64_t i = 0; i < 90; i++)
                assert_int_equal(offsets[i], i);
        assert_int_equal(stat(seg1, &st), 0);
        assert_int_equal((size_t) st.st_size, QUEUE_SEGMENT_HEADER_SIZE + 10 * (QUEUE_RECORD_HEADER_SIZE + 1 + 14));

        /* The next sync job covers the old segment, then the new one and the directory. A failed
         * one leaves the old segment to the next job. */
        assert_int_equal(queue_sync_begin(q, fds), 1);
        assert_true(fds[0] >= 0 && same_file(fds[0], seg0));
        assert_true(same_file(fds[1], seg1));
        assert_true(fds[2] >= 0);
        for (int i = 0; i < 3; i++)
                safe_close(fds[i]);
        queue_sync_end(q, -EIO);
        assert_int_equal(queue_sync_begin(q, fds), 1);
        assert_true(fds[0] >= 0 && same_file(fds[0], seg0));
        assert_int_equal(fdatasync(fds[0]), 0);
        for (int i = 0; i < 3; i++)
                safe_close(fds[i]);
        queue_sync_end(q, 0);
        /* Durable now: nothing left to sync, no sealed segment. */
        assert_int_equal(queue_sync_begin(q, fds), 0);

        /* Two rolls without a sync between them: the second syncs the first sealed segment on
         * this thread (at most one is not durable), the next job covers the second. */
        append_n(q, "s", 91, 80, 90);
        assert_int_equal(queue_flush(q), 0);
        seg2 = segment_path(dir, 170);
        assert_int_equal(access(seg2, F_OK), 0);
        fdatasync_watch_path(seg1);
        append_n(q, "s", 171, 80, 170);
        assert_int_equal(queue_flush(q), 0);
        assert_int_equal(fdatasync_watch.calls, 1);
        assert_int_equal(queue_sync_begin(q, fds), 1);
        assert_true(fds[0] >= 0 && same_file(fds[0], seg2));
        for (int i = 0; i < 3; i++)
                safe_close(fds[i]);
        /* A roll while that job is in flight syncs the sealed segment itself too. */
        fdatasync_watch_path(seg2);
        append_n(q, "s", 251, 80, 250);
        assert_int_equal(queue_flush(q), 0);
        assert_int_equal(fdatasync_watch.calls, 1);
        queue_sync_end(q, 0);

        /* queue_sync() syncs the sealed segment. */
        free(seg2);
        seg2 = segment_path(dir, 250);
        fdatasync_watch_path(seg2);
        assert_int_equal(queue_sync(q), 0);
        assert_int_equal(fdatasync_watch.calls, 1);
        assert_int_equal(queue_sync_begin(q, fds), 0);

        /* Records after that, and a roll: the sealed segment goes with the next job. */
        append_n(q, "s", 331, 80, 330);
        assert_int_equal(queue_flush(q), 0);
        free(seg2);
        seg2 = segment_path(dir, 410);
        assert_int_equal(access(seg2, F_OK), 0);
        free(seg2);
        seg2 = segment_path(dir, 330);
        assert_int_equal(queue_sync_begin(q, fds), 1);
        assert_true(fds[0] >= 0 && same_file(fds[0], seg2));
        for (int i = 0; i < 3; i++)
                safe_close(fds[i]);
        queue_sync_end(q, 0);

        /* Reopened: every record, dense offsets, nothing quarantined, next offset exact. */
        queue_free(q);
        q = NULL;
        assert_int_equal(queue_open(dir, &o, &q), 0);
        assert_int_equal(queue_next_offset(q), 410);
        assert_int_equal(read_all(dir, 0, offsets, 500), 410);
        for (uint64_t i = 0; i < 410; i++)
                assert_int_equal(offsets[i], i);
        assert_int_equal(count_corrupt(dir), 0);

        queue_free(q);
        free(seg0);
        free(seg1);
        free(seg2);
        free(dir);
        rm_rf(tmp);
}

/* The index of a segment started by an immediate roll points at the records' positions in it: a
 * reader opened at any offset gets exactly that record. */
static void test_roll_when_synced_index(void **state) {
        char *tmp = make_tmp(), *dir = qdir_of(tmp);
        QueueOptions o = { .segment_size = 64 * 1024, .roll_when_synced = true };
        Queue *q = NULL;

        assert_int_equal(queue_open(dir, &o, &q), 0);
        append_n(q, "s", 1, 3000, 0);
        assert_int_equal(queue_flush(q), 0);
        /* ~150 KiB in one write: several index entries, in a segment of its own. */
        append_n(q, "s", 3001, 6000, 3000);
        assert_int_equal(queue_flush(q), 0);
        for (uint64_t off = 2990; off < 9000; off += 397) {
                QueueReader *r = NULL;
                QueueRecord rec;

                assert_int_equal(queue_reader_open(dir, off, &r), 0);
                assert_int_equal(queue_reader_next(r, &rec), 1);
                assert_int_equal(rec.offset, off);
                assert_int_equal(rec.seq, off + 1);
                queue_reader_free(r);
        }
        assert_int_equal(read_all(dir, 0, NULL, 0), 9000);

        /* Readers fall back to a scan on a bad entry, so look at the entries themselves: each
         * names the record at its position. */
        {
                char name[64], *idx, *seg;
                uint8_t *p = NULL;
                size_t n = 0;
                int fd;

                snprintf(name, sizeof(name), "%020" PRIu64 ".idx", UINT64_C(3000));
                idx = path_join(dir, name);
                seg = segment_path(dir, 3000);
                assert_int_equal(file_read_all(idx, &p, &n), 0);
                assert_true(n >= 32 && n % 16 == 0);
                fd = open(seg, O_RDONLY | O_CLOEXEC);
                assert_true(fd >= 0);
                for (size_t k = 0; k < n; k += 16) {
                        uint8_t h[16];
                        assert_int_equal(pread(fd, h, sizeof(h), (off_t) le64_get(p + k + 8)), (ssize_t) sizeof(h));
                        assert_int_equal(le64_get(h + 8), le64_get(p + k));
                }
                close(fd);
                free(p);
                free(idx);
                free(seg);
        }
        queue_free(q);
        free(dir);
        rm_rf(tmp);
}

/* Appends single flushed records until a new segment starts; returns its first offset. */
static uint64_t append_until_roll(Queue *q, const char *dir, uint64_t *next) {
        for (uint64_t n = 0;; n++) {
                char *seg;
                bool rolled;

                append_n(q, "s", 1 + *next, 1, *next);
                assert_int_equal(queue_flush(q), 0);
                seg = segment_path(dir, *next);
                rolled = access(seg, F_OK) == 0;
                free(seg);
                (*next)++;
                if (rolled)
                        return *next - 1;
                assert_true(n < 100000);
        }
}

static ino_t inode_of(const char *path) {
        struct stat st;

        assert_int_equal(stat(path, &st), 0);
        return st.st_ino;
}

/* The writeback ranges handed out: whole aligned MiB only (the partly filled end is left to the
 * fdatasync()), each byte once, on a duplicate of the active segment's fd, from 0 again in a new
 * segment, and nothing for what a reopened queue found on disk. */
static void test_writeback_begin(void **state) {
        char *tmp = make_tmp(), *dir = qdir_of(tmp), *seg;
        const uint64_t MiB = 1024 * 1024, rec = QUEUE_RECORD_HEADER_SIZE + 1 + 14;
        QueueOptions o = { .segment_size = 3 * MiB };
        uint64_t offset, length, next = 0, size;
        Queue *q = NULL;
        struct stat st;
        int fd = -EBADF;

        assert_int_equal(queue_open(dir, &o, &q), 0);
        seg = segment_path(dir, 0);
        assert_int_equal(queue_writeback_begin(q, &fd, &offset, &length), 0);

        /* Just under 1 MiB written: nothing yet. */
        append_n(q, "s", 1, (MiB - QUEUE_SEGMENT_HEADER_SIZE) / rec, 0);
        next = (MiB - QUEUE_SEGMENT_HEADER_SIZE) / rec;
        assert_int_equal(queue_flush(q), 0);
        assert_int_equal(queue_writeback_begin(q, &fd, &offset, &length), 0);

        /* Over it: [0, 1 MiB), once. */
        append_n(q, "s", 1 + next, 100, next);
        next += 100;
        assert_int_equal(queue_flush(q), 0);
        assert_int_equal(queue_writeback_begin(q, &fd, &offset, &length), 1);
        assert_true(same_file(fd, seg));
        assert_int_equal(offset, 0);
        assert_int_equal(length, MiB);
        /* The fd is the caller's and works. */
        assert_int_equal(sync_file_range(fd, (off_t) offset, (off_t) length, SYNC_FILE_RANGE_WRITE), 0);
        fd = safe_close(fd);
        assert_int_equal(queue_writeback_begin(q, &fd, &offset, &length), 0);

        /* Appended but not flushed counts for nothing; flushed to 2.5 MiB: [1, 2) MiB. */
        append_n(q, "s", 1 + next, (3 * MiB / 2) / rec, next);
        next += (3 * MiB / 2) / rec;
        assert_int_equal(queue_writeback_begin(q, &fd, &offset, &length), 0);
        assert_int_equal(queue_flush(q), 0);
        assert_int_equal(queue_writeback_begin(q, &fd, &offset, &length), 1);
        assert_int_equal(offset, MiB);
        assert_int_equal(length, MiB);
        fd = safe_close(fd);
        free(seg);

        /* Past the segment size: a new segment, whose ranges start at 0 again. */
        seg = segment_path(dir, append_until_roll(q, dir, &next));
        append_n(q, "s", 1 + next, MiB / rec, next);
        assert_int_equal(queue_flush(q), 0);
        assert_int_equal(queue_writeback_begin(q, &fd, &offset, &length), 1);
        assert_true(same_file(fd, seg));
        assert_int_equal(offset, 0);
        assert_int_equal(length, MiB);
        fd = safe_close(fd);
        next += MiB / rec;
        queue_free(q);

        /* Reopened: what is on disk is not handed out; the next range starts at the file's end. */
        assert_int_equal(stat(seg, &st), 0);
        size = (uint64_t) st.st_size;
        assert_true(size > MiB && size < 2 * MiB);
        assert_int_equal(queue_open(dir, &o, &q), 0);
        assert_int_equal(queue_writeback_begin(q, &fd, &offset, &length), 0);
        append_n(q, "s", 1 + next, MiB / rec, next);
        assert_int_equal(queue_flush(q), 0);
        assert_int_equal(queue_writeback_begin(q, &fd, &offset, &length), 1);
        assert_true(same_file(fd, seg));
        assert_int_equal(offset, size);
        assert_int_equal(length, 2 * MiB - size);
        fd = safe_close(fd);
        queue_free(q);
        free(seg);
        free(dir);
        rm_rf(tmp);
}

/* Appends and flushes records until queue_spare_begin() hands out the spare; returns its fd. */
static int append_until_spare(Queue *q, uint64_t *next, uint64_t *ret_size) {
        int fd = -EBADF;

        while (queue_spare_begin(q, &fd, ret_size) == 0) {
                append_n(q, "s", 1 + *next, 100, *next);
                *next += 100;
                assert_int_equal(queue_flush(q), 0);
        }
        return fd;
}

/* The spare segment: created once the active segment is half full, reserved by the caller, renamed
 * to the next segment at the roll (its space already reserved); not used while not reported or after
 * a failed reservation; removed by queue_free() and by queue_open() after a crash. */
static void test_spare_segment(void **state) {
        char *tmp = make_tmp(), *dir = qdir_of(tmp), *spare, *seg;
        const uint64_t segsize = 256 * 1024, rec = QUEUE_RECORD_HEADER_SIZE + 1 + 14;
        QueueOptions o = { .segment_size = segsize };
        uint64_t next = 0, size, first;
        Queue *q = NULL;
        struct stat st;
        ino_t ino;
        int fd = -EBADF;

        spare = path_join(dir, "spare-segment");
        assert_non_null(spare);
        assert_int_equal(queue_open(dir, &o, &q), 0);

        /* Less than half full: nothing; over half: the file, empty, and the size to reserve. */
        append_n(q, "s", 1, segsize / 2 / rec - 1, 0);
        next = segsize / 2 / rec - 1;
        assert_int_equal(queue_flush(q), 0);
        assert_int_equal(queue_spare_begin(q, &fd, &size), 0);
        append_n(q, "s", 1 + next, 2, next);
        next += 2;
        assert_int_equal(queue_flush(q), 0);
        assert_int_equal(queue_spare_begin(q, &fd, &size), 1);
        assert_int_equal(size, segsize);
        assert_true(same_file(fd, spare));
        assert_int_equal(stat(spare, &st), 0);
        assert_int_equal(st.st_size, 0);
        ino = st.st_ino;
        assert_int_equal(queue_spare_begin(q, &(int) { -EBADF }, &size), 0); /* one at a time */
        if (fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, (off_t) size) < 0) {
                /* A file system without fallocate(): the writer reports that as a failed reservation. */
                assert_true(errno == EOPNOTSUPP);
                skip();
        }
        fd = safe_close(fd);
        queue_spare_end(q, 0);

        /* The roll takes it: the new segment is that file, with its space reserved, readable. */
        first = append_until_roll(q, dir, &next);
        seg = segment_path(dir, first);
        assert_int_equal(access(spare, F_OK), -1);
        assert_int_equal(errno, ENOENT);
        assert_int_equal(stat(seg, &st), 0);
        assert_int_equal(st.st_ino, ino);
        assert_true((uint64_t) st.st_blocks * 512 >= segsize);
        assert_int_equal(read_all(dir, 0, NULL, 0), next);
        free(seg);

        /* A reservation not reported yet at the roll is left for the next one. */
        fd = append_until_spare(q, &next, &size);
        ino = inode_of(spare);
        first = append_until_roll(q, dir, &next);
        seg = segment_path(dir, first);
        assert_true(inode_of(seg) != ino);
        assert_int_equal(inode_of(spare), ino);
        free(seg);
        assert_int_equal(fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, (off_t) size), 0);
        fd = safe_close(fd);
        queue_spare_end(q, 0);
        first = append_until_roll(q, dir, &next);
        seg = segment_path(dir, first);
        assert_int_equal(inode_of(seg), ino);
        free(seg);

        /* A failed reservation: the file goes, the roll creates the segment itself, and the next
         * half-full segment gets a new spare. */
        fd = append_until_spare(q, &next, &size);
        fd = safe_close(fd);
        queue_spare_end(q, -ENOSPC);
        assert_int_equal(access(spare, F_OK), -1);
        append_n(q, "s", 1 + next, 100, next);
        next += 100;
        assert_int_equal(queue_flush(q), 0);
        assert_int_equal(queue_spare_begin(q, &fd, &size), 0); /* not again in this segment */
        first = append_until_roll(q, dir, &next);
        seg = segment_path(dir, first);
        assert_int_equal(access(seg, F_OK), 0);
        free(seg);
        fd = append_until_spare(q, &next, &size);
        fd = safe_close(fd);
        assert_int_equal(access(spare, F_OK), 0);
        assert_int_equal(read_all(dir, 0, NULL, 0), next);

        /* queue_free() removes it; so does queue_open() after a crash left one. */
        queue_free(q);
        assert_int_equal(access(spare, F_OK), -1);
        file_write_all(spare, (const uint8_t *) "x", 1);
        assert_int_equal(queue_open(dir, &o, &q), 0);
        assert_int_equal(access(spare, F_OK), -1);
        assert_int_equal(queue_next_offset(q), next);
        queue_free(q);
        free(spare);
        free(dir);
        rm_rf(tmp);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_sync_begin_end),
                cmocka_unit_test(test_sync_in_flight_roll),
                cmocka_unit_test(test_roll_when_synced),
                cmocka_unit_test(test_roll_when_synced_index),
                cmocka_unit_test(test_writeback_begin),
                cmocka_unit_test(test_spare_segment),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
