/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "frame.h"
#include "json-util.h"

static void test_round_trip(void **state) {
        Buffer b = {};
        Frame f;

        assert_int_equal(frame_append(&b, FRAME_CONTROL, "{\"op\":\"ping\"}", 13), 0);
        assert_int_equal(frame_append(&b, FRAME_ACK, "", 0), 0);
        assert_int_equal(frame_append(&b, FRAME_BATCH, "\0\1\2\3", 4), 0);
        assert_int_equal(buffer_size(&b), 3 * FRAME_HEADER_SIZE + 13 + 0 + 4);

        /* The header is little-endian on the wire, whatever the host. */
        assert_memory_equal(buffer_begin(&b), "\x0d\x00\x00\x00\x01\x00\x00\x00", 8);

        assert_int_equal(frame_peek(&b, FRAME_SIZE_MAX, &f), 1);
        assert_int_equal(f.type, FRAME_CONTROL);
        assert_int_equal(f.size, 13);
        assert_int_equal(f.flags, 0);
        assert_memory_equal(f.payload, "{\"op\":\"ping\"}", 13);
        buffer_consume(&b, FRAME_HEADER_SIZE + f.size);

        assert_int_equal(frame_peek(&b, FRAME_SIZE_MAX, &f), 1);
        assert_int_equal(f.type, FRAME_ACK);
        assert_int_equal(f.size, 0);
        buffer_consume(&b, FRAME_HEADER_SIZE + f.size);

        assert_int_equal(frame_peek(&b, FRAME_SIZE_MAX, &f), 1);
        assert_int_equal(f.type, FRAME_BATCH);
        assert_int_equal(f.size, 4);
        assert_memory_equal(f.payload, "\0\1\2\3", 4);
        buffer_consume(&b, FRAME_HEADER_SIZE + f.size);

        assert_int_equal(buffer_size(&b), 0);
        assert_int_equal(frame_peek(&b, FRAME_SIZE_MAX, &f), 0);
        buffer_done(&b);
}

/* A stream delivered one byte at a time: no frame is seen before its last byte arrived, and
 * every frame comes out whole and in order. */
static void test_partial_byte_by_byte(void **state) {
        Buffer wire = {}, in = {};
        char payload[300];
        unsigned seen = 0;
        size_t frame_end[20], n_frames = 0;

        for (unsigned i = 0; i < 20; i++) {
                size_t len = (i * 37) % sizeof(payload);
                for (size_t j = 0; j < len; j++)
                        payload[j] = (char) (i + j);
                assert_int_equal(frame_append(&wire, (uint16_t) (1 + i % 3), payload, (uint32_t) len), 0);
                frame_end[n_frames++] = buffer_size(&wire);
        }

        for (size_t pos = 0; pos < buffer_size(&wire); pos++) {
                Frame f;
                int r;

                assert_int_equal(buffer_append(&in, buffer_begin(&wire) + pos, 1), 0);
                while ((r = frame_peek(&in, FRAME_SIZE_MAX, &f)) == 1) {
                        size_t len = (seen * 37) % sizeof(payload);

                        /* Complete exactly when the last byte of this frame arrived. */
                        assert_int_equal(pos + 1, frame_end[seen]);
                        assert_int_equal(f.type, 1 + seen % 3);
                        assert_int_equal(f.size, len);
                        for (size_t j = 0; j < len; j++)
                                assert_int_equal((uint8_t) f.payload[j], (uint8_t) (seen + j));
                        buffer_consume(&in, FRAME_HEADER_SIZE + f.size);
                        seen++;
                }
                assert_int_equal(r, 0);
        }
        assert_int_equal(seen, 20);
        assert_int_equal(buffer_size(&in), 0);
        buffer_done(&wire);
        buffer_done(&in);
}

static void test_oversized(void **state) {
        Buffer b = {};
        uint8_t h[FRAME_HEADER_SIZE];
        char dummy = 0;
        Frame f;

        /* A header announcing more than the receiver's limit is refused as soon as the header is
         * there, before any payload is buffered. */
        le32_put(h, 1025);
        le16_put(h + 4, FRAME_BATCH);
        le16_put(h + 6, 0);
        assert_int_equal(buffer_append(&b, h, 7), 0);
        assert_int_equal(frame_peek(&b, 1024, &f), 0); /* header incomplete */
        assert_int_equal(buffer_append(&b, h + 7, 1), 0);
        assert_int_equal(frame_peek(&b, 1024, &f), -EMSGSIZE);
        /* Exactly at the limit is fine (just incomplete). */
        assert_int_equal(frame_peek(&b, 1025, &f), 0);
        buffer_clear(&b);

        le32_put(h, FRAME_SIZE_MAX + 1);
        assert_int_equal(buffer_append(&b, h, sizeof(h)), 0);
        assert_int_equal(frame_peek(&b, FRAME_SIZE_MAX, &f), -EMSGSIZE);
        buffer_clear(&b);

        le32_put(h, UINT32_MAX);
        assert_int_equal(buffer_append(&b, h, sizeof(h)), 0);
        assert_int_equal(frame_peek(&b, FRAME_SIZE_MAX, &f), -EMSGSIZE);
        buffer_clear(&b);

        /* The sender refuses too, without touching the buffer. */
        assert_int_equal(frame_append(&b, FRAME_BATCH, &dummy, FRAME_SIZE_MAX + 1), -EMSGSIZE);
        assert_int_equal(buffer_size(&b), 0);
        buffer_done(&b);
}

static void test_flags_ignored(void **state) {
        Buffer b = {};
        uint8_t h[FRAME_HEADER_SIZE];
        Frame f;

        le32_put(h, 2);
        le16_put(h + 4, FRAME_CONTROL);
        le16_put(h + 6, 0x8001);
        assert_int_equal(buffer_append(&b, h, sizeof(h)), 0);
        assert_int_equal(buffer_append(&b, "{}", 2), 0);
        assert_int_equal(frame_peek(&b, FRAME_SIZE_MAX, &f), 1);
        assert_int_equal(f.flags, 0x8001);
        assert_int_equal(f.size, 2);
        buffer_done(&b);
}

static void test_begin_finish_in_place(void **state) {
        Buffer b = {};
        size_t pos;
        Frame f;

        /* Some unconsumed bytes ahead, and a consumed prefix, so that reserve may move data. */
        assert_int_equal(buffer_append_str(&b, "XXXXXXXX"), 0);
        buffer_consume(&b, 3);
        assert_int_equal(frame_begin(&b, FRAME_CONTROL, &pos), 0);
        assert_int_equal(pos, 5);
        for (int i = 0; i < 3000; i++) /* forces growth and compaction */
                assert_int_equal(buffer_append_str(&b, "abcd"), 0);
        assert_int_equal(frame_finish(&b, pos), 0);

        buffer_consume(&b, 5);
        assert_int_equal(frame_peek(&b, FRAME_SIZE_MAX, &f), 1);
        assert_int_equal(f.type, FRAME_CONTROL);
        assert_int_equal(f.size, 12000);
        assert_memory_equal(f.payload, "abcdabcd", 8);
        assert_memory_equal(f.payload + 11996, "abcd", 4);
        buffer_done(&b);
}

static void test_json(void **state) {
        _cleanup_json_ struct json_object *o = NULL, *back = NULL;
        Buffer b = {};
        Frame f;

        o = json_object_new_object();
        assert_non_null(o);
        assert_int_equal(json_object_object_add(o, "op", json_object_new_string("hello")), 0);
        assert_int_equal(json_object_object_add(o, "name", json_object_new_string("a \"q\" \xc3\xa9")), 0);
        assert_int_equal(frame_append_json(&b, o), 0);
        assert_int_equal(frame_peek(&b, FRAME_SIZE_MAX, &f), 1);
        assert_int_equal(f.type, FRAME_CONTROL);
        assert_int_equal(frame_parse_json(&f, &back), 0);
        assert_string_equal(json_get_string(back, "op"), "hello");
        assert_string_equal(json_get_string(back, "name"), "a \"q\" \xc3\xa9");
        buffer_done(&b);
}

static int parse_payload(uint16_t type, const char *payload) {
        _cleanup_json_ struct json_object *o = NULL;
        Frame f = { .type = type, .size = (uint32_t) strlen(payload), .payload = (const uint8_t *) payload };
        int r = frame_parse_json(&f, &o);
        if (r >= 0)
                assert_non_null(o);
        return r;
}

static void test_json_malformed(void **state) {
        assert_int_equal(parse_payload(FRAME_CONTROL, "{\"op\":1}"), 0);
        assert_int_equal(parse_payload(FRAME_CONTROL, "{}"), 0);
        assert_int_equal(parse_payload(FRAME_CONTROL, ""), -EBADMSG);
        assert_int_equal(parse_payload(FRAME_CONTROL, "{"), -EBADMSG);
        assert_int_equal(parse_payload(FRAME_CONTROL, "[1,2]"), -EBADMSG);  /* not an object */
        assert_int_equal(parse_payload(FRAME_CONTROL, "\"str\""), -EBADMSG);
        assert_int_equal(parse_payload(FRAME_CONTROL, "{}{}"), -EBADMSG);   /* trailing data */
        assert_int_equal(parse_payload(FRAME_CONTROL, "{} x"), -EBADMSG);
        assert_int_equal(parse_payload(FRAME_BATCH, "{}"), -EBADMSG);       /* wrong frame type */
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_round_trip),
                cmocka_unit_test(test_partial_byte_by_byte),
                cmocka_unit_test(test_oversized),
                cmocka_unit_test(test_flags_ignored),
                cmocka_unit_test(test_begin_finish_in_place),
                cmocka_unit_test(test_json),
                cmocka_unit_test(test_json_malformed),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
