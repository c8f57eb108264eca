/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../fuzz/json-scan-oracle.h"
#include "json-scan.h"
#include "macro.h"

static void test_valid(void **state) {
        static const struct {
                const char *text;
                JsonScanType type;
        } valid[] = {
                { "{}", JSON_SCAN_OBJECT },
                { " \t\r\n{ } \n", JSON_SCAN_OBJECT },
                { "[]", JSON_SCAN_ARRAY },
                { "[ ]", JSON_SCAN_ARRAY },
                { "\"\"", JSON_SCAN_STRING },
                { "0", JSON_SCAN_NUMBER },
                { "-0", JSON_SCAN_NUMBER },
                { "-0.0e-0", JSON_SCAN_NUMBER },
                { "123456789012345678901234567890", JSON_SCAN_NUMBER },
                { "1.5E+10", JSON_SCAN_NUMBER },
                { "1e5", JSON_SCAN_NUMBER },
                { "true", JSON_SCAN_TRUE },
                { "false", JSON_SCAN_FALSE },
                { "null", JSON_SCAN_NULL },
                { " null ", JSON_SCAN_NULL },
                { "{\"a\":[1,2,{\"b\":null}],\"c\":\"d\"}", JSON_SCAN_OBJECT },
                { "{ \"a\" : 1 , \"b\" : [ true , false ] }", JSON_SCAN_OBJECT },
                { "[[[[]]],[{}],{\"\":{}}]", JSON_SCAN_ARRAY },
                { "\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u0041\\u00e9\\uFFFF\\ud83d\\ude00\"", JSON_SCAN_STRING },
                { "\"\\u0000\"", JSON_SCAN_STRING },
                { "\"K\xc3\xb6ln \xe2\x82\xac \xf0\x9f\x98\x80 \xef\xbf\xbf \xf4\x8f\xbf\xbf \x7f\"", JSON_SCAN_STRING },
                { "{\"op\":\"record\",\"seq\":1,\"data\":{\"s\":0,\"i\":1,\"t\":2,\"p\":\"xxxx\"}}", JSON_SCAN_OBJECT },
        };

        for (size_t i = 0; i < ELEMENTSOF(valid); i++) {
                const char *msg;
                size_t off = 77;

                if (json_scan(valid[i].text, strlen(valid[i].text), NULL, 0, &off) != (int) valid[i].type)
                        fail_msg("'%s' should be valid, of type %d (error at %zu)", valid[i].text, valid[i].type, off);
                assert_int_equal(off, 77); /* untouched on success */
                msg = json_scan_oracle(valid[i].text, strlen(valid[i].text));
                if (msg)
                        fail_msg("'%s': %s", valid[i].text, msg);
        }
}

static void test_invalid(void **state) {
        static const struct {
                const char *text;
                size_t error_offset;
        } invalid[] = {
                { "", 0 },
                { "   ", 3 },
                { "{", 1 },
                { "}", 0 },
                { "[1,]", 3 },
                { "{\"a\":1,}", 7 },
                { "{,}", 1 },
                { "[,1]", 1 },
                { "[1 2]", 3 },
                { "{\"a\" 1}", 5 },
                { "{\"a\":1 \"b\":2}", 7 },
                { "{a:1}", 1 },
                { "{'a':1}", 1 },
                { "'a'", 0 },
                { "01", 1 },
                { "-01", 2 },
                { "1.", 2 },
                { ".5", 0 },
                { "+1", 0 },
                { "-", 1 },
                { "1e", 2 },
                { "1e+", 3 },
                { "0x1", 1 },
                { "NaN", 0 },
                { "Infinity", 0 },
                { "-Infinity", 1 },
                { "tru", 3 },
                { "TRUE", 0 },
                { "nul", 3 },
                { "nulll", 4 },
                { "truee", 4 },
                { "[1]x", 3 },
                { "{\"a\":1}}", 7 },
                { "1 2", 2 },
                { "/*c*/1", 0 },
                { "\"abc", 4 },
                { "\"a\x01\"", 2 },
                { "\"a\tb\"", 2 },
                { "\"\\x41\"", 1 },
                { "\"\\'\"", 1 },
                { "\"\\u12\"", 1 },
                { "\"\\u12G4\"", 1 },
                { "\"\\ud800\"", 1 },
                { "\"\\udc00\"", 1 },
                { "\"\\ud834x\"", 1 },
                { "\"\\ud834\\u0041\"", 1 },
                { "\"\xc0\x80\"", 1 },             /* overlong NUL */
                { "\"\xc1\xbf\"", 1 },             /* overlong */
                { "\"\xe0\x9f\xbf\"", 1 },         /* overlong */
                { "\"\xed\xa0\x80\"", 1 },         /* UTF-8 encoded surrogate */
                { "\"\xf0\x8f\xbf\xbf\"", 1 },     /* overlong */
                { "\"\xf4\x90\x80\x80\"", 1 },     /* above U+10FFFF */
                { "\"\xf5\x80\x80\x80\"", 1 },
                { "\"\xff\"", 1 },
                { "\"\x80\"", 1 },                 /* lone continuation byte */
                { "\"\xc3\"", 1 },                 /* truncated */
                { "\"\xe2\x82\"", 1 },
                { "\"\xe2\x82x\"", 1 },
                { "\xef\xbb\xbf{}", 0 },           /* a byte order mark is not JSON */
                { "\v1", 0 },
                { "1\f", 1 },
        };

        for (size_t i = 0; i < ELEMENTSOF(invalid); i++) {
                const char *msg;
                size_t off = SIZE_MAX;
                int r = json_scan(invalid[i].text, strlen(invalid[i].text), NULL, 0, &off);

                if (r != -EBADMSG || off != invalid[i].error_offset)
                        fail_msg("'%s': got %d at %zu, expected -EBADMSG at %zu", invalid[i].text, r, off,
                                 invalid[i].error_offset);
                msg = json_scan_oracle(invalid[i].text, strlen(invalid[i].text));
                if (msg)
                        fail_msg("'%s': %s", invalid[i].text, msg);
        }

        /* The length bounds the input: a NUL is just an invalid byte, and what lies past n is never read. */
        assert_int_equal(json_scan("1\0", 2, NULL, 0, NULL), -EBADMSG);
        assert_int_equal(json_scan("\"a\0\"", 4, NULL, 0, NULL), -EBADMSG);
        assert_int_equal(json_scan("123", 2, NULL, 0, NULL), JSON_SCAN_NUMBER);
        assert_int_equal(json_scan("truex", 4, NULL, 0, NULL), JSON_SCAN_TRUE);
        assert_int_equal(json_scan("\"ab\"", 3, NULL, 0, NULL), -EBADMSG);
        assert_int_equal(json_scan(NULL, 0, NULL, 0, NULL), -EBADMSG);
}

static void test_depth(void **state) {
        char buf[8 * JSON_SCAN_DEPTH_MAX];
        size_t n;

        for (unsigned d = 1; d <= JSON_SCAN_DEPTH_MAX + 1; d++) {
                memset(buf, '[', d);
                memset(buf + d, ']', d);
                assert_int_equal(json_scan(buf, 2 * d, NULL, 0, NULL), d <= JSON_SCAN_DEPTH_MAX ? JSON_SCAN_ARRAY : -EBADMSG);
                assert_null(json_scan_oracle(buf, 2 * d));
        }
        /* Objects and arrays mixed, the innermost an object. */
        n = 0;
        for (unsigned d = 0; d < JSON_SCAN_DEPTH_MAX - 1; d++)
                n += (size_t) sprintf(buf + n, d % 2 ? "[" : "{\"k\":");
        n += (size_t) sprintf(buf + n, "{}");
        for (int d = (int) JSON_SCAN_DEPTH_MAX - 2; d >= 0; d--)
                buf[n++] = d % 2 ? ']' : '}';
        assert_int_equal(json_scan(buf, n, NULL, 0, NULL), JSON_SCAN_OBJECT);
        assert_null(json_scan_oracle(buf, n));
        /* A closing bracket of the wrong kind is caught at every level. */
        buf[n - 1] = ']';
        assert_int_equal(json_scan(buf, n, NULL, 0, NULL), -EBADMSG);
}

static void test_fields(void **state) {
        const char *line = "{\"op\":\"record\", \"seq\" : 42 ,\"data\":{\"op\":\"inner\",\"a\":[1,{\"b\":\"}\"}]},\"x\":null}";
        JsonScanField f[] = { { .key = "op" }, { .key = "seq" }, { .key = "data" }, { .key = "x" }, { .key = "missing" } };
        uint64_t seq = 0;

        assert_int_equal(json_scan(line, strlen(line), f, ELEMENTSOF(f), NULL), JSON_SCAN_OBJECT);
        assert_int_equal(f[0].type, JSON_SCAN_STRING);
        assert_int_equal(f[0].value_len, strlen("\"record\""));
        assert_memory_equal(f[0].value, "\"record\"", f[0].value_len);
        assert_true(json_scan_string_equal(f[0].value, f[0].value_len, "record"));
        assert_false(json_scan_string_equal(f[0].value, f[0].value_len, "recor"));
        assert_false(json_scan_string_equal(f[0].value, f[0].value_len, "records"));
        assert_int_equal(f[1].type, JSON_SCAN_NUMBER);
        assert_memory_equal(f[1].value, "42", 2);
        assert_int_equal(f[1].value_len, 2);
        assert_int_equal(json_scan_uint64(f[1].value, f[1].value_len, &seq), 0);
        assert_int_equal(seq, 42);
        assert_int_equal(f[2].type, JSON_SCAN_OBJECT);
        assert_int_equal(f[2].value_len, strlen("{\"op\":\"inner\",\"a\":[1,{\"b\":\"}\"}]}"));
        assert_memory_equal(f[2].value, "{\"op\":\"inner\",\"a\":[1,{\"b\":\"}\"}]}", f[2].value_len);
        assert_int_equal(f[3].type, JSON_SCAN_NULL);
        assert_int_equal(f[3].value_len, 4);
        assert_int_equal(f[4].type, JSON_SCAN_NONE);
        assert_null(f[4].value);
        assert_null(json_scan_oracle(line, strlen(line)));

        /* A repeated name: the last one counts, as in json-c. An escaped name matches its plain form. */
        line = "{\"seq\":1,\"\\u0073eq\":2,\"d\\u0061ta\":\"\\u00e9\"}";
        assert_int_equal(json_scan(line, strlen(line), f, ELEMENTSOF(f), NULL), JSON_SCAN_OBJECT);
        assert_int_equal(f[0].type, JSON_SCAN_NONE);
        assert_memory_equal(f[1].value, "2", 1);
        assert_int_equal(f[2].type, JSON_SCAN_STRING);
        assert_true(json_scan_string_equal(f[2].value, f[2].value_len, "\xc3\xa9"));
        assert_null(json_scan_oracle(line, strlen(line)));

        /* A name matches only whole: not a prefix of it, not a longer name that starts with it. */
        line = "{\"o\":1,\"opx\":2,\"se\":3,\"seqq\":4,\"\":5,\"dat\":6}";
        assert_int_equal(json_scan(line, strlen(line), f, ELEMENTSOF(f), NULL), JSON_SCAN_OBJECT);
        for (size_t i = 0; i < ELEMENTSOF(f); i++)
                assert_int_equal(f[i].type, JSON_SCAN_NONE);
        line = "{\"x\":\"a\",\"xx\":\"b\"}";
        assert_int_equal(json_scan(line, strlen(line), f, ELEMENTSOF(f), NULL), JSON_SCAN_OBJECT);
        assert_int_equal(f[3].type, JSON_SCAN_STRING);
        assert_memory_equal(f[3].value, "\"a\"", 3);

        /* Only top-level members: not those of a top-level array, nor nested ones. */
        line = "[{\"op\":\"record\"}]";
        assert_int_equal(json_scan(line, strlen(line), f, ELEMENTSOF(f), NULL), JSON_SCAN_ARRAY);
        for (size_t i = 0; i < ELEMENTSOF(f); i++)
                assert_int_equal(f[i].type, JSON_SCAN_NONE);

        /* Nothing is reported from a document that turns out invalid after the fields. */
        line = "{\"op\":\"record\",\"seq\":1,\"data\":{}";
        assert_int_equal(json_scan(line, strlen(line), f, ELEMENTSOF(f), NULL), -EBADMSG);
        for (size_t i = 0; i < ELEMENTSOF(f); i++) {
                assert_int_equal(f[i].type, JSON_SCAN_NONE);
                assert_null(f[i].value);
        }
}

static void test_strings(void **state) {
        char buf[16];

        assert_true(json_scan_string_equal("\"\"", 2, ""));
        assert_false(json_scan_string_equal("\"\"", 2, "a"));
        assert_true(json_scan_string_equal("\"a\\\"b\"", 6, "a\"b"));
        assert_true(json_scan_string_equal("\"\\ud83d\\ude00\"", 14, "\xf0\x9f\x98\x80"));
        /* (json-c 0.16 decodes this pair to U+FFFD; it is U+1DA0E) */
        assert_true(json_scan_string_equal("\"\\ud836\\ude0e\"", 14, "\xf0\x9d\xa8\x8e"));
        assert_false(json_scan_string_equal("\"\\u0000\"", 8, ""));     /* an escaped NUL is not the end */
        assert_false(json_scan_string_equal("\"a\"x", 4, "a"));          /* the span must end at the quote */
        assert_false(json_scan_string_equal("a", 1, "a"));
        assert_false(json_scan_string_equal("\"\\ud800\"", 8, "?"));
        assert_false(json_scan_string_equal(NULL, 0, ""));

        assert_int_equal(json_scan_string_unescape("\"x\\ty\\u00e9\"", 12, buf, sizeof(buf)), 5);
        assert_string_equal(buf, "x\ty\xc3\xa9");
        assert_int_equal(json_scan_string_unescape("\"0123456789abcdefgh\"", 20, buf, sizeof(buf)), -ENOBUFS);
        assert_string_equal(buf, "0123456789abcde");
        assert_int_equal(json_scan_string_unescape("\"\\q\"", 4, buf, sizeof(buf)), -EBADMSG);
        assert_int_equal(json_scan_string_unescape("1", 1, buf, sizeof(buf)), -EBADMSG);
}

static void test_uint64(void **state) {
        static const struct {
                const char *text;
                int r;
                uint64_t v;
        } t[] = {
                { "0", 0, 0 },
                { "7", 0, 7 },
                { "1234567890123456789", 0, UINT64_C(1234567890123456789) }, /* 19 digits: never overflows */
                { "9999999999999999999", 0, UINT64_C(9999999999999999999) },
                { "999999999999999999x", -EINVAL, 0 },
                { "10000000000000000000", 0, UINT64_C(10000000000000000000) }, /* 20 digits: checked */
                { "18446744073709551615", 0, UINT64_MAX },
                { "18446744073709551616", -ERANGE, 0 },
                { "99999999999999999999999", -ERANGE, 0 },
                { "99999999999999999999999.5", -EINVAL, 0 },
                { "-1", -EINVAL, 0 },
                { "-0", -EINVAL, 0 },
                { "1.0", -EINVAL, 0 },
                { "1e2", -EINVAL, 0 },
                { "01", -EINVAL, 0 },
                { "", -EINVAL, 0 },
                { "\"1\"", -EINVAL, 0 },
        };

        for (size_t i = 0; i < ELEMENTSOF(t); i++) {
                uint64_t v = 12345;

                assert_int_equal(json_scan_uint64(t[i].text, strlen(t[i].text), &v), t[i].r);
                assert_true(v == (t[i].r == 0 ? t[i].v : 12345));
        }
}

/* Strings and numbers are scanned 16, 8 and 1 bytes at a time depending on how much input is left:
 * a byte that needs a closer look must be found at every position of every one of those steps. */
static void test_block_boundaries(void **state) {
        static const struct {
                const char *bytes;
                bool valid;
        } inner[] = {
                { "\\n", true }, { "\\u00e9", true }, { "\xc3\xa9", true }, { "\x7f", true },
                { "\x01", false }, { "\x1f", false }, { "\x80", false }, { "\xff", false }, { "\\x", false },
        };
        char doc[128];

        for (size_t len = 1; len <= 40; len++)
                for (size_t at = 0; at < len; at++)
                        for (size_t x = 0; x < ELEMENTSOF(inner); x++)
                                for (size_t tail = 0; tail <= 17; tail++)
                                        for (int as_key = 0; as_key <= 1; as_key++) {
                                                size_t n = 0, k = strlen(inner[x].bytes), err = 0;
                                                int r;

                                                if (as_key)
                                                        doc[n++] = '{';
                                                doc[n++] = '"';
                                                memset(doc + n, 'a', at);
                                                n += at;
                                                memcpy(doc + n, inner[x].bytes, k);
                                                n += k;
                                                memset(doc + n, 'b', len - at - 1);
                                                n += len - at - 1;
                                                doc[n++] = '"';
                                                if (as_key) {
                                                        memcpy(doc + n, ":1}", 3);
                                                        n += 3;
                                                }
                                                memset(doc + n, ' ', tail);
                                                n += tail;

                                                r = json_scan(doc, n, NULL, 0, &err);
                                                if (inner[x].valid)
                                                        assert_int_equal(r, as_key ? JSON_SCAN_OBJECT : JSON_SCAN_STRING);
                                                else {
                                                        assert_int_equal(r, -EBADMSG);
                                                        assert_int_equal(err, (size_t) as_key + 1 + at);
                                                }
                                        }

        /* A quote ends the string wherever it is; what follows it decides. */
        for (size_t len = 0; len <= 40; len++)
                for (size_t tail = 0; tail <= 17; tail++) {
                        size_t n = 0, err = 0;

                        doc[n++] = '[';
                        doc[n++] = '"';
                        memset(doc + n, 'a', len);
                        n += len;
                        memcpy(doc + n, "\"x\"]", 4);
                        n += 4;
                        memset(doc + n, '\n', tail);
                        n += tail;
                        assert_int_equal(json_scan(doc, n, NULL, 0, &err), -EBADMSG);
                        assert_int_equal(err, 2 + len + 1);
                        doc[2 + len + 1] = ',';
                        assert_int_equal(json_scan(doc, n, NULL, 0, &err), -EBADMSG); /* ,"] */
                        doc[2 + len + 2] = '1';
                        assert_int_equal(json_scan(doc, n, NULL, 0, NULL), JSON_SCAN_ARRAY); /* ,1] */
                }

        /* Digits end at the first byte that is none, whatever it is (bytes >= 0xfa included). */
        static const char enders[] = { 'x', ':', '/', '\x00', '\xfa', '\xff', '\x80', '.', 'e' };
        for (size_t len = 1; len <= 30; len++)
                for (size_t e = 0; e < ELEMENTSOF(enders); e++)
                        for (size_t tail = 0; tail <= 9; tail++) {
                                size_t n = 0, err = 0;
                                int r;

                                doc[n++] = '[';
                                doc[n++] = '1';
                                for (size_t i = 1; i < len; i++)
                                        doc[n++] = (char) ('0' + i % 10);
                                doc[n++] = enders[e];
                                for (size_t i = 0; i < tail; i++)
                                        doc[n++] = '9';
                                doc[n++] = ']';
                                r = json_scan(doc, n, NULL, 0, &err);
                                if ((enders[e] == '.' || enders[e] == 'e') && tail > 0)
                                        assert_int_equal(r, JSON_SCAN_ARRAY);
                                else {
                                        assert_int_equal(r, -EBADMSG);
                                        assert_int_equal(err, 1 + len + (enders[e] == '.' || enders[e] == 'e'));
                                }
                        }
}

/* Every code point encoded in UTF-8 is valid in a string, but surrogates; every one escaped too. */
static void test_all_code_points(void **state) {
        for (uint32_t cp = 0x20; cp <= 0x10ffff; cp++) {
                char s[16];
                size_t n = 0;
                bool surrogate = cp >= 0xd800 && cp <= 0xdfff;

                if (cp == '"' || cp == '\\')
                        continue;
                s[n++] = '"';
                if (cp < 0x80)
                        s[n++] = (char) cp;
                else if (cp < 0x800) {
                        s[n++] = (char) (0xc0 | (cp >> 6));
                        s[n++] = (char) (0x80 | (cp & 0x3f));
                } else if (cp < 0x10000) {
                        s[n++] = (char) (0xe0 | (cp >> 12));
                        s[n++] = (char) (0x80 | ((cp >> 6) & 0x3f));
                        s[n++] = (char) (0x80 | (cp & 0x3f));
                } else {
                        s[n++] = (char) (0xf0 | (cp >> 18));
                        s[n++] = (char) (0x80 | ((cp >> 12) & 0x3f));
                        s[n++] = (char) (0x80 | ((cp >> 6) & 0x3f));
                        s[n++] = (char) (0x80 | (cp & 0x3f));
                }
                s[n++] = '"';
                if ((json_scan(s, n, NULL, 0, NULL) > 0) == surrogate)
                        fail_msg("U+%04" PRIX32 " encoded: wrong verdict", cp);
                if (!surrogate) {
                        char esc[32];
                        int k = cp < 0x10000 ? snprintf(esc, sizeof(esc), "\"\\u%04" PRIx32 "\"", cp)
                                             : snprintf(esc, sizeof(esc), "\"\\u%04" PRIX32 "\\u%04" PRIx32 "\"",
                                                        0xd800 + ((cp - 0x10000) >> 10), 0xdc00 + ((cp - 0x10000) & 0x3ff));

                        assert_int_equal(json_scan(esc, (size_t) k, NULL, 0, NULL), JSON_SCAN_STRING);
                        s[n - 1] = 0;
                        if (!json_scan_string_equal(esc, (size_t) k, s + 1))
                                fail_msg("U+%04" PRIX32 " escaped does not compare equal to its UTF-8", cp);
                }
        }
}

/* ---- random documents: valid ones from a grammar, then mutated; json-c is the oracle ---- */

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint32_t rnd(uint32_t n) {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        return (uint32_t) (rng_state % n);
}

static void gen_blank(char *b, size_t *n) {
        static const char blanks[] = " \t\r\n";
        while (rnd(4) == 0)
                b[(*n)++] = blanks[rnd(4)];
}

static void gen_string(char *b, size_t *n) {
        static const char *pieces[] = { "a", "op", "seq", "data", "\\\"", "\\\\", "\\/", "\\n", "\\u00e9", "\\ud83d\\ude00",
                                        "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", " ", "{", "]", ":", ",", "\\u0000" };
        b[(*n)++] = '"';
        for (uint32_t k = rnd(4); k > 0; k--) {
                const char *p = pieces[rnd(ELEMENTSOF(pieces))];
                memcpy(b + *n, p, strlen(p));
                *n += strlen(p);
        }
        b[(*n)++] = '"';
}

static void gen_value(char *b, size_t *n, unsigned depth) {
        static const char *scalars[] = { "0", "-1", "42", "1.5", "-0.25e-3", "1E+9", "18446744073709551615",
                                         "18446744073709551616", "true", "false", "null" };
        uint32_t kind = depth >= 6 || *n > 3000 ? rnd(2) : rnd(4);

        gen_blank(b, n);
        if (kind == 0) {
                const char *s = scalars[rnd(ELEMENTSOF(scalars))];
                memcpy(b + *n, s, strlen(s));
                *n += strlen(s);
        } else if (kind == 1)
                gen_string(b, n);
        else {
                bool object = kind == 2 || depth == 0;
                uint32_t members = rnd(5);

                b[(*n)++] = object ? '{' : '[';
                gen_blank(b, n);
                for (uint32_t i = 0; i < members; i++) {
                        if (i > 0)
                                b[(*n)++] = ',';
                        if (object) {
                                gen_blank(b, n);
                                gen_string(b, n);
                                gen_blank(b, n);
                                b[(*n)++] = ':';
                        }
                        gen_value(b, n, depth + 1);
                }
                gen_blank(b, n);
                b[(*n)++] = object ? '}' : ']';
        }
        gen_blank(b, n);
}

static void test_random(void **state) {
        static const char mutations[] = "{}[]\",:.-+0123456789eEtfnulaNI\\ '\x01\x7f\x80\xc3\xed\xff";
        static char doc[16384];
        unsigned valid = 0, invalid = 0;

        for (unsigned i = 0; i < 30000; i++) {
                const char *msg;
                size_t n = 0;

                gen_value(doc, &n, 0);
                assert_true(n < sizeof(doc) - 64);
                if (json_scan(doc, n, NULL, 0, NULL) <= 0)
                        fail_msg("generated document refused: %.*s", (int) n, doc);
                for (uint32_t k = i % 3 == 0 ? 0 : rnd(3) + 1; k > 0 && n > 0; k--) {
                        size_t at = rnd((uint32_t) n);
                        switch (rnd(4)) {
                        case 0: /* replace */
                                doc[at] = mutations[rnd(sizeof(mutations) - 1)];
                                break;
                        case 1: /* insert */
                                memmove(doc + at + 1, doc + at, n - at);
                                doc[at] = mutations[rnd(sizeof(mutations) - 1)];
                                n++;
                                break;
                        case 2: /* delete */
                                memmove(doc + at, doc + at + 1, n - at - 1);
                                n--;
                                break;
                        default: /* truncate */
                                n = at;
                        }
                }
                msg = json_scan_oracle(doc, n);
                if (msg)
                        fail_msg("%s: '%.*s'", msg, (int) n, doc);
                if (json_scan(doc, n, NULL, 0, NULL) > 0)
                        valid++;
                else
                        invalid++;
        }
        /* The mix exercises both verdicts. */
        assert_true(valid > 10000);
        assert_true(invalid > 5000);
}

/* A literal and its length. */
#define L(s) (s), (sizeof(s) - 1)

static void test_line(void **state) {
        size_t off = 0;

        /* Only space and tab between tokens: dpiped puts a record into one line of its clients. */
        assert_int_equal(json_scan_line(L("{\"a\": 1,\t\"b\":[ ]}"), NULL, 0, NULL), JSON_SCAN_OBJECT);
        assert_int_equal(json_scan_line(L("{\"a\":\n1}"), NULL, 0, &off), -EBADMSG);
        assert_int_equal(off, 5);
        assert_string_equal(json_scan_error_reason(L("{\"a\":\n1}"), off), "a line break");
        assert_int_equal(json_scan_line(L("1\r"), NULL, 0, NULL), -EBADMSG);
        assert_int_equal(json_scan(L("1\r"), NULL, 0, NULL), JSON_SCAN_NUMBER);
        assert_false(json_scan_line_valid(L("\"a\nb\"")));
        assert_true(json_scan_line_valid(L("\"a\\nb\"")));
}

static void test_prefix(void **state) {
        size_t end = 0, off = 0;

        assert_int_equal(json_scan_prefix(L(" {\"a\":[1,2]}, 3]"), &end, NULL), JSON_SCAN_OBJECT);
        assert_int_equal(end, 12);
        assert_int_equal(json_scan_prefix(L("12abc"), &end, NULL), JSON_SCAN_NUMBER);
        assert_int_equal(end, 2);
        assert_int_equal(json_scan_prefix(L("tru"), &end, &off), -EBADMSG);
        assert_int_equal(off, 3);
        assert_int_equal(json_scan_prefix(L(""), &end, &off), -EBADMSG);
}

static void test_prefix_line_members(void **state) {
        JsonScanMembers mt = { .max_depth = 2 };
        size_t end = 0, off = 0;

        /* The value at the start, its members listed, whatever follows it not looked at. */
        assert_int_equal(json_scan_prefix_line_members(L("{\"a\":{\"b\":1,\"c\":{\"d\":2}},\"e\" : \"x\"} ,{NaN"), &mt, &end, NULL),
                         JSON_SCAN_OBJECT);
        assert_int_equal(end, 35);
        assert_int_equal(mt.n, 4);
        assert_memory_equal(mt.members[0].key, "\"a\"", 3);
        assert_int_equal(mt.members[0].depth, 1);
        assert_memory_equal(mt.members[1].key, "\"b\"", 3);
        assert_int_equal(mt.members[1].depth, 2);
        assert_int_equal(mt.members[1].parent, 0);
        assert_memory_equal(mt.members[2].value, "{\"d\":2}", mt.members[2].value_len);
        assert_memory_equal(mt.members[3].key, "\"e\"", 3);
        assert_memory_equal(mt.members[3].value, "\"x\"", mt.members[3].value_len);
        assert_int_equal(json_scan_prefix_line_members(L("[1] x"), &mt, &end, NULL), JSON_SCAN_ARRAY);
        assert_int_equal(end, 3);
        assert_int_equal(mt.n, 0);
        /* One line: a line break inside is an error at the break (blanks before the value are the
         * caller's to skip). */
        assert_int_equal(json_scan_prefix_line_members(L("{\"a\":\n1}"), &mt, &end, &off), -EBADMSG);
        assert_int_equal(off, 5);
        assert_int_equal(json_scan_prefix_line_members(L("{\"a\":NaN}"), &mt, &end, &off), -EBADMSG);
        assert_int_equal(off, 5);
        json_scan_members_done(&mt);
}

static void test_lenient(void **state) {
        size_t end = 0;

        /* Scalars are not looked at, the shape is. */
        assert_int_equal(json_scan_lenient(L("[NaN, {\"a\": -Infinity, \"\xff\": 0x1f}, tru]"), 0, &end), 0);
        assert_int_equal(end, 39);
        assert_int_equal(json_scan_lenient(L("{\"n\":NaN} , 2"), JSON_SCAN_PREFIX, &end), 0);
        assert_int_equal(end, 9);
        assert_int_equal(json_scan_lenient(L("\"a\\\"b\"x"), JSON_SCAN_PREFIX, &end), 0);
        assert_int_equal(end, 6);
        assert_int_equal(json_scan_lenient(L("NaN,"), JSON_SCAN_PREFIX, &end), 0);
        assert_int_equal(end, 3);
        /* Shapes that are broken. */
        assert_int_equal(json_scan_lenient(L("[1 2]"), 0, &end), -EBADMSG);
        assert_int_equal(json_scan_lenient(L("[1,]"), 0, &end), -EBADMSG);
        assert_int_equal(json_scan_lenient(L("[1}"), 0, &end), -EBADMSG);
        assert_int_equal(json_scan_lenient(L("{1:2}"), 0, &end), -EBADMSG);
        assert_int_equal(json_scan_lenient(L("{\"a\" 2}"), 0, &end), -EBADMSG);
        assert_int_equal(json_scan_lenient(L("[\"abc"), 0, &end), -EBADMSG);
        assert_int_equal(json_scan_lenient(L("\"ab\\"), 0, &end), -EBADMSG);
        assert_int_equal(json_scan_lenient(L("[1] x"), 0, &end), -EBADMSG);
        assert_int_equal(json_scan_lenient(L(""), 0, &end), -EBADMSG);
}

static void test_error_reason(void **state) {
        char deep[80];
        size_t off = 0;

        assert_int_equal(json_scan("[1,NaN]", 7, NULL, 0, &off), -EBADMSG);
        assert_string_equal(json_scan_error_reason("[1,NaN]", 7, off), "NaN or Infinity, which are not JSON numbers");
        assert_int_equal(json_scan("\"\xe2\x82\"", 4, NULL, 0, &off), -EBADMSG);
        assert_string_equal(json_scan_error_reason("\"\xe2\x82\"", 4, off), "invalid UTF-8");
        assert_int_equal(json_scan("{\xc3\xa9:1}", 6, NULL, 0, &off), -EBADMSG);
        assert_string_equal(json_scan_error_reason("{\xc3\xa9:1}", 6, off), "a syntax error");
        assert_int_equal(json_scan("[1", 2, NULL, 0, &off), -EBADMSG);
        assert_string_equal(json_scan_error_reason("[1", 2, off), "it ends in the middle of a value");
        memset(deep, '[', 40);
        assert_int_equal(json_scan(deep, 40, NULL, 0, &off), -EBADMSG);
        assert_int_equal(off, 32);
        assert_string_equal(json_scan_error_reason(deep, 40, off), "containers nested deeper than 32 levels");
        assert_int_equal(json_scan("[1]{", 4, NULL, 0, &off), -EBADMSG);
        assert_string_equal(json_scan_error_reason("[1]{", 4, off), "a syntax error");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_line),
                cmocka_unit_test(test_prefix),
                cmocka_unit_test(test_prefix_line_members),
                cmocka_unit_test(test_lenient),
                cmocka_unit_test(test_error_reason),
                cmocka_unit_test(test_valid),
                cmocka_unit_test(test_invalid),
                cmocka_unit_test(test_depth),
                cmocka_unit_test(test_fields),
                cmocka_unit_test(test_strings),
                cmocka_unit_test(test_uint64),
                cmocka_unit_test(test_block_boundaries),
                cmocka_unit_test(test_all_code_points),
                cmocka_unit_test(test_random),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
