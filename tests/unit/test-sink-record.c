/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Record lines from dpiped, as the sink library takes them apart. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "json-util.h"
#include "sink-record.h"

#define FAST(s, r) sink_record_parse_fast((s), strlen(s), (r))

static void assert_span(const char *p, size_t n, const char *want) {
        assert_int_equal(n, strlen(want));
        assert_memory_equal(p, want, n);
}

static void test_fast_path(void **state) {
        SinkRecord r;

        assert_true(FAST("{\"op\":\"record\",\"offset\":42,\"source\":\"demo.a-1\",\"ts_us\":1733,\"data\":{\"a\":[1,\"}\"]}}", &r));
        assert_int_equal(r.offset, 42);
        assert_int_equal(r.ts_us, 1733);
        assert_span(r.source, r.source_len, "demo.a-1");
        assert_span(r.data, r.data_len, "{\"a\":[1,\"}\"]}");

        /* Every JSON value is a record. */
        assert_true(FAST("{\"op\":\"record\",\"offset\":0,\"source\":\"s\",\"ts_us\":0,\"data\":null}", &r));
        assert_span(r.data, r.data_len, "null");
        assert_true(FAST("{\"op\":\"record\",\"offset\":18446744073709551615,\"source\":\"s\",\"ts_us\":1,\"data\":\"x\"}", &r));
        assert_true(r.offset == UINT64_MAX);
        assert_span(r.data, r.data_len, "\"x\"");
}

static void test_fast_path_refuses(void **state) {
        SinkRecord r;

        /* Other messages. */
        assert_false(FAST("{\"op\":\"ping\"}", &r));
        assert_false(FAST("{\"op\":\"ok\",\"offset\":3}", &r));
        /* Another key order, an escaped source: the slow path's job. */
        assert_false(FAST("{\"op\":\"record\",\"source\":\"s\",\"offset\":1,\"ts_us\":1,\"data\":1}", &r));
        assert_false(FAST("{\"op\":\"record\",\"offset\":1,\"source\":\"a\\\"b\",\"ts_us\":1,\"data\":1}", &r));
        /* Broken numbers, truncation. */
        assert_false(FAST("{\"op\":\"record\",\"offset\":18446744073709551616,\"source\":\"s\",\"ts_us\":1,\"data\":1}", &r));
        assert_false(FAST("{\"op\":\"record\",\"offset\":01,\"source\":\"s\",\"ts_us\":1,\"data\":1}", &r));
        assert_false(FAST("{\"op\":\"record\",\"offset\":-1,\"source\":\"s\",\"ts_us\":1,\"data\":1}", &r));
        assert_false(FAST("{\"op\":\"record\",\"offset\":1,\"source\":\"s\",\"ts_us\":1,\"data\":", &r));
        assert_false(FAST("{\"op\":\"record\",\"offset\":1,\"source\":\"s\",\"ts_us\":1,\"data\":1", &r));
        assert_false(FAST("{\"op\":\"record\",\"offset\":1,\"source\":\"s", &r));
        assert_false(FAST("", &r));
}

static void test_slow_path(void **state) {
        _cleanup_json_ json_object *o = NULL, *bad = NULL;
        Buffer scratch = {};
        SinkRecord r;

        o = json_tokener_parse("{\"data\":{\"k\":\"v\\/w\",\"n\":[1,2]},\"ts_us\":7,\"source\":\"s.1\",\"offset\":9,\"op\":\"record\"}");
        assert_non_null(o);
        assert_int_equal(sink_record_from_json(o, &scratch, &r), 0);
        assert_int_equal(r.offset, 9);
        assert_int_equal(r.ts_us, 7);
        assert_span(r.source, r.source_len, "s.1");
        assert_span(r.data, r.data_len, "{\"k\":\"v/w\",\"n\":[1,2]}");

        bad = json_tokener_parse("{\"op\":\"record\",\"offset\":\"9\",\"source\":\"s\",\"data\":1}");
        assert_int_equal(sink_record_from_json(bad, &scratch, &r), -EBADMSG);
        buffer_done(&scratch);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_fast_path),
                cmocka_unit_test(test_fast_path_refuses),
                cmocka_unit_test(test_slow_path),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
