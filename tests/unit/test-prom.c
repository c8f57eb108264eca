/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "prom.h"

/* The buffer's text, NUL-terminated, for string comparisons. */
static const char *text(Buffer *b) {
        assert_int_equal(buffer_append(b, "", 1), 0);
        b->tail--;
        return buffer_begin(b);
}

static void test_family_and_samples(void **state) {
        Buffer b = {};

        assert_int_equal(prom_family(&b, "dpipe_clients", PROM_GAUGE, "Connected clients."), 0);
        assert_int_equal(prom_sample_u64(&b, "dpipe_clients", NULL, 0, 3), 0);
        assert_int_equal(prom_sample_u64(&b, "dpipe_records_written_total", NULL, 0, UINT64_MAX), 0);
        assert_int_equal(prom_sample_double(&b, "x", NULL, 0, 0.25), 0);
        assert_int_equal(prom_sample_double(&b, "x", NULL, 0, NAN), 0);
        assert_int_equal(prom_sample_double(&b, "x", NULL, 0, -INFINITY), 0);
        assert_string_equal(text(&b), "# HELP dpipe_clients Connected clients.\n"
                                      "# TYPE dpipe_clients gauge\n"
                                      "dpipe_clients 3\n"
                                      "dpipe_records_written_total 18446744073709551615\n"
                                      "x 0.25\n"
                                      "x NaN\n"
                                      "x -Inf\n");
        buffer_done(&b);
}

static void test_label_escaping(void **state) {
        Buffer b = {};
        PromLabel l[] = { { "source", "a\\b\"c\nd" }, { "state", "active" } };

        assert_int_equal(prom_sample_u64(&b, "dpipe_source_state", l, 2, 1), 0);
        assert_string_equal(text(&b), "dpipe_source_state{source=\"a\\\\b\\\"c\\nd\",state=\"active\"} 1\n");
        buffer_clear(&b);

        /* HELP escapes backslash and line feed, but not the double quote. */
        assert_int_equal(prom_family(&b, "m", PROM_COUNTER, "say \"x\"\\\nnext"), 0);
        assert_string_equal(text(&b), "# HELP m say \"x\"\\\\\\nnext\n# TYPE m counter\n");
        buffer_clear(&b);

        /* An empty and a NULL value are both "". */
        l[0].value = "";
        l[1].value = NULL;
        assert_int_equal(prom_sample_u64(&b, "m", l, 2, 0), 0);
        assert_string_equal(text(&b), "m{source=\"\",state=\"\"} 0\n");
        buffer_done(&b);
}

static void test_names(void **state) {
        Buffer b = {};
        PromLabel bad[] = { { "a:b", "x" } };

        assert_true(prom_name_is_valid("dpipe_x:y", false));
        assert_false(prom_name_is_valid("dpipe_x:y", true));
        assert_false(prom_name_is_valid("1abc", false));
        assert_false(prom_name_is_valid("a-b", false));
        assert_false(prom_name_is_valid("", false));
        assert_int_equal(prom_family(&b, "bad name", PROM_GAUGE, "x"), -EINVAL);
        assert_int_equal(prom_sample_u64(&b, "m", bad, 1, 1), -EINVAL);
        buffer_done(&b);
}

static void test_histogram(void **state) {
        Buffer b = {};
        const double bounds[] = { 0.001, 0.5 };
        const uint64_t counts[] = { 2, 1 };
        PromLabel l[] = { { "k", "v" } };

        assert_int_equal(prom_histogram(&b, "h_seconds", NULL, 0, bounds, counts, 2, 4, 1.5), 0);
        assert_string_equal(text(&b), "h_seconds_bucket{le=\"0.001\"} 2\n"
                                      "h_seconds_bucket{le=\"0.5\"} 3\n"
                                      "h_seconds_bucket{le=\"+Inf\"} 4\n"
                                      "h_seconds_sum 1.5\n"
                                      "h_seconds_count 4\n");
        buffer_clear(&b);
        assert_int_equal(prom_histogram(&b, "h", l, 1, bounds, counts, 1, 2, 0), 0);
        assert_string_equal(text(&b), "h_bucket{k=\"v\",le=\"0.001\"} 2\n"
                                      "h_bucket{k=\"v\",le=\"+Inf\"} 2\n"
                                      "h_sum{k=\"v\"} 0\n"
                                      "h_count{k=\"v\"} 2\n");
        buffer_done(&b);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_family_and_samples),
                cmocka_unit_test(test_label_escaping),
                cmocka_unit_test(test_names),
                cmocka_unit_test(test_histogram),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
