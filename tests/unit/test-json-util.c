/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "json-util.h"

static void test_getters(void **state) {
        _cleanup_json_ struct json_object *o = NULL;
        uint64_t u = 0;
        bool b = false;

        assert_int_equal(json_parse_n("{\"s\":\"str\",\"n\":42,\"neg\":-1,\"big\":18446744073709551615,"
                                      "\"t\":true,\"f\":false,\"d\":1.5,\"null\":null,\"ns\":\"7\"}",
                                      strlen("{\"s\":\"str\",\"n\":42,\"neg\":-1,\"big\":18446744073709551615,"
                                             "\"t\":true,\"f\":false,\"d\":1.5,\"null\":null,\"ns\":\"7\"}"),
                                      &o, NULL), 0);
        assert_string_equal(json_get_string(o, "s"), "str");
        assert_null(json_get_string(o, "n"));
        assert_null(json_get_string(o, "missing"));
        assert_null(json_get_string(o, "null"));
        assert_null(json_get_string(NULL, "s"));

        assert_true(json_get_uint64(o, "n", &u));
        assert_int_equal(u, 42);
        assert_true(json_get_uint64(o, "big", &u));
        assert_true(u == UINT64_MAX);
        u = 9;
        assert_false(json_get_uint64(o, "neg", &u));
        assert_false(json_get_uint64(o, "d", &u));
        assert_false(json_get_uint64(o, "ns", &u));
        assert_false(json_get_uint64(o, "missing", &u));
        assert_int_equal(u, 9); /* untouched on failure */

        assert_true(json_get_bool(o, "t", &b));
        assert_true(b);
        assert_true(json_get_bool(o, "f", &b));
        assert_false(b);
        b = true;
        assert_false(json_get_bool(o, "n", &b));
        assert_false(json_get_bool(o, "s", &b));
        assert_true(b);
}

static int parse(const char *s, size_t *ret_err, enum json_type *ret_type) {
        _cleanup_json_ struct json_object *o = NULL;
        int r = json_parse_n(s, strlen(s), &o, ret_err);
        if (r >= 0 && ret_type)
                *ret_type = json_object_get_type(o);
        return r;
}

static void test_parse_values(void **state) {
        enum json_type t;

        assert_int_equal(parse("{}", NULL, &t), 0);
        assert_int_equal(t, json_type_object);
        assert_int_equal(parse("[1,2,3]", NULL, &t), 0);
        assert_int_equal(t, json_type_array);
        assert_int_equal(parse("\"x\"", NULL, &t), 0);
        assert_int_equal(t, json_type_string);
        /* A bare number at the very end of the input is complete. */
        assert_int_equal(parse("42", NULL, &t), 0);
        assert_int_equal(t, json_type_int);
        assert_int_equal(parse("-1.5e3", NULL, &t), 0);
        assert_int_equal(t, json_type_double);
        assert_int_equal(parse("true", NULL, &t), 0);
        assert_int_equal(t, json_type_boolean);
        /* JSON null is a value: a NULL object. */
        assert_int_equal(parse("null", NULL, &t), 0);
        assert_int_equal(t, json_type_null);
        /* Blanks around are fine. */
        assert_int_equal(parse(" {\"a\":1} \r\n\t", NULL, &t), 0);
        assert_int_equal(t, json_type_object);
}

static void test_parse_errors(void **state) {
        size_t err;

        err = 99;
        assert_int_equal(parse("", &err, NULL), -EBADMSG);
        assert_int_equal(parse("{", &err, NULL), -EBADMSG);
        assert_int_equal(parse("{\"a\":}", &err, NULL), -EBADMSG);
        assert_int_equal(parse("[1,2", &err, NULL), -EBADMSG);
        assert_int_equal(parse("\"unterminated", &err, NULL), -EBADMSG);
        assert_int_equal(parse("nul", &err, NULL), -EBADMSG);

        /* Exactly one value: trailing data is an error, and the offset points at it. */
        err = 99;
        assert_int_equal(parse("{} x", &err, NULL), -EBADMSG);
        assert_int_equal(err, 3);
        err = 99;
        assert_int_equal(parse("{\"a\":1}{\"b\":2}", &err, NULL), -EBADMSG);
        assert_int_equal(err, 7);
        assert_int_equal(parse("1 2", &err, NULL), -EBADMSG);

        /* The error offset pointer may be NULL. */
        assert_int_equal(parse("{", NULL, NULL), -EBADMSG);
}

static void test_parse_n_bounds(void **state) {
        _cleanup_json_ struct json_object *o = NULL;
        const char *s = "{\"a\":1}garbage";

        /* Only len bytes are looked at. */
        assert_int_equal(json_parse_n(s, 7, &o, NULL), 0);
        assert_true(json_object_is_type(o, json_type_object));
        json_object_put(o);
        o = NULL;
        assert_int_equal(json_parse_n(s, 6, &o, NULL), -EBADMSG);
        assert_null(o);

        /* A number cut by len ends at len. */
        assert_int_equal(json_parse_n("12345", 3, &o, NULL), 0);
        assert_int_equal(json_object_get_int64(o), 123);
}

static void test_unicode(void **state) {
        _cleanup_json_ struct json_object *o = NULL;
        const char *s = "{\"city\":\"K\xc3\xb6ln\",\"esc\":\"\\u00e9\\ud83d\\ude00\",\"q\":\"a,\\\"b\\\"\"}";

        assert_int_equal(json_parse_n(s, strlen(s), &o, NULL), 0);
        assert_string_equal(json_get_string(o, "city"), "K\xc3\xb6ln");
        assert_string_equal(json_get_string(o, "esc"), "\xc3\xa9\xf0\x9f\x98\x80");
        assert_string_equal(json_get_string(o, "q"), "a,\"b\"");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_getters),
                cmocka_unit_test(test_parse_values),
                cmocka_unit_test(test_parse_errors),
                cmocka_unit_test(test_parse_n_bounds),
                cmocka_unit_test(test_unicode),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
