/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* QueueReader (common/queue-reader.c) the way dpiped uses it: following a live writer across rolls,
 * after a quiet spell, across retention and across a torn tail that recovery rewrote. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
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
#include <unistd.h>

#include <cmocka.h>

#include "frame.h"
#include "queue-test-util.h"
#include "queue.h"
#include "util.h"

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

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_reader_survives_retention),
                cmocka_unit_test(test_reader_follows_writer),
                cmocka_unit_test(test_reader_notices_roll_after_quiet),
                cmocka_unit_test(test_reader_across_torn_tail),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
