/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The last seq of every source (common/source-table.h): the writer's idempotence rests on it. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "source-table.h"

static void test_update_and_get(void **state) {
        SourceTable t = {};
        uint64_t seq;

        assert_false(source_table_get(&t, "a", 1, &seq));
        assert_int_equal(source_table_update(&t, "a", 1, 5), 0);
        assert_true(source_table_get(&t, "a", 1, &seq));
        assert_int_equal(seq, 5);
        /* Only ever raised. */
        assert_int_equal(source_table_update(&t, "a", 1, 3), 0);
        assert_true(source_table_get(&t, "a", 1, &seq));
        assert_int_equal(seq, 5);
        assert_int_equal(source_table_update(&t, "a", 1, UINT64_MAX), 0);
        assert_true(source_table_get(&t, "a", 1, &seq));
        assert_int_equal(seq, UINT64_MAX);
        /* Names are compared whole: a prefix is another source. */
        assert_false(source_table_get(&t, "ab", 2, &seq));
        assert_int_equal(source_table_update(&t, "ab", 2, 0), 0);
        assert_true(source_table_get(&t, "ab", 2, &seq));
        assert_int_equal(seq, 0);
        assert_true(source_table_get(&t, "ab", 2, NULL));
        source_table_done(&t);
        assert_false(source_table_get(&t, "a", 1, &seq));
}

static void test_bad_names(void **state) {
        char long_name[SOURCE_NAME_MAX + 1];
        SourceTable t = {};

        memset(long_name, 'x', sizeof(long_name));
        assert_int_equal(source_table_update(&t, "", 0, 1), -EINVAL);
        assert_int_equal(source_table_update(&t, long_name, sizeof(long_name), 1), -EINVAL);
        assert_false(source_table_get(&t, long_name, sizeof(long_name), NULL));
        assert_int_equal(source_table_update(&t, long_name, SOURCE_NAME_MAX, 1), 0);
        assert_true(source_table_get(&t, long_name, SOURCE_NAME_MAX, NULL));
        assert_int_equal(t.n_used, 1);
        source_table_done(&t);
}

static void test_growth(void **state) {
        /* Thousands of sources: every one keeps its own seq through every growth of the table, and
         * the table stays at most half full. */
        SourceTable t = {};

        for (uint64_t i = 0; i < 5000; i++) {
                char name[32];
                int n = snprintf(name, sizeof(name), "source-%llu", (unsigned long long) i);
                assert_int_equal(source_table_update(&t, name, (size_t) n, i * 3), 0);
        }
        assert_int_equal(t.n_used, 5000);
        assert_true(t.n_slots >= 2 * t.n_used);
        for (uint64_t i = 0; i < 5000; i++) {
                char name[32];
                int n = snprintf(name, sizeof(name), "source-%llu", (unsigned long long) i);
                uint64_t seq;
                assert_true(source_table_get(&t, name, (size_t) n, &seq));
                assert_int_equal(seq, i * 3);
        }
        assert_false(source_table_get(&t, "source-5000", 11, NULL));
        source_table_done(&t);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_update_and_get),
                cmocka_unit_test(test_bad_names),
                cmocka_unit_test(test_growth),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
