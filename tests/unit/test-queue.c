/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The queue's format, recovery, retention and reader, driven through common/queue.h only, the way
 * dpipe-writer and dpiped use it. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <poll.h>
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
#include "queue.h"
#include "util.h"

typedef struct Events {
        unsigned count[8];
        char last[8][768];
} Events;

static void on_event(QueueEvent ev, const char *message, void *userdata) {
        Events *e = userdata;
        e->count[ev]++;
        snprintf(e->last[ev], sizeof(e->last[ev]), "%s", message);
}

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

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        return remove(path);
}

static char *make_tmp(void) {
        char *p = strdup("/tmp/test-queue.XXXXXX");
        assert_non_null(p);
        assert_non_null(mkdtemp(p));
        return p;
}

static void rm_rf(char *p) {
        nftw(p, rm_one, 16, FTW_DEPTH | FTW_PHYS);
        free(p);
}

static char *qdir_of(const char *tmp) {
        char *d = path_join(tmp, "queue");
        assert_non_null(d);
        return d;
}

/* Record i of a test: fixed size data, so positions are predictable. */
static size_t make_data(char *buf, uint64_t i) {
        return (size_t) snprintf(buf, 64, "{\"i\":%08" PRIu64 "}", i);
}

static void append_n(Queue *q, const char *source, uint64_t first_seq, uint64_t n, uint64_t expect_first_offset) {
        for (uint64_t i = 0; i < n; i++) {
                char d[64];
                QueueAppend a = { .seq = first_seq + i, .ts_us = 1000 + first_seq + i, .data = d };
                uint64_t off;

                a.data_len = (uint32_t) make_data(d, first_seq + i);
                assert_int_equal(queue_append(q, source, strlen(source), &a, 1, &off), 0);
                assert_int_equal(off, expect_first_offset + i);
        }
}

/* Appends n * 50 records of source "s" (seq 1.., offsets 0..) in n writes of 50. */
static void append_flushed_fifties(Queue *q, unsigned n) {
        for (unsigned i = 0; i < n; i++) {
                append_n(q, "s", 1 + (uint64_t) i * 50, 50, (uint64_t) i * 50);
                assert_int_equal(queue_flush(q), 0);
        }
}

static uint64_t read_all(const char *dir, uint64_t from, uint64_t *offsets, size_t max) {
        QueueReader *r = NULL;
        QueueRecord rec;
        uint64_t n = 0;
        int k;

        assert_int_equal(queue_reader_open(dir, from, &r), 0);
        while ((k = queue_reader_next(r, &rec)) > 0) {
                char d[64];
                if (offsets && n < max)
                        offsets[n] = rec.offset;
                /* The data is what was appended for that seq. */
                assert_int_equal(rec.data_len, make_data(d, rec.seq));
                assert_memory_equal(rec.data, d, rec.data_len);
                assert_int_equal(rec.ts_us, 1000 + rec.seq);
                n++;
        }
        assert_int_equal(k, 0);
        queue_reader_free(r);
        return n;
}

static void test_roundtrip(void **state) {
        char *tmp = make_tmp(), *dir = qdir_of(tmp);
        Events ev = {};
        QueueOptions o = { .on_event = on_event, .userdata = &ev };
        Queue *q = NULL;
        QueueReader *r = NULL;
        QueueRecord rec;
        uint64_t seq, first, next;

        assert_int_equal(queue_open(dir, &o, &q), 0);
        assert_int_equal(ev.count[QUEUE_EVENT_CREATED], 1);
        assert_int_equal(queue_first_offset(q), 0);
        assert_int_equal(queue_next_offset(q), 0);
        assert_false(queue_last_seq(q, "a", 1, &seq));

        append_n(q, "a", 1, 10, 0);
        append_n(q, "bb", 100, 5, 10);
        /* Appended but not flushed: nothing for readers yet. */
        assert_int_equal(read_all(dir, 0, NULL, 0), 0);
        assert_int_equal(queue_sync(q), 0);
        assert_int_equal(queue_next_offset(q), 15);
        assert_true(queue_last_seq(q, "a", 1, &seq));
        assert_int_equal(seq, 10);
        assert_true(queue_last_seq(q, "bb", 2, &seq));
        assert_int_equal(seq, 104);

        /* A second writer is refused while the first holds the queue. */
        {
                Queue *q2 = NULL;
                assert_int_equal(queue_open(dir, NULL, &q2), -EBUSY);
        }
        queue_free(q);

        /* Reopen: offsets and seqs are rebuilt from the files. */
        ev = (Events) {};
        assert_int_equal(queue_open(dir, &o, &q), 0);
        assert_int_equal(ev.count[QUEUE_EVENT_CREATED] + ev.count[QUEUE_EVENT_TRUNCATED] + ev.count[QUEUE_EVENT_QUARANTINED], 0);
        assert_int_equal(queue_next_offset(q), 15);
        assert_true(queue_last_seq(q, "a", 1, &seq));
        assert_int_equal(seq, 10);
        assert_true(queue_last_seq(q, "bb", 2, &seq));
        assert_int_equal(seq, 104);
        assert_int_equal(queue_bounds(dir, &first, &next), 0);
        assert_int_equal(first, 0);
        assert_int_equal(next, 15);

        assert_int_equal(queue_reader_open(dir, 9, &r), 0);
        assert_int_equal(queue_reader_next(r, &rec), 1);
        assert_int_equal(rec.offset, 9);
        assert_int_equal(rec.seq, 10);
        assert_int_equal(rec.source_len, 1);
        assert_memory_equal(rec.source, "a", 1);
        assert_int_equal(queue_reader_next(r, &rec), 1);
        assert_int_equal(rec.offset, 10);
        assert_memory_equal(rec.source, "bb", 2);
        assert_memory_equal(rec.data, "{\"i\":00000100}", rec.data_len);
        assert_int_equal(queue_reader_seek(r, 14), 0);
        assert_int_equal(queue_reader_offset(r), 14);
        assert_int_equal(queue_reader_next(r, &rec), 1);
        assert_int_equal(rec.offset, 14);
        assert_int_equal(queue_reader_next(r, &rec), 0);
        assert_int_equal(queue_reader_offset(r), 15);
        queue_reader_free(r);

        /* Invalid input stores nothing. */
        {
                QueueAppend a = { .seq = 1, .data = "1", .data_len = 1 };
                assert_int_equal(queue_append(q, "bad name", 8, &a, 1, NULL), -EINVAL);
                assert_int_equal(queue_append(q, "", 0, &a, 1, NULL), -EINVAL);
                assert_int_equal(queue_next_offset(q), 15);
        }
        queue_free(q);
        free(dir);
        rm_rf(tmp);
}

static void test_segments_and_index(void **state) {
        char *tmp = make_tmp(), *dir = qdir_of(tmp);
        QueueOptions o = { .segment_size = 4096 };
        Queue *q = NULL;
        uint64_t offsets[3000], first, next;
        unsigned segs = 0;
        DIR *d;

        assert_int_equal(queue_open(dir, &o, &q), 0);
        /* Many flushes, many rolls. */
        for (int i = 0; i < 30; i++) {
                append_n(q, "s", 1 + (uint64_t) i * 100, 100, (uint64_t) i * 100);
                assert_int_equal(queue_flush(q), 0);
        }
        assert_int_equal(queue_sync(q), 0);
        d = opendir(dir);
        assert_non_null(d);
        for (struct dirent *de; (de = readdir(d));)
                if (strstr(de->d_name, ".seg"))
                        segs++;
        closedir(d);
        assert_true(segs > 10);

        /* Dense offsets, in order, from anywhere. */
        assert_int_equal(read_all(dir, 0, offsets, 3000), 3000);
        for (uint64_t i = 0; i < 3000; i++)
                assert_int_equal(offsets[i], i);
        for (uint64_t from = 0; from < 3000; from += 97) {
                assert_int_equal(read_all(dir, from, offsets, 1), 3000 - from);
                assert_int_equal(offsets[0], from);
        }
        /* Past the end: nothing yet, and the record with that offset comes once appended. */
        assert_int_equal(read_all(dir, 3005, NULL, 0), 0);
        assert_int_equal(queue_bounds(dir, &first, &next), 0);
        assert_int_equal(first, 0);
        assert_int_equal(next, 3000);
        queue_free(q);
        free(dir);
        rm_rf(tmp);
}

static void test_big_segment_index(void **state) {
        /* One segment large enough to carry index entries: open in the middle goes through them. */
        char *tmp = make_tmp(), *dir = qdir_of(tmp), *idx;
        Queue *q = NULL;
        uint64_t offsets[1];
        struct stat st;

        assert_int_equal(queue_open(dir, NULL, &q), 0);
        append_n(q, "s", 1, 20000, 0);
        assert_int_equal(queue_sync(q), 0);
        idx = path_join(dir, "00000000000000000000.idx");
        assert_int_equal(stat(idx, &st), 0);
        assert_true(st.st_size >= 16 * 10);
        assert_int_equal(read_all(dir, 17777, offsets, 1), 20000 - 17777);
        assert_int_equal(offsets[0], 17777);

        /* A garbage index is not trusted: readers fall back to scanning the segment. */
        {
                int fd = open(idx, O_WRONLY | O_TRUNC);
                uint8_t junk[32];
                memset(junk, 0x5a, sizeof(junk));
                assert_true(fd >= 0);
                assert_int_equal(write(fd, junk, sizeof(junk)), (ssize_t) sizeof(junk));
                close(fd);
        }
        assert_int_equal(read_all(dir, 12345, offsets, 1), 20000 - 12345);
        assert_int_equal(offsets[0], 12345);
        queue_free(q);
        free(idx);
        free(dir);
        rm_rf(tmp);
}

static int file_read_all(const char *path, uint8_t **ret, size_t *ret_size) {
        return read_file(path, 64 * 1024 * 1024, (char **) ret, ret_size);
}

static void file_write_all(const char *path, const uint8_t *p, size_t n) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, p, n), (ssize_t) n);
        close(fd);
}

static void test_torn_tail_every_byte(void **state) {
        /* Truncating the last segment at every byte of its last three records recovers exactly the
         * complete records, reports a torn tail when a record was cut, and continues with the next
         * offset right after them. */
        char *tmp = make_tmp(), *dir = qdir_of(tmp), *seg = NULL, *saved = NULL, *nextf = NULL;
        uint8_t *bytes = NULL;
        size_t size, rec_size;
        Queue *q = NULL;

        assert_int_equal(queue_open(dir, NULL, &q), 0);
        append_n(q, "src", 1, 50, 0);
        assert_int_equal(queue_sync(q), 0);
        queue_free(q);

        seg = path_join(dir, "00000000000000000000.seg");
        nextf = path_join(dir, "next-offset");
        assert_int_equal(file_read_all(seg, &bytes, &size), 0);
        rec_size = QUEUE_RECORD_HEADER_SIZE + 3 + 14;
        assert_int_equal(size, QUEUE_SEGMENT_HEADER_SIZE + 50 * rec_size);

        for (size_t cut = size - 3 * rec_size; cut <= size; cut++) {
                Events ev = {};
                QueueOptions o = { .on_event = on_event, .userdata = &ev };
                uint64_t complete = (cut - QUEUE_SEGMENT_HEADER_SIZE) / rec_size, seq;
                bool torn = (cut - QUEUE_SEGMENT_HEADER_SIZE) % rec_size != 0;
                struct stat st;

                file_write_all(seg, bytes, cut);
                /* As after a crash: the next-offset file holds what the last segment roll wrote. */
                file_write_all(nextf, (const uint8_t *) "0\n", 2);
                assert_int_equal(queue_open(dir, &o, &q), 0);
                assert_int_equal(ev.count[QUEUE_EVENT_TRUNCATED], torn ? 1 : 0);
                assert_int_equal(ev.count[QUEUE_EVENT_QUARANTINED], 0);
                assert_int_equal(queue_next_offset(q), complete);
                assert_true(queue_last_seq(q, "src", 3, &seq));
                assert_int_equal(seq, complete);
                assert_int_equal(stat(seg, &st), 0);
                assert_int_equal((size_t) st.st_size, QUEUE_SEGMENT_HEADER_SIZE + complete * rec_size);
                assert_int_equal(read_all(dir, 0, NULL, 0), complete);

                /* Appending goes on right after the complete ones. */
                append_n(q, "src", complete + 1, 1, complete);
                assert_int_equal(queue_sync(q), 0);
                queue_free(q);
                assert_int_equal(read_all(dir, 0, NULL, 0), complete + 1);
        }
        /* After a clean shutdown the next-offset file says 50: a cut tail then leaves a hole
         * rather than handing out offsets 47..49 a second time. */
        file_write_all(seg, bytes, size - rec_size - 5);
        file_write_all(nextf, (const uint8_t *) "50\n", 3);
        assert_int_equal(queue_open(dir, NULL, &q), 0);
        assert_int_equal(queue_next_offset(q), 50);
        assert_int_equal(read_all(dir, 0, NULL, 0), 48);
        queue_free(q);
        free(nextf);
        free(saved);
        free(bytes);
        free(seg);
        free(dir);
        rm_rf(tmp);
}

static unsigned count_corrupt(const char *dir) {
        _cleanup_free_ char *c = path_join(dir, "corrupt");
        unsigned n = 0;
        DIR *d = opendir(c);

        if (!d)
                return 0;
        for (struct dirent *de; (de = readdir(d));)
                if (de->d_name[0] != '.')
                        n++;
        closedir(d);
        return n;
}

static void flip_byte(const char *path, off_t pos) {
        int fd = open(path, O_RDWR);
        uint8_t b;

        assert_true(fd >= 0);
        assert_int_equal(pread(fd, &b, 1, pos), 1);
        b ^= 0x20;
        assert_int_equal(pwrite(fd, &b, 1, pos), 1);
        close(fd);
}

static void test_flipped_byte_middle_segment(void **state) {
        char *tmp = make_tmp(), *dir = qdir_of(tmp);
        Events ev = {};
        QueueOptions o = { .segment_size = 4096, .on_event = on_event, .userdata = &ev };
        _cleanup_free_ char *second = NULL;
        uint64_t offsets[1000], n, second_first, next;
        Queue *q = NULL;

        assert_int_equal(queue_open(dir, &o, &q), 0);
        append_flushed_fifties(q, 10);
        assert_int_equal(queue_sync(q), 0);
        next = queue_next_offset(q);
        queue_free(q);

        /* The second segment gets a flipped byte in the middle of its data. */
        {
                /* The second segment is named after the first offset above 0 that has a file. */
                uint64_t all[1000];
                assert_int_equal(read_all(dir, 0, all, 1000), 500);
                second_first = 0;
                for (uint64_t i = 1; i < 500 && second_first == 0; i++) {
                        char name[64];
                        snprintf(name, sizeof(name), "%s/%020" PRIu64 ".seg", dir, i);
                        if (access(name, F_OK) == 0) {
                                second_first = i;
                                second = strdup(name);
                        }
                }
                assert_non_null(second);
        }
        flip_byte(second, QUEUE_SEGMENT_HEADER_SIZE + 3 * (QUEUE_RECORD_HEADER_SIZE + 1 + 14) + 45);

        assert_int_equal(queue_open(dir, &o, &q), 0);
        assert_int_equal(ev.count[QUEUE_EVENT_QUARANTINED], 1);
        assert_non_null(strstr(ev.last[QUEUE_EVENT_QUARANTINED], "corrupt"));
        assert_int_equal(count_corrupt(dir), 1);
        assert_int_equal(access(second, F_OK), -1);
        /* Offsets are not reused; the reader skips the hole. */
        assert_int_equal(queue_next_offset(q), next);
        n = read_all(dir, 0, offsets, 1000);
        assert_true(n < 500);
        assert_int_equal(offsets[0], 0);
        assert_int_equal(offsets[second_first - 1], second_first - 1);
        assert_true(offsets[second_first] > second_first);
        for (uint64_t i = 1; i < n; i++)
                assert_true(offsets[i] > offsets[i - 1]);
        append_n(q, "s", 10000, 1, next);
        queue_free(q);

        /* And it stays that way: no crash loop, nothing quarantined twice. */
        ev = (Events) {};
        assert_int_equal(queue_open(dir, &o, &q), 0);
        assert_int_equal(ev.count[QUEUE_EVENT_QUARANTINED], 0);
        assert_int_equal(queue_next_offset(q), next + 1);
        queue_free(q);
        free(dir);
        rm_rf(tmp);
}

static void test_flipped_byte_last_segment(void **state) {
        /* A corrupt record in the middle of the active segment: not a torn write. The segment is
         * copied to corrupt/, the live one cut back before the bad record, and the offsets after it
         * are never handed out again. */
        char *tmp = make_tmp(), *dir = qdir_of(tmp), *seg;
        Events ev = {};
        QueueOptions o = { .on_event = on_event, .userdata = &ev };
        size_t rec_size = QUEUE_RECORD_HEADER_SIZE + 1 + 14;
        Queue *q = NULL;

        assert_int_equal(queue_open(dir, &o, &q), 0);
        append_n(q, "s", 1, 100, 0);
        assert_int_equal(queue_sync(q), 0);
        queue_free(q);

        seg = path_join(dir, "00000000000000000000.seg");
        flip_byte(seg, QUEUE_SEGMENT_HEADER_SIZE + 40 * rec_size + 50);
        assert_int_equal(queue_open(dir, &o, &q), 0);
        assert_int_equal(ev.count[QUEUE_EVENT_QUARANTINED], 1);
        assert_int_equal(count_corrupt(dir), 1);
        assert_int_equal(read_all(dir, 0, NULL, 0), 40);
        assert_int_equal(queue_next_offset(q), 100);
        append_n(q, "s", 101, 1, 100);
        assert_int_equal(queue_sync(q), 0);
        {
                uint64_t offsets[64];
                assert_int_equal(read_all(dir, 0, offsets, 64), 41);
                assert_int_equal(offsets[39], 39);
                assert_int_equal(offsets[40], 100);
        }
        queue_free(q);
        free(seg);
        free(dir);
        rm_rf(tmp);
}

static void test_retention_and_persisted_offset(void **state) {
        char *tmp = make_tmp(), *dir = qdir_of(tmp);
        Events ev = {};
        QueueOptions o = { .segment_size = 4096, .retention_bytes = 12 * 1024, .on_event = on_event, .userdata = &ev };
        uint64_t first, next;
        Queue *q = NULL;
        DIR *d;

        assert_int_equal(queue_open(dir, &o, &q), 0);
        append_flushed_fifties(q, 40);
        assert_int_equal(queue_sync(q), 0);
        assert_true(ev.count[QUEUE_EVENT_REMOVED] > 0);
        assert_true(queue_disk_bytes(q) <= 12 * 1024 + 8192);
        first = queue_first_offset(q);
        assert_true(first > 0);
        assert_int_equal(queue_next_offset(q), 2000);
        assert_int_equal(read_all(dir, 0, NULL, 0), 2000 - first);
        assert_int_equal(queue_bounds(dir, &first, &next), 0);
        assert_int_equal(first, queue_first_offset(q));
        assert_int_equal(next, 2000);
        queue_free(q);

        /* Even with every segment gone, offsets are not reused. */
        d = opendir(dir);
        for (struct dirent *de; (de = readdir(d));)
                if (strstr(de->d_name, ".seg") || strstr(de->d_name, ".idx")) {
                        _cleanup_free_ char *p = path_join(dir, de->d_name);
                        assert_int_equal(unlink(p), 0);
                }
        closedir(d);
        assert_int_equal(queue_open(dir, &o, &q), 0);
        assert_int_equal(queue_next_offset(q), 2000);
        assert_int_equal(queue_first_offset(q), 2000);
        append_n(q, "s", 5000, 1, 2000);
        queue_free(q);
        free(dir);
        rm_rf(tmp);
}

static void test_reader_survives_retention(void **state) {
        /* A reader in a segment that retention removes finishes it and goes on with the next. */
        char *tmp = make_tmp(), *dir = qdir_of(tmp);
        QueueOptions o = { .segment_size = 4096 };
        QueueReader *r = NULL;
        QueueRecord rec;
        Queue *q = NULL;
        uint64_t expect = 0;

        assert_int_equal(queue_open(dir, &o, &q), 0);
        append_flushed_fifties(q, 10);
        assert_int_equal(queue_reader_open(dir, 0, &r), 0);
        assert_int_equal(queue_reader_next(r, &rec), 1);
        assert_int_equal(rec.offset, expect++);
        queue_free(q);

        /* Everything but the active segment goes. */
        o.retention_bytes = 1;
        assert_int_equal(queue_open(dir, &o, &q), 0);
        assert_true(queue_apply_retention(q) > 0);
        assert_true(queue_first_offset(q) > 50);
        append_n(q, "s", 10000, 5, queue_next_offset(q));
        assert_int_equal(queue_flush(q), 0);
        /* The open segment is read to its end, then the reader jumps to what is still there. */
        while (queue_reader_next(r, &rec) > 0) {
                if (rec.offset != expect)
                        break;
                expect++;
        }
        assert_true(expect >= 2);
        assert_int_equal(rec.offset, queue_first_offset(q));
        assert_int_equal(queue_reader_next(r, &rec), 1);
        assert_int_equal(rec.offset, queue_first_offset(q) + 1);

        /* A new reader at 0 is clamped up to the first offset. */
        queue_reader_free(r);
        assert_int_equal(queue_reader_open(dir, 0, &r), 0);
        assert_int_equal(queue_reader_next(r, &rec), 1);
        assert_int_equal(rec.offset, queue_first_offset(q));
        queue_reader_free(r);
        queue_free(q);
        free(dir);
        rm_rf(tmp);
}

static void test_torn_and_corrupt_headers(void **state) {
        char *tmp = make_tmp(), *dir = qdir_of(tmp);
        _cleanup_free_ char *seg = NULL;
        Events ev = {};
        QueueOptions o = { .segment_size = 4096, .on_event = on_event, .userdata = &ev };
        Queue *q = NULL;
        uint64_t next;

        assert_int_equal(queue_open(dir, &o, &q), 0);
        append_flushed_fifties(q, 4);
        next = queue_next_offset(q);
        queue_free(q);

        /* A crash right after creating the active segment: shorter than its header. */
        assert_int_equal(asprintf(&seg, "%s/%020" PRIu64 ".seg", dir, next), (int) strlen(dir) + 25);
        assert_int_equal(access(seg, F_OK), 0);
        assert_int_equal(truncate(seg, 7), 0);
        assert_int_equal(queue_open(dir, &o, &q), 0);
        assert_int_equal(ev.count[QUEUE_EVENT_TRUNCATED], 1);
        assert_int_equal(ev.count[QUEUE_EVENT_QUARANTINED], 0);
        assert_int_equal(queue_next_offset(q), next);
        append_n(q, "s", 1000, 3, next);
        assert_int_equal(queue_sync(q), 0);
        queue_free(q);
        assert_int_equal(read_all(dir, 0, NULL, 0), next + 3);

        /* A garbled header of the active segment: quarantined, its offsets not reused. */
        ev = (Events) {};
        flip_byte(seg, 3);
        assert_int_equal(queue_open(dir, &o, &q), 0);
        assert_int_equal(ev.count[QUEUE_EVENT_QUARANTINED], 1);
        assert_int_equal(queue_next_offset(q), next + 3);
        assert_int_equal(access(seg, F_OK), -1);
        assert_int_equal(read_all(dir, 0, NULL, 0), next);
        append_n(q, "s", 2000, 1, next + 3);
        queue_free(q);
        assert_int_equal(read_all(dir, 0, NULL, 0), next + 1);
        free(dir);
        rm_rf(tmp);
}

static void test_retention_by_age(void **state) {
        char *tmp = make_tmp(), *dir = qdir_of(tmp);
        QueueOptions o = { .segment_size = 4096, .retention_usec = 200 * 1000 };
        Queue *q = NULL;

        assert_int_equal(queue_open(dir, &o, &q), 0);
        append_flushed_fifties(q, 5);
        assert_int_equal(queue_sync(q), 0);
        assert_int_equal(queue_first_offset(q), 0);
        usleep(300 * 1000);
        /* Everything is older than the retention: all of it goes, the active segment included. */
        assert_true(queue_apply_retention(q) > 0);
        assert_int_equal(queue_first_offset(q), 250);
        assert_int_equal(queue_next_offset(q), 250);
        assert_int_equal(read_all(dir, 0, NULL, 0), 0);
        append_n(q, "s", 1000, 1, 250);
        queue_free(q);
        free(dir);
        rm_rf(tmp);
}

static void test_max_bytes(void **state) {
        char *tmp = make_tmp(), *dir = qdir_of(tmp);
        QueueOptions o = { .segment_size = 4096, .max_bytes = 8192 };
        Queue *q = NULL;
        char d[64];
        QueueAppend a[10];
        uint64_t n = 0;
        int r;

        assert_int_equal(queue_open(dir, &o, &q), 0);
        for (;;) {
                for (int i = 0; i < 10; i++) {
                        a[i] = (QueueAppend) { .seq = n + 1 + (uint64_t) i, .ts_us = 1000 + n + 1 + (uint64_t) i, .data = d };
                        a[i].data_len = (uint32_t) make_data(d, 0);
                }
                r = queue_append(q, "s", 1, a, 10, NULL);
                if (r < 0)
                        break;
                n += 10;
                assert_int_equal(queue_flush(q), 0);
        }
        assert_int_equal(r, -ENOSPC);
        /* Nothing of the refused call is stored. */
        assert_int_equal(queue_next_offset(q), n);
        assert_true(queue_disk_bytes(q) <= 8192);
        assert_int_equal(queue_sync(q), 0);
        queue_free(q);
        free(dir);
        rm_rf(tmp);
}

static void test_reader_follows_writer(void **state) {
        /* A reader keeps up with a concurrent writer: it sees every flushed record exactly once, in
         * order, across segment rolls, and the watch fd wakes it. */
        char *tmp = make_tmp(), *dir = qdir_of(tmp);
        QueueOptions o = { .segment_size = 8192 };
        QueueReader *r = NULL;
        QueueRecord rec;
        Queue *q = NULL;
        uint64_t seen = 0;
        int wfd = -1;

        assert_int_equal(queue_open(dir, &o, &q), 0);
        assert_int_equal(queue_reader_open(dir, 0, &r), 0);
        assert_int_equal(queue_watch_open(dir, &wfd), 0);
        assert_int_equal(queue_reader_next(r, &rec), 0);

        for (uint64_t round = 0; round < 200; round++) {
                uint64_t n = 1 + round % 37;
                struct pollfd p = { .fd = wfd, .events = POLLIN };
                int k;

                append_n(q, "w", queue_next_offset(q) + 1, n, queue_next_offset(q));
                assert_int_equal(queue_flush(q), 0);
                assert_int_equal(poll(&p, 1, 1000), 1);
                queue_watch_drain(wfd);
                assert_int_equal(poll(&p, 1, 0), 0);
                while ((k = queue_reader_next(r, &rec)) > 0) {
                        assert_int_equal(rec.offset, seen);
                        assert_int_equal(rec.seq, seen + 1);
                        seen++;
                }
                assert_int_equal(k, 0);
                assert_int_equal(seen, queue_next_offset(q));
        }
        close(wfd);
        queue_reader_free(r);
        queue_free(q);
        free(dir);
        rm_rf(tmp);
}

static void test_reader_notices_roll_after_quiet(void **state) {
        /* A reader that caught up and then sat idle (so that it trusts the directory to be unchanged
         * and stops listing it) still finds the segment the writer rolls to, and every record in
         * it: whether the new records arrive long after the roll or in the same instant. */
        char *tmp = make_tmp(), *dir = qdir_of(tmp);
        QueueOptions o = { .segment_size = 4096 };
        QueueReader *r = NULL;
        QueueRecord rec;
        Queue *q = NULL;
        uint64_t seen = 0;

        assert_int_equal(queue_open(dir, &o, &q), 0);
        assert_int_equal(queue_reader_open(dir, 0, &r), 0);
        for (unsigned round = 0; round < 6; round++) {
                uint64_t first_segment_offset = queue_next_offset(q);
                int k;

                append_n(q, "w", queue_next_offset(q) + 1, 5, queue_next_offset(q));
                assert_int_equal(queue_flush(q), 0);
                while (queue_reader_next(r, &rec) > 0)
                        seen++;
                assert_int_equal(seen, queue_next_offset(q));
                if (round % 2 == 0) {
                        /* Quiet: the directory's last change is now well in the past. */
                        (void) usleep(150 * 1000);
                        assert_int_equal(queue_reader_next(r, &rec), 0);
                        assert_int_equal(queue_reader_next(r, &rec), 0);
                }
                /* Fill the segment past its size: the flush rolls to a new one ... */
                append_n(q, "w", queue_next_offset(q) + 1, 4096 / 20, queue_next_offset(q));
                assert_int_equal(queue_flush(q), 0);
                /* ... and these land in the new segment only. */
                append_n(q, "w", queue_next_offset(q) + 1, 3, queue_next_offset(q));
                assert_int_equal(queue_flush(q), 0);
                assert_true(queue_next_offset(q) > first_segment_offset);
                while ((k = queue_reader_next(r, &rec)) > 0) {
                        assert_int_equal(rec.offset, seen);
                        seen++;
                }
                assert_int_equal(k, 0);
                assert_int_equal(seen, queue_next_offset(q));
        }
        queue_reader_free(r);
        queue_free(q);
        free(dir);
        rm_rf(tmp);
}

static void test_reader_across_torn_tail(void **state) {
        /* A writer killed in the middle of a write leaves half a record; a reader that follows the
         * queue waits at it, and after recovery cut it and new records were written in its place, it
         * reads the new records, never a mix of old and new bytes. */
        char *tmp = make_tmp(), *dir = qdir_of(tmp);
        _cleanup_free_ char *seg = NULL;
        Events ev = {};
        QueueOptions o = { .on_event = on_event, .userdata = &ev };
        QueueReader *r = NULL;
        QueueRecord rec;
        Queue *q = NULL;
        uint8_t *bytes = NULL;
        size_t size;
        int fd;

        assert_int_equal(queue_open(dir, &o, &q), 0);
        append_n(q, "s", 1, 10, 0);
        assert_int_equal(queue_flush(q), 0);
        assert_int_equal(read_all(dir, 0, NULL, 0), 10);
        assert_int_equal(queue_reader_open(dir, 0, &r), 0);
        for (int i = 0; i < 10; i++)
                assert_int_equal(queue_reader_next(r, &rec), 1);
        queue_free(q);

        /* Half of a record that claims 55 bytes. */
        seg = path_join(dir, "00000000000000000000.seg");
        assert_int_equal(file_read_all(seg, &bytes, &size), 0);
        fd = open(seg, O_WRONLY | O_APPEND);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, bytes + size - 55, 50), 50);
        close(fd);
        assert_int_equal(queue_reader_next(r, &rec), 0);
        assert_int_equal(queue_reader_next(r, &rec), 0);

        assert_int_equal(queue_open(dir, &o, &q), 0);
        assert_int_equal(ev.count[QUEUE_EVENT_TRUNCATED], 1);
        assert_int_equal(queue_next_offset(q), 10);
        append_n(q, "t", 500, 3, 10);
        assert_int_equal(queue_flush(q), 0);
        for (int i = 0; i < 3; i++) {
                char d[64];
                assert_int_equal(queue_reader_next(r, &rec), 1);
                assert_int_equal(rec.offset, 10 + (uint64_t) i);
                assert_int_equal(rec.seq, 500 + (uint64_t) i);
                assert_memory_equal(rec.source, "t", 1);
                assert_int_equal(rec.data_len, make_data(d, rec.seq));
                assert_memory_equal(rec.data, d, rec.data_len);
        }
        assert_int_equal(queue_reader_next(r, &rec), 0);
        queue_reader_free(r);
        queue_free(q);
        free(bytes);
        free(dir);
        rm_rf(tmp);
}

static void test_many_sources(void **state) {
        char *tmp = make_tmp(), *dir = qdir_of(tmp);
        Queue *q = NULL;
        uint64_t seq;

        assert_int_equal(queue_open(dir, NULL, &q), 0);
        for (int i = 0; i < 300; i++) {
                char name[32];
                snprintf(name, sizeof(name), "source-%d", i);
                append_n(q, name, (uint64_t) i * 10 + 1, 2, (uint64_t) i * 2);
        }
        queue_free(q);
        assert_int_equal(queue_open(dir, NULL, &q), 0);
        for (int i = 0; i < 300; i++) {
                char name[32];
                snprintf(name, sizeof(name), "source-%d", i);
                assert_true(queue_last_seq(q, name, strlen(name), &seq));
                assert_int_equal(seq, (uint64_t) i * 10 + 2);
        }
        assert_false(queue_last_seq(q, "source-300", 10, &seq));
        queue_free(q);
        free(dir);
        rm_rf(tmp);
}

static char *segment_path(const char *dir, uint64_t first) {
        char name[64], *p;

        snprintf(name, sizeof(name), "%020" PRIu64 ".seg", first);
        p = path_join(dir, name);
        assert_non_null(p);
        return p;
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

/* Three segments of 100, 100 and 50 records ("s", 55 bytes each, segment_size 4096). */
static void make_three_segments(const char *dir) {
        QueueOptions o = { .segment_size = 4096 };
        Queue *q = NULL;

        assert_int_equal(queue_open(dir, &o, &q), 0);
        append_flushed_fifties(q, 5);
        assert_int_equal(queue_sync(q), 0);
        queue_free(q);
}

/* After a crash while the second-to-last segment's last sync (started at the roll) had not
 * completed: its tail is torn. It is cut back to its last valid record, and the last segment — all
 * written after the lost records — goes to corrupt/; no offset of either is handed out again. */
static void test_torn_second_to_last(void **state) {
        const size_t rec_size = QUEUE_RECORD_HEADER_SIZE + 1 + 14;

        for (int mode = 0; mode < 3; mode++) {
                char *tmp = make_tmp(), *dir = qdir_of(tmp), *seg1, *seg2, *nextf;
                Events ev = {};
                QueueOptions o = { .segment_size = 4096, .on_event = on_event, .userdata = &ev };
                uint64_t offsets[400], seq;
                size_t keep = mode == 2 ? 100 : 90; /* records of the second segment that survive */
                Queue *q = NULL;
                struct stat st;

                make_three_segments(dir);
                seg1 = segment_path(dir, 100);
                seg2 = segment_path(dir, 200);
                nextf = path_join(dir, "next-offset");
                assert_int_equal(stat(seg1, &st), 0);
                assert_int_equal((size_t) st.st_size, QUEUE_SEGMENT_HEADER_SIZE + 100 * rec_size);
                assert_int_equal(access(seg2, F_OK), 0);

                if (mode == 0)
                        /* The file ends inside record 190. */
                        assert_int_equal(truncate(seg1, (off_t) (QUEUE_SEGMENT_HEADER_SIZE + 90 * rec_size + 20)), 0);
                else {
                        /* Zeros where the last records were (mode 1), or after the last one
                         * (mode 2): the size made it to disk, the data did not. */
                        uint8_t zeros[2048] = {};
                        int fd = open(seg1, O_WRONLY);
                        assert_true(fd >= 0);
                        if (mode == 1)
                                assert_int_equal(pwrite(fd, zeros, 10 * rec_size, QUEUE_SEGMENT_HEADER_SIZE + 90 * rec_size),
                                                 (ssize_t) (10 * rec_size));
                        else
                                assert_int_equal(pwrite(fd, zeros, sizeof(zeros), QUEUE_SEGMENT_HEADER_SIZE + 100 * rec_size),
                                                 (ssize_t) sizeof(zeros));
                        close(fd);
                }
                /* As after a crash: next-offset holds an old value. */
                file_write_all(nextf, (const uint8_t *) "0\n", 2);

                assert_int_equal(queue_open(dir, &o, &q), 0);
                assert_int_equal(ev.count[QUEUE_EVENT_TRUNCATED], 1);
                assert_non_null(strstr(ev.last[QUEUE_EVENT_TRUNCATED], "00000000000000000100.seg"));
                assert_int_equal(ev.count[QUEUE_EVENT_QUARANTINED], 1);
                assert_non_null(strstr(ev.last[QUEUE_EVENT_QUARANTINED], "00000000000000000200.seg"));
                assert_int_equal(count_corrupt(dir), 1);
                assert_int_equal(access(seg2, F_OK), -1);
                assert_int_equal(stat(seg1, &st), 0);
                assert_int_equal((size_t) st.st_size, QUEUE_SEGMENT_HEADER_SIZE + keep * rec_size);
                /* Neither the cut records' offsets nor the quarantined segment's come back. */
                assert_int_equal(queue_next_offset(q), 250);
                assert_true(queue_last_seq(q, "s", 1, &seq));
                assert_int_equal(seq, 100 + keep);
                assert_int_equal(read_all(dir, 0, offsets, 400), 100 + keep);
                for (uint64_t i = 0; i < 100 + keep; i++)
                        assert_int_equal(offsets[i], i);
                {
                        QueueReader *r = NULL;
                        QueueRecord rec;

                        assert_int_equal(queue_reader_open(dir, 100 + keep - 1, &r), 0);
                        assert_int_equal(queue_reader_next(r, &rec), 1);
                        assert_int_equal(rec.offset, 100 + keep - 1);
                        queue_reader_free(r);
                }
                append_n(q, "s", 1000, 1, 250);
                assert_int_equal(queue_sync(q), 0);
                queue_free(q);

                /* Stable: nothing more to recover. */
                ev = (Events) {};
                assert_int_equal(queue_open(dir, &o, &q), 0);
                assert_int_equal(ev.count[QUEUE_EVENT_TRUNCATED] + ev.count[QUEUE_EVENT_QUARANTINED], 0);
                assert_int_equal(queue_next_offset(q), 251);
                assert_int_equal(read_all(dir, 0, NULL, 0), 100 + keep + 1);
                queue_free(q);
                free(nextf);
                free(seg1);
                free(seg2);
                free(dir);
                rm_rf(tmp);
        }
}

/* Opens a three-segment queue whose second-to-last segment (offsets 100..199) was damaged by
 * something that is not a torn tail: that segment is quarantined whole, the last one stays. */
static void assert_second_to_last_quarantined(const char *dir, const char *seg1) {
        Events ev = {};
        QueueOptions o = { .segment_size = 4096, .on_event = on_event, .userdata = &ev };
        uint64_t offsets[400];
        Queue *q = NULL;

        assert_int_equal(queue_open(dir, &o, &q), 0);
        assert_int_equal(ev.count[QUEUE_EVENT_TRUNCATED], 0);
        assert_int_equal(ev.count[QUEUE_EVENT_QUARANTINED], 1);
        assert_non_null(strstr(ev.last[QUEUE_EVENT_QUARANTINED], "00000000000000000100.seg"));
        assert_int_equal(access(seg1, F_OK), -1);
        assert_int_equal(count_corrupt(dir), 1);
        assert_int_equal(queue_next_offset(q), 250);
        assert_int_equal(read_all(dir, 0, offsets, 400), 150);
        assert_int_equal(offsets[99], 99);
        assert_int_equal(offsets[100], 200);
        assert_int_equal(offsets[149], 249);
        queue_free(q);
}

/* Corruption in the second-to-last segment with valid records after it (a flipped byte), and a
 * second-to-last segment that is zeros from its first byte, header included: neither is what a
 * torn tail looks like, so today's whole-segment quarantine applies. */
static void test_corrupt_second_to_last(void **state) {
        const size_t rec_size = QUEUE_RECORD_HEADER_SIZE + 1 + 14;

        for (int zeroed = 0; zeroed <= 1; zeroed++) {
                char *tmp = make_tmp(), *dir = qdir_of(tmp), *seg1;

                make_three_segments(dir);
                seg1 = segment_path(dir, 100);
                if (!zeroed)
                        flip_byte(seg1, QUEUE_SEGMENT_HEADER_SIZE + 30 * rec_size + 45);
                else {
                        struct stat st;
                        char *zeros;
                        int fd;

                        assert_int_equal(stat(seg1, &st), 0);
                        zeros = calloc(1, (size_t) st.st_size);
                        assert_non_null(zeros);
                        fd = open(seg1, O_WRONLY | O_CLOEXEC);
                        assert_true(fd >= 0);
                        assert_int_equal(pwrite(fd, zeros, (size_t) st.st_size, 0), st.st_size);
                        close(fd);
                        free(zeros);
                }
                assert_second_to_last_quarantined(dir, seg1);
                free(seg1);
                free(dir);
                rm_rf(tmp);
        }
}

/* At each roll the next-offset file is rewritten in place (no rename, no fsync) with the first
 * offset of the new segment; only its first line counts. */
static void test_next_offset_at_roll(void **state) {
        char *tmp = make_tmp(), *dir = qdir_of(tmp), *nextf, *seg, buf[64];
        QueueOptions o = { .segment_size = 4096 };
        Queue *q = NULL;
        struct stat st;
        uint8_t *bytes;
        size_t size;
        uint64_t v;
        ino_t ino;

        assert_int_equal(queue_open(dir, &o, &q), 0);
        nextf = path_join(dir, "next-offset");
        assert_non_null(nextf);
        /* Longer than anything a roll writes here: what is after the first newline is ignored. */
        file_write_all(nextf, (const uint8_t *) "0\n99999999999999\n", 18);
        assert_int_equal(stat(nextf, &st), 0);
        ino = st.st_ino;
        for (uint64_t k = 0; k < 40; k++) {
                append_n(q, "src", 1 + k * 10, 10, k * 10);
                assert_int_equal(queue_flush(q), 0);
        }
        assert_int_equal(file_read_all(nextf, &bytes, &size), 0);
        assert_true(size > 0 && size < sizeof(buf));
        memcpy(buf, bytes, size);
        buf[size] = 0;
        free(bytes);
        buf[strcspn(buf, "\n")] = 0;
        assert_int_equal(safe_atou64(buf, &v), 0);
        assert_true(v > 0 && v <= 400);
        /* The same file, not a new one renamed over it. */
        assert_int_equal(stat(nextf, &st), 0);
        assert_int_equal(st.st_ino, ino);
        seg = segment_path(dir, v); /* the active segment starts there */
        assert_int_equal(access(seg, F_OK), 0);
        queue_free(q);

        /* Reopened, the queue goes on at 400 whatever the file says. */
        assert_int_equal(queue_open(dir, &o, &q), 0);
        assert_int_equal(queue_next_offset(q), 400);
        queue_free(q);
        free(seg);
        free(nextf);
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
                cmocka_unit_test(test_roundtrip),
                cmocka_unit_test(test_segments_and_index),
                cmocka_unit_test(test_big_segment_index),
                cmocka_unit_test(test_torn_tail_every_byte),
                cmocka_unit_test(test_flipped_byte_middle_segment),
                cmocka_unit_test(test_flipped_byte_last_segment),
                cmocka_unit_test(test_retention_and_persisted_offset),
                cmocka_unit_test(test_retention_by_age),
                cmocka_unit_test(test_reader_survives_retention),
                cmocka_unit_test(test_torn_and_corrupt_headers),
                cmocka_unit_test(test_max_bytes),
                cmocka_unit_test(test_reader_follows_writer),
                cmocka_unit_test(test_reader_notices_roll_after_quiet),
                cmocka_unit_test(test_reader_across_torn_tail),
                cmocka_unit_test(test_many_sources),
                cmocka_unit_test(test_sync_begin_end),
                cmocka_unit_test(test_sync_in_flight_roll),
                cmocka_unit_test(test_roll_when_synced),
                cmocka_unit_test(test_roll_when_synced_index),
                cmocka_unit_test(test_torn_second_to_last),
                cmocka_unit_test(test_corrupt_second_to_last),
                cmocka_unit_test(test_next_offset_at_roll),
                cmocka_unit_test(test_writeback_begin),
                cmocka_unit_test(test_spare_segment),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
