/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "batch.h"

static const char *const records[] = {
        "{\"id\":1,\"name\":\"a, b\"}",
        "",
        "\"K\xc3\xb6ln \xe2\x82\xac\"",
        "42",
        "{\"quote\":\"say \\\"hi\\\"\"}",
};

static void build(Buffer *b, uint64_t batch_id, const char *source) {
        BatchBuilder bb;
        size_t size;

        assert_int_equal(batch_begin(&bb, b, batch_id, source, strlen(source)), 0);
        size = batch_size(&bb);
        assert_int_equal(size, FRAME_HEADER_SIZE + BATCH_HEADER_SIZE + strlen(source));
        for (size_t i = 0; i < ELEMENTSOF(records); i++) {
                assert_int_equal(batch_add(&bb, 100 + i, 1700000000000000ull + i, records[i],
                                           (uint32_t) strlen(records[i])), 0);
                assert_int_equal(batch_size(&bb), size + BATCH_RECORD_HEADER_SIZE + strlen(records[i]));
                size = batch_size(&bb);
        }
        assert_int_equal(batch_end(&bb), 0);
}

static void check(const Frame *f, uint64_t batch_id, const char *source) {
        BatchView v;
        BatchRecord rec;
        size_t pos = 0, i = 0;

        assert_int_equal(f->type, FRAME_BATCH);
        assert_int_equal(batch_parse(f, &v), 0);
        assert_int_equal(v.batch_id, batch_id);
        assert_int_equal(v.source_len, strlen(source));
        assert_memory_equal(v.source, source, v.source_len);
        assert_int_equal(v.count, ELEMENTSOF(records));
        while (batch_next(&v, &pos, &rec) > 0) {
                assert_true(i < ELEMENTSOF(records));
                assert_int_equal(rec.seq, 100 + i);
                assert_int_equal(rec.ts_us, 1700000000000000ull + i);
                assert_int_equal(rec.len, strlen(records[i]));
                assert_memory_equal(rec.data, records[i], rec.len);
                i++;
        }
        assert_int_equal(i, ELEMENTSOF(records));
        assert_int_equal(batch_next(&v, &pos, &rec), 0);
}

static void test_round_trip(void **state) {
        Buffer b = {};
        Frame f;

        /* Two batches back to back, behind some unrelated frame, with a consumed prefix. */
        assert_int_equal(frame_append(&b, FRAME_CONTROL, "{}", 2), 0);
        buffer_consume(&b, FRAME_HEADER_SIZE + 2);
        assert_int_equal(frame_append(&b, FRAME_CONTROL, "{}", 2), 0);
        build(&b, 7, "demo");
        build(&b, UINT64_MAX, "a-source_name.with.dots");

        assert_int_equal(frame_peek(&b, FRAME_SIZE_MAX, &f), 1);
        assert_int_equal(f.type, FRAME_CONTROL);
        buffer_consume(&b, FRAME_HEADER_SIZE + f.size);

        assert_int_equal(frame_peek(&b, FRAME_SIZE_MAX, &f), 1);
        check(&f, 7, "demo");
        buffer_consume(&b, FRAME_HEADER_SIZE + f.size);

        assert_int_equal(frame_peek(&b, FRAME_SIZE_MAX, &f), 1);
        check(&f, UINT64_MAX, "a-source_name.with.dots");
        buffer_consume(&b, FRAME_HEADER_SIZE + f.size);
        assert_int_equal(buffer_size(&b), 0);
        buffer_done(&b);
}

/* Records written straight into the batch (the connector's transform): open, append, close; an
 * aborted one leaves no trace, also when the buffer's contents moved in between. */
static void test_add_in_place(void **state) {
        Buffer b = {};
        BatchBuilder bb;
        size_t at, size;
        uint32_t len;
        Frame f;

        assert_int_equal(frame_append(&b, FRAME_CONTROL, "{}", 2), 0);
        buffer_consume(&b, FRAME_HEADER_SIZE + 2); /* a consumed prefix: reserve() moves the rest */
        assert_int_equal(batch_begin(&bb, &b, 7, "demo", 4), 0);
        for (size_t i = 0; i < ELEMENTSOF(records); i++) {
                size = batch_size(&bb);
                /* An aborted record first, as a filtered one. */
                assert_int_equal(batch_add_open(&bb, 99, 1, &at), 0);
                assert_int_equal(buffer_append(&b, "{\"dropped\":1}", 13), 0);
                batch_add_abort(&bb, at);
                assert_int_equal(batch_size(&bb), size);
                assert_int_equal(batch_add_open(&bb, 100 + i, 1700000000000000ull + i, &at), 0);
                assert_int_equal(buffer_append(&b, records[i], strlen(records[i])), 0);
                assert_int_equal(batch_add_close(&bb, at, &len), 0);
                assert_int_equal(len, strlen(records[i]));
        }
        assert_int_equal(batch_end(&bb), 0);
        assert_int_equal(frame_peek(&b, FRAME_SIZE_MAX, &f), 1);
        check(&f, 7, "demo");
        buffer_done(&b);
}

static void test_empty_batch(void **state) {
        Buffer b = {};
        BatchBuilder bb;
        BatchView v;
        BatchRecord rec;
        size_t pos = 0;
        Frame f;

        assert_int_equal(batch_begin(&bb, &b, 1, "s", 1), 0);
        assert_int_equal(batch_end(&bb), 0);
        assert_int_equal(frame_peek(&b, FRAME_SIZE_MAX, &f), 1);
        assert_int_equal(batch_parse(&f, &v), 0);
        assert_int_equal(v.count, 0);
        assert_int_equal(batch_next(&v, &pos, &rec), 0);
        buffer_done(&b);
}

static void test_invalid_source_name(void **state) {
        Buffer b = {};
        BatchBuilder bb;
        char long_name[66];

        memset(long_name, 'n', sizeof(long_name));
        assert_int_equal(batch_begin(&bb, &b, 1, "", 0), -EINVAL);
        assert_int_equal(batch_begin(&bb, &b, 1, "a b", 3), -EINVAL);
        assert_int_equal(batch_begin(&bb, &b, 1, "a/b", 3), -EINVAL);
        assert_int_equal(batch_begin(&bb, &b, 1, long_name, 65), -EINVAL);
        assert_int_equal(batch_begin(&bb, &b, 1, long_name, 64), 0);
        buffer_done(&b);
}

/* Builds one batch and returns a malloc'ed copy of its payload, for mangling. */
static uint8_t *payload_copy(size_t *ret_size) {
        Buffer b = {};
        Frame f;
        uint8_t *p;

        build(&b, 9, "src");
        assert_int_equal(frame_peek(&b, FRAME_SIZE_MAX, &f), 1);
        p = malloc(f.size);
        assert_non_null(p);
        memcpy(p, f.payload, f.size);
        *ret_size = f.size;
        buffer_done(&b);
        return p;
}

static int parse(const uint8_t *p, size_t size, uint16_t type) {
        Frame f = { .type = type, .size = (uint32_t) size, .payload = p };
        BatchView v;
        return batch_parse(&f, &v);
}

static void test_malformed(void **state) {
        size_t size;
        uint8_t *p = payload_copy(&size);

        assert_int_equal(parse(p, size, FRAME_BATCH), 0);
        assert_int_equal(parse(p, size, FRAME_CONTROL), -EBADMSG);
        assert_int_equal(parse(p, size, FRAME_ACK), -EBADMSG);

        /* Every truncation is rejected (not read past the end: ASan/valgrind would see it). */
        for (size_t n = 0; n < size; n++) {
                uint8_t *t = malloc(n ? n : 1);
                assert_non_null(t);
                memcpy(t, p, n);
                assert_int_equal(parse(t, n, FRAME_BATCH), -EBADMSG);
                free(t);
        }

        /* Trailing garbage after the last record. */
        {
                uint8_t *t = malloc(size + 1);
                assert_non_null(t);
                memcpy(t, p, size);
                t[size] = 0;
                assert_int_equal(parse(t, size + 1, FRAME_BATCH), -EBADMSG);
                free(t);
        }

        /* count one too many and one too few. */
        le32_put(p + 12, ELEMENTSOF(records) + 1);
        assert_int_equal(parse(p, size, FRAME_BATCH), -EBADMSG);
        le32_put(p + 12, ELEMENTSOF(records) - 1);
        assert_int_equal(parse(p, size, FRAME_BATCH), -EBADMSG);
        le32_put(p + 12, UINT32_MAX);
        assert_int_equal(parse(p, size, FRAME_BATCH), -EBADMSG);
        le32_put(p + 12, ELEMENTSOF(records));
        assert_int_equal(parse(p, size, FRAME_BATCH), 0);

        /* source_len beyond the payload, zero, or naming an invalid source. */
        le16_put(p + 8, UINT16_MAX);
        assert_int_equal(parse(p, size, FRAME_BATCH), -EBADMSG);
        le16_put(p + 8, 0);
        assert_int_equal(parse(p, size, FRAME_BATCH), -EBADMSG);
        le16_put(p + 8, 3);
        p[BATCH_HEADER_SIZE + 1] = '/';
        assert_int_equal(parse(p, size, FRAME_BATCH), -EBADMSG);
        p[BATCH_HEADER_SIZE + 1] = 'r';
        assert_int_equal(parse(p, size, FRAME_BATCH), 0);

        /* A record length that runs past the end. */
        le32_put(p + BATCH_HEADER_SIZE + 3, UINT32_MAX);
        assert_int_equal(parse(p, size, FRAME_BATCH), -EBADMSG);
        le32_put(p + BATCH_HEADER_SIZE + 3, (uint32_t) strlen(records[0]) + 1);
        assert_int_equal(parse(p, size, FRAME_BATCH), -EBADMSG);

        free(p);
}

static void test_ack(void **state) {
        Buffer b = {};
        BatchAck in[] = {
                { .batch_id = 1, .first_offset = 0, .stored = 5, .duplicates = 0, .error = 0 },
                { .batch_id = UINT64_MAX, .first_offset = UINT64_MAX - 1, .stored = UINT32_MAX, .duplicates = 3 },
                { .batch_id = 2, .error = -ENOSPC },
                { .batch_id = 3, .error = -EBADMSG, .record = 7 },
        }, out;
        Frame f;

        for (size_t i = 0; i < ELEMENTSOF(in); i++)
                assert_int_equal(batch_ack_append(&b, &in[i]), 0);
        for (size_t i = 0; i < ELEMENTSOF(in); i++) {
                assert_int_equal(frame_peek(&b, FRAME_SIZE_MAX, &f), 1);
                assert_int_equal(f.type, FRAME_ACK);
                assert_int_equal(f.size, BATCH_ACK_SIZE);
                assert_int_equal(batch_ack_parse(&f, &out), 0);
                assert_int_equal(out.batch_id, in[i].batch_id);
                assert_int_equal(out.first_offset, in[i].first_offset);
                assert_int_equal(out.stored, in[i].stored);
                assert_int_equal(out.duplicates, in[i].duplicates);
                assert_int_equal(out.error, in[i].error);
                assert_int_equal(out.record, in[i].record);
                assert_int_equal(batch_ack_refused(&out), in[i].error == -EBADMSG);
                buffer_consume(&b, FRAME_HEADER_SIZE + f.size);
        }

        /* Too short, or the wrong frame type. */
        assert_int_equal(batch_ack_append(&b, &in[0]), 0);
        assert_int_equal(frame_peek(&b, FRAME_SIZE_MAX, &f), 1);
        f.size = BATCH_ACK_SIZE - 1;
        assert_int_equal(batch_ack_parse(&f, &out), -EBADMSG);
        f.size = BATCH_ACK_SIZE;
        f.type = FRAME_BATCH;
        assert_int_equal(batch_ack_parse(&f, &out), -EBADMSG);
        buffer_done(&b);
}

static void test_record_check(void **state) {
        static const struct {
                uint64_t seq;
                const char *data;
                int result;
                size_t offset;
        } cases[] = {
                { 0, "{\"a\":1}", 0, 0 },
                { UINT64_MAX - 1, "[1, \"\xc3\xa9\"]", 0, 0 },
                { UINT64_MAX, "{\"a\":1}", -ERANGE, 0 },
                { 1, "{\"a\":1}\n{\"op\":\"record\",\"offset\":9}", -EBADMSG, 7 },
                { 1, "{\"a\":\n1}", -EBADMSG, 5 },
                { 1, "{\"n\":NaN}", -EBADMSG, 5 },
                { 1, "\"\xff\"", -EBADMSG, 1 },
                { 1, "\"\x1b[31m\"", -EBADMSG, 1 },
                { 1, "", -EBADMSG, 0 },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                BatchRecord rec = { .seq = cases[i].seq, .data = cases[i].data, .len = (uint32_t) strlen(cases[i].data) };
                size_t off = SIZE_MAX;

                assert_int_equal(batch_record_check(&rec, &off), cases[i].result);
                if (cases[i].result == -EBADMSG)
                        assert_int_equal(off, cases[i].offset);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_record_check),
                cmocka_unit_test(test_round_trip),
                cmocka_unit_test(test_add_in_place),
                cmocka_unit_test(test_empty_batch),
                cmocka_unit_test(test_invalid_source_name),
                cmocka_unit_test(test_malformed),
                cmocka_unit_test(test_ack),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
