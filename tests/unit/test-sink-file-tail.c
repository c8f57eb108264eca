/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Where a file of dpipe-sink-file stands after a crash: its last whole record line, and where a
 * torn tail starts. */

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "buffer.h"
#include "file-tail.h"
#include "macro.h"

static int file_with(const char *content, size_t len) {
        char path[] = "/tmp/test-sink-file-tail.XXXXXX";
        int fd = mkstemp(path);

        assert_true(fd >= 0);
        (void) unlink(path);
        assert_int_equal(write(fd, content, len), (ssize_t) len);
        return fd;
}

static int tail(const char *content, uint64_t *offset, uint64_t *end) {
        _cleanup_close_ int fd = file_with(content, strlen(content));

        return file_tail_find(fd, offset, end);
}

#define L(o) "{\"offset\":" #o ",\"source\":\"s\",\"ts_us\":1,\"data\":{\"x\":\"}\\n\"}}\n"

static void test_whole_lines(void **state) {
        uint64_t o = 0, end = 0;

        assert_int_equal(tail("", &o, &end), 0);
        assert_int_equal(end, 0);
        assert_int_equal(tail(L(0), &o, &end), 1);
        assert_int_equal(o, 0);
        assert_int_equal(end, strlen(L(0)));
        assert_int_equal(tail(L(7) L(8) L(9), &o, &end), 1);
        assert_int_equal(o, 9);
        assert_int_equal(end, 3 * strlen(L(7)));
}

static void test_torn_tails(void **state) {
        uint64_t o = 0, end = 0;

        /* A line without its newline: cut. */
        assert_int_equal(tail(L(7) L(8) "{\"offset\":9,\"source\":\"s\",\"da", &o, &end), 1);
        assert_int_equal(o, 8);
        assert_int_equal(end, 2 * strlen(L(7)));
        /* Zeros a power loss left where the last write was (the size made it, the data not). */
        {
                char buf[4096];
                size_t n = strlen(L(5));
                _cleanup_close_ int fd = -EBADF;

                memcpy(buf, L(5), n);
                memset(buf + n, 0, 3000);
                buf[n + 2999] = '\n';
                fd = file_with(buf, n + 3000);
                assert_int_equal(file_tail_find(fd, &o, &end), 1);
                assert_int_equal(o, 5);
                assert_int_equal(end, n);
        }
        /* Only a torn line. */
        assert_int_equal(tail("{\"offset\":1,\"sou", &o, &end), 0);
        assert_int_equal(end, 0);
        /* A whole line that is not a record (garbage, a line cut inside): not the resume point. */
        assert_int_equal(tail(L(3) "garbage\n{\"offset\":4,\"x\n", &o, &end), 1);
        assert_int_equal(o, 3);
        assert_int_equal(end, strlen(L(3)));
}

/* A last line longer than the chunk the tail is read in. */
static void test_long_line(void **state) {
        static const char head[] = "{\"offset\":42,\"source\":\"s\",\"ts_us\":1,\"data\":\"";
        size_t big = 300 * 1024;
        Buffer b = {};
        uint64_t o = 0, end = 0, first = 0;
        _cleanup_close_ int fd = -EBADF;

        assert_int_equal(buffer_append_str(&b, L(41)), 0);
        assert_int_equal(buffer_append_str(&b, head), 0);
        assert_int_equal(buffer_reserve(&b, big), 0);
        memset(buffer_tail(&b), 'y', big);
        buffer_advance(&b, big);
        assert_int_equal(buffer_append_str(&b, "\"}\n"), 0);
        fd = file_with(buffer_begin(&b), buffer_size(&b));
        assert_int_equal(file_tail_find(fd, &o, &end), 1);
        assert_int_equal(o, 42);
        assert_int_equal(end, buffer_size(&b));
        assert_int_equal(file_head_offset(fd, &first), 1);
        assert_int_equal(first, 41);
        buffer_done(&b);
}

static void test_line_offset(void **state) {
        uint64_t o;

        assert_true(file_line_offset("{\"offset\":0,", 12, &o) && o == 0);
        assert_true(file_line_offset("{\"offset\":18446744073709551615,", 31, &o) && o == UINT64_MAX);
        assert_false(file_line_offset("{\"offset\":18446744073709551616,", 31, &o));
        assert_false(file_line_offset("{\"offset\":,", 11, &o));
        assert_false(file_line_offset("{\"offset\":12", 12, &o));
        assert_false(file_line_offset("{\"source\":1,", 12, &o));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_whole_lines),
                cmocka_unit_test(test_torn_tails),
                cmocka_unit_test(test_long_line),
                cmocka_unit_test(test_line_offset),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
