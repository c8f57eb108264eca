/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The declarative option table (common/config-table.c) as the connector library uses it, and the
 * strict check dpiped asks for before it accepts a source. */

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
        CONNECTOR_OPTION_STRING("address", TestConfig, address, NULL, true, "where"),
        CONNECTOR_OPTION_STRING("format", TestConfig, format, "auto", false, "how"),
        CONNECTOR_OPTION_U32("interval_ms", TestConfig, interval_ms, "1000", "how often"),
        CONNECTOR_OPTION_U64("big", TestConfig, big, "0", "a big one"),
        CONNECTOR_OPTION_BOOL("flag", TestConfig, flag, "no", "a flag"),
        {}
};

static int parse_flags(json_object *o, ConfigParseFlags flags, TestConfig *c, char **msg) {
        const ConnectorOption *tables[] = { table };
        void *configs[] = { c };

        return config_tables_parse(tables, configs, 1, o, flags, NULL, msg);
}

static int parse(const char *json, TestConfig *c, char **msg) {
        json_object *o = json_tokener_parse(json);
        int r;

        assert_non_null(o);
        memset(c, 0, sizeof(*c));
        *msg = NULL;
        r = parse_flags(o, 0, c, msg);
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
        config_table_free(table, &c);
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
        config_table_free(table, &c);

        assert_int_equal(parse("{\"address\":\"a\",\"interval_ms\":\"42\",\"flag\":\"yes\"}", &c, &msg), 0);
        assert_int_equal(c.interval_ms, 42);
        assert_true(c.flag);
        config_table_free(table, &c);
}

static void test_errors(void **state) {
        TestConfig c;
        char *msg;

        assert_int_equal(parse("{}", &c, &msg), -EINVAL);
        assert_string_equal(msg, "option 'address' is required");
        free(msg);
        config_table_free(table, &c);

        assert_int_equal(parse("{\"address\":\"a\",\"interval_ms\":-1}", &c, &msg), -ERANGE);
        assert_string_equal(msg, "invalid value for option 'interval_ms': expected a number of 0-4294967295");
        free(msg);
        config_table_free(table, &c);

        assert_int_equal(parse("{\"address\":\"a\",\"interval_ms\":4294967296}", &c, &msg), -ERANGE);
        free(msg);
        config_table_free(table, &c);

        assert_int_equal(parse("{\"address\":\"a\",\"flag\":\"maybe\"}", &c, &msg), -EINVAL);
        free(msg);
        config_table_free(table, &c);

        assert_int_equal(parse("{\"address\":[1]}", &c, &msg), -EINVAL);
        free(msg);
        config_table_free(table, &c);
}

static int test_validate(const void *config, char **ret_message) {
        const TestConfig *c = config;

        if (!streq(c->format, "auto") && !streq(c->format, "csv")) {
                *ret_message = strdup("unknown format");
                return -EINVAL;
        }
        return 0;
}

static const ConnectorType test_type = {
        .name = "test",
        .config_size = sizeof(TestConfig),
        .options = table,
        .validate = test_validate,
};

static int check(const char *json, char **msg) {
        json_object *o = json_tokener_parse(json);
        int r;

        assert_non_null(o);
        r = connector_check_options(&test_type, o, NULL, msg);
        json_object_put(o);
        return r;
}

/* What dpiped's "check" gets: unknown names refused by name, bad values, validate()'s verdict. */
static void test_check(void **state) {
        char *msg = NULL;

        assert_int_equal(check("{\"address\":\"a\",\"format\":\"csv\",\"interval_ms\":\"5\"}", &msg), 0);
        assert_null(msg);

        assert_int_equal(check("{\"address\":\"a\",\"intervall_ms\":\"1000\"}", &msg), -EINVAL);
        assert_string_equal(msg, "unknown option 'intervall_ms'");
        free(msg);

        assert_int_equal(check("{\"address\":\"a\",\"format\":\"yaml\"}", &msg), -EINVAL);
        assert_string_equal(msg, "unknown format");
        free(msg);

        assert_int_equal(check("{\"address\":\"a\",\"flag\":\"maybe\"}", &msg), -EINVAL);
        assert_string_equal(msg, "invalid value for option 'flag': expected a boolean (yes/no, true/false, on/off, 1/0)");
        free(msg);

        assert_int_equal(check("{}", &msg), -EINVAL);
        assert_string_equal(msg, "option 'address' is required");
        free(msg);
}

/* Without CONFIG_PARSE_STRICT an unknown name is handed back for a warning and parsing goes on. */
/* The options as dpiped stores them: values of the table's types, whatever form they came in. */
static void test_check_typed(void **state) {
        json_object *o = json_tokener_parse("{\"address\":\"a\",\"interval_ms\":\"250\",\"flag\":\"yes\",\"big\":7}");
        json_object *typed = NULL;
        char *msg = NULL;

        assert_int_equal(connector_check_options(&test_type, o, &typed, &msg), 0);
        assert_string_equal(json_object_to_json_string_ext(typed, JSON_C_TO_STRING_PLAIN),
                            "{\"address\":\"a\",\"interval_ms\":250,\"flag\":true,\"big\":7}");
        json_object_put(typed);
        json_object_put(o);
}

static void test_unknown_lenient(void **state) {
        json_object *o = json_tokener_parse("{\"address\":\"a\",\"old\":1,\"older\":\"x\"}");
        const ConnectorOption *tables[] = { table };
        TestConfig c = {};
        void *configs[] = { &c };
        char *unknown = NULL, *msg = NULL;

        assert_int_equal(config_tables_parse(tables, configs, 1, o, 0, &unknown, &msg), 0);
        assert_string_equal(unknown, "'old', 'older'");
        assert_string_equal(c.address, "a");
        free(unknown);
        config_table_free(table, &c);
        assert_int_equal(parse_flags(o, CONFIG_PARSE_STRICT, &c, &msg), -EINVAL);
        assert_string_equal(msg, "unknown option 'old'");
        free(msg);
        config_table_free(table, &c);
        json_object_put(o);
}

static void test_print(void **state) {
        const ConnectorOption *tables[] = { table };
        char *text = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&text, &size);

        assert_non_null(f);
        config_tables_print(f, tables, 1);
        fclose(f);
        assert_non_null(strstr(text, "address              string (required)   where\n"));
        assert_non_null(strstr(text, "interval_ms          u32    1000         how often\n"));
        free(text);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_defaults),
                cmocka_unit_test(test_values),
                cmocka_unit_test(test_errors),
                cmocka_unit_test(test_check),
                cmocka_unit_test(test_check_typed),
                cmocka_unit_test(test_unknown_lenient),
                cmocka_unit_test(test_print),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
