/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The writer's data path (common/queue-append.c), driven through common/queue.h the way dpipe-writer
 * uses it: append, flush, segments and their index, --max-bytes, the last seq of every source after
 * a reopen, the next-offset file at a roll. */
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
#include <unistd.h>

#include <cmocka.h>

#include "frame.h"
#include "queue-test-util.h"
#include "queue.h"
#include "util.h"

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

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_roundtrip),
                cmocka_unit_test(test_segments_and_index),
                cmocka_unit_test(test_big_segment_index),
                cmocka_unit_test(test_max_bytes),
                cmocka_unit_test(test_many_sources),
                cmocka_unit_test(test_next_offset_at_roll),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
