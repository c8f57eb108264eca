/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Retention (common/queue-retention.c): by size and by age; offsets survive the removal of every
 * segment. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "frame.h"
#include "queue-test-util.h"
#include "queue.h"
#include "util.h"

static void test_retention_and_persisted_offset(void **state) {
        char *tmp = make_tmp(), *dir = qdir_of(tmp);
        Events ev = {};
        QueueOptions o = { .segment_size = 4096, .retention_bytes = 12 * 1024, .on_event = on_event, .userdata = &ev };
        uint64_t first, next;
        Queue *q = NULL;
        DIR *d;

        assert_int_equal(queue_open(dir, &o, &q), 0);
        append_flushed_fifties(q, 40);
        assert_int_equal(queue_sync(q), 0);
        assert_true(ev.count[QUEUE_EVENT_REMOVED] > 0);
        assert_true(queue_disk_bytes(q) <= 12 * 1024 + 8192);
        first = queue_first_offset(q);
        assert_true(first > 0);
        assert_int_equal(queue_next_offset(q), 2000);
        assert_int_equal(read_all(dir, 0, NULL, 0), 2000 - first);
        assert_int_equal(queue_bounds(dir, &first, &next), 0);
        assert_int_equal(first, queue_first_offset(q));
        assert_int_equal(next, 2000);
        queue_free(q);

        /* Even with every segment gone, offsets are not reused. */
        d = opendir(dir);
        for (struct dirent *de; (de = readdir(d));)
                if (strstr(de->d_name, ".seg") || strstr(de->d_name, ".idx")) {
                        _cleanup_free_ char *p = path_join(dir, de->d_name);
                        assert_int_equal(unlink(p), 0);
                }
        closedir(d);
        assert_int_equal(queue_open(dir, &o, &q), 0);
        assert_int_equal(queue_next_offset(q), 2000);
        assert_int_equal(queue_first_offset(q), 2000);
        append_n(q, "s", 5000, 1, 2000);
        queue_free(q);
        free(dir);
        rm_rf(tmp);
}

static void test_retention_by_age(void **state) {
        char *tmp = make_tmp(), *dir = qdir_of(tmp);
        QueueOptions o = { .segment_size = 4096, .retention_usec = 200 * 1000 };
        Queue *q = NULL;

        assert_int_equal(queue_open(dir, &o, &q), 0);
        append_flushed_fifties(q, 5);
        assert_int_equal(queue_sync(q), 0);
        assert_int_equal(queue_first_offset(q), 0);
        usleep(300 * 1000);
        /* Everything is older than the retention: all of it goes, the active segment included. */
        assert_true(queue_apply_retention(q) > 0);
        assert_int_equal(queue_first_offset(q), 250);
        assert_int_equal(queue_next_offset(q), 250);
        assert_int_equal(read_all(dir, 0, NULL, 0), 0);
        append_n(q, "s", 1000, 1, 250);
        queue_free(q);
        free(dir);
        rm_rf(tmp);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_retention_and_persisted_offset),
                cmocka_unit_test(test_retention_by_age),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
