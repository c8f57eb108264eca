/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The CSV reader of dpipe-source: RFC 4180, ragged rows, type inference, error positions, and the
 * same result however the input is split into chunks. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "csv-dataset.h"

/* Loads text fed in chunks of `chunk` bytes (0 = all at once). */
static int load(const char *text, size_t len, bool infer, size_t chunk, Dataset **ret, LoadError *err) {
        Dataset *d = dataset_new();
        CsvParser *p;
        int r = 0;

        assert_non_null(d);
        p = csv_parser_new(d, infer);
        assert_non_null(p);
        if (chunk == 0)
                chunk = len ? len : 1;
        for (size_t i = 0; i < len && r >= 0; i += chunk)
                r = csv_parser_feed(p, text + i, MIN(chunk, len - i), err);
        if (r >= 0)
                r = csv_parser_finish(p, err);
        csv_parser_free(p);
        *ret = d;
        return r;
}

static void expect_row(const Dataset *d, size_t i, const char *want) {
        size_t len;
        const char *row;

        assert_true(i < d->n_rows);
        row = dataset_row(d, i, &len);
        if (len != strlen(want) || memcmp(row, want, len) != 0)
                fail_msg("row %zu: got '%.*s', want '%s'", i, (int) len, row, want);
}

static void expect_rows(const char *text, bool infer, const char *const *want, size_t n_want) {
        size_t len = strlen(text);
        /* Whole, byte by byte, and in odd-sized chunks: the rows must not depend on the split. */
        static const size_t chunks[] = { 0, 1, 2, 3, 7 };

        for (size_t c = 0; c < ELEMENTSOF(chunks); c++) {
                Dataset *d = NULL;
                LoadError err = {};
                int r = load(text, len, infer, chunks[c], &d, &err);
                if (r < 0)
                        fail_msg("chunk %zu: unexpected error %d at %lu:%lu: %s", chunks[c], r, err.line, err.column,
                                 err.message);
                assert_int_equal(d->n_rows, n_want);
                for (size_t i = 0; i < n_want; i++)
                        expect_row(d, i, want[i]);
                dataset_free(d);
        }
}

static void expect_error(const char *text, bool infer, unsigned long line, unsigned long column, const char *what) {
        static const size_t chunks[] = { 0, 1, 5 };

        for (size_t c = 0; c < ELEMENTSOF(chunks); c++) {
                Dataset *d = NULL;
                LoadError err = {};
                int r = load(text, strlen(text), infer, chunks[c], &d, &err);
                assert_int_equal(r, -EBADMSG);
                if (err.line != line || err.column != column || !strstr(err.message, what))
                        fail_msg("chunk %zu: got %lu:%lu: %s; want %lu:%lu: ...%s...", chunks[c], err.line, err.column,
                                 err.message, line, column, what);
                dataset_free(d);
        }
}

static void test_basic(void **state) {
        const char *want[] = {
                "{\"id\":\"1\",\"name\":\"alice\"}",
                "{\"id\":\"2\",\"name\":\"bob\"}",
        };
        expect_rows("id,name\n1,alice\n2,bob\n", false, want, 2);
        /* CRLF, and no line break at the very end. */
        expect_rows("id,name\r\n1,alice\r\n2,bob", false, want, 2);
        /* A UTF-8 byte order mark is skipped, blank lines too. */
        expect_rows("\xef\xbb\xbfid,name\n\n1,alice\r\n\r\n2,bob\n\n", false, want, 2);
}

static void test_quoted(void **state) {
        const char *want[] = {
                "{\"a\":\"x, y\",\"b\":\"say \\\"hi\\\"\"}",
                "{\"a\":\"two\\nlines\",\"b\":\"\"}",
                "{\"a\":\"crlf\\r\\ninside\",\"b\":\"\\\"\"}",
        };
        expect_rows("a,b\n\"x, y\",\"say \"\"hi\"\"\"\n\"two\nlines\",\"\"\n\"crlf\r\ninside\",\"\"\"\"\n", false, want, 3);

        const char *want2[] = { "{\"quoted name\":\"v\",\"b\":\"\"}" };
        expect_rows("\"quoted name\",b\nv,\n", false, want2, 1);
}

static void test_ragged(void **state) {
        /* Fewer fields than the header: the missing ones are left out. */
        const char *want[] = {
                "{\"a\":\"1\",\"b\":\"2\",\"c\":\"3\"}",
                "{\"a\":\"4\"}",
                "{\"a\":\"5\",\"b\":\"\"}",
        };
        expect_rows("a,b,c\n1,2,3\n4\n5,\n", false, want, 3);

        /* More is an error, at the first extra field. */
        expect_error("a,b\n1,2\n3,4,5\n", false, 3, 5, "more fields than the header");
}

static void test_infer(void **state) {
        const char *want[] = {
                "{\"i\":42,\"d\":-1.5e3,\"t\":true,\"f\":false,\"n\":null,\"z\":\"007\",\"s\":\"1.\",\"q\":0}",
                "{\"i\":\"True\",\"d\":\"1e\",\"t\":\" 1\",\"f\":\"-\",\"n\":\"x\",\"z\":\"0.5\",\"s\":\"NaN\",\"q\":\"--1\"}",
        };
        const char *raw[] = {
                "{\"i\":\"42\",\"d\":\"-1.5e3\",\"t\":\"true\",\"f\":\"false\",\"n\":\"\",\"z\":\"007\",\"s\":\"1.\",\"q\":\"0\"}",
        };
        const char *text = "i,d,t,f,n,z,s,q\n42,-1.5e3,true,false,,007,1.,0\nTrue,1e, 1,-,x,0.5,NaN,--1\n";
        Dataset *d = NULL;
        LoadError err = {};

        /* 0.5 is a number: check it apart, the second row's z. */
        assert_int_equal(load(text, strlen(text), true, 0, &d, &err), 0);
        assert_int_equal(d->n_rows, 2);
        expect_row(d, 0, want[0]);
        expect_row(d, 1, "{\"i\":\"True\",\"d\":\"1e\",\"t\":\" 1\",\"f\":\"-\",\"n\":\"x\",\"z\":0.5,\"s\":\"NaN\",\"q\":\"--1\"}");
        dataset_free(d);

        /* Without --infer-types everything is a string. */
        assert_int_equal(load(text, strlen(text), false, 0, &d, &err), 0);
        expect_row(d, 0, raw[0]);
        dataset_free(d);
}

static void test_errors(void **state) {
        expect_error("a,b\n1,\"open\nstill open\n", false, 2, 3, "unterminated quoted field");
        expect_error("a,b\n1,x\"y\n", false, 2, 4, "'\"' inside an unquoted field");
        expect_error("a,b\n1,\"x\"y\n", false, 2, 6, "after the closing quote");
        expect_error("a,a\n1,2\n", false, 1, 1, "duplicate field name");
        expect_error("a,b\n1,ok\xff\n", false, 2, 5, "invalid UTF-8");
        expect_error("\xef\xbb" "a\n", false, 1, 1, "invalid UTF-8");
}

static void test_empty(void **state) {
        Dataset *d = NULL;
        LoadError err = {};

        assert_int_equal(load("", 0, false, 0, &d, &err), 0);
        assert_int_equal(d->n_rows, 0);
        dataset_free(d);
        assert_int_equal(load("a,b\n", 4, false, 0, &d, &err), 0);
        assert_int_equal(d->n_rows, 0);
        dataset_free(d);
}

/* --follow: a record without its line break is held back until the rest arrives. */
static void test_incremental(void **state) {
        Dataset *d = dataset_new();
        CsvParser *p = csv_parser_new(d, false);
        LoadError err = {};

        assert_int_equal(csv_parser_feed(p, "a,b\n1,2\n3,", 10, &err), 0);
        assert_int_equal(d->n_rows, 1);
        assert_int_equal(csv_parser_feed(p, "4\n\"5\n", 5, &err), 0);
        assert_int_equal(d->n_rows, 2);
        expect_row(d, 1, "{\"a\":\"3\",\"b\":\"4\"}");
        assert_int_equal(csv_parser_feed(p, "x\",6\n", 5, &err), 0);
        assert_int_equal(d->n_rows, 3);
        expect_row(d, 2, "{\"a\":\"5\\nx\",\"b\":\"6\"}");
        /* An error drops the half-built row: the dataset holds whole rows only. */
        assert_int_equal(csv_parser_feed(p, "7,8,9\n", 6, &err), -EBADMSG);
        assert_int_equal(d->n_rows, 3);
        assert_int_equal(err.line, 6);
        csv_parser_free(p);
        dataset_free(d);
}

/* Linear: a long file loads with a fixed amount of work per byte (no quadratic re-scan). */
static void test_large(void **state) {
        size_t n = 200000, len = 0;
        char *text = malloc(n * 32 + 16);
        Dataset *d = NULL;
        LoadError err = {};

        assert_non_null(text);
        len += (size_t) sprintf(text, "k,v\n");
        for (size_t i = 0; i < n; i++)
                len += (size_t) sprintf(text + len, "%zu,\"value %zu\"\n", i, i);
        assert_int_equal(load(text, len, true, 65536, &d, &err), 0);
        assert_int_equal(d->n_rows, n);
        expect_row(d, n - 1, "{\"k\":199999,\"v\":\"value 199999\"}");
        /* Memory: the rows' text and 16 bytes of index each, not a multiple of the input. */
        assert_true(d->text.tail < len * 2);
        dataset_free(d);
        free(text);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_basic),     cmocka_unit_test(test_quoted), cmocka_unit_test(test_ragged),
                cmocka_unit_test(test_infer),     cmocka_unit_test(test_errors), cmocka_unit_test(test_empty),
                cmocka_unit_test(test_incremental), cmocka_unit_test(test_large),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
