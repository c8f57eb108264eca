/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The sink library's backlog: order, partial takes, and storage that does not grow in the steady
 * state. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "sink-backlog.h"

static void push(Backlog *b, uint64_t offset, const char *data) {
        char source[16];
        SinkRecord r;

        snprintf(source, sizeof(source), "src%u", (unsigned) (offset % 3));
        r = (SinkRecord) { .offset = offset, .ts_us = offset * 10, .source = source, .source_len = strlen(source),
                           .data = data, .data_len = strlen(data) };
        assert_int_equal(backlog_push(b, &r), 0);
}

static void test_order_and_partial_pop(void **state) {
        Backlog b = {};
        SinkRecord out[8];
        char data[32], src[16];

        for (uint64_t i = 0; i < 5; i++) {
                snprintf(data, sizeof(data), "{\"i\":%u}", (unsigned) i);
                push(&b, 100 + i, data);
        }
        assert_int_equal(backlog_size(&b), 5);
        assert_int_equal(backlog_peek(&b, out, 3), 3);
        assert_int_equal(out[0].offset, 100);
        assert_int_equal(out[2].offset, 102);
        backlog_pop(&b, 2);
        assert_int_equal(backlog_peek(&b, out, 8), 3);
        for (size_t i = 0; i < 3; i++) {
                uint64_t o = 102 + i;
                snprintf(data, sizeof(data), "{\"i\":%u}", (unsigned) (o - 100));
                snprintf(src, sizeof(src), "src%u", (unsigned) (o % 3));
                assert_int_equal(out[i].offset, o);
                assert_int_equal(out[i].ts_us, o * 10);
                assert_int_equal(out[i].data_len, strlen(data));
                assert_memory_equal(out[i].data, data, out[i].data_len);
                assert_memory_equal(out[i].source, src, out[i].source_len);
        }
        backlog_pop(&b, 10);
        assert_int_equal(backlog_size(&b), 0);
        assert_int_equal(backlog_bytes(&b), 0);
        backlog_done(&b);
}

/* A type that always takes all but the last record: the backlog never empties, yet its storage
 * stays bounded by what is live. */
static void test_steady_state_bounded(void **state) {
        Backlog b = {};
        SinkRecord out[64];
        size_t max_bytes = 0, max_entries = 0;
        uint64_t next = 0;

        for (int round = 0; round < 20000; round++) {
                for (int k = 0; k < 50; k++)
                        push(&b, next++, "{\"payload\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}");
                size_t n = backlog_peek(&b, out, 64);
                assert_true(n > 0);
                for (size_t i = 1; i < n; i++)
                        assert_int_equal(out[i].offset, out[i - 1].offset + 1);
                backlog_pop(&b, n - 1);
                if (round > 100) {
                        max_bytes = MAX(max_bytes, b.bytes.allocated);
                        max_entries = MAX(max_entries, b.allocated);
                }
        }
        /* Live: well under 1000 records of ~60 bytes. */
        assert_true(max_bytes <= 256 * 1024);
        assert_true(max_entries <= 4096);
        backlog_done(&b);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_order_and_partial_pop),
                cmocka_unit_test(test_steady_state_bounded),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
