/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What the connectors' record reader (connector-format.c) lets through and what it skips, with
 * which reason: every record it hands over must be one strict JSON value on one line, whatever the
 * stream held (NaN, Infinity, bytes that are not UTF-8, raw control characters, a line break). */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "connector-format.h"
#include "source-stub.h"

static void feed(RecordFormat f, const char *csv_header, const char *text, size_t n) {
        RecordReader r;
        Buffer b = {};

        stub_reset();
        assert_int_equal(record_reader_init(&r, f, 1024, csv_header), 0);
        assert_int_equal(buffer_append(&b, text, n), 0);
        assert_true(record_reader_feed(&r, NULL, &b, true) >= 0);
        buffer_done(&b);
        record_reader_done(&r);
}
#define FEED(f, h, lit) feed((f), (h), (lit), sizeof(lit) - 1)
#define L(lit) (lit), (sizeof(lit) - 1)

static void test_jsonl(void **state) {
        static const struct {
                const char *line, *reason;
        } bad[] = {
                { "{\"n\":NaN}", "line 1: not valid JSON: NaN or Infinity, which are not JSON numbers at byte 6" },
                { "{\"n\":Infinity}", "line 1: not valid JSON: NaN or Infinity, which are not JSON numbers at byte 6" },
                { "[-Infinity]", "line 1: not valid JSON: NaN or Infinity, which are not JSON numbers at byte 3" },
                { "{\"n\":nan}", "line 1: not valid JSON: NaN or Infinity, which are not JSON numbers at byte 7" },
                { "{\"s\":\"\xff\"}", "line 1: not valid JSON: invalid UTF-8 at byte 7" },
                { "{\"s\":\"\xc0\xaf\"}", "line 1: not valid JSON: invalid UTF-8 at byte 7" },
                { "{\"s\":\"\xed\xa0\x80\"}", "line 1: not valid JSON: invalid UTF-8 at byte 7" },
                { "{\"s\":\"a\x01" "b\"}", "line 1: not valid JSON: a raw control character at byte 8" },
                { "{\"s\":\"a\x7f\"}", NULL }, /* DEL is no control character in JSON */
                { "{\"a\":1,\r\"b\":2}", "line 1: not valid JSON: a line break at byte 8" },
                { "{\"a\":1} {\"b\":2}", "line 1: not valid JSON: a syntax error at byte 9" },
                { "{\"a\":", "line 1: not valid JSON: it ends in the middle of a value at byte 6" },
        };

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                feed(RECORD_FORMAT_JSONL, NULL, bad[i].line, strlen(bad[i].line));
                if (!bad[i].reason) {
                        assert_int_equal(stub_emitted, 1);
                        continue;
                }
                assert_int_equal(stub_emitted, 0);
                assert_int_equal(stub_skipped, 1);
                assert_string_equal(stub_skip_reason, bad[i].reason);
        }
        /* The good records around bad ones go on, as they came (a trailing CR is the line's end). */
        FEED(RECORD_FORMAT_JSONL, NULL, "{\"a\": 1}\r\n{\"n\":NaN}\n\n  \n[1,2]\n\"\xc3\xa9\"\n");
        assert_string_equal(stub_output(), "{\"a\": 1}\n[1,2]\n\"\xc3\xa9\"\n");
        assert_int_equal(stub_skipped, 1);
}

static void test_lines(void **state) {
        /* Text becomes a JSON string: control characters escaped, bytes that are not UTF-8 skipped. */
        FEED(RECORD_FORMAT_LINES, NULL, "plain\na\x01" "b\tc\n\xff\xfe\ncaf\xc3\xa9 \"q\" \\\n");
        assert_string_equal(stub_output(), "{\"line\":\"plain\"}\n{\"line\":\"a\\u0001b\\tc\"}\n"
                                           "{\"line\":\"caf\xc3\xa9 \\\"q\\\" \\\\\"}\n");
        assert_int_equal(stub_skipped, 1);
        assert_string_equal(stub_skip_reason, "line 3: invalid UTF-8 at byte 1");
}

static void test_csv(void **state) {
        FEED(RECORD_FORMAT_CSV, NULL, "a,b\n1,\"x\ny\"\n2,\xc3\x28\n3,\x02\n");
        assert_string_equal(stub_output(), "{\"a\":\"1\",\"b\":\"x\\ny\"}\n{\"a\":\"3\",\"b\":\"\\u0002\"}\n");
        assert_int_equal(stub_skipped, 1);
        assert_string_equal(stub_skip_reason, "line 4: invalid UTF-8 at byte 3");

        /* A header that is not UTF-8: no record can be built with it. */
        FEED(RECORD_FORMAT_CSV, NULL, "a,\xff\n1,2\n3,4\n");
        assert_int_equal(stub_emitted, 0);
        assert_int_equal(stub_skipped, 3);
        assert_string_equal(stub_skip_reason, "line 3: the CSV header is not valid UTF-8");

        /* Nor can a fixed header (the option) that is not UTF-8 be set. */
        {
                RecordReader r;
                assert_int_equal(record_reader_init(&r, RECORD_FORMAT_CSV, 1024, "a,\xff"), -EINVAL);
        }
}

static void test_dpipe_line(void **state) {
        char reason[160];
        DpipeLine l;

        assert_int_equal(dpipe_line_parse(L("{\"op\":\"record\",\"seq\":7,\"data\":{\"a\": [1]}}"), &l, reason,
                                          sizeof(reason)), 0);
        assert_int_equal(l.kind, DPIPE_LINE_RECORD);
        assert_int_equal(l.seq, 7);
        assert_int_equal(l.data_len, 10);
        assert_memory_equal(l.data, "{\"a\": [1]}", 10);
        assert_int_equal(dpipe_line_parse(L("{\"op\":\"record\",\"seq\":18446744073709551615,\"data\":1}"), &l, reason,
                                          sizeof(reason)), 0);
        assert_int_equal(l.seq, UINT64_MAX); /* the caller refuses it */
        assert_int_equal(dpipe_line_parse(L("{\"op\":\"p\\u0069ng\"}"), &l, reason, sizeof(reason)), 0);
        assert_int_equal(l.kind, DPIPE_LINE_PING);
        assert_int_equal(dpipe_line_parse(L("{\"op\":\"error\",\"message\":\"a\\tb\"}"), &l, reason, sizeof(reason)), 0);
        assert_int_equal(l.kind, DPIPE_LINE_ERROR);
        assert_string_equal(l.text, "a\tb");
        assert_int_equal(dpipe_line_parse(L("{\"op\":\"end\"}"), &l, reason, sizeof(reason)), 0);
        assert_int_equal(l.kind, DPIPE_LINE_OTHER);
        assert_string_equal(l.text, "end");

        assert_int_equal(dpipe_line_parse(L("{\"op\":\"record\",\"seq\":1,\"data\":{\"n\":NaN}}"), &l, reason,
                                          sizeof(reason)), -EBADMSG);
        assert_string_equal(reason, "not valid JSON: NaN or Infinity, which are not JSON numbers at byte 36");
        assert_int_equal(dpipe_line_parse(L("{\"op\":\"record\",\"seq\":-1,\"data\":1}"), &l, reason, sizeof(reason)),
                         -EBADMSG);
        assert_string_equal(reason, "record without seq or data");
        assert_int_equal(dpipe_line_parse(L("[1]"), &l, reason, sizeof(reason)), -EBADMSG);
        assert_string_equal(reason, "not a JSON object");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_dpipe_line),
                cmocka_unit_test(test_jsonl),
                cmocka_unit_test(test_lines),
                cmocka_unit_test(test_csv),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
