/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The pure logic of dpipectl and dpipe-client: argument parsing, the quoting of inline commands
 * (checked against the server-side tokenizer), the record fast path, CSV fields, and the output
 * formats of dpipe-client. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "buffer.h"
#include "client-format.h"
#include "client-util.h"
#include "macro.h"
#include "line.h"
#include "util.h"

static char *buffer_string(Buffer *b) {
        assert_int_equal(buffer_append(b, "", 1), 0);
        return buffer_begin(b);
}

static void test_subscribe_from(void **state) {
        SubscribeFrom f;

        assert_int_equal(subscribe_from_parse("earliest", &f), 0);
        assert_int_equal(f.kind, SUBSCRIBE_FROM_EARLIEST);
        assert_int_equal(subscribe_from_parse("latest", &f), 0);
        assert_int_equal(f.kind, SUBSCRIBE_FROM_LATEST);
        assert_int_equal(subscribe_from_parse("42", &f), 0);
        assert_int_equal(f.kind, SUBSCRIBE_FROM_OFFSET);
        assert_int_equal(f.offset, 42);
        assert_int_equal(subscribe_from_parse("18446744073709551615", &f), 0);
        assert_true(f.offset == UINT64_MAX);
        assert_int_equal(subscribe_from_parse("18446744073709551616", &f), -EINVAL);
        assert_int_equal(subscribe_from_parse("-1", &f), -EINVAL);
        assert_int_equal(subscribe_from_parse("", &f), -EINVAL);
        assert_int_equal(subscribe_from_parse(NULL, &f), -EINVAL);
        assert_int_equal(subscribe_from_parse("Earliest", &f), -EINVAL);
        assert_int_equal(subscribe_from_parse("12a", &f), -EINVAL);
}

static void test_option_assignment(void **state) {
        char *key = NULL;
        const char *value = NULL;

        assert_int_equal(option_assignment_split("format=csv", &key, &value), 0);
        assert_string_equal(key, "format");
        assert_string_equal(value, "csv");
        free(key);
        /* Only the first '=' splits: values may hold more of them (queries, URLs). */
        assert_int_equal(option_assignment_split("query=a=b c", &key, &value), 0);
        assert_string_equal(key, "query");
        assert_string_equal(value, "a=b c");
        free(key);
        assert_int_equal(option_assignment_split("csv_header=", &key, &value), 0);
        assert_string_equal(value, "");
        free(key);
        assert_int_equal(option_assignment_split("=x", &key, &value), -EINVAL);
        assert_int_equal(option_assignment_split("novalue", &key, &value), -EINVAL);
        assert_int_equal(option_assignment_split("bad key=1", &key, &value), -EINVAL);
        assert_int_equal(option_assignment_split(NULL, &key, &value), -EINVAL);
}

/* Whatever words we quote, the server's tokenizer must give back the same words. */
static void check_roundtrip(char **words, size_t n) {
        Buffer b = {};
        char *tok[16];
        int k;

        assert_int_equal(inline_command_append(&b, words, n), 0);
        k = line_tokenize(buffer_string(&b), tok, 16);
        assert_int_equal(k, (int) n);
        for (size_t i = 0; i < n; i++)
                assert_string_equal(tok[i], words[i]);
        buffer_done(&b);
}

static void test_inline_quoting(void **state) {
        char *plain[] = { "add", "demo", "tcp", "address=127.0.0.1:9000" };
        char *tricky[] = { "add", "x y", "", "q=\"quoted\"", "back\\slash", "tab\there", "end\\" };
        char *newline[] = { "a\nb" };
        Buffer b = {};

        assert_int_equal(inline_command_append(&b, plain, 4), 0);
        assert_string_equal(buffer_string(&b), "add demo tcp address=127.0.0.1:9000");
        buffer_clear(&b);
        assert_int_equal(inline_command_append(&b, tricky, 2), 0);
        assert_string_equal(buffer_string(&b), "add \"x y\"");
        buffer_clear(&b);
        assert_int_equal(inline_command_append(&b, newline, 1), -EINVAL);
        buffer_done(&b);

        check_roundtrip(plain, ELEMENTSOF(plain));
        check_roundtrip(tricky, ELEMENTSOF(tricky));
}

static void test_record_fast_offset(void **state) {
        const char *ok = "{\"op\":\"record\",\"offset\":1234,\"source\":\"s\",\"ts_us\":1,\"data\":{}}";
        const char *other_order = "{\"offset\":1,\"op\":\"record\",\"data\":1}";
        const char *reply = "{\"op\":\"ok\"}";
        const char *huge = "{\"op\":\"record\",\"offset\":99999999999999999999,\"data\":1}";
        const char *cut = "{\"op\":\"record\",\"offset\":12";
        uint64_t o = 0;

        assert_true(record_line_fast_offset(ok, strlen(ok), &o));
        assert_int_equal(o, 1234);
        /* Not recognised is not an error: the caller parses the line properly. */
        assert_false(record_line_fast_offset(other_order, strlen(other_order), &o));
        assert_false(record_line_fast_offset(reply, strlen(reply), &o));
        assert_false(record_line_fast_offset(huge, strlen(huge), &o));
        assert_false(record_line_fast_offset(cut, strlen(cut), &o));
        assert_false(record_line_fast_offset(ok, 10, &o));
}

static void test_format_bytes(void **state) {
        char buf[32];

        assert_string_equal(format_bytes(buf, sizeof(buf), 0), "0B");
        assert_string_equal(format_bytes(buf, sizeof(buf), 1023), "1023B");
        assert_string_equal(format_bytes(buf, sizeof(buf), 1536), "1.5K");
        assert_string_equal(format_bytes(buf, sizeof(buf), 5u * 1024 * 1024), "5.0M");
        assert_string_equal(format_bytes(buf, sizeof(buf), UINT64_C(3) << 30), "3.0G");
}

static void test_format_relative(void **state) {
        char buf[64];
        uint64_t now = UINT64_C(1700000000) * USEC_PER_SEC;

        assert_string_equal(format_timestamp_relative(buf, sizeof(buf), 0, now), "n/a");
        assert_string_equal(format_timestamp_relative(buf, sizeof(buf), now - 500 * USEC_PER_MSEC, now), "500ms ago");
        assert_string_equal(format_timestamp_relative(buf, sizeof(buf), now - 3 * USEC_PER_SEC, now), "3s ago");
        assert_string_equal(format_timestamp_relative(buf, sizeof(buf), now - 125 * USEC_PER_SEC, now), "2min 5s ago");
        assert_string_equal(format_timestamp_relative(buf, sizeof(buf), now - 3720 * USEC_PER_SEC, now), "1h 2min ago");
        assert_string_equal(format_timestamp_relative(buf, sizeof(buf), now - 86400 * USEC_PER_SEC, now), "1 day ago");
        assert_string_equal(format_timestamp_relative(buf, sizeof(buf), now + 1, now), "in the future");
}

static void test_csv_field(void **state) {
        Buffer b = {};

        assert_int_equal(csv_field_append(&b, "plain"), 0);
        assert_int_equal(buffer_append(&b, ",", 1), 0);
        assert_int_equal(csv_field_append(&b, "a,b"), 0);
        assert_int_equal(buffer_append(&b, ",", 1), 0);
        assert_int_equal(csv_field_append(&b, "say \"hi\""), 0);
        assert_int_equal(buffer_append(&b, ",", 1), 0);
        assert_int_equal(csv_field_append(&b, "two\nlines"), 0);
        assert_string_equal(buffer_string(&b), "plain,\"a,b\",\"say \"\"hi\"\"\",\"two\nlines\"");
        buffer_done(&b);
}

static void test_text_width(void **state) {
        assert_int_equal(text_width(""), 0);
        assert_int_equal(text_width("abc"), 3);
        assert_int_equal(text_width("\x1b[0;32mactive\x1b[0m"), 6);
        assert_int_equal(text_width("├─ü"), 3);
}

static void test_output_format_names(void **state) {
        assert_int_equal(output_format_from_string("json"), OUTPUT_JSON);
        assert_int_equal(output_format_from_string("csv"), OUTPUT_CSV);
        assert_int_equal(output_format_from_string("table"), OUTPUT_TABLE);
        assert_int_equal(output_format_from_string("xml"), _OUTPUT_FORMAT_INVALID);
        assert_int_equal(output_format_from_string(NULL), _OUTPUT_FORMAT_INVALID);
}

static const char rec0[] = "{\"op\":\"record\",\"offset\":0,\"source\":\"demo\",\"ts_us\":7,\"data\":{\"id\":1,\"name\":\"a, b\"}}";
static const char rec1[] = "{\"op\":\"record\",\"offset\":1,\"source\":\"demo\",\"ts_us\":8,\"data\":{\"name\":\"x\",\"extra\":true}}";

/* The table on real data: a later, longer value widens its column (and the header is printed again)
 * instead of being cut; CJK lines up by cells; an embedded newline stays inside its row. */
static void test_record_table_adapts(void **state) {
        static const char *const recs[] = {
                "{\"op\":\"record\",\"offset\":0,\"source\":\"s\",\"ts_us\":0,\"data\":{\"city\":\"Oslo\",\"n\":1}}",
                "{\"op\":\"record\",\"offset\":1,\"source\":\"s\",\"ts_us\":0,\"data\":{\"city\":\"東京\",\"n\":2}}",
                "{\"op\":\"record\",\"offset\":2,\"source\":\"s\",\"ts_us\":0,\"data\":{\"city\":\"Llanfair\\nPwllgwyngyll\",\"n\":3}}",
                "{\"op\":\"record\",\"offset\":3,\"source\":\"s\",\"ts_us\":0,\"data\":{\"city\":\"Rome\",\"n\":4}}",
        };
        RecordFormatter f;
        Buffer b = {};

        record_formatter_init(&f, OUTPUT_TABLE);
        for (size_t i = 0; i < ELEMENTSOF(recs); i++)
                assert_int_equal(record_formatter_append(&f, recs[i], strlen(recs[i]), &b), 0);
        assert_string_equal(buffer_string(&b),
                            "offset   source time                       city n\n"
                            "0        s      1970-01-01 00:00:00.000000 Oslo 1\n"
                            "1        s      1970-01-01 00:00:00.000000 東京 2\n"
                            "offset   source time                       city                   n\n"
                            "2        s      1970-01-01 00:00:00.000000 Llanfair\\nPwllgwyngyll 3\n"
                            "3        s      1970-01-01 00:00:00.000000 Rome                   4\n");
        record_formatter_done(&f);
        buffer_done(&b);
}

static void test_text_width_cells(void **state) {
        assert_int_equal(text_width("東京"), 4);
        assert_int_equal(text_width("e\xcc\x81"), 1);           /* e + combining acute */
        assert_int_equal(text_width("\xf0\x9f\x98\x80"), 2);   /* U+1F600 */
        assert_int_equal(text_width("\xff"), 1);                 /* not UTF-8: one cell */
}

static void test_record_formats(void **state) {
        RecordFormatter f;
        Buffer b = {};

        /* JSON: the exact line the server sent. */
        record_formatter_init(&f, OUTPUT_JSON);
        assert_int_equal(record_formatter_append(&f, rec0, strlen(rec0), &b), 0);
        assert_string_equal(buffer_string(&b), "{\"op\":\"record\",\"offset\":0,\"source\":\"demo\",\"ts_us\":7,\"data\":{\"id\":1,\"name\":\"a, b\"}}\n");
        record_formatter_done(&f);
        buffer_clear(&b);

        /* CSV: the header comes from the first record; later records fill those columns only. */
        record_formatter_init(&f, OUTPUT_CSV);
        assert_int_equal(record_formatter_append(&f, rec0, strlen(rec0), &b), 0);
        assert_int_equal(record_formatter_append(&f, rec1, strlen(rec1), &b), 0);
        assert_string_equal(buffer_string(&b),
                            "offset,source,ts_us,id,name\n"
                            "0,demo,7,1,\"a, b\"\n"
                            "1,demo,8,,x\n");
        record_formatter_done(&f);
        buffer_clear(&b);

        /* Table: times in local time (TZ=UTC here), a new field becomes a new column under a new
         * header. */
        record_formatter_init(&f, OUTPUT_TABLE);
        assert_int_equal(record_formatter_append(&f, rec0, strlen(rec0), &b), 0);
        assert_int_equal(record_formatter_append(&f, rec1, strlen(rec1), &b), 0);
        assert_string_equal(buffer_string(&b),
                            "offset   source time                       id name\n"
                            "0        demo   1970-01-01 00:00:00.000007 1  a, b\n"
                            "offset   source time                       id name extra\n"
                            "1        demo   1970-01-01 00:00:00.000008    x    true\n");
        record_formatter_done(&f);
        buffer_clear(&b);

        /* Pretty JSON: the same record, re-indented. */
        record_formatter_init(&f, OUTPUT_JSON_PRETTY);
        assert_int_equal(record_formatter_append(&f, rec0, strlen(rec0), &b), 0);
        assert_non_null(strstr(buffer_string(&b), "\n  \"offset\": 0,\n"));
        record_formatter_done(&f);
        buffer_clear(&b);

        /* Not JSON: refused, so that the caller can print it raw. */
        record_formatter_init(&f, OUTPUT_CSV);
        assert_int_equal(record_formatter_append(&f, "{nope", 5, &b), -EBADMSG);
        record_formatter_done(&f);
        buffer_done(&b);
}

int main(void) {
        /* Times in the table are local: make them the same everywhere. */
        setenv("TZ", "UTC", 1);
        tzset();
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_subscribe_from),
                cmocka_unit_test(test_option_assignment),
                cmocka_unit_test(test_inline_quoting),
                cmocka_unit_test(test_record_fast_offset),
                cmocka_unit_test(test_format_bytes),
                cmocka_unit_test(test_format_relative),
                cmocka_unit_test(test_csv_field),
                cmocka_unit_test(test_text_width),
                cmocka_unit_test(test_text_width_cells),
                cmocka_unit_test(test_record_table_adapts),
                cmocka_unit_test(test_output_format_names),
                cmocka_unit_test(test_record_formats),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
