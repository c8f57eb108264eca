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
#include "transform.h"

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

/* What the transform makes of each line of plain (records as the reader emits them without one),
 * each scanned on its own: what the records the reader listed itself must come out as. */
static char *transform_lines(Transform *t, const char *plain, uint64_t *ret_filtered, uint64_t *ret_skipped) {
        _cleanup_(buffer_done) Buffer out = {};
        *ret_filtered = *ret_skipped = 0;

        for (const char *p = plain, *e; *p; p = e + 1) {
                TransformResult res;

                e = strchr(p, '\n');
                assert_non_null(e);
                assert_int_equal(transform_run(t, p, (size_t) (e - p), NULL, &out, &res), 0);
                if (res.verdict == TRANSFORM_EMIT)
                        assert_int_equal(buffer_append(&out, "\n", 1), 0);
                *ret_filtered += res.verdict == TRANSFORM_FILTERED;
                *ret_skipped += res.verdict == TRANSFORM_SKIP;
        }
        assert_int_equal(buffer_append(&out, "", 1), 0);
        return strdup(buffer_begin(&out) ?: "");
}

/* Feeds text twice, without and with the transform: the records the reader listed itself (csv,
 * lines) come out as the transform makes them of the plain records, and none was scanned again. */
static void check_listed(RecordFormat f, const char *program, const char *text, uint64_t want_listed) {
        _cleanup_(transform_freep) Transform *t = NULL;
        _cleanup_free_ char *error = NULL, *plain = NULL, *want = NULL;
        uint64_t filtered, skipped, plain_skipped;

        assert_int_equal(transform_compile(program, &t, &error), 0);
        feed(f, NULL, text, strlen(text));
        plain = strdup(stub_output());
        plain_skipped = stub_skipped;
        want = transform_lines(t, plain, &filtered, &skipped);

        stub_transform = t;
        feed(f, NULL, text, strlen(text));
        stub_transform = NULL;
        if (strcmp(stub_output(), want) != 0)
                fail_msg("%s on %s:\n got      %s\n expected %s", program, text, stub_output(), want);
        assert_int_equal(stub_listed, want_listed);
        assert_int_equal(stub_filtered, filtered);
        assert_int_equal(stub_skipped, plain_skipped + skipped);
        stub_reset();
}

static void test_transform_listed(void **state) {
        static const char csv[] = "n,\"a\"\"b\",日本,c\\d\n"
                                  "1,x,y,z\n"
                                  "2,\"q\"\"uote\",\xc3\xa9\xc3\xa9,back\\slash\n"
                                  "3,\"multi\nline\",,\x01\n"
                                  "x,1\n"
                                  "4,\xff\n"
                                  "5,a,b,c,d\n";

        check_listed(RECORD_FORMAT_CSV, "convert n:int", csv, 4);
        check_listed(RECORD_FORMAT_CSV, "where n > 1; rename \"a\\\"b\"=ab; convert n:int; select ab,n,日本", csv, 4);
        check_listed(RECORD_FORMAT_CSV, "where 日本 ~ ^é+$", csv, 4);
        check_listed(RECORD_FORMAT_CSV, "where \"c\\\\d\" ~ ^back\\\\; set s=1", csv, 4);
        check_listed(RECORD_FORMAT_CSV, "where a ~ x; drop 日本", csv, 4);
        /* Escaped values compare unescaped: only a record listed with its escapes marked matches. */
        check_listed(RECORD_FORMAT_CSV, "where \"a\\\"b\" == \"q\\\"uote\"", csv, 4);
        check_listed(RECORD_FORMAT_CSV, "where \"a\\\"b\" ~ \"^multi\\nline$\"", csv, 4);
        check_listed(RECORD_FORMAT_CSV, "convert n:int,日本:bool", csv, 4);
        check_listed(RECORD_FORMAT_CSV, "rename n=m.n.o; convert m.n.o:int", csv, 4);
        check_listed(RECORD_FORMAT_LINES, "where line ~ ^[a-z]+$; rename line=l",
                     "plain\na\x01b\tc\n\xff\ncaf\xc3\xa9 \"q\"\nzz\n", 4);
        check_listed(RECORD_FORMAT_LINES, "where line ~ q", "a\\b\n\"q\"\n", 2);
        /* jsonl is listed by the transform's own scan: nothing comes listed. */
        check_listed(RECORD_FORMAT_JSONL, "convert n:int", "{\"n\":\"1\"}\n{\"n\":NaN}\n[1]\n", 0);
}

static void check_dpipe_listed(const char *program, const char *line, bool want_listed) {
        _cleanup_(transform_freep) Transform *t = NULL;
        _cleanup_free_ char *error = NULL;
        _cleanup_(buffer_done) Buffer a = {}, b = {};
        JsonScanMembers mt = {};
        char reason[160], reason2[160];
        TransformResult ra, rb;
        DpipeLine l, l2;
        int k;

        assert_int_equal(transform_compile(program, &t, &error), 0);
        mt.max_depth = transform_depth(t) + 1;
        k = dpipe_line_parse(line, strlen(line), &l, reason, sizeof(reason));
        assert_int_equal(dpipe_line_parse_listed(line, strlen(line), &mt, &l2, reason2, sizeof(reason2)), k);
        if (k < 0) {
                assert_string_equal(reason, reason2);
                json_scan_members_done(&mt);
                return;
        }
        assert_int_equal(l.kind, l2.kind);
        assert_string_equal(l.text, l2.text);
        assert_int_equal(l2.data_member >= 0, want_listed);
        if (l.kind != DPIPE_LINE_RECORD) {
                json_scan_members_done(&mt);
                return;
        }
        assert_int_equal(l.seq, l2.seq);
        assert_ptr_equal(l.data, l2.data);
        assert_int_equal(l.data_len, l2.data_len);
        assert_int_equal(transform_run(t, l.data, l.data_len, NULL, &a, &ra), 0);
        if (want_listed) {
                assert_int_equal(transform_run_listed(t, l2.data, l2.data_len, mt.members, mt.n, l2.data_member, NULL,
                                                      &b, &rb), 0);
                assert_int_equal(ra.verdict, rb.verdict);
                assert_int_equal(ra.step, rb.step);
                assert_int_equal(buffer_size(&a), buffer_size(&b));
                assert_memory_equal(buffer_begin(&a) ?: "", buffer_begin(&b) ?: "", buffer_size(&a));
        }
        json_scan_members_done(&mt);
}

static void test_dpipe_line_listed(void **state) {
        check_dpipe_listed("convert a:int", "{\"op\":\"record\",\"seq\":7,\"data\":{\"a\":\"5\",\"b\":[{\"c\":1}]}}", true);
        check_dpipe_listed("select a.b.c; rename a.b.c=x", "{\"data\":{\"a\":{\"b\":{\"c\":1,\"d\":2}},\"e\":3},\"seq\":1,\"op\":\"record\"}",
                           true);
        /* A listing deeper than the program needs: the deeper members are not nodes. */
        check_dpipe_listed("drop a", "{\"op\":\"record\",\"seq\":1,\"data\":{\"a\":{\"b\":{\"c\":1}},\"e\":{\"f\":{\"g\":2}}}}", true);
        check_dpipe_listed("where e.f.g == 2", "{\"op\":\"record\",\"seq\":1,\"meta\":{\"x\":{\"y\":1}},\"data\":{\"e\":{\"f\":{\"g\":2}}}}", true);
        check_dpipe_listed("where e.f.g == 3", "{\"op\":\"record\",\"seq\":1,\"data\":{\"e\":{\"f\":{\"g\":2}}}}", true);
        /* The last data counts, and escaped names are names. */
        check_dpipe_listed("select b", "{\"op\":\"record\",\"seq\":1,\"data\":{\"a\":1},\"d\\u0061ta\":{\"b\":2,\"c\":3}}", true);
        check_dpipe_listed("select a.b.c.d.e.f.g.h", "{\"op\":\"record\",\"seq\":1,\"data\":{\"a\":{\"b\":{\"c\":{\"d\":{\"e\":{\"f\":{\"g\":{\"h\":1,\"i\":2}}}}}}},\"z\":0}}",
                           true);
        /* data that is no object: not listed (the transform skips it). */
        check_dpipe_listed("select a", "{\"op\":\"record\",\"seq\":1,\"data\":[1]}", false);
        check_dpipe_listed("select a", "{\"op\":\"ping\"}", false);
        check_dpipe_listed("select a", "{\"op\":\"error\",\"message\":\"x\\ty\"}", false);
        check_dpipe_listed("select a", "{\"op\":\"record\",\"seq\":1,\"data\":{\"n\":NaN}}", false);
        check_dpipe_listed("select a", "{\"op\":\"record\",\"data\":{}}", false);
        check_dpipe_listed("select a", "[1]", false);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_dpipe_line),
                cmocka_unit_test(test_jsonl),
                cmocka_unit_test(test_lines),
                cmocka_unit_test(test_csv),
                cmocka_unit_test(test_transform_listed),
                cmocka_unit_test(test_dpipe_line_listed),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
