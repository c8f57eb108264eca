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

/* Opens dir (a queue from make_three_segments() with damage in its first two segments) and checks
 * that exactly the records at the offsets in lost[] are gone, each reported once by a reader from
 * the start, as missing from the segment seg. */
static void assert_salvaged(const char *dir, const char *seg, const uint64_t *lost, size_t n_lost, const char *ranges) {
        Events ev = {};
        QueueOptions o = { .segment_size = 4096, .on_event = on_event, .userdata = &ev };
        uint64_t offsets[300], seq;
        Losses l;
        Queue *q = NULL;
        size_t k = 0, j = 0;

        assert_int_equal(queue_open(dir, &o, &q), 0);
        assert_int_equal(ev.count[QUEUE_EVENT_SALVAGED], 1);
        assert_int_equal(ev.count[QUEUE_EVENT_QUARANTINED] + ev.count[QUEUE_EVENT_TRUNCATED], 0);
        /* The message names the file and the offsets, and where the damaged file went. */
        assert_non_null(strstr(ev.last[QUEUE_EVENT_SALVAGED], seg));
        assert_non_null(strstr(ev.last[QUEUE_EVENT_SALVAGED], ranges));
        assert_non_null(strstr(ev.last[QUEUE_EVENT_SALVAGED], "/corrupt/"));
        assert_int_equal(count_corrupt(dir), 1);
        /* Nothing else lost, offsets not reused, seqs intact. */
        assert_int_equal(queue_next_offset(q), 250);
        assert_true(queue_last_seq(q, "s", 1, &seq));
        assert_int_equal(seq, 250);
        assert_int_equal(read_all_lost(dir, 0, offsets, 300, &l), 250 - n_lost);
        for (uint64_t off = 0; off < 250; off++) {
                if (k < n_lost && lost[k] == off) {
                        k++;
                        continue;
                }
                assert_int_equal(offsets[j++], off);
        }
        /* Reported as ranges of adjacent offsets, in order. */
        for (k = 0, j = 0; k < n_lost; j++) {
                size_t e = k;
                while (e + 1 < n_lost && lost[e + 1] == lost[e] + 1)
                        e++;
                assert_true(j < l.n);
                assert_int_equal(l.l[j].first, lost[k]);
                assert_int_equal(l.l[j].last, lost[e]);
                assert_string_equal(l.l[j].segment, seg);
                assert_false(l.l[j].damaged); /* recovery took the bytes out: only the gap is left */
                k = e + 1;
        }
        assert_int_equal(l.n, j);
        append_n(q, "s", 1000, 1, 250);
        queue_free(q);

        /* Done once: the next start finds nothing to do. */
        ev = (Events) {};
        assert_int_equal(queue_open(dir, &o, &q), 0);
        assert_int_equal(ev.count[QUEUE_EVENT_SALVAGED] + ev.count[QUEUE_EVENT_QUARANTINED] + ev.count[QUEUE_EVENT_TRUNCATED], 0);
        assert_int_equal(queue_next_offset(q), 251);
        assert_int_equal(count_corrupt(dir), 1);
        queue_free(q);
        assert_int_equal(read_all(dir, 0, NULL, 0), 250 - n_lost + 1);
}

/* A flipped byte in a record of a closed segment costs that record, not the segment: the record's
 * offset is reported lost, everything else stays readable, the damaged file is kept in corrupt/. */
static void test_salvage_one_record(void **state) {
        char *tmp = make_tmp(), *dir = qdir_of(tmp), *seg0;
        _cleanup_free_ char *kept = NULL;
        QueueReader *r = NULL;
        QueueRecord rec;
        struct stat st;

        make_three_segments(dir);
        seg0 = segment_path(dir, 0);
        flip_byte(seg0, RECORD_POS(30) + 45);
        assert_salvaged(dir, "00000000000000000000.seg", (uint64_t[]) { 30 }, 1, "offsets 30;");
        /* The live segment lost one record's bytes; corrupt/ holds the damaged original. */
        assert_int_equal(stat(seg0, &st), 0);
        assert_int_equal((size_t) st.st_size, RECORD_POS(99));
        assert_int_equal(asprintf(&kept, "%s/corrupt/00000000000000000000.seg", dir), (int) strlen(dir) + 33);
        assert_int_equal(stat(kept, &st), 0);
        assert_int_equal((size_t) st.st_size, RECORD_POS(100));

        /* A reader asked for the lost offset hears so, then gets the next record. */
        assert_int_equal(queue_reader_open(dir, 30, &r), 0);
        assert_int_equal(queue_reader_next(r, &rec), QUEUE_READER_LOST);
        assert_int_equal(queue_reader_loss(r)->first, 30);
        assert_int_equal(queue_reader_loss(r)->last, 30);
        assert_int_equal(queue_reader_next(r, &rec), QUEUE_READER_RECORD);
        assert_int_equal(rec.offset, 31);
        queue_reader_free(r);
        free(seg0);
        free(dir);
        rm_rf(tmp);
}

/* Damage anywhere in a record — its size, CRC, offset, lengths, flags, source or data — costs that
 * record and no other. */
static void test_salvage_header_and_payload(void **state) {
        static const unsigned bytes[] = { 0, 2, 5, 9, 17, 25, 33, 35, 37, 40, 45, 54 };

        for (size_t i = 0; i < ELEMENTSOF(bytes); i++) {
                char *tmp = make_tmp(), *dir = qdir_of(tmp), *seg0;

                make_three_segments(dir);
                seg0 = segment_path(dir, 0);
                flip_byte(seg0, RECORD_POS(61) + bytes[i]);
                assert_salvaged(dir, "00000000000000000000.seg", (uint64_t[]) { 61 }, 1, "offsets 61;");
                free(seg0);
                free(dir);
                rm_rf(tmp);
        }
}

/* Several damaged places in one segment, one of them its last record (no valid record after it: in
 * a segment before the second-to-last that is damage too, not a torn tail). */
static void test_salvage_several(void **state) {
        char *tmp = make_tmp(), *dir = qdir_of(tmp), *seg0;

        make_three_segments(dir);
        seg0 = segment_path(dir, 0);
        flip_byte(seg0, RECORD_POS(10) + 50);
        flip_byte(seg0, RECORD_POS(11) + 9);
        flip_byte(seg0, RECORD_POS(50) + 3);
        flip_byte(seg0, RECORD_POS(99) + 44);
        assert_salvaged(dir, "00000000000000000000.seg", (uint64_t[]) { 10, 11, 50, 99 }, 4,
                        "offsets 10..11, 50, 99;");
        free(seg0);
        free(dir);
        rm_rf(tmp);
}

/* What the issue saw: 16 flipped bytes in a closed segment, here across the boundary of two records,
 * cost those two records. */
static void test_salvage_sixteen_bytes(void **state) {
        char *tmp = make_tmp(), *dir = qdir_of(tmp), *seg1;

        make_three_segments(dir);
        seg1 = segment_path(dir, 100);
        for (off_t b = 0; b < 16; b++)
                flip_byte(seg1, (off_t) RECORD_POS(41) - 8 + b);
        /* The second-to-last segment: valid records follow the damage, so it is no torn tail. */
        assert_salvaged(dir, "00000000000000000100.seg", (uint64_t[]) { 140, 141 }, 2, "offsets 140..141;");
        free(seg1);
        free(dir);
        rm_rf(tmp);
}

/* When the salvaged copy cannot be made (here corrupt/ is a file, so the original cannot be kept),
 * the queue still opens: the damaged segment stays as it is, readers skip the damaged record
 * themselves, and the next start salvages it. */
static void test_salvage_fails_open_anyway(void **state) {
        char *tmp = make_tmp(), *dir = qdir_of(tmp), *seg0, *corrupt;
        Events ev = {};
        QueueOptions o = { .segment_size = 4096, .on_event = on_event, .userdata = &ev };
        Queue *q = NULL;
        struct stat st;
        Losses l;

        make_three_segments(dir);
        seg0 = segment_path(dir, 0);
        corrupt = path_join(dir, "corrupt");
        file_write_all(corrupt, (const uint8_t *) "x", 1);
        flip_byte(seg0, RECORD_POS(70) + 50);

        assert_int_equal(queue_open(dir, &o, &q), 0);
        assert_int_equal(ev.count[QUEUE_EVENT_SALVAGED], 1);
        assert_non_null(strstr(ev.last[QUEUE_EVENT_SALVAGED], "left it as it is"));
        assert_int_equal(queue_next_offset(q), 250);
        queue_free(q);
        assert_int_equal(stat(seg0, &st), 0);
        assert_int_equal((size_t) st.st_size, RECORD_POS(100));
        {
                _cleanup_free_ char *copy = path_join(dir, "salvage-segment");
                assert_int_equal(access(copy, F_OK), -1); /* no half-made copy left behind */
        }
        assert_int_equal(read_all_lost(dir, 0, NULL, 0, &l), 249);
        assert_int_equal(l.n, 1);
        assert_int_equal(l.l[0].first, 70);
        assert_int_equal(l.l[0].last, 70);
        assert_true(l.l[0].damaged);
        assert_int_equal(l.l[0].position, RECORD_POS(70));

        assert_int_equal(unlink(corrupt), 0);
        assert_salvaged(dir, "00000000000000000000.seg", (uint64_t[]) { 70 }, 1, "offsets 70;");
        free(corrupt);
        free(seg0);
        free(dir);
        rm_rf(tmp);
}

static void test_flipped_byte_last_segment(void **state) {
        /* A corrupt record in the middle of the active segment: not a torn write, but not salvaged
         * like a closed segment either (the writer appends to it, so it must end in its last valid
         * record). The segment is copied to corrupt/, the live one cut back before the bad record,
         * and the offsets after it are never handed out again. */
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
                Losses l;

                assert_int_equal(read_all_lost(dir, 0, offsets, 64, &l), 41);
                assert_int_equal(offsets[39], 39);
                assert_int_equal(offsets[40], 100);
                /* Readers hear about the offsets recovery cut, between the two segments. */
                assert_int_equal(l.n, 1);
                assert_int_equal(l.l[0].first, 40);
                assert_int_equal(l.l[0].last, 99);
                assert_string_equal(l.l[0].segment, "00000000000000000000.seg");
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

/* A second-to-last segment that is zeros from its first byte, header included: nothing in it can be
 * trusted (no header to say it is ours), and it is not what a torn tail looks like either (that
 * leaves the header and the records before the tail): quarantined whole, the last segment stays. */
static void test_zeroed_second_to_last(void **state) {
        char *tmp = make_tmp(), *dir = qdir_of(tmp), *seg1, *zeros;
        Events ev = {};
        QueueOptions o = { .segment_size = 4096, .on_event = on_event, .userdata = &ev };
        uint64_t offsets[400];
        Queue *q = NULL;
        struct stat st;
        Losses l;
        int fd;

        make_three_segments(dir);
        seg1 = segment_path(dir, 100);
        assert_int_equal(stat(seg1, &st), 0);
        zeros = calloc(1, (size_t) st.st_size);
        assert_non_null(zeros);
        fd = open(seg1, O_WRONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        assert_int_equal(pwrite(fd, zeros, (size_t) st.st_size, 0), st.st_size);
        close(fd);
        free(zeros);

        assert_int_equal(queue_open(dir, &o, &q), 0);
        assert_int_equal(ev.count[QUEUE_EVENT_TRUNCATED] + ev.count[QUEUE_EVENT_SALVAGED], 0);
        assert_int_equal(ev.count[QUEUE_EVENT_QUARANTINED], 1);
        assert_non_null(strstr(ev.last[QUEUE_EVENT_QUARANTINED], "00000000000000000100.seg"));
        assert_int_equal(access(seg1, F_OK), -1);
        assert_int_equal(count_corrupt(dir), 1);
        assert_int_equal(queue_next_offset(q), 250);
        assert_int_equal(read_all_lost(dir, 0, offsets, 400, &l), 150);
        assert_int_equal(offsets[99], 99);
        assert_int_equal(offsets[100], 200);
        assert_int_equal(offsets[149], 249);
        /* Readers report the quarantined segment's offsets as lost. */
        assert_int_equal(l.n, 1);
        assert_int_equal(l.l[0].first, 100);
        assert_int_equal(l.l[0].last, 199);
        queue_free(q);
        free(seg1);
        free(dir);
        rm_rf(tmp);
}

/* A second-to-last segment with a damaged record in the middle and a torn tail (a power loss after
 * bit rot): the damaged record is salvaged away, the tail is cut and the last segment, written after
 * the lost tail, is quarantined as for any torn second-to-last segment. */
static void test_salvage_and_torn_second_to_last(void **state) {
        char *tmp = make_tmp(), *dir = qdir_of(tmp), *seg1, *nextf;
        Events ev = {};
        QueueOptions o = { .segment_size = 4096, .on_event = on_event, .userdata = &ev };
        uint64_t offsets[400];
        Queue *q = NULL;
        Losses l;

        make_three_segments(dir);
        seg1 = segment_path(dir, 100);
        nextf = path_join(dir, "next-offset");
        flip_byte(seg1, RECORD_POS(10) + 47);
        assert_int_equal(truncate(seg1, (off_t) RECORD_POS(90) + 20), 0);
        file_write_all(nextf, (const uint8_t *) "0\n", 2);

        assert_int_equal(queue_open(dir, &o, &q), 0);
        assert_int_equal(ev.count[QUEUE_EVENT_SALVAGED], 1);
        assert_non_null(strstr(ev.last[QUEUE_EVENT_SALVAGED], "offsets 110;"));
        assert_int_equal(ev.count[QUEUE_EVENT_TRUNCATED], 1);
        assert_int_equal(ev.count[QUEUE_EVENT_QUARANTINED], 1);
        assert_non_null(strstr(ev.last[QUEUE_EVENT_QUARANTINED], "00000000000000000200.seg"));
        assert_int_equal(queue_next_offset(q), 250);
        assert_int_equal(read_all_lost(dir, 0, offsets, 400, &l), 189);
        assert_int_equal(offsets[109], 109);
        assert_int_equal(offsets[110], 111);
        assert_int_equal(offsets[188], 189);
        assert_int_equal(l.n, 2);
        assert_int_equal(l.l[0].first, 110);
        assert_int_equal(l.l[0].last, 110);
        assert_int_equal(l.l[1].first, 190);
        assert_int_equal(l.l[1].last, 249);
        append_n(q, "s", 1000, 1, 250);
        queue_free(q);

        ev = (Events) {};
        assert_int_equal(queue_open(dir, &o, &q), 0);
        assert_int_equal(ev.count[QUEUE_EVENT_SALVAGED] + ev.count[QUEUE_EVENT_QUARANTINED] + ev.count[QUEUE_EVENT_TRUNCATED], 0);
        assert_int_equal(read_all(dir, 0, NULL, 0), 190);
        queue_free(q);
        free(nextf);
        free(seg1);
        free(dir);
        rm_rf(tmp);
}

/* A salvaged segment large enough to have index entries gets a new index: readers that open at any
 * offset land on exactly that record (or hear that it was lost). */
static void test_salvage_index(void **state) {
        char *tmp = make_tmp(), *dir = qdir_of(tmp), *seg0, *idx;
        QueueOptions o = { .segment_size = 1024 * 1024 };
        Queue *q = NULL;
        uint8_t *p = NULL;
        size_t n = 0;
        int fd;

        assert_int_equal(queue_open(dir, &o, &q), 0);
        append_n(q, "s", 1, 30000, 0);
        assert_int_equal(queue_flush(q), 0);
        append_n(q, "s", 30001, 30000, 30000);
        assert_int_equal(queue_sync(q), 0);
        queue_free(q);
        seg0 = segment_path(dir, 0);
        flip_byte(seg0, RECORD_POS(5000) + 20);
        assert_int_equal(queue_open(dir, &o, &q), 0);
        queue_free(q);

        for (uint64_t off = 1; off < 19000; off += 997) {
                QueueReader *r = NULL;
                QueueRecord rec;

                assert_int_equal(queue_reader_open(dir, off, &r), 0);
                assert_int_equal(queue_reader_next(r, &rec), QUEUE_READER_RECORD);
                assert_int_equal(rec.offset, off);
                queue_reader_free(r);
        }
        for (uint64_t off = 4990; off < 5010; off++) {
                QueueReader *r = NULL;
                QueueRecord rec;

                assert_int_equal(queue_reader_open(dir, off, &r), 0);
                if (off == 5000) {
                        assert_int_equal(queue_reader_next(r, &rec), QUEUE_READER_LOST);
                        assert_int_equal(queue_reader_loss(r)->first, 5000);
                        assert_int_equal(queue_reader_loss(r)->last, 5000);
                }
                assert_int_equal(queue_reader_next(r, &rec), QUEUE_READER_RECORD);
                assert_int_equal(rec.offset, off == 5000 ? 5001 : off);
                queue_reader_free(r);
        }
        /* Every entry of the new index names the record at its position. */
        idx = path_join(dir, "00000000000000000000.idx");
        assert_int_equal(file_read_all(idx, &p, &n), 0);
        assert_true(n >= 16 * 10 && n % 16 == 0);
        fd = open(seg0, O_RDONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        for (size_t k = 0; k < n; k += 16) {
                uint8_t h[16];
                assert_int_equal(pread(fd, h, sizeof(h), (off_t) le64_get(p + k + 8)), (ssize_t) sizeof(h));
                assert_int_equal(le64_get(h + 8), le64_get(p + k));
        }
        close(fd);
        free(p);
        free(idx);
        free(seg0);
        free(dir);
        rm_rf(tmp);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_torn_tail_every_byte),
                cmocka_unit_test(test_salvage_one_record),
                cmocka_unit_test(test_salvage_header_and_payload),
                cmocka_unit_test(test_salvage_several),
                cmocka_unit_test(test_salvage_sixteen_bytes),
                cmocka_unit_test(test_salvage_fails_open_anyway),
                cmocka_unit_test(test_flipped_byte_last_segment),
                cmocka_unit_test(test_torn_and_corrupt_headers),
                cmocka_unit_test(test_torn_second_to_last),
                cmocka_unit_test(test_zeroed_second_to_last),
                cmocka_unit_test(test_salvage_and_torn_second_to_last),
                cmocka_unit_test(test_salvage_index),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
