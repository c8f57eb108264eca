/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The queue's on-disk format (common/queue-format.c): names, headers, records and the cursor that
 * reads a segment file record by record. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "crc32c.h"
#include "frame.h"
#include "queue-format.h"
#include "queue-test-util.h"
#include "util.h"

/* Builds one record at p (room for it assumed); returns its size. */
static uint32_t build_record(uint8_t *p, uint64_t offset, const char *source, const char *data) {
        uint16_t sl = (uint16_t) strlen(source);
        uint32_t dl = (uint32_t) strlen(data), size = QUEUE_RECORD_HEADER_SIZE + sl + dl;

        record_header_build(p, size, offset, 1000 + offset, 7 + offset, sl, dl);
        memcpy(p + QUEUE_RECORD_HEADER_SIZE, source, sl);
        memcpy(p + QUEUE_RECORD_HEADER_SIZE + sl, data, dl);
        le32_put(p + 4, crc32c(0, p + 8, size - 8));
        return size;
}

static void test_names(void **state) {
        char buf[32];
        uint64_t v;

        segment_name(buf, 42, "seg");
        assert_string_equal(buf, "00000000000000000042.seg");
        assert_true(segment_name_parse(buf, &v));
        assert_int_equal(v, 42);
        segment_name(buf, UINT64_MAX, "idx");
        assert_string_equal(buf, "18446744073709551615.idx");
        assert_true(segment_name_parse("18446744073709551615.seg", &v));
        assert_int_equal(v, UINT64_MAX);
        /* Only segment names: no index, no overflow, no short or signed names. */
        assert_false(segment_name_parse("18446744073709551615.idx", &v));
        assert_false(segment_name_parse("18446744073709551616.seg", &v));
        assert_false(segment_name_parse("0000000000000000042.seg", &v));
        assert_false(segment_name_parse("-0000000000000000042.seg", &v));
        assert_false(segment_name_parse("spare-segment", &v));
}

static void test_segment_header(void **state) {
        uint8_t h[QUEUE_SEGMENT_HEADER_SIZE];
        uint64_t created;

        segment_header_build(h, 100, 123456);
        assert_int_equal(segment_header_check(h, 100, &created), 0);
        assert_int_equal(created, 123456);
        assert_int_equal(segment_header_check(h, 101, NULL), -EBADMSG);
        for (size_t i = 0; i < sizeof(h); i++) {
                h[i] ^= 0x01;
                assert_int_equal(segment_header_check(h, 100, NULL), -EBADMSG);
                h[i] ^= 0x01;
        }
}

static void test_record_parse(void **state) {
        uint8_t p[256];
        uint32_t size, got_size;
        QueueRecord rec;

        size = build_record(p, 5, "src", "{\"a\":1}");
        assert_int_equal(size, QUEUE_RECORD_HEADER_SIZE + 3 + 7);
        assert_int_equal(record_parse(p, size, &rec, &got_size), 1);
        assert_int_equal(got_size, size);
        assert_int_equal(rec.offset, 5);
        assert_int_equal(rec.ts_us, 1005);
        assert_int_equal(rec.seq, 12);
        assert_memory_equal(rec.source, "src", 3);
        assert_memory_equal(rec.data, "{\"a\":1}", 7);

        /* Fewer bytes than the header, or than the record claims: more are needed. */
        for (uint32_t avail = 0; avail < size; avail++)
                assert_int_equal(record_parse(p, avail, &rec, &got_size), 0);
        /* Every flipped bit is caught: by the size checks or by the CRC. */
        for (uint32_t i = 0; i < size * 8; i++) {
                p[i / 8] ^= (uint8_t) (1u << (i % 8));
                assert_int_not_equal(record_parse(p, sizeof(p), &rec, &got_size), 1);
                p[i / 8] ^= (uint8_t) (1u << (i % 8));
        }
        /* Sizes that do not add up are refused before any CRC is computed. */
        le16_put(p + 32, 0);
        assert_int_equal(record_parse(p, sizeof(p), &rec, &got_size), -EBADMSG);
}

static void test_cursor(void **state) {
        char *tmp = make_tmp(), path[256];
        _cleanup_(segment_cursor_done) SegmentCursor c = { .fd = -EBADF };
        uint8_t buf[512];
        uint32_t n = QUEUE_SEGMENT_HEADER_SIZE, sizes[3];
        QueueRecord rec;
        uint64_t pos;
        int fd;

        segment_header_build(buf, 10, 0);
        for (int i = 0; i < 3; i++) {
                sizes[i] = build_record(buf + n, 10 + (uint64_t) i, "s", "[1,2,3]");
                n += sizes[i];
        }
        snprintf(path, sizeof(path), "%s/seg", tmp);
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        assert_true(fd >= 0);
        /* The last record is half written. */
        assert_int_equal(write(fd, buf, n - sizes[2] / 2), (ssize_t) (n - sizes[2] / 2));

        c.fd = fd;
        assert_int_equal(segment_cursor_seek(&c, QUEUE_SEGMENT_HEADER_SIZE), 0);
        for (int i = 0; i < 2; i++) {
                assert_int_equal(segment_cursor_next(&c, &rec, &pos), 1);
                assert_int_equal(rec.offset, 10 + (uint64_t) i);
                assert_int_equal(pos, QUEUE_SEGMENT_HEADER_SIZE + (uint64_t) i * sizes[0]);
        }
        assert_int_equal(segment_cursor_next(&c, &rec, &pos), -EPIPE);
        /* The rest arrives: the cursor reads on from where it stopped. */
        assert_int_equal(pwrite(fd, buf + n - sizes[2] / 2, sizes[2] / 2 + sizes[2] % 2, n - sizes[2] / 2),
                         (ssize_t) (sizes[2] / 2 + sizes[2] % 2));
        assert_int_equal(lseek(fd, 0, SEEK_END), n);
        assert_int_equal(segment_cursor_seek(&c, c.pos), 0);
        assert_int_equal(segment_cursor_next(&c, &rec, &pos), 1);
        assert_int_equal(rec.offset, 12);
        assert_int_equal(segment_cursor_next(&c, &rec, &pos), 0);

        /* A bad record stops it there. */
        buf[QUEUE_SEGMENT_HEADER_SIZE + sizes[0] + 45] ^= 0x40;
        assert_int_equal(pwrite(fd, buf, n, 0), (ssize_t) n);
        assert_int_equal(segment_cursor_seek(&c, QUEUE_SEGMENT_HEADER_SIZE), 0);
        assert_int_equal(segment_cursor_next(&c, &rec, &pos), 1);
        assert_int_equal(segment_cursor_next(&c, &rec, &pos), -EBADMSG);
        assert_int_equal(c.pos, QUEUE_SEGMENT_HEADER_SIZE + sizes[0]);
        safe_close(c.fd);
        rm_rf(tmp);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_names),
                cmocka_unit_test(test_segment_header),
                cmocka_unit_test(test_record_parse),
                cmocka_unit_test(test_cursor),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
