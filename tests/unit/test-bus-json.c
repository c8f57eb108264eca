/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>
#include <systemd/sd-bus.h>

#include "bus-json.h"
#include "json-util.h"
#include "util.h"

/* Messages need a bus that is not in its initial state; a peer connection nobody answers will do. */
static sd_bus *bus_peer(void) {
        sd_bus *bus = NULL;
        int pair[2];

        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, pair), 0);
        assert_int_equal(sd_bus_new(&bus), 0);
        assert_int_equal(sd_bus_set_fd(bus, pair[0], pair[0]), 0);
        assert_true(sd_bus_start(bus) >= 0);
        safe_close(pair[1]);
        return bus;
}

static sd_bus_message *new_message(sd_bus *bus) {
        sd_bus_message *m = NULL;

        assert_int_equal(sd_bus_message_new_method_call(bus, &m, "org.example", "/", "org.example.I", "M"), 0);
        return m;
}

static void seal(sd_bus_message *m) {
        assert_int_equal(sd_bus_message_seal(m, 1, 0), 0);
        assert_true(sd_bus_message_rewind(m, true) >= 0);
}

/* Every basic type, and arrays of strings when asked for. */
static void test_read(void **state) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = bus_peer();
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = new_message(bus);
        _cleanup_json_ struct json_object *o = NULL;
        const char *strv[] = { "a", "b", NULL };

        assert_true(sd_bus_message_open_container(m, 'a', "{sv}") >= 0);
        assert_true(sd_bus_message_append(m, "{sv}", "s", "s", "text") >= 0);
        assert_true(sd_bus_message_append(m, "{sv}", "o", "o", "/a/b") >= 0);
        assert_true(sd_bus_message_append(m, "{sv}", "b", "b", 1) >= 0);
        assert_true(sd_bus_message_append(m, "{sv}", "y", "y", (uint8_t) 200) >= 0);
        assert_true(sd_bus_message_append(m, "{sv}", "n", "n", (int16_t) -5) >= 0);
        assert_true(sd_bus_message_append(m, "{sv}", "u", "u", UINT32_MAX) >= 0);
        assert_true(sd_bus_message_append(m, "{sv}", "x", "x", INT64_MIN) >= 0);
        assert_true(sd_bus_message_append(m, "{sv}", "t", "t", UINT64_MAX) >= 0);
        assert_true(sd_bus_message_append(m, "{sv}", "t1", "t", (uint64_t) 7) >= 0);
        assert_true(sd_bus_message_append(m, "{sv}", "d", "d", 2.5) >= 0);
        assert_true(sd_bus_message_open_container(m, 'e', "sv") >= 0);
        assert_true(sd_bus_message_append(m, "s", "as") >= 0);
        assert_true(sd_bus_message_open_container(m, 'v', "as") >= 0);
        assert_true(sd_bus_message_append_strv(m, (char **) strv) >= 0);
        assert_true(sd_bus_message_close_container(m) >= 0);
        assert_true(sd_bus_message_close_container(m) >= 0);
        assert_true(sd_bus_message_close_container(m) >= 0);
        seal(m);

        assert_int_equal(bus_message_read_dict_json(m, BUS_JSON_ARRAYS, &o, NULL, NULL), 0);
        assert_string_equal(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN),
                            "{\"s\":\"text\",\"o\":\"\\/a\\/b\",\"b\":true,\"y\":200,\"n\":-5,\"u\":4294967295,"
                            "\"x\":-9223372036854775808,\"t\":18446744073709551615,\"t1\":7,\"d\":2.5,"
                            "\"as\":[\"a\",\"b\"]}");
        /* Small unsigned values are plain int64 to json-c, so callers' int checks and getters work. */
        assert_int_equal(json_object_get_int64(json_object_object_get(o, "t1")), 7);
}

/* Without BUS_JSON_ARRAYS an array is refused, naming the key; with SKIP it is left out. */
static void test_refuse_and_skip(void **state) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = bus_peer();
        const char *strv[] = { "x", NULL };

        for (int skip = 0; skip <= 1; skip++) {
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = new_message(bus);
                _cleanup_json_ struct json_object *o = NULL;
                const char *key = NULL, *type = NULL;

                assert_true(sd_bus_message_open_container(m, 'a', "{sv}") >= 0);
                assert_true(sd_bus_message_append(m, "{sv}", "before", "s", "1") >= 0);
                assert_true(sd_bus_message_open_container(m, 'e', "sv") >= 0);
                assert_true(sd_bus_message_append(m, "s", "list") >= 0);
                assert_true(sd_bus_message_open_container(m, 'v', "as") >= 0);
                assert_true(sd_bus_message_append_strv(m, (char **) strv) >= 0);
                assert_true(sd_bus_message_close_container(m) >= 0);
                assert_true(sd_bus_message_close_container(m) >= 0);
                assert_true(sd_bus_message_append(m, "{sv}", "nan", "d", NAN) >= 0);
                assert_true(sd_bus_message_append(m, "{sv}", "after", "s", "2") >= 0);
                assert_true(sd_bus_message_close_container(m) >= 0);
                seal(m);

                if (!skip) {
                        assert_int_equal(bus_message_read_dict_json(m, 0, &o, &key, &type), -EOPNOTSUPP);
                        assert_null(o);
                        assert_string_equal(key, "list");
                        assert_string_equal(type, "as");
                } else {
                        assert_int_equal(bus_message_read_dict_json(m, BUS_JSON_SKIP_UNSUPPORTED, &o, NULL, NULL), 0);
                        assert_string_equal(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN),
                                            "{\"before\":\"1\",\"after\":\"2\"}");
                }
        }
}

/* NaN and Infinity have no JSON: refused with their own errors, naming the key. */
static void test_non_finite(void **state) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = bus_peer();
        const double values[] = { NAN, INFINITY, -INFINITY };
        const int errors[] = { -EDOM, -ERANGE, -ERANGE };

        for (size_t i = 0; i < ELEMENTSOF(values); i++) {
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = new_message(bus);
                _cleanup_json_ struct json_object *o = NULL;
                const char *key = NULL;

                assert_true(sd_bus_message_open_container(m, 'a', "{sv}") >= 0);
                assert_true(sd_bus_message_append(m, "{sv}", "weight", "d", values[i]) >= 0);
                assert_true(sd_bus_message_close_container(m) >= 0);
                seal(m);
                assert_int_equal(bus_message_read_dict_json(m, 0, &o, &key, NULL), errors[i]);
                assert_string_equal(key, "weight");
        }
}

/* JSON → a{sv} → JSON: the same object, integers as "t" (negative ones as "x"). */
static void test_round_trip(void **state) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = bus_peer();
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = new_message(bus);
        _cleanup_json_ struct json_object *in = NULL, *out = NULL;
        const char *key, *contents;
        char type;

        in = json_tokener_parse("{\"address\":\"127.0.0.1:9\",\"interval_ms\":250,\"neg\":-3,\"on\":false,\"w\":0.5}");
        assert_non_null(in);
        assert_int_equal(bus_message_append_dict_json(m, in), 0);
        seal(m);

        /* interval_ms goes as "t", as org.dpipe.Pipeline1(5) and busctl users see it. */
        assert_true(sd_bus_message_enter_container(m, 'a', "{sv}") > 0);
        for (int i = 0; i < 3; i++) {
                assert_true(sd_bus_message_enter_container(m, 'e', "sv") > 0);
                assert_true(sd_bus_message_read(m, "s", &key) > 0);
                assert_true(sd_bus_message_peek_type(m, &type, &contents) > 0);
                if (i == 1)
                        assert_string_equal(contents, "t");
                if (i == 2)
                        assert_string_equal(contents, "x");
                assert_true(sd_bus_message_skip(m, "v") >= 0);
                assert_true(sd_bus_message_exit_container(m) >= 0);
        }
        assert_true(sd_bus_message_rewind(m, true) >= 0);
        assert_int_equal(bus_message_read_dict_json(m, 0, &out, NULL, NULL), 0);
        assert_true(json_object_equal(in, out));

        /* NULL: no options, an empty a{sv}. */
        {
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *e = new_message(bus);
                _cleanup_json_ struct json_object *empty = NULL;

                assert_int_equal(bus_message_append_dict_json(e, NULL), 0);
                seal(e);
                assert_int_equal(bus_message_read_dict_json(e, 0, &empty, NULL, NULL), 0);
                assert_int_equal(json_object_object_length(empty), 0);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_read),
                cmocka_unit_test(test_refuse_and_skip),
                cmocka_unit_test(test_non_finite),
                cmocka_unit_test(test_round_trip),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
