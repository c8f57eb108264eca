/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* common/csv.c: the one CSV reader (record ends across reads, fields, BOM, header names). */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "csv.h"
#include "macro.h"

static void assert_field(const CsvRecord *r, size_t i, const char *want) {
        assert_true(i < r->n_fields);
        assert_int_equal(r->fields[i].len, strlen(want));
        assert_memory_equal(r->fields[i].value, want, strlen(want));
}

static void test_split(void **state) {
        char rec[] = "a,\"b, c\",\"say \"\"hi\"\"\",,\"multi\nline\"\r";
        CsvRecord r = {};
        const char *why = NULL;
        size_t at = 0;

        assert_int_equal(csv_split_record(&r, rec, strlen(rec), &why, &at), 5);
        assert_field(&r, 0, "a");
        assert_field(&r, 1, "b, c");
        assert_field(&r, 2, "say \"hi\"");
        assert_field(&r, 3, "");
        assert_field(&r, 4, "multi\nline"); /* the CR before the line feed is no part of it */
        assert_int_equal(r.fields[4].at, 23);
        assert_true(r.fields[4].quoted);
        csv_record_done(&r);
}

static void test_split_trailing_empty(void **state) {
        char rec[] = "a,", empty[] = "", cr[] = "\r";
        CsvRecord r = {};
        const char *why;
        size_t at;

        assert_int_equal(csv_split_record(&r, rec, 2, &why, &at), 2);
        assert_field(&r, 1, "");
        /* An empty line is no record. */
        assert_int_equal(csv_split_record(&r, empty, 0, &why, &at), 0);
        assert_int_equal(csv_split_record(&r, cr, 1, &why, &at), 0);
        csv_record_done(&r);
}

static void expect_bad(const char *text, const char *message_part, size_t want_at) {
        char *rec = strdup(text);
        CsvRecord r = {};
        const char *why = NULL;
        size_t at = 0;

        assert_non_null(rec);
        assert_int_equal(csv_split_record(&r, rec, strlen(rec), &why, &at), -EBADMSG);
        if (!strstr(why, message_part))
                fail_msg("\"%s\": message \"%s\" lacks \"%s\"", text, why, message_part);
        assert_int_equal(at, want_at);
        csv_record_done(&r);
        free(rec);
}

static void test_split_bad(void **state) {
        expect_bad("1,\"open", "unterminated quoted field", 2);
        expect_bad("1,x\"y", "'\"' inside an unquoted field", 3);
        expect_bad("1,\"x\"y", "after the closing quote", 5);
}

/* The end of a record is found the same whatever the pieces the bytes come in. */
static void test_scan_pieces(void **state) {
        const char *text = "h1,h2\n\"a\nb\",\"x\"\"\ny\"\nlast,1\n";
        size_t ends[8], n_ends = 0, want[3] = { 5, 19, 26 };

        for (size_t piece = 1; piece <= strlen(text); piece++) {
                CsvScanner s = {};
                size_t start = 0, have = 0;

                n_ends = 0;
                while (have < strlen(text)) {
                        size_t e;

                        have = MIN(have + piece, strlen(text));
                        while ((e = csv_scan_record(&s, text + start, have - start)) < have - start) {
                                ends[n_ends++] = start + e;
                                start += e + 1;
                        }
                }
                assert_int_equal(n_ends, 3);
                assert_memory_equal(ends, want, sizeof(want));
        }
}

static void test_bom(void **state) {
        unsigned st = 0;

        assert_int_equal(csv_bom_skip(&st, "\xef\xbb", 2), 2);
        assert_int_equal(csv_bom_skip(&st, "\xbf" "a", 2), 1);
        assert_int_equal(st, 3);
        assert_int_equal(csv_bom_skip(&st, "\xef\xbb\xbf", 3), 0); /* only at the start */
        st = 0;
        assert_int_equal(csv_bom_skip(&st, "a,b", 3), 0);
        st = 0;
        assert_int_equal(csv_bom_skip(&st, "\xef\xbb" "a", 3), -EILSEQ);
}

static void test_duplicate(void **state) {
        char rec[] = "a,b,\"a\"";
        CsvRecord r = {};
        const char *why;
        size_t at;

        assert_int_equal(csv_split_record(&r, rec, strlen(rec), &why, &at), 3);
        assert_int_equal(csv_header_find_duplicate(r.fields, 3), 2);
        assert_int_equal(csv_header_find_duplicate(r.fields, 2), -1);
        csv_record_done(&r);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_split),  cmocka_unit_test(test_split_trailing_empty),
                cmocka_unit_test(test_split_bad), cmocka_unit_test(test_scan_pieces),
                cmocka_unit_test(test_bom),    cmocka_unit_test(test_duplicate),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
