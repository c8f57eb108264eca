/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* dpiped's inline command form: each command maps 1:1 to the JSON request (dpiped(8), CLIENT PROTOCOL). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "dpiped-request.h"
#include "json-util.h"

/* Maps line and compares the compact JSON form with expected. */
static void check(const char *line, const char *expected) {
        _cleanup_json_ struct json_object *o = NULL;
        _cleanup_free_ char *copy = strdup(line);
        const char *why = NULL;

        assert_non_null(copy);
        assert_int_equal(request_from_inline(copy, &o, &why), 0);
        assert_string_equal(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE),
                            expected);
}

static void check_error(const char *line, int error, const char *why_part) {
        _cleanup_json_ struct json_object *o = NULL;
        _cleanup_free_ char *copy = strdup(line);
        const char *why = NULL;

        assert_non_null(copy);
        assert_int_equal(request_from_inline(copy, &o, &why), error);
        assert_null(o);
        assert_non_null(why);
        assert_non_null(strstr(why, why_part));
}

static void test_plain(void **state) {
        check("hello", "{\"op\":\"hello\",\"version\":1}");
        check("hello s3cr3t-s3cr3t", "{\"op\":\"hello\",\"version\":1,\"token\":\"s3cr3t-s3cr3t\"}");
        check("hello \"a b\\\"c\"", "{\"op\":\"hello\",\"version\":1,\"token\":\"a b\\\"c\"}");
        check_error("hello a b", -EINVAL, "usage: hello [TOKEN]");
        check("ping", "{\"op\":\"ping\"}");
        check("pong", "{\"op\":\"pong\"}");
        check("list", "{\"op\":\"list_sources\"}");
        check("status", "{\"op\":\"status\"}");
        check("quit", "{\"op\":\"quit\"}");
        check("help", "{\"op\":\"help\"}");
        check("  \tping  ", "{\"op\":\"ping\"}");
        check_error("list all", -EINVAL, "no arguments");
}

static void test_named(void **state) {
        check("remove demo", "{\"op\":\"remove_source\",\"name\":\"demo\"}");
        check("pause demo", "{\"op\":\"pause_source\",\"name\":\"demo\"}");
        check("start demo", "{\"op\":\"resume_source\",\"name\":\"demo\"}");
        check("resume demo", "{\"op\":\"resume_source\",\"name\":\"demo\"}");
        /* The name is passed on as it is: validating it is the manager's job (invalid_argument). */
        check("remove \"a b\"", "{\"op\":\"remove_source\",\"name\":\"a b\"}");
        check_error("remove", -EINVAL, "usage");
        check_error("pause a b", -EINVAL, "usage");
}

static void test_add(void **state) {
        check("add demo tcp address=127.0.0.1:9000",
              "{\"op\":\"add_source\",\"name\":\"demo\",\"type\":\"tcp\",\"options\":{\"address\":\"127.0.0.1:9000\"}}");
        /* Quotes group words, = splits at the first one, nothing is expanded. */
        check("add w http \"address=http://h/x?a=1&b=2\" csv_header=\"a, b\" query=$HOME interval_ms=500",
              "{\"op\":\"add_source\",\"name\":\"w\",\"type\":\"http\",\"options\":{\"address\":\"http://h/x?a=1&b=2\","
              "\"csv_header\":\"a, b\",\"query\":\"$HOME\",\"interval_ms\":\"500\"}}");
        check("add x tcp", "{\"op\":\"add_source\",\"name\":\"x\",\"type\":\"tcp\",\"options\":{}}");
        check("add x tcp \"q=say \\\"hi\\\"\"",
              "{\"op\":\"add_source\",\"name\":\"x\",\"type\":\"tcp\",\"options\":{\"q\":\"say \\\"hi\\\"\"}}");
        check_error("add x", -EINVAL, "usage");
        check_error("add x tcp address", -EINVAL, "key=value");
        check_error("add x tcp =value", -EINVAL, "key=value");
        check_error("add x tcp \"address=1", -EINVAL, "unterminated quote");
}

static void test_subscribe(void **state) {
        check("subscribe", "{\"op\":\"subscribe\"}");
        check("subscribe earliest", "{\"op\":\"subscribe\",\"from\":\"earliest\"}");
        check("subscribe latest", "{\"op\":\"subscribe\",\"from\":\"latest\"}");
        check("subscribe 42", "{\"op\":\"subscribe\",\"from\":42}");
        check("subscribe committed name=analytics window=5 sources=a,b",
              "{\"op\":\"subscribe\",\"from\":\"committed\",\"name\":\"analytics\",\"window\":5,\"sources\":[\"a\",\"b\"]}");
        check("subscribe window=x", "{\"op\":\"subscribe\",\"window\":\"x\"}"); /* the server says invalid_argument */
        check_error("subscribe window=5 earliest", -EINVAL, "usage");
        check_error("subscribe colour=red", -EINVAL, "unknown subscribe argument");
}

static void test_ack(void **state) {
        check("ack 0", "{\"op\":\"ack\",\"offset\":0}");
        check("ack 18446744073709551", "{\"op\":\"ack\",\"offset\":18446744073709551}");
        check_error("ack", -EINVAL, "usage");
        check_error("ack -1", -EINVAL, "usage");
        check_error("ack 1x", -EINVAL, "usage");
        check_error("ack 1 2", -EINVAL, "usage");
}

static void test_unknown(void **state) {
        check_error("fly", -EOPNOTSUPP, "unknown command");
        check_error("[1,2]", -EOPNOTSUPP, "unknown command");
        check_error("", -EINVAL, "empty");
        check_error("   ", -EINVAL, "empty");
        check_error("\"unterminated", -EINVAL, "unterminated quote");
}

static void test_too_many_words(void **state) {
        char line[REQUEST_WORDS_MAX * 4 + 16] = "add x tcp";
        size_t n = strlen(line);

        for (int i = 0; i < REQUEST_WORDS_MAX; i++)
                n += (size_t) sprintf(line + n, " a=1");
        check_error(line, -EINVAL, "too many words");
}

static void test_utf8(void **state) {
        static const char *const good[] = {
                "", "ascii", "gr\xc3\xbc\xc3\x9f" "e", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\xef\xbf\xbf",
                "\xf4\x8f\xbf\xbf",
        };
        static const char *const bad[] = {
                "\xff", "\xc3", "\xc3(", "\xc0\xaf" /* overlong */, "\xe0\x80\xaf" /* overlong */,
                "\xed\xa0\x80" /* surrogate */, "\xf4\x90\x80\x80" /* > U+10FFFF */, "\xf0\x9f\x98",
                "ok\x80",
        };

        for (size_t i = 0; i < ELEMENTSOF(good); i++)
                assert_true(utf8_is_valid_n(good[i], strlen(good[i])));
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                assert_false(utf8_is_valid_n(bad[i], strlen(bad[i])));
}

/* A whole line as dpiped gets it: blank, JSON, inline, and each kind of error with its code. */
static void test_parse_line(void **state) {
        static const struct {
                const char *line, *json, *code, *why;
        } cases[] = {
                { "", NULL, NULL, NULL },
                { " \t ", NULL, NULL, NULL },
                { "ping", "{\"op\":\"ping\"}", NULL, NULL },
                { "  {\"op\":\"ping\",\"id\":3}", "{\"op\":\"ping\",\"id\":3}", NULL, NULL },
                { "{\"op\":1}", "{\"op\":1}", NULL, NULL }, /* a request; its op is the dispatcher's concern */
                { "{not json", NULL, "bad_request", "malformed JSON" },
                { "{\"a\":1} x", NULL, "bad_request", "malformed JSON" },
                { "{}[", NULL, "bad_request", "malformed JSON" },
                { "fly away", NULL, "unknown_op", "unknown command" },
                { "add \"open", NULL, "bad_request", "unterminated quote" },
                { "ok\x80", NULL, "bad_request", "not UTF-8 text" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_json_ struct json_object *o = NULL;
                _cleanup_free_ char *copy = strdup(cases[i].line);
                const char *code = NULL, *why = NULL;
                int r;

                assert_non_null(copy);
                r = request_parse_line(copy, strlen(copy), &o, &code, &why);
                if (!cases[i].code) {
                        assert_int_equal(r, 0);
                        if (!cases[i].json)
                                assert_null(o);
                        else
                                assert_string_equal(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN),
                                                    cases[i].json);
                        continue;
                }
                assert_true(r < 0);
                assert_null(o);
                assert_string_equal(code, cases[i].code);
                if (!strstr(why, cases[i].why))
                        fail_msg("line %zu: \"%s\" not in \"%s\"", i, cases[i].why, why);
        }
}

static void test_help_list(void **state) {
        size_t n = 0;

        for (; request_inline_help[n]; n++)
                assert_true(strlen(request_inline_help[n]) > 0);
        assert_true(n >= 13);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_plain),     cmocka_unit_test(test_named),
                cmocka_unit_test(test_add),       cmocka_unit_test(test_subscribe),
                cmocka_unit_test(test_ack),       cmocka_unit_test(test_unknown),
                cmocka_unit_test(test_too_many_words), cmocka_unit_test(test_help_list),
                cmocka_unit_test(test_utf8),      cmocka_unit_test(test_parse_line),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
