/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* dpiped's subscription window (bounded by the window whatever the client does), the sources
 * filter, and the durable offsets of named subscriptions. */
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

#include "dpiped-subscription.h"
#include "util.h"

static void test_window(void **state) {
        _cleanup_(subscription_freep) Subscription *s = NULL;

        assert_int_equal(subscription_new(0, 0, &s), -EINVAL);
        assert_int_equal(subscription_new(0, SUBSCRIPTION_WINDOW_MAX + 1, &s), -EINVAL);
        assert_int_equal(subscription_new(7, 3, &s), 0);
        assert_int_equal(s->next_offset, 7);

        assert_false(subscription_window_full(s));
        assert_int_equal(subscription_sent(s, 7), 0);
        assert_int_equal(subscription_sent(s, 9), 0); /* offsets need not be dense (a filter) */
        assert_int_equal(subscription_sent(s, 12), 0);
        assert_true(subscription_window_full(s));
        assert_int_equal(subscription_sent(s, 13), -ENOBUFS);

        /* An ack retires everything up to and including its offset. */
        assert_int_equal(subscription_ack(s, 6), 0);
        assert_int_equal(subscription_ack(s, 10), 2);
        assert_int_equal(s->n_in_flight, 1);
        assert_false(subscription_window_full(s));
        assert_int_equal(subscription_sent(s, 14), 0);
        assert_int_equal(subscription_sent(s, 15), 0);
        assert_true(subscription_window_full(s));
        /* Acking something already acked, or beyond what was sent, is harmless. */
        assert_int_equal(subscription_ack(s, 3), 0);
        assert_int_equal(subscription_ack(s, 1000), 3);
        assert_int_equal(s->n_in_flight, 0);
        /* Not named: nothing to commit. */
        assert_false(s->commit_dirty);
}

static void test_ring_wraps(void **state) {
        _cleanup_(subscription_freep) Subscription *s = NULL;
        uint64_t next = 0, acked = 0;

        assert_int_equal(subscription_new(0, 1000, &s), 0);
        /* Many rounds of send-some/ack-some: the ring wraps and grows, never beyond the window. */
        for (int round = 0; round < 2000; round++) {
                while (!subscription_window_full(s) && next < acked + 700 + (uint64_t) (round % 300))
                        assert_int_equal(subscription_sent(s, next++), 0);
                uint64_t to = acked + (uint64_t) (round % 500);
                if (to >= next)
                        to = next - 1;
                subscription_ack(s, to);
                if (to + 1 > acked)
                        acked = to + 1;
                assert_int_equal(s->n_in_flight, next - acked);
                assert_true(s->in_flight_allocated <= 1000);
        }
}

static void test_filter(void **state) {
        _cleanup_(subscription_freep) Subscription *s = NULL;

        assert_int_equal(subscription_new(0, 10, &s), 0);
        assert_true(subscription_wants(s, "anything", 8));
        assert_int_equal(subscription_add_source(s, "demo"), 0);
        assert_int_equal(subscription_add_source(s, "web.1"), 0);
        assert_int_equal(subscription_add_source(s, "bad/name"), -EINVAL);
        assert_true(subscription_wants(s, "demo", 4));
        assert_true(subscription_wants(s, "web.1", 5));
        assert_false(subscription_wants(s, "dem", 3));
        assert_false(subscription_wants(s, "demo2", 5));
        assert_false(subscription_wants(s, "other", 5));
}

static void test_committed(void **state) {
        char tmpl[] = "/tmp/test-dpiped-subscription.XXXXXX";
        _cleanup_(subscription_freep) Subscription *s = NULL;
        _cleanup_free_ char *dir = NULL, *path = NULL;
        uint64_t v = 0;

        assert_non_null(mkdtemp(tmpl));
        dir = path_join(tmpl, "subscriptions");
        assert_int_equal(subscription_load_committed(dir, "analytics", &v), -ENOENT);

        assert_int_equal(subscription_new(5, 10, &s), 0);
        s->name = strdup("analytics");
        s->committed = 5;
        assert_int_equal(subscription_sent(s, 5), 0);
        assert_int_equal(subscription_sent(s, 6), 0);
        subscription_ack(s, 5);
        assert_true(s->commit_dirty);
        assert_int_equal(s->committed, 6);
        subscription_ack(s, 2); /* never goes back */
        assert_int_equal(s->committed, 6);

        assert_int_equal(subscription_save_committed(dir, s->name, s->committed), 0);
        assert_int_equal(subscription_load_committed(dir, "analytics", &v), 0);
        assert_int_equal(v, 6);
        assert_int_equal(subscription_save_committed(dir, s->name, UINT64_MAX - 1), 0);
        assert_int_equal(subscription_load_committed(dir, "analytics", &v), 0);
        assert_int_equal(v, UINT64_MAX - 1);

        path = path_join(dir, "broken.offset");
        assert_int_equal(write_file_atomic(path, "12x\n", 4), 0);
        assert_int_equal(subscription_load_committed(dir, "broken", &v), -EBADMSG);

        (void) unlink(path);
        free(path);
        path = path_join(dir, "analytics.offset");
        assert_int_equal(unlink(path), 0);
        /* Names that are special in paths are plain file names here. */
        assert_int_equal(subscription_save_committed(dir, "..", 9), 0);
        assert_int_equal(subscription_load_committed(dir, "..", &v), 0);
        assert_int_equal(v, 9);
        free(path);
        path = path_join(dir, "...offset");
        assert_int_equal(unlink(path), 0);
        assert_int_equal(rmdir(dir), 0);
        assert_int_equal(rmdir(tmpl), 0);
}

/* Records lost to damage in the queue take no room in the window and are never acked; a durable
 * subscription moves past them once everything sent before them is acked, and not before. */
static void test_lost(void **state) {
        Subscription *s = NULL;

        assert_int_equal(subscription_new(0, 10, &s), 0);
        s->name = strdup("sink");
        assert_non_null(s->name);

        /* Sent 0..4, lost 5..7, sent 8. */
        for (uint64_t i = 0; i < 5; i++)
                assert_int_equal(subscription_sent(s, i), 0);
        subscription_lost(s, 7);
        assert_int_equal(s->committed, 0); /* 0..4 are not acked yet */
        assert_false(s->commit_dirty);
        assert_int_equal(subscription_sent(s, 8), 0);
        assert_int_equal(s->n_in_flight, 6);
        /* An ack of what came before the loss commits up to the loss only: 8 is still in flight. */
        assert_int_equal(subscription_ack(s, 4), 5);
        assert_int_equal(s->committed, 5);
        assert_int_equal(subscription_ack(s, 8), 1);
        assert_int_equal(s->committed, 9);

        /* A loss at the end, with nothing in flight: past it at once. */
        s->commit_dirty = false;
        subscription_lost(s, 20);
        assert_int_equal(s->committed, 21);
        assert_true(s->commit_dirty);

        /* A loss at the end with records in flight: past it once they are acked. */
        assert_int_equal(subscription_sent(s, 21), 0);
        assert_int_equal(subscription_sent(s, 22), 0);
        subscription_lost(s, 30);
        assert_int_equal(s->committed, 21);
        assert_int_equal(subscription_ack(s, 21), 1);
        assert_int_equal(s->committed, 22);
        assert_int_equal(subscription_ack(s, 22), 1);
        assert_int_equal(s->committed, 31);
        subscription_free(s);
}

static void test_info(void **state) {
        _cleanup_(subscription_freep) Subscription *s = NULL;
        SubscriptionInfo i;

        assert_int_equal(subscription_new(10, 100, &s), 0);
        s->serial = 7;
        s->next_offset = 10;
        subscription_info(s, 15, &i);
        assert_string_equal(i.label, "anonymous-7");
        assert_int_equal(i.position, 10);
        assert_int_equal(i.lag, 5);

        /* Sent 10..12, acked 10: the position is the oldest in flight, not what was sent. */
        for (uint64_t o = 10; o < 13; o++)
                assert_int_equal(subscription_sent(s, o), 0);
        s->next_offset = 13;
        assert_int_equal(subscription_ack(s, 10), 1);
        assert_int_equal(s->records_sent, 3);
        subscription_info(s, 15, &i);
        assert_int_equal(i.position, 11);
        assert_int_equal(i.lag, 4);

        /* A durable one goes by its name; a queue behind the position is no lag. */
        s->name = strdup("metr");
        assert_non_null(s->name);
        subscription_info(s, 5, &i);
        assert_string_equal(i.label, "metr");
        assert_int_equal(i.lag, 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_window),
                cmocka_unit_test(test_ring_wraps),
                cmocka_unit_test(test_filter),
                cmocka_unit_test(test_committed),
                cmocka_unit_test(test_lost),
                cmocka_unit_test(test_info),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
