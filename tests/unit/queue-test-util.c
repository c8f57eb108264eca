/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Helpers of the queue tests (tests/unit/test-queue-*.c). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "frame.h"
#include "queue-test-util.h"
#include "queue.h"
#include "util.h"

void on_event(QueueEvent ev, const char *message, void *userdata) {
        Events *e = userdata;
        e->count[ev]++;
        snprintf(e->last[ev], sizeof(e->last[ev]), "%s", message);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        return remove(path);
}

char *make_tmp(void) {
        char *p = strdup("/tmp/test-queue.XXXXXX");
        assert_non_null(p);
        assert_non_null(mkdtemp(p));
        return p;
}

void rm_rf(char *p) {
        nftw(p, rm_one, 16, FTW_DEPTH | FTW_PHYS);
        free(p);
}

char *qdir_of(const char *tmp) {
        char *d = path_join(tmp, "queue");
        assert_non_null(d);
        return d;
}

size_t make_data(char *buf, uint64_t i) {
        return (size_t) snprintf(buf, 64, "{\"i\":%08" PRIu64 "}", i);
}

void append_n(Queue *q, const char *source, uint64_t first_seq, uint64_t n, uint64_t expect_first_offset) {
        for (uint64_t i = 0; i < n; i++) {
                char d[64];
                QueueAppend a = { .seq = first_seq + i, .ts_us = 1000 + first_seq + i, .data = d };
                uint64_t off;

                a.data_len = (uint32_t) make_data(d, first_seq + i);
                assert_int_equal(queue_append(q, source, strlen(source), &a, 1, &off), 0);
                assert_int_equal(off, expect_first_offset + i);
        }
}

void append_flushed_fifties(Queue *q, unsigned n) {
        for (unsigned i = 0; i < n; i++) {
                append_n(q, "s", 1 + (uint64_t) i * 50, 50, (uint64_t) i * 50);
                assert_int_equal(queue_flush(q), 0);
        }
}

uint64_t read_all_lost(const char *dir, uint64_t from, uint64_t *offsets, size_t max, Losses *lost) {
        QueueReader *r = NULL;
        QueueRecord rec;
        uint64_t n = 0, expect = 0;
        bool started = false;
        int k;

        if (lost)
                *lost = (Losses) {};
        assert_int_equal(queue_reader_open(dir, from, &r), 0);
        while ((k = queue_reader_next(r, &rec)) > 0) {
                char d[64];

                if (k == QUEUE_READER_LOST) {
                        const QueueLoss *l = queue_reader_loss(r);

                        /* Every offset is accounted for once: a record or a loss, in order. */
                        assert_true(l->first <= l->last);
                        assert_true(l->first >= from);
                        if (started)
                                assert_int_equal(l->first, expect);
                        expect = l->last + 1;
                        started = true;
                        if (lost && lost->n < ELEMENTSOF(lost->l))
                                lost->l[lost->n++] = *l;
                        continue;
                }
                assert_int_equal(k, QUEUE_READER_RECORD);
                if (started)
                        assert_int_equal(rec.offset, expect);
                expect = rec.offset + 1;
                started = true;
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

uint64_t read_all(const char *dir, uint64_t from, uint64_t *offsets, size_t max) {
        return read_all_lost(dir, from, offsets, max, NULL);
}

int file_read_all(const char *path, uint8_t **ret, size_t *ret_size) {
        return read_file(path, 64 * 1024 * 1024, (char **) ret, ret_size);
}

void file_write_all(const char *path, const uint8_t *p, size_t n) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, p, n), (ssize_t) n);
        close(fd);
}

unsigned count_corrupt(const char *dir) {
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

void flip_byte(const char *path, off_t pos) {
        int fd = open(path, O_RDWR);
        uint8_t b;

        assert_true(fd >= 0);
        assert_int_equal(pread(fd, &b, 1, pos), 1);
        b ^= 0x20;
        assert_int_equal(pwrite(fd, &b, 1, pos), 1);
        close(fd);
}

char *segment_path(const char *dir, uint64_t first) {
        char name[64], *p;

        snprintf(name, sizeof(name), "%020" PRIu64 ".seg", first);
        p = path_join(dir, name);
        assert_non_null(p);
        return p;
}

void make_three_segments(const char *dir) {
        QueueOptions o = { .segment_size = 4096 };
        Queue *q = NULL;

        assert_int_equal(queue_open(dir, &o, &q), 0);
        append_flushed_fifties(q, 5);
        assert_int_equal(queue_sync(q), 0);
        queue_free(q);
}
