/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Recovery at start-up (common/queue-recover.c): torn tails, corrupt records and headers, the torn
 * second-to-last segment, quarantine. Offsets are never handed out twice and nothing is repaired
 * twice. */
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

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_torn_tail_every_byte),
                cmocka_unit_test(test_flipped_byte_middle_segment),
                cmocka_unit_test(test_flipped_byte_last_segment),
                cmocka_unit_test(test_torn_and_corrupt_headers),
                cmocka_unit_test(test_torn_second_to_last),
                cmocka_unit_test(test_corrupt_second_to_last),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
