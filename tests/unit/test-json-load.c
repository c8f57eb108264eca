/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The JSON reader of dpipe-source: arrays, JSON Lines, documents (--records and auto-detection),
 * error positions, and the same result however the input is split. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "json-load.h"

static int load(const char *text, size_t len, const char *pointer, size_t chunk, Dataset **ret, LoadError *err) {
        Dataset *d = dataset_new();
        JsonLoader *l;
        int r = 0;

        assert_non_null(d);
        l = json_loader_new(d, pointer);
        assert_non_null(l);
        if (chunk == 0)
                chunk = len ? len : 1;
        for (size_t i = 0; i < len && r >= 0; i += chunk)
                r = json_loader_feed(l, text + i, MIN(chunk, len - i), err);
        if (r >= 0)
                r = json_loader_finish(l, false, err);
        json_loader_free(l);
        *ret = d;
        return r;
}

static void expect_rows(const char *text, const char *pointer, const char *const *want, size_t n_want) {
        static const size_t chunks[] = { 0, 1, 3, 10 };

        for (size_t c = 0; c < ELEMENTSOF(chunks); c++) {
                Dataset *d = NULL;
                LoadError err = {};
                int r = load(text, strlen(text), pointer, chunks[c], &d, &err);
                if (r < 0)
                        fail_msg("chunk %zu: error %d at %lu:%lu: %s", chunks[c], r, err.line, err.column, err.message);
                if (d->n_rows != n_want)
                        fail_msg("chunk %zu: %zu rows, want %zu", chunks[c], d->n_rows, n_want);
                for (size_t i = 0; i < n_want; i++) {
                        size_t len;
                        const char *row = dataset_row(d, i, &len);
                        if (len != strlen(want[i]) || memcmp(row, want[i], len) != 0)
                                fail_msg("chunk %zu row %zu: got '%.*s', want '%s'", chunks[c], i, (int) len, row, want[i]);
                }
                dataset_free(d);
        }
}

static void expect_error(const char *text, const char *pointer, unsigned long line, unsigned long column, const char *what) {
        static const size_t chunks[] = { 0, 1, 4 };

        for (size_t c = 0; c < ELEMENTSOF(chunks); c++) {
                Dataset *d = NULL;
                LoadError err = {};
                int r = load(text, strlen(text), pointer, chunks[c], &d, &err);
                assert_int_equal(r, -EBADMSG);
                if (err.line != line || err.column != column || !strstr(err.message, what))
                        fail_msg("chunk %zu: got %lu:%lu: %s; want %lu:%lu: ...%s...", chunks[c], err.line, err.column,
                                 err.message, line, column, what);
                dataset_free(d);
        }
}

static void test_array(void **state) {
        const char *want[] = { "{\"a\":1}", "{\"a\":\"x/y\",\"b\":[1,{\"c\":null}]}", "{}" };
        /* Pretty-printed input becomes one compact line per row; '/' is not escaped. */
        expect_rows("[\n  {\"a\": 1},\n  {\"a\": \"x\\/y\", \"b\": [1, {\"c\": null}]},\n  {}\n]\n", NULL, want, 3);
        expect_rows("  []  ", NULL, want, 0);
}

static void test_lines(void **state) {
        const char *want[] = { "{\"a\":1}", "{\"a\":2,\"s\":\"\\n\"}", "{\"a\":3}" };
        expect_rows("{\"a\":1}\n\n{\"a\":2,\"s\":\"\\n\"}\r\n{\"a\":3}", NULL, want, 3);
        /* One object that is not a document of records is one row. */
        const char *one[] = { "{\"a\":[1,2],\"b\":[]}" };
        expect_rows("{\"a\":[1,2],\"b\":[]}\n", NULL, one, 1);
}

static void test_document(void **state) {
        const char *want[] = { "{\"id\":1}", "{\"id\":2}" };
        /* Found automatically: exactly one array of objects at the top level. */
        expect_rows("{\"count\":2,\"tags\":[\"x\"],\"items\":[{\"id\":1},{\"id\":2}]}", NULL, want, 2);
        /* Chosen with a JSON Pointer, also deep inside, ~1 and ~0 escapes included. */
        expect_rows("{\"meta\":[{\"x\":1}],\"d\":{\"a/b\":[{\"id\":1},{\"id\":2}]}}", "/d/a~1b", want, 2);
        expect_rows("[{\"x\":0},{\"id\":1},{\"id\":2}]", "", (const char *[]) { "{\"x\":0}", "{\"id\":1}", "{\"id\":2}" }, 3);

        expect_error("{\"x\":[{\"a\":1}],\"y\":[{\"b\":2}]}", NULL, 1, 1, "several arrays of objects");
        expect_error("{\"d\":{}}", "/d/items", 0, 0, "no such member");
        expect_error("{\"d\":{\"items\":3}}", "/d/items", 0, 0, "not an array");
        expect_error("{\"d\":[1]}", "/d", 0, 0, "not an object");
}

static void test_errors(void **state) {
        expect_error("[{\"a\":1},\n {\"a\":2,}]", NULL, 2, 9, "unexpected character");
        expect_error("[{\"a\":1},\n 5]", NULL, 2, 2, "expected a JSON object");
        expect_error("[{\"a\":1} {\"a\":2}]", NULL, 1, 10, "expected ',' or ']'");
        expect_error("[{\"a\":1}]\nx", NULL, 2, 1, "after the end of the array");
        expect_error("[{\"a\":1},", NULL, 1, 10, "array is not closed");
        expect_error("{\"a\":1}\n{\"a\":", NULL, 2, 6, "unexpected end of file");
        expect_error("{\"a\":1}\n[1]\n", NULL, 2, 1, "expected a JSON object");
        expect_error("\"text\"", NULL, 1, 1, "expected '['");
        expect_error("{\"a\":\"\xff\"}", NULL, 1, 7, "");
        expect_error("[{\"a\":1},\n {'b':2}]", NULL, 2, 3, "single quotes");
        expect_error("{\"a\":1}\n{\"b\":\"it's\", 'c':1}", NULL, 2, 14, "single quotes");
}

/* --follow on JSON Lines: a line cut short is completed by the next read. */
static void test_follow(void **state) {
        Dataset *d = dataset_new();
        JsonLoader *l = json_loader_new(d, NULL);
        LoadError err = {};

        assert_int_equal(json_loader_feed(l, "{\"a\":1}\n{\"a\":", 13, &err), 0);
        assert_int_equal(json_loader_finish(l, true, &err), 0);
        assert_int_equal(d->n_rows, 1);
        assert_true(json_loader_can_follow(l));
        assert_int_equal(json_loader_feed(l, "2}\n{\"a\":3}\n", 11, &err), 0);
        assert_int_equal(json_loader_finish(l, true, &err), 0);
        assert_int_equal(d->n_rows, 3);
        assert_string_equal(json_loader_shape(l), "lines");
        json_loader_free(l);
        dataset_free(d);

        /* An array cannot grow by appending. */
        d = dataset_new();
        l = json_loader_new(d, NULL);
        assert_int_equal(json_loader_feed(l, "[{\"a\":1}]", 9, &err), 0);
        assert_int_equal(json_loader_finish(l, true, &err), 0);
        assert_false(json_loader_can_follow(l));
        json_loader_free(l);
        dataset_free(d);
}

/* Whether a file loads must not depend on where its reads split it (json-c's incremental tokener
 * alone takes "0" then "-}" as 0 and refuses a UTF-8 character split in two). Found by fuzz-json-load. */
static void test_split_anywhere(void **state) {
        static const char *const bad[] = {
                "{\"a\":0-}\n",
                "[{\"a\":1},{\"b\":12-}]",
                "{\"a\x02\":1}\n",
                "{\"a\xc3\":1}\n",
        };
        static const char good[] = "{\"K\xc3\xb6ln \xe2\x82\xac\":-12.5e3}\n{\"\xf0\x9f\x98\x80\":[0,-1]}\n";

        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                for (size_t chunk = 1; chunk <= strlen(bad[i]); chunk++) {
                        Dataset *d = NULL;
                        LoadError err = {};
                        if (load(bad[i], strlen(bad[i]), NULL, chunk, &d, &err) != -EBADMSG)
                                fail_msg("bad input %zu accepted with chunk %zu", i, chunk);
                        dataset_free(d);
                }
        for (size_t chunk = 1; chunk <= sizeof(good) - 1; chunk++) {
                Dataset *d = NULL;
                LoadError err = {};
                if (load(good, sizeof(good) - 1, NULL, chunk, &d, &err) < 0)
                        fail_msg("chunk %zu: %lu:%lu: %s", chunk, err.line, err.column, err.message);
                assert_int_equal(d->n_rows, 2);
                dataset_free(d);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_array),  cmocka_unit_test(test_lines),  cmocka_unit_test(test_document),
                cmocka_unit_test(test_errors), cmocka_unit_test(test_follow), cmocka_unit_test(test_split_anywhere),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
