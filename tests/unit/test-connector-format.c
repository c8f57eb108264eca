/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Record splitting of the connector library (CSV records themselves: test-csv-reader.c). */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "connector-format.h"

static void test_format_names(void **state) {
        assert_int_equal(record_format_from_string("csv"), RECORD_FORMAT_CSV);
        assert_int_equal(record_format_from_string("dpipe"), RECORD_FORMAT_DPIPE);
        assert_int_equal(record_format_from_string("auto"), RECORD_FORMAT_AUTO);
        assert_int_equal(record_format_from_string("xml"), -EINVAL);
        assert_int_equal(record_format_from_string(NULL), -EINVAL);
        assert_string_equal(record_format_to_string(RECORD_FORMAT_LINES), "lines");
}

static void test_next_lines(void **state) {
        RecordReader r;
        Buffer b = {};
        char *rec;
        size_t len;

        assert_int_equal(record_reader_init(&r, RECORD_FORMAT_JSONL, 16, NULL), 0);
        assert_int_equal(buffer_append_str(&b, "{\"a\":1}\r\n{\"b\""), 0);
        assert_int_equal(record_reader_next(&r, &b, false, &rec, &len), 1);
        assert_string_equal(rec, "{\"a\":1}"); /* \r removed */
        assert_int_equal(len, 7);
        assert_int_equal(r.offset, 9);
        /* Incomplete: wait for more. */
        assert_int_equal(record_reader_next(&r, &b, false, &rec, &len), 0);
        assert_int_equal(buffer_append_str(&b, ":2}\n"), 0);
        assert_int_equal(record_reader_next(&r, &b, false, &rec, &len), 1);
        assert_string_equal(rec, "{\"b\":2}");
        /* The last line of a finished stream needs no newline. */
        assert_int_equal(buffer_append_str(&b, "tail"), 0);
        assert_int_equal(record_reader_next(&r, &b, false, &rec, &len), 0);
        assert_int_equal(record_reader_next(&r, &b, true, &rec, &len), 1);
        assert_string_equal(rec, "tail");
        assert_int_equal(record_reader_next(&r, &b, true, &rec, &len), 0);
        buffer_done(&b);
        record_reader_done(&r);
}

static void test_next_oversized(void **state) {
        RecordReader r;
        Buffer b = {};
        char *rec;
        size_t len;

        assert_int_equal(record_reader_init(&r, RECORD_FORMAT_LINES, 8, NULL), 0);
        /* Complete but too long. */
        assert_int_equal(buffer_append_str(&b, "0123456789\nok\n"), 0);
        assert_int_equal(record_reader_next(&r, &b, false, &rec, &len), -E2BIG);
        assert_int_equal(r.skipped_line, 1);
        assert_int_equal(record_reader_next(&r, &b, false, &rec, &len), 1);
        assert_string_equal(rec, "ok");
        /* Incomplete and already too long: skipped up to its end, across reads. */
        assert_int_equal(buffer_append_str(&b, "0123456789abc"), 0);
        assert_int_equal(record_reader_next(&r, &b, false, &rec, &len), -E2BIG);
        assert_int_equal(r.skipped_line, 2); /* "ok" was not emitted here, so it is not counted */
        assert_int_equal(buffer_append_str(&b, "def"), 0);
        assert_int_equal(record_reader_next(&r, &b, false, &rec, &len), 0);
        assert_int_equal(buffer_append_str(&b, "ghi\nnext\n"), 0);
        assert_int_equal(record_reader_next(&r, &b, false, &rec, &len), 1);
        assert_string_equal(rec, "next");
        assert_int_equal(r.offset, 14 + 13 + 3 + 4 + 5);
        buffer_done(&b);
        record_reader_done(&r);
}

static void test_next_csv_quoted_newline(void **state) {
        RecordReader r;
        Buffer b = {};
        char *rec;
        size_t len;

        assert_int_equal(record_reader_init(&r, RECORD_FORMAT_CSV, 1024, "x,y"), 0);
        assert_int_equal(r.n_header, 2);
        assert_int_equal(buffer_append_str(&b, "1,\"two\nlines\"\n2,b\n"), 0);
        assert_int_equal(record_reader_next(&r, &b, false, &rec, &len), 1);
        assert_string_equal(rec, "1,\"two\nlines\"");
        assert_int_equal(record_reader_next(&r, &b, false, &rec, &len), 1);
        assert_string_equal(rec, "2,b");
        buffer_done(&b);
        record_reader_done(&r);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_format_names),     cmocka_unit_test(test_next_lines),
                cmocka_unit_test(test_next_oversized),   cmocka_unit_test(test_next_csv_quoted_newline),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
