/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Row filters of dpipe-source (TCP query "where", HTTP ?field=value). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "filter.h"

static int match(const char *where, const char *row) {
        struct json_object *w = where ? json_tokener_parse(where) : NULL;
        Filter *f = NULL;
        int r;

        assert_true(!where || w);
        assert_int_equal(filter_new(w, &f), 0);
        json_object_put(w);
        r = filter_match(f, row, strlen(row));
        filter_free(f);
        return r;
}

static void test_match(void **state) {
        assert_int_equal(match(NULL, "{\"a\":1}"), 1);
        assert_int_equal(match("{}", "{\"a\":1}"), 1);
        assert_int_equal(match("{\"name\":\"bob\"}", "{\"id\":\"2\",\"name\":\"bob\"}"), 1);
        assert_int_equal(match("{\"name\":\"bob\"}", "{\"id\":\"2\",\"name\":\"bobby\"}"), 0);
        /* The text test must not hide a match: "bob" appears elsewhere but not as the value. */
        assert_int_equal(match("{\"name\":\"bob\"}", "{\"name\":\"alice\",\"note\":\"bob\"}"), 0);
        /* Every term must match. */
        assert_int_equal(match("{\"a\":\"1\",\"b\":\"2\"}", "{\"a\":\"1\",\"b\":\"3\"}"), 0);
        assert_int_equal(match("{\"a\":\"1\",\"b\":\"2\"}", "{\"a\":\"1\",\"b\":\"2\"}"), 1);
        /* Missing field. */
        assert_int_equal(match("{\"c\":\"1\"}", "{\"a\":\"1\"}"), 0);
}

static void test_types(void **state) {
        /* Strings against scalars with the same JSON text, both ways. */
        assert_int_equal(match("{\"id\":42}", "{\"id\":\"42\"}"), 1);
        assert_int_equal(match("{\"id\":\"42\"}", "{\"id\":42}"), 1);
        assert_int_equal(match("{\"ok\":\"true\"}", "{\"ok\":true}"), 1);
        assert_int_equal(match("{\"v\":\"null\"}", "{\"v\":null}"), 1);
        assert_int_equal(match("{\"v\":null}", "{\"v\":null}"), 1);
        assert_int_equal(match("{\"id\":42}", "{\"id\":43}"), 0);
        assert_int_equal(match("{\"id\":\"42\"}", "{\"id\":\"042\"}"), 0);
        /* Escaped text in the row compares by value. */
        assert_int_equal(match("{\"q\":\"say \\\"hi\\\"\"}", "{\"q\":\"say \\\"hi\\\"\"}"), 1);
        /* Objects compare as JSON. */
        assert_int_equal(match("{\"o\":{\"a\":[1]}}", "{\"o\":{\"a\":[1]}}"), 1);
}

static void test_invalid(void **state) {
        struct json_object *a = json_tokener_parse("[1]");
        Filter *f = NULL;

        assert_int_equal(filter_new(a, &f), -EINVAL);
        json_object_put(a);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_match),
                cmocka_unit_test(test_types),
                cmocka_unit_test(test_invalid),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
