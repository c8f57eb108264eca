/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
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

#include "log.h"
#include "util.h"

static void test_parse_size(void **state) {
        uint64_t v;

        assert_int_equal(parse_size("0", &v), 0);
        assert_int_equal(v, 0);
        assert_int_equal(parse_size("4096", &v), 0);
        assert_int_equal(v, 4096);
        assert_int_equal(parse_size("64M", &v), 0);
        assert_int_equal(v, 64u * 1024 * 1024);
        assert_int_equal(parse_size("3K", &v), 0);
        assert_int_equal(v, 3072);
        assert_int_equal(parse_size("2G", &v), 0);
        assert_int_equal(v, UINT64_C(2) << 30);
        assert_int_equal(parse_size("5m", &v), 0);
        assert_int_equal(v, UINT64_C(5) << 20);
        assert_int_equal(parse_size("1T", &v), 0);
        assert_int_equal(v, UINT64_C(1) << 40);
        assert_int_equal(parse_size("", &v), -EINVAL);
        assert_int_equal(parse_size(NULL, &v), -EINVAL);
        assert_int_equal(parse_size("M", &v), -EINVAL);
        assert_int_equal(parse_size("1.5M", &v), -EINVAL);
        assert_int_equal(parse_size("-1", &v), -EINVAL);
        assert_int_equal(parse_size("12KB", &v), -EINVAL);
        assert_int_equal(parse_size("1MM", &v), -EINVAL);
        assert_int_equal(parse_size("1MK", &v), -EINVAL);
        assert_int_equal(parse_size("99999999999999999999", &v), -ERANGE);
        assert_int_equal(parse_size("17179869184G", &v), -ERANGE);
}

static void test_source_name(void **state) {
        char n[80];

        assert_true(source_name_is_valid("demo"));
        assert_true(source_name_is_valid("A-z_0.9"));
        assert_true(source_name_is_valid("."));
        assert_false(source_name_is_valid(NULL));
        assert_false(source_name_is_valid(""));
        assert_false(source_name_is_valid("a b"));
        assert_false(source_name_is_valid("a/b"));
        assert_false(source_name_is_valid("a:b"));
        assert_false(source_name_is_valid("K\xc3\xb6ln"));
        memset(n, 'a', sizeof(n));
        n[64] = 0;
        assert_true(source_name_is_valid(n));
        n[64] = 'a';
        n[65] = 0;
        assert_false(source_name_is_valid(n));
        /* The _n variant looks at exactly n bytes. */
        assert_true(source_name_is_valid_n("ab cd", 2));
        assert_false(source_name_is_valid_n("ab", 0));
}

static void test_safe_atou(void **state) {
        uint64_t u64;
        uint32_t u32;

        assert_int_equal(safe_atou64("0", &u64), 0);
        assert_int_equal(u64, 0);
        assert_int_equal(safe_atou64("18446744073709551615", &u64), 0);
        assert_true(u64 == UINT64_MAX);
        assert_int_equal(safe_atou64("18446744073709551616", &u64), -ERANGE);
        assert_int_equal(safe_atou64("99999999999999999999999", &u64), -ERANGE);
        assert_int_equal(safe_atou64("", &u64), -EINVAL);
        assert_int_equal(safe_atou64(NULL, &u64), -EINVAL);
        assert_int_equal(safe_atou64("-1", &u64), -EINVAL);
        assert_int_equal(safe_atou64("+1", &u64), -EINVAL);
        assert_int_equal(safe_atou64(" 1", &u64), -EINVAL);
        assert_int_equal(safe_atou64("1 ", &u64), -EINVAL);
        assert_int_equal(safe_atou64("0x10", &u64), -EINVAL);
        assert_int_equal(safe_atou64("12a", &u64), -EINVAL);

        u32 = 5;
        assert_int_equal(safe_atou32("4294967295", &u32), 0);
        assert_true(u32 == UINT32_MAX);
        assert_int_equal(safe_atou32("4294967296", &u32), -ERANGE);
        assert_true(u32 == UINT32_MAX); /* untouched on failure */
        assert_int_equal(safe_atou32("007", &u32), 0);
        assert_int_equal(u32, 7);
}

static void test_format_u64(void **state) {
        static const uint64_t values[] = { 0, 1, 9, 10, 99, 100, 1234567890, UINT64_C(9999999999999999999),
                                           UINT64_C(10000000000000000000), UINT64_MAX };
        char buf[32], want[32];

        for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
                size_t n;

                memset(buf, '#', sizeof(buf));
                n = format_u64(buf, values[i]);
                snprintf(want, sizeof(want), "%" PRIu64, values[i]);
                assert_int_equal(n, strlen(want));
                assert_memory_equal(buf, want, n);
                assert_int_equal(buf[n], '#'); /* nothing written past the digits */
        }
        assert_int_equal(format_u64(buf, UINT64_MAX), 20);
}

static void test_now(void **state) {
        uint64_t a = now_usec(CLOCK_MONOTONIC), b = now_usec(CLOCK_MONOTONIC);

        assert_true(a > 0);
        assert_true(b >= a);
        /* CLOCK_REALTIME is after 2020 on any machine that runs this. */
        assert_true(now_usec(CLOCK_REALTIME) > UINT64_C(1577836800) * USEC_PER_SEC);
}

static void test_default_dirs(void **state) {
        assert_int_equal(unsetenv("RUNTIME_DIRECTORY"), 0);
        assert_int_equal(unsetenv("STATE_DIRECTORY"), 0);
        assert_string_equal(default_runtime_dir(), "/run/dpipe");
        assert_string_equal(default_state_dir(), "/var/lib/dpipe");

        /* systemd passes a colon-separated list; the first entry is ours. */
        assert_int_equal(setenv("RUNTIME_DIRECTORY", "/run/x:/run/y", 1), 0);
        assert_int_equal(setenv("STATE_DIRECTORY", "/var/lib/z", 1), 0);
        assert_string_equal(default_runtime_dir(), "/run/x");
        assert_string_equal(default_state_dir(), "/var/lib/z");

        assert_int_equal(setenv("RUNTIME_DIRECTORY", "", 1), 0);
        assert_string_equal(default_runtime_dir(), "/run/dpipe");
        assert_int_equal(unsetenv("RUNTIME_DIRECTORY"), 0);
        assert_int_equal(unsetenv("STATE_DIRECTORY"), 0);
}

static void test_path_join(void **state) {
        char *p;

        p = path_join("/run/dpipe", "writer.sock");
        assert_string_equal(p, "/run/dpipe/writer.sock");
        free(p);
        p = path_join("/run/dpipe/", "writer.sock");
        assert_string_equal(p, "/run/dpipe/writer.sock");
        free(p);
        p = path_join("", "x");
        assert_string_equal(p, "/x");
        free(p);
}

static void test_files(void **state) {
        char tmpl[] = "/tmp/dpipe-test-util.XXXXXX", *dir, *p, *content = NULL;
        char big[20000];
        size_t size;

        dir = mkdtemp(tmpl);
        assert_non_null(dir);

        /* mkdir -p, twice (the second time everything exists). */
        p = path_join(dir, "a/b/c");
        assert_int_equal(mkdir_p(p, 0755), 0);
        assert_int_equal(mkdir_p(p, 0755), 0);
        assert_int_equal(access(p, W_OK), 0);
        free(p);

        p = path_join(dir, "a/b/c/file");
        assert_int_equal(write_file_atomic(p, "hello\n", 6), 0);
        assert_int_equal(read_file(p, 1024, &content, &size), 0);
        assert_int_equal(size, 6);
        assert_string_equal(content, "hello\n");
        free(content);

        /* Replacing keeps no temporary file behind. */
        memset(big, 'q', sizeof(big));
        assert_int_equal(write_file_atomic(p, big, sizeof(big)), 0);
        /* A file of exactly max_size bytes fits. */
        assert_int_equal(read_file(p, sizeof(big), &content, &size), 0);
        assert_int_equal(size, sizeof(big));
        assert_memory_equal(content, big, sizeof(big));
        assert_int_equal(content[size], 0);
        free(content);
        content = NULL;
        /* One byte over the limit. */
        assert_int_equal(read_file(p, sizeof(big) - 1, &content, &size), -EFBIG);
        assert_null(content);

        /* An empty file reads as "". */
        assert_int_equal(write_file_atomic(p, "", 0), 0);
        assert_int_equal(read_file(p, 10, &content, &size), 0);
        assert_int_equal(size, 0);
        assert_string_equal(content, "");
        free(content);
        content = NULL;
        assert_int_equal(unlink(p), 0);
        free(p);

        assert_int_equal(read_file("/nonexistent/dpipe/file", 10, &content, NULL), -ENOENT);
        p = path_join(dir, "missing-dir/file");
        assert_int_equal(write_file_atomic(p, "x", 1), -ENOENT);
        free(p);

        /* Only the three directories are left. */
        p = path_join(dir, "a/b/c");
        assert_int_equal(rmdir(p), 0);
        free(p);
        p = path_join(dir, "a/b");
        assert_int_equal(rmdir(p), 0);
        free(p);
        p = path_join(dir, "a");
        assert_int_equal(rmdir(p), 0);
        free(p);
        assert_int_equal(rmdir(dir), 0);
}

static void test_log_levels(void **state) {
        assert_int_equal(log_level_from_string("debug"), LOG_DEBUG);
        assert_int_equal(log_level_from_string("INFO"), LOG_INFO);
        assert_int_equal(log_level_from_string("notice"), LOG_NOTICE);
        assert_int_equal(log_level_from_string("warning"), LOG_WARNING);
        assert_int_equal(log_level_from_string("warn"), LOG_WARNING);
        assert_int_equal(log_level_from_string("err"), LOG_ERR);
        assert_int_equal(log_level_from_string("error"), LOG_ERR);
        assert_int_equal(log_level_from_string("3"), 3);
        assert_int_equal(log_level_from_string("8"), -EINVAL);
        assert_int_equal(log_level_from_string("verbose"), -EINVAL);
        assert_int_equal(log_level_from_string(""), -EINVAL);
        assert_int_equal(log_level_from_string(NULL), -EINVAL);

        /* The *_errno() helpers return the negative errno, also when the level is filtered out. */
        log_set_max_level(LOG_ERR);
        assert_int_equal(log_debug_errno(ENOENT, "filtered: %m"), -ENOENT);
        assert_int_equal(log_debug_errno(-EIO, "filtered: %m"), -EIO);
        assert_int_equal(log_oom(), -ENOMEM);
        log_set_max_level(LOG_INFO);
}

static void test_version(void **state) {
        assert_non_null(dpipe_version());
        assert_true(strlen(dpipe_version()) > 0);
        assert_non_null(strchr(dpipe_version(), '.'));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_source_name),
                cmocka_unit_test(test_safe_atou),
                cmocka_unit_test(test_format_u64),
                cmocka_unit_test(test_now),
                cmocka_unit_test(test_default_dirs),
                cmocka_unit_test(test_path_join),
                cmocka_unit_test(test_files),
                cmocka_unit_test(test_log_levels),
                cmocka_unit_test(test_version),
                cmocka_unit_test(test_parse_size),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
