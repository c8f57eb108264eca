/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The nats sink's subject template and what is derived from it. */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "nats-subject.h"

static void check(const char *tpl, const char *prefix, bool per_source, const char *last, const char *stream) {
        NatsSubjects s = {};
        char *msg = NULL;

        assert_int_equal(nats_subject_parse(tpl, "pipeA", &msg, &s), 0);
        assert_null(msg);
        assert_string_equal(s.prefix, prefix);
        assert_int_equal(s.per_source, per_source);
        assert_string_equal(s.last, last);
        if (stream)
                assert_string_equal(s.stream, stream);
        else
                assert_null(s.stream);
        nats_subjects_done(&s);
}

static void test_templates(void **state) {
        check("dpipe.{pipeline}.{source}", "dpipe.pipeA.", true, "dpipe.pipeA.>", "dpipe.>");
        check("a.b.{pipeline}.x.{source}", "a.b.pipeA.x.", true, "a.b.pipeA.x.>", "a.b.>");
        check("events.{pipeline}", "events.pipeA", false, "events.pipeA", "events.>");
        check("{pipeline}.{source}", "pipeA.", true, "pipeA.>", NULL);
}

static void refused(const char *tpl, const char *why) {
        char *msg = NULL;

        assert_int_equal(nats_subject_parse(tpl, NULL, &msg, NULL), -EINVAL);
        assert_non_null(msg);
        assert_non_null(strstr(msg, why));
        free(msg);
}

static void test_refused(void **state) {
        refused("events.x", "{pipeline}");
        refused("a.{source}.{pipeline}", "last token");
        refused("a.{pipeline}.{pipeline}", "once");
        refused("a.*.{pipeline}", "invalid token");
        refused("a.>.{pipeline}", "invalid token");
        refused("a..{pipeline}", "invalid token");
        refused("a b.{pipeline}", "invalid token");
        refused("a.{pipe}.{pipeline}", "invalid token");
        refused("a.{pipeline}.", "invalid token");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_templates),
                cmocka_unit_test(test_refused),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
