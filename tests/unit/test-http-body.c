/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The http connector's body reader (daemons/connectors/http/http-body.c): what a response body turns
 * into, fed whole or in pieces, and which bodies are refused as not the declared format. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "http-body.h"
#include "source-stub.h"
#include "transform.h"

typedef struct Run {
        RecordReader reader;
        HttpBody body;
        int result;
} Run;

/* Feeds text in pieces of `chunk` bytes (0: all at once) and ends the body. */
static void run(Run *t, RecordFormat format, bool page, uint64_t skip, uint64_t first_seq, const char *content_type,
                const char *text, size_t chunk) {
        size_t n = strlen(text);

        stub_reset();
        stub_next_seq = first_seq;
        assert_int_equal(record_reader_init(&t->reader, RECORD_FORMAT_JSONL, 1024, NULL), 0);
        t->body = (HttpBody) {};
        http_body_begin(&t->body, format, page, &t->reader, skip, true, first_seq);
        t->result = http_body_check_content_type(&t->body, content_type);
        for (size_t i = 0; t->result >= 0 && i < n; i += chunk ? chunk : n)
                t->result = http_body_feed(&t->body, NULL, content_type, text + i, MIN(chunk ? chunk : n, n - i));
        if (t->result >= 0)
                t->result = http_body_end(&t->body, NULL, content_type);
}

static void done(Run *t) {
        http_body_done(&t->body);
        record_reader_done(&t->reader);
        stub_reset();
}

static void test_array_bad_elements(void **state) {
        const char *doc = "[{\"n\":1}, {\"n\":NaN},{\"n\":2},{\"s\":\"\xff\"},{\"c\":\"a\x01" "b\"},\n"
                          " {\"i\":-Infinity}, \"\xc3\xa9t\xc3\xa9\", 3 ]";
        size_t chunks[] = { 0, 1, 7 };

        for (size_t k = 0; k < ELEMENTSOF(chunks); k++) {
                Run t;

                run(&t, RECORD_FORMAT_AUTO, false, 0, 0, "application/json", doc, chunks[k]);
                assert_int_equal(t.result, 0);
                assert_int_equal(t.body.format, RECORD_FORMAT_JSON);
                /* The good ones as they came; the bad ones skipped, the walk going on after each. */
                assert_string_equal(stub_output(), "{\"n\":1}\n{\"n\":2}\n\"\xc3\xa9t\xc3\xa9\"\n3\n");
                assert_int_equal(stub_skipped, 4);
                assert_non_null(strstr(stub_skip_reason, "record 5: not valid JSON: NaN or Infinity"));
                assert_int_equal(t.body.index, 8);
                done(&t);
        }
}

static void test_array_skip_reasons(void **state) {
        Run t;

        run(&t, RECORD_FORMAT_JSON, false, 0, 0, NULL, "[{\"s\":\"\xff\"}]", 0);
        assert_int_equal(t.result, 0);
        assert_string_equal(stub_skip_reason, "record 0: not valid JSON: invalid UTF-8 at byte 7");
        done(&t);
        run(&t, RECORD_FORMAT_JSON, false, 0, 0, NULL, "[{\"s\":\"a\tb\"}]", 0);
        assert_string_equal(stub_skip_reason, "record 0: not valid JSON: a raw control character at byte 8");
        done(&t);
        run(&t, RECORD_FORMAT_JSON, false, 0, 0, NULL, "[{\"n\":NaN}]", 0);
        assert_string_equal(stub_skip_reason, "record 0: not valid JSON: NaN or Infinity, which are not JSON numbers at byte 6");
        done(&t);
        run(&t, RECORD_FORMAT_JSON, false, 0, 0, NULL, "[12abc]", 0);
        assert_int_equal(stub_skipped, 1);
        assert_int_equal(stub_emitted, 0);
        done(&t);
}

static void test_array_multiline(void **state) {
        Run t;

        /* Pretty-printed: each element is put on one line, strings untouched. */
        run(&t, RECORD_FORMAT_JSON, false, 0, 0, NULL, "[\n  {\n    \"a b\": \"x  y\",\r\n    \"c\": [1, 2]\n  }\n]\n", 3);
        assert_int_equal(t.result, 0);
        assert_string_equal(stub_output(), "{\"a b\":\"x  y\",\"c\":[1,2]}\n");
        done(&t);
        /* On one line, the bytes stay as they are. */
        run(&t, RECORD_FORMAT_JSON, false, 0, 0, NULL, "[{\"a\": 1}]", 0);
        assert_string_equal(stub_output(), "{\"a\": 1}\n");
        done(&t);
}

static void test_array_cursor(void **state) {
        Run t;

        run(&t, RECORD_FORMAT_JSON, false, 2, 0, NULL, "[1,NaN,3,4]", 0);
        assert_int_equal(t.result, 0);
        assert_string_equal(stub_output(), "3\n4\n"); /* before the cursor: not even checked */
        assert_int_equal(stub_skipped, 0);
        assert_int_equal(t.body.index, 4);
        assert_false(t.body.shrank);
        done(&t);
        /* Fewer records than the cursor: a new document, read from the start. */
        run(&t, RECORD_FORMAT_JSON, false, 5, 0, NULL, "[1,2]", 0);
        assert_string_equal(stub_output(), "1\n2\n");
        assert_true(t.body.shrank);
        assert_int_equal(t.body.index, 2);
        done(&t);
}

static void test_array_malformed(void **state) {
        const char *bad[] = { "[{\"k\": 1}, ", "[1 2]", "[1,]", "{\"a\":1}", "[\"x]", "[1]]", "" };

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                Run t;

                run(&t, RECORD_FORMAT_JSON, false, 0, 0, "application/json", bad[i], 0);
                assert_int_equal(t.result, -EMEDIUMTYPE);
                assert_int_equal(stub_emitted, 0); /* nothing of a broken document */
                assert_non_null(strstr(t.body.error, "is not a JSON array"));
                assert_non_null(strstr(t.body.error, "Content-Type application/json"));
                done(&t);
        }
}

static void test_markup(void **state) {
        RecordFormat formats[] = { RECORD_FORMAT_AUTO, RECORD_FORMAT_JSON, RECORD_FORMAT_JSONL, RECORD_FORMAT_CSV,
                                   RECORD_FORMAT_DPIPE };

        for (size_t i = 0; i < ELEMENTSOF(formats); i++) {
                Run t;

                run(&t, formats[i], false, 0, 0, NULL, "\xef\xbb\xbf\n  <!DOCTYPE html>\n<html><body>hi</body></html>\n", 5);
                assert_int_equal(t.result, -EMEDIUMTYPE);
                assert_int_equal(stub_emitted, 0);
                assert_non_null(strstr(t.body.error, "HTML or XML document (no Content-Type, it starts with \"<!DOCTYPE html>\")"));
                assert_non_null(strstr(t.body.error, http_body_expected(formats[i])));
                done(&t);
        }
}

static void test_content_type(void **state) {
        Run t;

        run(&t, RECORD_FORMAT_JSONL, false, 0, 0, "text/html; charset=utf-8", "{\"a\":1}\n", 0);
        assert_int_equal(t.result, -EMEDIUMTYPE);
        assert_string_equal(t.body.error,
                            "the response is an HTML page (Content-Type text/html; charset=utf-8), not JSON lines");
        done(&t);
        run(&t, RECORD_FORMAT_AUTO, false, 0, 0, "Application/XML", "{}", 0);
        assert_non_null(strstr(t.body.error, "an XML document"));
        done(&t);
        run(&t, RECORD_FORMAT_AUTO, false, 0, 0, "image/png", "[]", 0);
        assert_non_null(strstr(t.body.error, "an image"));
        done(&t);
        /* Not telling: the body decides. */
        run(&t, RECORD_FORMAT_AUTO, false, 0, 0, "text/plain", "{\"a\":1}\n", 0);
        assert_int_equal(t.result, 0);
        assert_string_equal(stub_output(), "{\"a\":1}\n");
        done(&t);
}

static void test_jsonl_stream(void **state) {
        Run t;

        stub_reset();
        assert_int_equal(record_reader_init(&t.reader, RECORD_FORMAT_JSONL, 1024, NULL), 0);
        t.body = (HttpBody) {};
        http_body_begin(&t.body, RECORD_FORMAT_AUTO, false, &t.reader, 0, true, 0);
        /* Records leave as they arrive; only the unfinished one is held. */
        assert_int_equal(http_body_feed(&t.body, NULL, NULL, "{\"a\":1}\n{\"a\":", 13), 0);
        assert_true(t.body.streaming);
        assert_int_equal(stub_emitted, 1);
        assert_int_equal(http_body_held(&t.body), 5);
        assert_int_equal(http_body_feed(&t.body, NULL, NULL, "NaN}\n\n{\"a\":3}", 14), 0);
        assert_int_equal(stub_skipped, 1);
        assert_string_equal(stub_skip_reason, "line 2: not valid JSON: NaN or Infinity, which are not JSON numbers at byte 6");
        assert_int_equal(http_body_end(&t.body, NULL, NULL), 0);
        assert_string_equal(stub_output(), "{\"a\":1}\n{\"a\":3}\n");
        assert_int_equal(t.body.index, 3);
        done(&t);

        /* A first line that is not JSON: the body is not JSON lines, nothing is emitted. */
        run(&t, RECORD_FORMAT_JSONL, false, 0, 0, "text/plain", "hello world\n{\"a\":1}\n", 4);
        assert_int_equal(t.result, -EMEDIUMTYPE);
        assert_string_equal(t.body.error, "the body (Content-Type text/plain) is not JSON lines: line 1: not valid "
                                          "JSON: a syntax error at byte 1");
        assert_int_equal(stub_emitted, 0);
        done(&t);
        /* Also when the cursor is past it. */
        run(&t, RECORD_FORMAT_JSONL, false, 1, 0, NULL, "nope\n{\"a\":1}\n", 0);
        assert_int_equal(t.result, -EMEDIUMTYPE);
        done(&t);
        /* auto: a '{' body whose first line is no JSON value and no page. */
        run(&t, RECORD_FORMAT_AUTO, false, 0, 0, NULL, "{\n\"a\": 1\n}\n", 0);
        assert_int_equal(t.result, -EMEDIUMTYPE);
        done(&t);
}

static void test_csv_stream(void **state) {
        Run t;

        run(&t, RECORD_FORMAT_AUTO, false, 1, 0, "text/csv", "a,b\n1,2\n3,\"x\ny\"\n5,\xff\n", 2);
        assert_int_equal(t.result, 0);
        assert_string_equal(stub_output(), "{\"a\":\"3\",\"b\":\"x\\ny\"}\n");
        assert_int_equal(stub_skipped, 1);
        assert_string_equal(stub_skip_reason, "line 5: invalid UTF-8 at byte 3");
        done(&t);
}

static void test_page(void **state) {
        const char *page = "{\"total\":20, \"records\":[{\"a\":1},{\"a\":NaN},\n{\"a\":3}],\"next_offset\":13}";
        Run t;

        stub_with_seqs = true;
        run(&t, RECORD_FORMAT_AUTO, true, 0, 10, NULL, page, 4);
        stub_with_seqs = false;
        assert_int_equal(t.result, 0);
        assert_int_equal(t.body.format, RECORD_FORMAT_DPIPE);
        /* Records numbered by their offset at the source, the bad one's seq left out. */
        assert_string_equal(stub_output(), "10 {\"a\":1}\n12 {\"a\":3}\n");
        assert_int_equal(t.body.elements, 3);
        assert_true(t.body.have_next_offset);
        assert_int_equal(t.body.next_offset, 13);
        assert_true(t.body.have_total);
        assert_int_equal(t.body.total, 20);
        assert_int_equal(stub_skipped, 1);
        assert_non_null(strstr(stub_skip_reason, "offset 11: not valid JSON: NaN"));
        assert_int_equal(stub_next_seq, 13);
        done(&t);

        /* Found by its first line where a document was expected. */
        run(&t, RECORD_FORMAT_AUTO, false, 0, 0, NULL, "{\"records\":[1,2],\"next_offset\":2}\n", 0);
        assert_int_equal(t.body.format, RECORD_FORMAT_DPIPE);
        assert_string_equal(stub_output(), "1\n2\n");
        done(&t);
        /* Spread over lines: found at the end. */
        run(&t, RECORD_FORMAT_AUTO, false, 0, 0, NULL, "{\n \"records\": [1],\n \"next_offset\": 1\n}\n", 0);
        assert_int_equal(t.result, 0);
        assert_int_equal(t.body.format, RECORD_FORMAT_DPIPE);
        done(&t);

        run(&t, RECORD_FORMAT_DPIPE, true, 0, 0, NULL, "{\"rows\":[1]}", 0);
        assert_int_equal(t.result, -EMEDIUMTYPE);
        assert_non_null(strstr(t.body.error, "it has no records array"));
        done(&t);
}

static void test_array_transform(void **state) {
        const char *doc = "[{\"n\":\"1\",\"m\":{\"k\":\"a\\\"b\"}}, {\"n\":NaN},{\"n\":\"0\"}, [1], \"s\",\n"
                          " {\n  \"n\": \"5\",\n  \"m\": {\"k\": \"z\"}\n }, {\"n\":\"x\"}, {\"m\":{\"k\":\"\\u00e9\"},\"n\":\"7\"}]";
        _cleanup_(transform_freep) Transform *tr = NULL;
        _cleanup_free_ char *error = NULL;
        size_t chunks[] = { 0, 1, 5 };

        assert_int_equal(transform_compile("convert n:int; where n > 0; rename m.k=k; drop m", &tr, &error), 0);
        for (size_t c = 0; c < ELEMENTSOF(chunks); c++) {
                Run t;

                stub_transform = tr;
                stub_with_seqs = true;
                run(&t, RECORD_FORMAT_JSON, false, 0, 0, NULL, doc, chunks[c]);
                stub_transform = NULL;
                stub_with_seqs = false;
                assert_int_equal(t.result, 0);
                /* The objects on one line come listed by the pass that validated them; the one
                 * spread over lines, the array and the string go through the transform's scan. */
                assert_string_equal(stub_output(), "0 {\"n\":1,\"k\":\"a\\\"b\"}\n5 {\"n\":5,\"k\":\"z\"}\n"
                                                   "7 {\"n\":7,\"k\":\"\\u00e9\"}\n");
                assert_int_equal(stub_listed, 4);
                assert_int_equal(stub_filtered, 1);
                /* NaN (the scan's reason), [1] and "s" (no objects), "x" (no integer) */
                assert_int_equal(stub_skipped, 4);
                assert_string_equal(stub_skip_reason, "seq 6: transform: step 1 (convert n:int): \"x\" is not a number");
                done(&t);
        }
}

static void test_page_seq_limit(void **state) {
        Run t;

        run(&t, RECORD_FORMAT_DPIPE, true, 0, UINT64_MAX - 1, NULL, "{\"records\":[1,2,3],\"next_offset\":0}", 0);
        assert_int_equal(t.result, -ERANGE);
        assert_int_equal(stub_emitted, 1); /* seq UINT64_MAX - 1 is fine, the next is not */
        assert_non_null(strstr(t.body.error, "no record can follow"));
        done(&t);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_array_bad_elements),
                cmocka_unit_test(test_array_skip_reasons),
                cmocka_unit_test(test_array_multiline),
                cmocka_unit_test(test_array_cursor),
                cmocka_unit_test(test_array_malformed),
                cmocka_unit_test(test_markup),
                cmocka_unit_test(test_content_type),
                cmocka_unit_test(test_jsonl_stream),
                cmocka_unit_test(test_csv_stream),
                cmocka_unit_test(test_page),
                cmocka_unit_test(test_page_seq_limit),
                cmocka_unit_test(test_array_transform),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
