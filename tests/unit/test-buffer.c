/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "buffer.h"

static void test_append_consume(void **state) {
        Buffer b = {};

        assert_int_equal(buffer_size(&b), 0);
        assert_int_equal(buffer_append(&b, "hello", 5), 0);
        assert_int_equal(buffer_append_str(&b, " world"), 0);
        assert_int_equal(buffer_size(&b), 11);
        assert_memory_equal(buffer_begin(&b), "hello world", 11);

        buffer_consume(&b, 6);
        assert_int_equal(buffer_size(&b), 5);
        assert_memory_equal(buffer_begin(&b), "world", 5);

        /* Consuming everything rewinds, so the storage is reused from the start. */
        buffer_consume(&b, 5);
        assert_int_equal(b.head, 0);
        assert_int_equal(b.tail, 0);

        /* Appending nothing is fine, also with a NULL pointer. */
        assert_int_equal(buffer_append(&b, NULL, 0), 0);
        assert_int_equal(buffer_size(&b), 0);
        buffer_done(&b);
        assert_null(b.data);
        assert_int_equal(b.allocated, 0);
}

static void test_reuse_without_growth(void **state) {
        Buffer b = {};
        char chunk[1000];
        size_t allocated;

        memset(chunk, 'x', sizeof(chunk));
        assert_int_equal(buffer_append(&b, chunk, sizeof(chunk)), 0);
        allocated = b.allocated;

        /* Steady state: append and consume the same amount many times, with a partial remainder;
         * the buffer compacts instead of growing. */
        for (int i = 0; i < 10000; i++) {
                assert_int_equal(buffer_append(&b, chunk, sizeof(chunk)), 0);
                buffer_consume(&b, sizeof(chunk));
        }
        assert_int_equal(buffer_size(&b), sizeof(chunk));
        assert_int_equal(b.allocated, allocated);
        buffer_done(&b);
}

static void test_growth_keeps_content(void **state) {
        Buffer b = {};
        size_t total = 0;

        for (unsigned i = 0; i < 5000; i++) {
                char s[32];
                int n = snprintf(s, sizeof(s), "%u,", i);
                assert_int_equal(buffer_append(&b, s, (size_t) n), 0);
                total += (size_t) n;
        }
        assert_int_equal(buffer_size(&b), total);
        assert_memory_equal(buffer_begin(&b), "0,1,2,3,", 8);
        assert_memory_equal(buffer_begin(&b) + total - 5, "4999,", 5);

        /* buffer_reserve + tail + advance writes in place. */
        assert_int_equal(buffer_reserve(&b, 3), 0);
        assert_true(b.allocated - b.tail >= 3);
        memcpy(buffer_tail(&b), "end", 3);
        buffer_advance(&b, 3);
        assert_memory_equal(buffer_begin(&b) + total, "end", 3);
        buffer_done(&b);
}

static void test_printf(void **state) {
        Buffer b = {};
        char big[10000];

        assert_int_equal(buffer_printf(&b, "%s=%d;", "a", 42), 0);
        assert_int_equal(buffer_printf(&b, "%05u", 7u), 0);
        assert_int_equal(buffer_size(&b), strlen("a=42;00007"));
        assert_memory_equal(buffer_begin(&b), "a=42;00007", 10);

        /* Longer than the initial allocation. */
        memset(big, 'y', sizeof(big) - 1);
        big[sizeof(big) - 1] = 0;
        assert_int_equal(buffer_printf(&b, "[%s]", big), 0);
        assert_int_equal(buffer_size(&b), 10 + 2 + sizeof(big) - 1);
        assert_int_equal(buffer_begin(&b)[10], '[');
        assert_int_equal(buffer_begin(&b)[buffer_size(&b) - 1], ']');
        buffer_done(&b);
}

static void expect_json_string(const char *in, size_t n, const char *out) {
        Buffer b = {};

        assert_int_equal(buffer_append_json_string(&b, in, n), 0);
        assert_int_equal(buffer_size(&b), strlen(out));
        assert_memory_equal(buffer_begin(&b), out, strlen(out));
        buffer_done(&b);
}

static void test_json_string(void **state) {
        expect_json_string("", 0, "\"\"");
        expect_json_string("plain", 5, "\"plain\"");
        expect_json_string("a\"b\\c", 5, "\"a\\\"b\\\\c\"");
        expect_json_string("l1\nl2\r\t", 7, "\"l1\\nl2\\r\\t\"");
        expect_json_string("\x01\x1f", 2, "\"\\u0001\\u001f\"");
        /* An embedded NUL is data too (the length is given). */
        expect_json_string("a\0b", 3, "\"a\\u0000b\"");
        /* UTF-8 passes through untouched. */
        expect_json_string("K\xc3\xb6ln \xe2\x82\xac \xf0\x9f\x98\x80", 14, "\"K\xc3\xb6ln \xe2\x82\xac \xf0\x9f\x98\x80\"");
}

static void test_fd_io(void **state) {
        Buffer in = {}, out = {};
        int p[2];
        ssize_t n;

        assert_int_equal(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);

        /* Nothing to read yet. */
        assert_int_equal(buffer_read_fd(&in, p[0], 16), -EAGAIN);

        assert_int_equal(buffer_append_str(&out, "some bytes"), 0);
        n = buffer_write_fd(&out, p[1]);
        assert_int_equal(n, 10);
        assert_int_equal(buffer_size(&out), 0);
        /* Writing an empty buffer is a no-op. */
        assert_int_equal(buffer_write_fd(&out, p[1]), 0);

        n = buffer_read_fd(&in, p[0], 16);
        assert_int_equal(n, 10);
        assert_memory_equal(buffer_begin(&in), "some bytes", 10);

        /* EOF reads as 0. */
        close(p[1]);
        assert_int_equal(buffer_read_fd(&in, p[0], 16), 0);
        assert_int_equal(buffer_size(&in), 10);

        /* A bad fd is a negative errno, not a crash. */
        assert_int_equal(buffer_read_fd(&in, -1, 16), -EBADF);
        assert_int_equal(buffer_append_str(&out, "x"), 0);
        assert_int_equal(buffer_write_fd(&out, -1), -EBADF);
        assert_int_equal(buffer_size(&out), 1);

        close(p[0]);
        buffer_done(&in);
        buffer_done(&out);
}

static void test_write_full_pipe(void **state) {
        Buffer out = {};
        int p[2];
        size_t total = 0;
        char chunk[65536];

        assert_int_equal(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
        memset(chunk, 'z', sizeof(chunk));
        /* Fill the pipe: once it is full, writes return 0 and keep the bytes buffered. */
        for (int i = 0; i < 64; i++)
                assert_int_equal(buffer_append(&out, chunk, sizeof(chunk)), 0);
        for (;;) {
                ssize_t n = buffer_write_fd(&out, p[1]);
                assert_true(n >= 0);
                if (n == 0)
                        break;
                total += (size_t) n;
        }
        assert_true(total > 0);
        assert_int_equal(buffer_size(&out), 64 * sizeof(chunk) - total);
        close(p[0]);
        close(p[1]);
        buffer_done(&out);
}

static void test_resize(void **state) {
        Buffer b = {};

        assert_int_equal(buffer_append(&b, "0123456789", 10), 0);
        buffer_consume(&b, 4);
        /* Exactly what is asked, the unconsumed bytes moved to the front. */
        assert_int_equal(buffer_resize(&b, 100), 0);
        assert_int_equal(b.allocated, 100);
        assert_int_equal(b.head, 0);
        assert_memory_equal(buffer_begin(&b), "456789", 6);
        assert_int_equal(buffer_resize(&b, 6), 0);
        assert_int_equal(b.allocated, 6);
        assert_memory_equal(buffer_begin(&b), "456789", 6);
        /* Not below what it holds. */
        assert_int_equal(buffer_resize(&b, 5), -EINVAL);
        buffer_consume(&b, 6);
        assert_int_equal(buffer_resize(&b, 0), 0);
        assert_null(b.data);
        assert_int_equal(b.allocated, 0);
        assert_int_equal(buffer_resize(&b, 0), 0);
        buffer_done(&b);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_append_consume),
                cmocka_unit_test(test_reuse_without_growth),
                cmocka_unit_test(test_growth_keeps_content),
                cmocka_unit_test(test_printf),
                cmocka_unit_test(test_json_string),
                cmocka_unit_test(test_fd_io),
                cmocka_unit_test(test_write_full_pipe),
                cmocka_unit_test(test_resize),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
