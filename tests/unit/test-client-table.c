/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The layout of dpipectl's tables: the exact text a user sees. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buffer.h"
#include "table.h"

static const char *const headers[] = { "NAME", "TYPE", "STATE", "ADDRESS", "RECORDS" };

static Table *sample(void) {
        Table *t = table_new(5, headers);

        assert_non_null(t);
        table_set_align_right(t, 4, true);
        assert_int_equal(table_add_cell(t, "demo", NULL), 0);
        assert_int_equal(table_add_cell(t, "tcp", NULL), 0);
        assert_int_equal(table_add_cell(t, "active", "\x1b[0;32m"), 0);
        assert_int_equal(table_add_cell(t, "127.0.0.1:9000", NULL), 0);
        assert_int_equal(table_add_cellf(t, NULL, "%d", 1234), 0);
        assert_int_equal(table_add_cell(t, "web-api", NULL), 0);
        assert_int_equal(table_add_cell(t, "http", NULL), 0);
        assert_int_equal(table_add_cell(t, "failed", "\x1b[0;31m"), 0);
        assert_int_equal(table_add_cell(t, NULL, NULL), 0);
        assert_int_equal(table_add_cell(t, "7", NULL), 0);
        return t;
}

static char *format(Table *t, TableFormat fmt, Buffer *b) {
        buffer_clear(b);
        assert_int_equal(table_format(t, &fmt, b), 0);
        assert_int_equal(buffer_append(b, "", 1), 0);
        return buffer_begin(b);
}

static void test_plain(void **state) {
        Table *t = sample();
        Buffer b = {};

        assert_int_equal(table_get_rows(t), 2);
        /* One blank between columns, numbers right-aligned, no trailing blanks, "-" for nothing. */
        assert_string_equal(format(t, (TableFormat) { .header = true }, &b),
                            "NAME    TYPE STATE  ADDRESS        RECORDS\n"
                            "demo    tcp  active 127.0.0.1:9000    1234\n"
                            "web-api http failed -                    7\n");
        assert_string_equal(format(t, (TableFormat) { .header = false }, &b),
                            "demo    tcp  active 127.0.0.1:9000 1234\n"
                            "web-api http failed -                 7\n");
        table_free(t);
        buffer_done(&b);
}

static void test_colors(void **state) {
        Table *t = sample();
        Buffer b = {};

        /* Colours do not count towards the width; the header is underlined. */
        assert_string_equal(format(t, (TableFormat) { .header = true, .colors = true }, &b),
                            "\x1b[0;4mNAME    TYPE STATE  ADDRESS        RECORDS\x1b[0m\n"
                            "demo    tcp  \x1b[0;32mactive\x1b[0m 127.0.0.1:9000    1234\n"
                            "web-api http \x1b[0;31mfailed\x1b[0m -                    7\n");
        table_free(t);
        buffer_done(&b);
}

static void test_narrow(void **state) {
        Table *t = sample();
        Buffer b = {};

        /* 42 columns wide; at 36 the widest column (ADDRESS, 14) gives up 6 and is cut with "…". */
        assert_string_equal(format(t, (TableFormat) { .header = true, .max_width = 36 }, &b),
                            "NAME    TYPE STATE  ADDRESS  RECORDS\n"
                            "demo    tcp  active 127.0.0…    1234\n"
                            "web-api http failed -              7\n");
        table_free(t);
        buffer_done(&b);
}

static void test_control_chars(void **state) {
        Table *t = table_new(2, (const char *const[]) { "A", "B" });
        Buffer b = {};

        assert_non_null(t);
        assert_int_equal(table_add_cell(t, "x\ny", NULL), 0);
        assert_int_equal(table_add_cell(t, "\x1b[2J", NULL), 0);
        /* A cell cannot break the line or drive the terminal: shown escaped, visibly. */
        assert_string_equal(format(t, (TableFormat) { .header = false }, &b), "x\\ny \\x1b[2J\n");
        table_free(t);

        t = table_new(2, (const char *const[]) { "A", "B" });
        assert_non_null(t);
        assert_int_equal(table_add_cell(t, "tab\there\r", NULL), 0);
        assert_int_equal(table_add_cell(t, "bad \xff byte, C1 \xc2\x9b", NULL), 0);
        assert_string_equal(format(t, (TableFormat) { .header = false }, &b),
                            "tab\\there\\r bad \\xff byte, C1 \\u009b\n");
        table_free(t);
        buffer_done(&b);
}

/* Columns line up by display width: CJK characters take two cells, combining marks none. */
static void test_wide(void **state) {
        Table *t = table_new(3, (const char *const[]) { "NAME", "CITY", "N" });
        Buffer b = {};

        assert_non_null(t);
        assert_int_equal(table_add_cell(t, "東京", NULL), 0);
        assert_int_equal(table_add_cell(t, "Tōkyō", NULL), 0);
        assert_int_equal(table_add_cell(t, "1", NULL), 0);
        assert_int_equal(table_add_cell(t, "plain", NULL), 0);
        assert_int_equal(table_add_cell(t, "Zu\xcc\x88rich", NULL), 0); /* u + U+0308 */
        assert_int_equal(table_add_cell(t, "2", NULL), 0);
        assert_string_equal(format(t, (TableFormat) { .header = true }, &b),
                            "NAME  CITY   N\n"
                            "東京  Tōkyō  1\n"
                            "plain Zu\xcc\x88rich 2\n");
        table_free(t);

        /* Cut by cells, never inside a character: a wide one that does not fit leaves a blank. */
        t = table_new(2, (const char *const[]) { "A", "B" });
        assert_non_null(t);
        assert_int_equal(table_add_cell(t, "日本語のテキスト", NULL), 0);
        assert_int_equal(table_add_cell(t, "x", NULL), 0);
        assert_string_equal(format(t, (TableFormat) { .header = false, .max_width = 8 }, &b), "日本…  x\n");
        table_free(t);
        buffer_done(&b);
}

static void test_empty(void **state) {
        Table *t = table_new(2, (const char *const[]) { "NAME", "STATE" });
        Buffer b = {};

        assert_non_null(t);
        assert_int_equal(table_get_rows(t), 0);
        assert_string_equal(format(t, (TableFormat) { .header = true }, &b), "NAME STATE\n");
        table_free(t);
        buffer_done(&b);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_plain),
                cmocka_unit_test(test_colors),
                cmocka_unit_test(test_narrow),
                cmocka_unit_test(test_control_chars),
                cmocka_unit_test(test_wide),
                cmocka_unit_test(test_empty),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
