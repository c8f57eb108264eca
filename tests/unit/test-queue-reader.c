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

/* Reads r until QUEUE_READER_END, expecting the records from..to-1 except the lost ones, and the
 * losses in between exactly where they are. */
static void expect_records(QueueReader *r, uint64_t from, uint64_t to, const QueueLoss *losses, size_t n_losses) {
        QueueRecord rec;
        size_t k = 0;

        for (uint64_t off = from; off < to;) {
                if (k < n_losses && losses[k].first == off) {
                        const QueueLoss *l;

                        assert_int_equal(queue_reader_next(r, &rec), QUEUE_READER_LOST);
                        l = queue_reader_loss(r);
                        assert_int_equal(l->first, losses[k].first);
                        assert_int_equal(l->last, losses[k].last);
                        assert_string_equal(l->segment, losses[k].segment);
                        assert_int_equal(l->damaged, losses[k].damaged);
                        if (l->damaged)
                                assert_int_equal(l->position, losses[k].position);
                        off = l->last + 1;
                        k++;
                        continue;
                }
                assert_int_equal(queue_reader_next(r, &rec), QUEUE_READER_RECORD);
                assert_int_equal(rec.offset, off);
                assert_int_equal(rec.seq, off + 1);
                off++;
        }
        assert_int_equal(k, n_losses);
        assert_int_equal(queue_reader_next(r, &rec), QUEUE_READER_END);
}

/* A reader that meets damaged bytes in a closed segment (before any recovery: the writer is running)
 * reports the offsets it cannot read, with the file and the position, and goes on with the next
 * valid record: the flipped record, a torn-off end of a segment, and a damaged segment header. */
static void test_reader_resyncs(void **state) {
        char *tmp = make_tmp(), *dir = qdir_of(tmp), *seg0, *seg1;
        QueueReader *r = NULL;
        QueueRecord rec;

        make_three_segments(dir);
        seg0 = segment_path(dir, 0);
        seg1 = segment_path(dir, 100);
        flip_byte(seg0, RECORD_POS(30) + 45);
        flip_byte(seg0, RECORD_POS(31) + 2);
        assert_int_equal(truncate(seg0, (off_t) RECORD_POS(99) + 30), 0);
        assert_int_equal(queue_reader_open(dir, 0, &r), 0);
        for (uint64_t i = 0; i < 20; i++) {
                assert_int_equal(queue_reader_next(r, &rec), QUEUE_READER_RECORD);
                assert_int_equal(rec.offset, i);
        }
        /* Under the reader's feet (it has read the first segment into its buffer by now). */
        flip_byte(seg1, 5);
        expect_records(r, 20, 250,
                       (const QueueLoss[]) {
                               { .first = 30, .last = 31, .segment = "00000000000000000000.seg", .damaged = true,
                                 .position = RECORD_POS(30) },
                               { .first = 99, .last = 99, .segment = "00000000000000000000.seg", .damaged = true,
                                 .position = RECORD_POS(99) },
                               { .first = 100, .last = 199, .segment = "00000000000000000100.seg", .damaged = true,
                                 .position = 0 },
                       },
                       3);
        queue_reader_free(r);

        /* A reader opened inside the damage hears only about what it asked for. */
        assert_int_equal(queue_reader_open(dir, 31, &r), 0);
        expect_records(r, 31, 250,
                       (const QueueLoss[]) {
                               { .first = 31, .last = 31, .segment = "00000000000000000000.seg", .damaged = true,
                                 .position = RECORD_POS(30) },
                               { .first = 99, .last = 99, .segment = "00000000000000000000.seg", .damaged = true,
                                 .position = RECORD_POS(99) },
                               { .first = 100, .last = 199, .segment = "00000000000000000100.seg", .damaged = true,
                                 .position = 0 },
                       },
                       3);
        queue_reader_free(r);
        free(seg0);
        free(seg1);
        free(dir);
        rm_rf(tmp);
}

/* Damage in the active segment while the writer appends: the reader reports it and goes on; when the
 * damaged record is the last one written, it waits, and reports it once the writer wrote another. */
static void test_reader_resyncs_active(void **state) {
        char *tmp = make_tmp(), *dir = qdir_of(tmp), *seg0;
        QueueReader *r = NULL;
        Queue *q = NULL;

        assert_int_equal(queue_open(dir, NULL, &q), 0);
        seg0 = segment_path(dir, 0);
        append_n(q, "s", 1, 20, 0);
        assert_int_equal(queue_flush(q), 0);
        flip_byte(seg0, RECORD_POS(10) + 50);
        flip_byte(seg0, RECORD_POS(19) + 50);
        assert_int_equal(queue_reader_open(dir, 0, &r), 0);
        expect_records(r, 0, 19,
                       (const QueueLoss[]) {
                               { .first = 10, .last = 10, .segment = "00000000000000000000.seg", .damaged = true,
                                 .position = RECORD_POS(10) },
                       },
                       1);
        /* Nothing valid after record 19 yet: it could still be written... */
        append_n(q, "s", 21, 5, 20);
        assert_int_equal(queue_flush(q), 0);
        /* ... now it is clear. */
        expect_records(r, 19, 25,
                       (const QueueLoss[]) {
                               { .first = 19, .last = 19, .segment = "00000000000000000000.seg", .damaged = true,
                                 .position = RECORD_POS(19) },
                       },
                       1);
        queue_reader_free(r);
        queue_free(q);
        free(seg0);
        free(dir);
        rm_rf(tmp);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_reader_survives_retention),
                cmocka_unit_test(test_reader_follows_writer),
                cmocka_unit_test(test_reader_notices_roll_after_quiet),
                cmocka_unit_test(test_reader_across_torn_tail),
                cmocka_unit_test(test_reader_resyncs),
                cmocka_unit_test(test_reader_resyncs_active),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
