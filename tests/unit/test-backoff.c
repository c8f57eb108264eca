/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>

#include <cmocka.h>

#include "backoff.h"
#include "util.h"

/* Doubling from min to the cap, and staying there however many attempts follow. */
static void test_backoff_delay(void **state) {
        Backoff b = BACKOFF_INIT(200 * USEC_PER_MSEC, 10 * USEC_PER_SEC, false);

        assert_int_equal(backoff_delay(&b, 0), 200 * USEC_PER_MSEC);
        assert_int_equal(backoff_delay(&b, 1), 400 * USEC_PER_MSEC);
        assert_int_equal(backoff_delay(&b, 5), 6400 * USEC_PER_MSEC);
        assert_int_equal(backoff_delay(&b, 6), 10 * USEC_PER_SEC);
        assert_int_equal(backoff_delay(&b, 7), 10 * USEC_PER_SEC);
        assert_int_equal(backoff_delay(&b, 1000000), 10 * USEC_PER_SEC);
}

/* Without jitter, backoff_next() walks the same steps and counts; a reset starts over. */
static void test_backoff_next(void **state) {
        Backoff b = BACKOFF_INIT(100 * USEC_PER_MSEC, 5 * USEC_PER_SEC, false);

        assert_int_equal(backoff_next(&b), 100 * USEC_PER_MSEC);
        assert_int_equal(backoff_next(&b), 200 * USEC_PER_MSEC);
        assert_int_equal(backoff_next(&b), 400 * USEC_PER_MSEC);
        assert_int_equal(b.attempt, 3);
        for (int i = 0; i < 200; i++)
                assert_true(backoff_next(&b) <= 5 * USEC_PER_SEC);
        assert_int_equal(backoff_next(&b), 5 * USEC_PER_SEC); /* the count never wraps back to min */
        backoff_reset(&b);
        assert_int_equal(b.attempt, 0);
        assert_int_equal(backoff_next(&b), 100 * USEC_PER_MSEC);
}

/* With jitter, every delay lies between half and all of the unjittered one, and they differ. */
static void test_backoff_jitter(void **state) {
        Backoff b = BACKOFF_INIT(200 * USEC_PER_MSEC, 30 * USEC_PER_SEC, true);
        uint64_t first = 0;
        bool differ = false;

        for (unsigned a = 0; a < 40; a++) {
                uint64_t d = backoff_delay(&b, a);

                for (int k = 0; k < 20; k++) {
                        Backoff c = b;
                        uint64_t v;

                        c.attempt = a;
                        v = backoff_next(&c);
                        assert_true(v >= d / 2 && v <= d);
                        assert_int_equal(c.attempt, a + 1);
                        if (a == 10 && k == 0)
                                first = v;
                        else if (a == 10 && v != first)
                                differ = true;
                }
        }
        assert_true(differ);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_backoff_delay),
                cmocka_unit_test(test_backoff_next),
                cmocka_unit_test(test_backoff_jitter),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
