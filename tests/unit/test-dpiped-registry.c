/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* dpiped's source definitions: option validation and normalisation, and the persisted registry
 * (format, parse, save/load/remove in a directory, broken entries skipped); the sinks' registry,
 * the same loader with another RegistryKind. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "dpiped-registry.h"
#include "dpiped-sink.h"
#include "dpiped-source.h"
#include "json-util.h"
#include "util.h"

static struct json_object *parse(const char *s) {
        struct json_object *o = NULL;

        assert_int_equal(json_parse_n(s, strlen(s), &o, NULL), 0);
        return o;
}

static int normalize(const char *type, const char *options, char **ret_json, char *reason) {
        _cleanup_json_ struct json_object *in = options ? parse(options) : NULL, *out = NULL;
        int r;

        r = source_options_normalize(type, in, &out, reason, 256);
        if (r >= 0 && ret_json)
                *ret_json = strdup(json_object_to_json_string_ext(out, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
        return r;
}

static void check_ok(const char *type, const char *options, const char *expected) {
        _cleanup_free_ char *out = NULL;
        char reason[256];

        assert_int_equal(normalize(type, options, &out, reason), 0);
        assert_string_equal(out, expected);
}

static void check_bad(const char *type, const char *options, const char *reason_part) {
        char reason[256] = "";

        assert_int_equal(normalize(type, options, NULL, reason), -EINVAL);
        if (!strstr(reason, reason_part))
                fail_msg("reason \"%s\" does not contain \"%s\"", reason, reason_part);
}

static void test_options(void **state) {
        check_ok("tcp", "{\"address\":\"127.0.0.1:9000\"}", "{\"address\":\"127.0.0.1:9000\"}");
        check_ok("tcp", "{\"address\":\"[::1]:9000\",\"format\":\"csv\",\"csv_header\":\"a,b\"}",
                 "{\"address\":\"[::1]:9000\",\"format\":\"csv\",\"csv_header\":\"a,b\"}");
        check_ok("tcp", "{\"address\":\"source.example.org:1\"}", "{\"address\":\"source.example.org:1\"}");
        /* dpiped knows no type's option names or values: those are the connector's ("check").
         * An option nobody knows, or one gone since, is kept: a saved source must load. */
        check_ok("http", "{\"address\":\"http://h:8080/records\",\"interval_ms\":\"500\",\"timeout_ms\":2000}",
                 "{\"address\":\"http://h:8080/records\",\"interval_ms\":\"500\",\"timeout_ms\":2000}");
        check_ok("tcp", "{\"address\":\"h:1\",\"intervall_ms\":\"1000\",\"format\":\"yaml\"}",
                 "{\"address\":\"h:1\",\"intervall_ms\":\"1000\",\"format\":\"yaml\"}");
        check_ok("file", "{\"address\":\"/var/log/x\",\"follow\":true,\"x.y\":3}",
                 "{\"address\":\"/var/log/x\",\"follow\":true,\"x.y\":3}");

        check_bad("tcp", NULL, "\"address\" is required");
        check_bad("tcp", "{}", "\"address\" is required");
        check_bad("tcp", "{\"address\":\"\"}", "\"address\" is required");
        check_bad("tcp", "{\"address\":5}", "\"address\" is required");
        check_bad("tcp", "{\"address\":\"h:1\",\"extra\":[1]}", "string, number or boolean");
        check_bad("tcp", "{\"address\":\"h:1\",\"bad key\":1}", "invalid option name");
        check_bad("other", "{\"address\":\"a\\u0001\"}", "control characters");
}

static void test_types_and_states(void **state) {
        assert_true(source_type_is_valid("tcp"));
        assert_true(source_type_is_valid("my-connector_2"));
        assert_false(source_type_is_valid(""));
        assert_false(source_type_is_valid(".."));
        assert_false(source_type_is_valid("a/b"));
        assert_false(source_type_is_valid(NULL));

        for (int i = 0; i < _SOURCE_STATE_MAX; i++)
                assert_int_equal(source_state_from_string(source_state_to_string((SourceState) i)), i);
        assert_string_equal(source_state_to_string(SOURCE_BACKOFF), "backoff");
        assert_int_equal(source_state_from_string("sleeping"), _SOURCE_STATE_INVALID);
        assert_null(source_state_to_string(_SOURCE_STATE_MAX));
}

static Source *make_source(const char *name, const char *type, const char *options, bool paused) {
        _cleanup_json_ struct json_object *o = parse(options);
        Source *s = NULL;

        assert_int_equal(source_new(name, type, o, &s), 0);
        s->paused = paused;
        return s;
}

static void test_format_parse(void **state) {
        _cleanup_(source_freep) Source *a = make_source("demo", "tcp", "{\"address\":\"h:1\",\"interval_ms\":5}", true);
        _cleanup_(source_freep) Source *b = NULL;
        _cleanup_free_ char *text = source_registry_format(a), *text2 = NULL;

        assert_non_null(text);
        assert_int_equal(source_registry_parse(text, strlen(text), &b), 0);
        assert_string_equal(b->name, "demo");
        assert_string_equal(b->type, "tcp");
        assert_string_equal(source_address(b), "h:1");
        assert_true(b->paused);
        assert_int_equal(b->state, SOURCE_PAUSED);
        text2 = source_registry_format(b);
        assert_string_equal(text, text2);

        /* Broken or hand-edited entries are refused, not half-loaded. */
        static const char *const bad[] = {
                "",
                "[]",
                "{\"name\":\"x\"}",
                "{\"name\":\"bad/name\",\"type\":\"tcp\",\"options\":{\"address\":\"h:1\"}}",
                "{\"name\":\"x\",\"type\":\"tcp\",\"options\":{\"address\":\"\"}}",
                "{\"name\":\"x\",\"type\":\"tcp\",\"options\":{\"address\":\"h:1\"}",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                Source *s = NULL;
                assert_int_equal(source_registry_parse(bad[i], strlen(bad[i]), &s), -EBADMSG);
                assert_null(s);
        }
}

static void test_set_state(void **state) {
        _cleanup_(source_freep) Source *s = make_source("x", "tcp", "{\"address\":\"h:1\"}", false);

        assert_int_equal(s->state, SOURCE_CONNECTING);
        assert_true(source_set_state(s, SOURCE_ACTIVE, NULL, 100));
        assert_int_equal(s->state_change_usec, 100);
        assert_false(source_set_state(s, SOURCE_ACTIVE, NULL, 200));
        assert_false(source_set_state(s, SOURCE_ACTIVE, "", 200));
        assert_int_equal(s->state_change_usec, 100);
        assert_int_equal(s->last_error_usec, 0);
        assert_true(source_set_state(s, SOURCE_BACKOFF, "connection refused", 300));
        assert_string_equal(s->last_error, "connection refused");
        assert_int_equal(s->last_error_usec, 300);
        /* The same error again while failing: not a change, but its time is the latest. */
        assert_false(source_set_state(s, SOURCE_BACKOFF, "connection refused", 400));
        assert_int_equal(s->last_error_usec, 400);
        s->last_error_usec = 300;

        /* Recovered: the error stays, with its time, for dpipectl status to show as past; the
         * connector repeating it in its reports of a running source does not renew it. */
        assert_true(source_set_state(s, SOURCE_ACTIVE, "", 500));
        assert_string_equal(s->last_error, "connection refused");
        assert_int_equal(s->last_error_usec, 300);
        assert_int_equal(s->state_change_usec, 500);
        assert_false(source_set_state(s, SOURCE_ACTIVE, "connection refused", 600));
        assert_int_equal(s->last_error_usec, 300);
}

static void test_degraded(void **state) {
        /* Active with a skip 10 s ago and a 60 s window: degraded; after the window: active. */
        assert_int_equal(source_effective_state(SOURCE_ACTIVE, 1000, 60, 1010), SOURCE_DEGRADED);
        assert_int_equal(source_effective_state(SOURCE_ACTIVE, 1000, 60, 1060), SOURCE_ACTIVE);
        assert_int_equal(source_effective_state(SOURCE_ACTIVE, 0, 60, 1010), SOURCE_ACTIVE);
        assert_int_equal(source_effective_state(SOURCE_ACTIVE, 1000, 0, 1010), SOURCE_ACTIVE);
        /* Other states are what they are: a failing source is not "degraded". */
        assert_int_equal(source_effective_state(SOURCE_BACKOFF, 1000, 60, 1010), SOURCE_BACKOFF);
        assert_string_equal(source_state_to_string(SOURCE_DEGRADED), "degraded");
        assert_int_equal(source_state_from_string("degraded"), SOURCE_DEGRADED);
        assert_true(source_state_is_healthy(SOURCE_ACTIVE));
        assert_true(source_state_is_healthy(SOURCE_PAUSED));
        assert_false(source_state_is_healthy(SOURCE_DEGRADED));
        assert_false(source_state_is_healthy(SOURCE_FAILED));
}

static void test_save_load_remove(void **state) {
        char tmpl[] = "/tmp/test-dpiped-registry.XXXXXX";
        _cleanup_free_ char *dir = NULL, *junk = NULL, *stray = NULL, *mismatch = NULL;
        Source **list = NULL;
        size_t n = 0;

        assert_non_null(mkdtemp(tmpl));
        dir = path_join(tmpl, "sources");

        /* A missing directory is an empty registry. */
        assert_int_equal(registry_load(dir, &list, &n), 0);
        assert_int_equal(n, 0);
        assert_null(list[0]);
        free(list);

        {
                _cleanup_(source_freep) Source *b = make_source("b", "http", "{\"address\":\"http://h/\"}", false);
                _cleanup_(source_freep) Source *a = make_source("a.1", "tcp", "{\"address\":\"h:1\"}", true);
                assert_int_equal(registry_save(dir, b), 0);
                assert_int_equal(registry_save(dir, a), 0);
                /* Saving again replaces the entry. */
                a->paused = false;
                assert_int_equal(registry_save(dir, a), 0);
        }
        /* Leftovers of an interrupted write, a broken entry and a misnamed one are skipped. */
        junk = path_join(dir, "c.source.tmp.123");
        stray = path_join(dir, "d.source");
        mismatch = path_join(dir, "e.source");
        assert_int_equal(write_file_atomic(junk, "{", 1), 0);
        assert_int_equal(write_file_atomic(stray, "{\"name\":", 8), 0);
        {
                _cleanup_(source_freep) Source *f = make_source("f", "tcp", "{\"address\":\"h:1\"}", false);
                _cleanup_free_ char *text = source_registry_format(f);
                assert_int_equal(write_file_atomic(mismatch, text, strlen(text)), 0);
        }

        assert_int_equal(registry_load(dir, &list, &n), 0);
        assert_int_equal(n, 2);
        assert_string_equal(list[0]->name, "a.1");
        assert_false(list[0]->paused);
        assert_string_equal(list[1]->name, "b");
        assert_string_equal(source_address(list[1]), "http://h/");
        assert_null(list[2]);
        for (size_t i = 0; i < n; i++)
                source_free(list[i]);
        free(list);

        assert_int_equal(registry_remove(dir, "a.1"), 0);
        assert_int_equal(registry_remove(dir, "a.1"), 0); /* gone already: fine */
        assert_int_equal(registry_load(dir, &list, &n), 0);
        assert_int_equal(n, 1);
        assert_string_equal(list[0]->name, "b");
        source_free(list[0]);
        free(list);

        assert_int_equal(registry_remove(dir, "b"), 0);
        (void) unlink(junk);
        (void) unlink(stray);
        (void) unlink(mismatch);
        assert_int_equal(rmdir(dir), 0);
        assert_int_equal(rmdir(tmpl), 0);
}

static void test_sinks(void **state) {
        char tmpl[] = "/tmp/test-dpiped-registry.XXXXXX";
        _cleanup_free_ char *stray = NULL, *source = NULL;
        _cleanup_json_ struct json_object *options = parse("{\"address\":\"/var/out.jsonl\",\"max_files\":\"3\"}");
        Sink **list = NULL;
        size_t n = 0;

        assert_non_null(mkdtemp(tmpl));
        {
                _cleanup_(sink_freep) Sink *z = NULL, *a = NULL;
                assert_int_equal(sink_new("z", "file", options, &z), 0);
                assert_int_equal(sink_new("a", "nats", options, &a), 0);
                assert_int_equal(sink_registry_save(tmpl, z), 0);
                assert_int_equal(sink_registry_save(tmpl, a), 0);
        }
        /* A broken sink entry, and a source's entry in the same directory: neither is a sink. */
        stray = path_join(tmpl, "b.sink");
        assert_int_equal(write_file_atomic(stray, "{\"name\":\"b\",\"type\":\"file\"}", 26), 0);
        {
                _cleanup_(source_freep) Source *src = make_source("s", "tcp", "{\"address\":\"h:1\"}", false);
                assert_int_equal(registry_save(tmpl, src), 0);
        }
        source = path_join(tmpl, "s.source");

        assert_int_equal(sink_registry_load(tmpl, &list, &n), 0);
        assert_int_equal(n, 2);
        assert_string_equal(list[0]->name, "a");
        assert_string_equal(list[0]->type, "nats");
        assert_string_equal(list[1]->name, "z");
        assert_string_equal(sink_address(list[1]), "/var/out.jsonl");
        assert_string_equal(json_object_get_string(json_object_object_get(list[1]->options, "max_files")), "3");
        assert_null(list[2]);
        for (size_t i = 0; i < n; i++)
                sink_free(list[i]);
        free(list);

        assert_int_equal(sink_registry_remove(tmpl, "a"), 0);
        assert_int_equal(sink_registry_remove(tmpl, "z"), 0);
        assert_int_equal(sink_registry_load(tmpl, &list, &n), 0);
        assert_int_equal(n, 0);
        free(list);
        assert_int_equal(unlink(stray), 0);
        assert_int_equal(unlink(source), 0);
        assert_int_equal(rmdir(tmpl), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_options),      cmocka_unit_test(test_types_and_states),
                cmocka_unit_test(test_format_parse), cmocka_unit_test(test_set_state),
                cmocka_unit_test(test_degraded),
                cmocka_unit_test(test_save_load_remove),
                cmocka_unit_test(test_sinks),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
