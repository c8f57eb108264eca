/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The declarative option table of the connector library. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "connector-internal.h"

typedef struct TestConfig {
        char *address;
        char *format;
        uint32_t interval_ms;
        uint64_t big;
        bool flag;
} TestConfig;

static const ConnectorOption table[] = {
        CONNECTOR_OPTION_STRING("address", TestConfig, address, NULL, true),
        CONNECTOR_OPTION_STRING("format", TestConfig, format, "auto", false),
        CONNECTOR_OPTION_U32("interval_ms", TestConfig, interval_ms, "1000"),
        CONNECTOR_OPTION_U64("big", TestConfig, big, "0"),
        CONNECTOR_OPTION_BOOL("flag", TestConfig, flag, "no"),
        {}
};

static int parse(const char *json, TestConfig *c, char **msg) {
        json_object *o = json_tokener_parse(json);
        int r;

        assert_non_null(o);
        memset(c, 0, sizeof(*c));
        *msg = NULL;
        r = options_parse(table, o, c, msg);
        json_object_put(o);
        return r;
}

static void test_defaults(void **state) {
        TestConfig c;
        char *msg;

        assert_int_equal(parse("{\"address\":\"h:1\"}", &c, &msg), 0);
        assert_string_equal(c.address, "h:1");
        assert_string_equal(c.format, "auto");
        assert_int_equal(c.interval_ms, 1000);
        assert_false(c.flag);
        options_free(table, &c);
        assert_null(c.address);
}

static void test_values(void **state) {
        TestConfig c;
        char *msg;

        /* Integers as JSON numbers or strings (dpipectl passes KEY=VALUE text), booleans both ways. */
        assert_int_equal(parse("{\"address\":\"a\",\"format\":\"csv\",\"interval_ms\":250,\"big\":\"8589934592\","
                               "\"flag\":true,\"unknown\":1}",
                               &c, &msg),
                         0);
        assert_string_equal(c.format, "csv");
        assert_int_equal(c.interval_ms, 250);
        assert_true(c.big == UINT64_C(8589934592));
        assert_true(c.flag);
        options_free(table, &c);

        assert_int_equal(parse("{\"address\":\"a\",\"interval_ms\":\"42\",\"flag\":\"yes\"}", &c, &msg), 0);
        assert_int_equal(c.interval_ms, 42);
        assert_true(c.flag);
        options_free(table, &c);
}

static void test_errors(void **state) {
        TestConfig c;
        char *msg;

        assert_int_equal(parse("{}", &c, &msg), -EINVAL);
        assert_string_equal(msg, "option 'address' is required");
        free(msg);
        options_free(table, &c);

        assert_int_equal(parse("{\"address\":\"a\",\"interval_ms\":-1}", &c, &msg), -ERANGE);
        assert_string_equal(msg, "invalid value for option 'interval_ms'");
        free(msg);
        options_free(table, &c);

        assert_int_equal(parse("{\"address\":\"a\",\"interval_ms\":4294967296}", &c, &msg), -ERANGE);
        free(msg);
        options_free(table, &c);

        assert_int_equal(parse("{\"address\":\"a\",\"flag\":\"maybe\"}", &c, &msg), -EINVAL);
        free(msg);
        options_free(table, &c);

        assert_int_equal(parse("{\"address\":[1]}", &c, &msg), -EINVAL);
        free(msg);
        options_free(table, &c);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_defaults),
                cmocka_unit_test(test_values),
                cmocka_unit_test(test_errors),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
