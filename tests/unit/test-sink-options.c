/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The sink library's option tables: the common one and a type's, parsed from one object. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "pipeline-id.h"
#include "sink-internal.h"

typedef struct TestConfig {
        char *address;
        uint64_t max_bytes;
        bool flag;
} TestConfig;

static const SinkOption table[] = {
        SINK_OPTION_STRING("address", TestConfig, address, NULL, true, "where"),
        SINK_OPTION_U64("max_bytes", TestConfig, max_bytes, "0", "size"),
        SINK_OPTION_BOOL("flag", TestConfig, flag, "no", "a flag"),
        {}
};

static int test_validate(const void *config, char **ret_message) {
        const TestConfig *c = config;

        if (c->address[0] != '/') {
                *ret_message = strdup("address must be an absolute path");
                return -EINVAL;
        }
        return 0;
}

static const SinkType test_type = {
        .name = "test",
        .config_size = sizeof(TestConfig),
        .options = table,
        .validate = test_validate,
};

static int parse(const char *json, SinkCommonConfig *common, TestConfig *c, char **msg) {
        json_object *o = json_tokener_parse(json);
        int r;

        assert_non_null(o);
        memset(c, 0, sizeof(*c));
        memset(common, 0, sizeof(*common));
        r = sink_options_configure(&test_type, o, 0, common, c, msg);
        json_object_put(o);
        return r;
}

static void test_defaults_and_values(void **state) {
        SinkCommonConfig common;
        TestConfig c;
        char *msg = NULL;

        assert_int_equal(parse("{\"address\":\"/x\"}", &common, &c, &msg), 0);
        assert_string_equal(c.address, "/x");
        assert_int_equal(c.max_bytes, 0);
        assert_false(c.flag);
        assert_int_equal(common.window, 50000);
        sink_options_free(table, &c);

        assert_int_equal(parse("{\"address\":\"/y\",\"max_bytes\":\"1048576\",\"flag\":true,\"window\":7,\"other\":1}",
                               &common, &c, &msg), 0);
        assert_int_equal(c.max_bytes, 1048576);
        assert_true(c.flag);
        assert_int_equal(common.window, 7);
        sink_options_free(table, &c);
        assert_null(c.address);
}

static void test_errors(void **state) {
        SinkCommonConfig common;
        TestConfig c;
        char *msg = NULL;

        assert_int_equal(parse("{\"max_bytes\":1}", &common, &c, &msg), -EINVAL);
        assert_string_equal(msg, "option 'address' is required");
        free(msg);
        sink_options_free(table, &c);

        assert_int_equal(parse("{\"address\":\"/x\",\"max_bytes\":\"lots\"}", &common, &c, &msg), -EINVAL);
        assert_string_equal(msg, "invalid value for option 'max_bytes': expected a non-negative number");
        free(msg);
        sink_options_free(table, &c);

        assert_true(parse("{\"address\":\"/x\",\"window\":-3}", &common, &c, &msg) < 0);
        assert_string_equal(msg, "invalid value for option 'window': expected a number of 0-4294967295");
        free(msg);
        sink_options_free(table, &c);

        assert_int_equal(parse("{\"address\":1}", &common, &c, &msg), -EINVAL);
        free(msg);
        sink_options_free(table, &c);
}

static int check(const char *json, json_object **typed, char **msg) {
        json_object *o = json_tokener_parse(json);
        int r;

        assert_non_null(o);
        r = sink_check_options(&test_type, o, typed, msg);
        json_object_put(o);
        return r;
}

/* What dpiped's "check" gets: unknown names refused by name, bad values, the common rows' range,
 * validate()'s verdict; and the options typed as dpiped stores them. */
static void test_check(void **state) {
        json_object *typed = NULL;
        char *msg = NULL;

        assert_int_equal(check("{\"address\":\"/x\",\"max_bytes\":\"1048576\",\"flag\":\"yes\",\"window\":\"9\"}",
                               &typed, &msg), 0);
        assert_null(msg);
        assert_string_equal(json_object_to_json_string_ext(typed, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE),
                            "{\"address\":\"/x\",\"max_bytes\":1048576,\"flag\":true,\"window\":9}");
        json_object_put(typed);

        assert_int_equal(check("{\"address\":\"/x\",\"max_byte\":1}", NULL, &msg), -EINVAL);
        assert_string_equal(msg, "unknown option 'max_byte'");
        free(msg);

        assert_int_equal(check("{\"address\":\"x\"}", NULL, &msg), -EINVAL);
        assert_string_equal(msg, "address must be an absolute path");
        free(msg);

        assert_int_equal(check("{\"address\":\"/x\",\"window\":0}", NULL, &msg), -EINVAL);
        assert_string_equal(msg, "option 'window' must be 1-1000000");
        free(msg);

        assert_int_equal(check("{}", NULL, &msg), -EINVAL);
        assert_string_equal(msg, "option 'address' is required");
        free(msg);
}

static void test_pipeline_id(void **state) {
        char id[33];

        assert_true(pipeline_id_is_valid("pipeA"));
        assert_true(pipeline_id_is_valid("a_b-C9"));
        assert_true(pipeline_id_is_valid("0123456789012345678901234567890123456789012345678901234567890123"));
        assert_false(pipeline_id_is_valid("01234567890123456789012345678901234567890123456789012345678901234"));
        assert_false(pipeline_id_is_valid(""));
        assert_false(pipeline_id_is_valid(NULL));
        assert_false(pipeline_id_is_valid("a.b")); /* one NATS subject token */
        assert_false(pipeline_id_is_valid("a*"));
        assert_false(pipeline_id_is_valid("a b"));
        assert_false(pipeline_id_is_valid("a:b")); /* Nats-Msg-Id is <id>:<offset> */

        /* Where /etc/machine-id exists: stable, 32 hex digits, and not the machine id itself. */
        if (pipeline_id_default(id) >= 0) {
                char again[33], machine[64] = "";
                FILE *f = fopen("/etc/machine-id", "re");

                assert_int_equal(strlen(id), 32);
                assert_true(pipeline_id_is_valid(id));
                assert_int_equal(pipeline_id_default(again), 0);
                assert_string_equal(id, again);
                if (f) {
                        assert_non_null(fgets(machine, sizeof(machine), f));
                        fclose(f);
                        assert_false(strncmp(machine, id, 32) == 0);
                }
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_defaults_and_values),
                cmocka_unit_test(test_errors),
                cmocka_unit_test(test_check),
                cmocka_unit_test(test_pipeline_id),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
