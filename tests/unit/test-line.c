/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "line.h"

static void feed(Buffer *b, const char *s, size_t n) {
        assert_int_equal(buffer_append(b, s, n), 0);
}

static void expect_line(Buffer *b, size_t max, const char *want, size_t want_len) {
        char *line;
        size_t len;

        assert_int_equal(line_next(b, max, &line, &len), 1);
        assert_int_equal(len, want_len);
        assert_memory_equal(line, want, want_len);
        assert_int_equal(line[len], 0);
}

static void test_lines(void **state) {
        Buffer b = {};
        char *line;
        size_t len;

        feed(&b, "hello\nworld\n\npartial", 20);
        expect_line(&b, 100, "hello", 5);
        expect_line(&b, 100, "world", 5);
        expect_line(&b, 100, "", 0);           /* an empty line is a line */
        assert_int_equal(line_next(&b, 100, &line, &len), 0);
        assert_int_equal(buffer_size(&b), 7); /* "partial" stays buffered */
        feed(&b, " line\n", 6);
        expect_line(&b, 100, "partial line", 12);
        assert_int_equal(line_next(&b, 100, &line, &len), 0);
        assert_int_equal(buffer_size(&b), 0);
        buffer_done(&b);
}

static void test_byte_by_byte(void **state) {
        static const char stream[] = "ping\r\n{\"op\":\"hello\"}\nsubscribe earliest\n";
        static const char *const want[] = { "ping", "{\"op\":\"hello\"}", "subscribe earliest" };
        Buffer b = {};
        size_t got = 0;

        for (size_t i = 0; i < sizeof(stream) - 1; i++) {
                char *line;
                size_t len;
                int r;

                feed(&b, stream + i, 1);
                r = line_next(&b, 100, &line, &len);
                assert_true(r >= 0);
                if (r == 0)
                        continue;
                /* A line only comes out when its '\n' arrived. */
                assert_int_equal(stream[i], '\n');
                assert_true(got < ELEMENTSOF(want));
                assert_string_equal(line, want[got]);
                assert_int_equal(len, strlen(want[got]));
                got++;
        }
        assert_int_equal(got, ELEMENTSOF(want));
        buffer_done(&b);
}

static void test_cr_and_nul(void **state) {
        Buffer b = {};

        feed(&b, "crlf\r\n", 6);
        expect_line(&b, 100, "crlf", 4);
        /* Only a trailing CR goes; one inside the line stays. */
        feed(&b, "a\rb\n", 4);
        expect_line(&b, 100, "a\rb", 3);
        feed(&b, "two\r\r\n", 6);
        expect_line(&b, 100, "two\r", 4);
        feed(&b, "\r\n", 2);
        expect_line(&b, 100, "", 0);
        /* Stray NULs are dropped wherever they are, also between the text and the CR. */
        feed(&b, "\0pi\0\0ng\0\r\0\n", 11);
        expect_line(&b, 100, "ping", 4);
        feed(&b, "\0\0\n", 3);
        expect_line(&b, 100, "", 0);
        assert_int_equal(buffer_size(&b), 0);
        buffer_done(&b);
}

static void test_too_long(void **state) {
        Buffer b = {};
        char *line;
        size_t len;

        /* Exactly max bytes is fine, one more is not: complete or not yet. */
        feed(&b, "12345678\n", 9);
        expect_line(&b, 8, "12345678", 8);
        feed(&b, "123456789\n", 10);
        assert_int_equal(line_next(&b, 8, &line, &len), -E2BIG);
        buffer_clear(&b);

        feed(&b, "12345678", 8);
        assert_int_equal(line_next(&b, 8, &line, &len), 0);
        feed(&b, "9", 1);
        assert_int_equal(line_next(&b, 8, &line, &len), -E2BIG);
        buffer_clear(&b);

        /* The default limit of the client protocol. */
        {
                size_t n = LINE_MAX_DEFAULT + 1;
                char *big = malloc(n);
                assert_non_null(big);
                memset(big, 'x', n);
                feed(&b, big, n);
                assert_int_equal(line_next(&b, LINE_MAX_DEFAULT, &line, &len), -E2BIG);
                buffer_clear(&b);
                big[n - 1] = '\n';
                feed(&b, big, n);
                assert_int_equal(line_next(&b, LINE_MAX_DEFAULT, &line, &len), 1);
                assert_int_equal(len, LINE_MAX_DEFAULT);
                free(big);
        }
        buffer_done(&b);
}

static int tokenize(const char *in, char **words, size_t max, char *storage, size_t size) {
        assert_true(strlen(in) < size);
        strcpy(storage, in);
        return line_tokenize(storage, words, max);
}

static void test_tokenize(void **state) {
        char s[256], *w[8];

        assert_int_equal(tokenize("", w, 8, s, sizeof(s)), 0);
        assert_int_equal(tokenize("   \t ", w, 8, s, sizeof(s)), 0);

        assert_int_equal(tokenize("subscribe earliest", w, 8, s, sizeof(s)), 2);
        assert_string_equal(w[0], "subscribe");
        assert_string_equal(w[1], "earliest");

        assert_int_equal(tokenize("  add\t demo   tcp  address=127.0.0.1:9000 ", w, 8, s, sizeof(s)), 4);
        assert_string_equal(w[0], "add");
        assert_string_equal(w[1], "demo");
        assert_string_equal(w[2], "tcp");
        assert_string_equal(w[3], "address=127.0.0.1:9000");

        /* Quotes group words, and may be glued to other text. */
        assert_int_equal(tokenize("add \"my source\" x query=\"a b\"c", w, 8, s, sizeof(s)), 4);
        assert_string_equal(w[1], "my source");
        assert_string_equal(w[2], "x");
        assert_string_equal(w[3], "query=a bc");

        /* An empty quoted word is a word. */
        assert_int_equal(tokenize("a \"\" b", w, 8, s, sizeof(s)), 3);
        assert_string_equal(w[1], "");

        /* Inside quotes, \" and \\ escape; other backslashes are kept; outside, nothing escapes. */
        assert_int_equal(tokenize("\"say \\\"hi\\\" \\\\ \\n\" a\\b", w, 8, s, sizeof(s)), 2);
        assert_string_equal(w[0], "say \"hi\" \\ \\n");
        assert_string_equal(w[1], "a\\b");

        /* Nothing is expanded, ever. */
        assert_int_equal(tokenize("$HOME `id` *", w, 8, s, sizeof(s)), 3);
        assert_string_equal(w[0], "$HOME");
        assert_string_equal(w[1], "`id`");
        assert_string_equal(w[2], "*");

        /* UTF-8 passes through. */
        assert_int_equal(tokenize("\"K\xc3\xb6ln \xe2\x82\xac\"", w, 8, s, sizeof(s)), 1);
        assert_string_equal(w[0], "K\xc3\xb6ln \xe2\x82\xac");
}

static void test_tokenize_errors(void **state) {
        char s[256], *w[3];

        assert_int_equal(tokenize("\"unterminated", w, 3, s, sizeof(s)), -EINVAL);
        assert_int_equal(tokenize("a \"b c", w, 3, s, sizeof(s)), -EINVAL);
        assert_int_equal(tokenize("a \"b\\\"", w, 3, s, sizeof(s)), -EINVAL); /* escaped closing quote */
        assert_int_equal(tokenize("a b c", w, 3, s, sizeof(s)), 3);
        assert_int_equal(tokenize("a b c d", w, 3, s, sizeof(s)), -E2BIG);
        assert_int_equal(tokenize("a b c   ", w, 3, s, sizeof(s)), 3); /* trailing blanks are no word */
}

static void test_key_value(void **state) {
        char s[64], *k, *v;

        strcpy(s, "address=127.0.0.1:9000");
        assert_int_equal(word_split_key_value(s, &k, &v), 0);
        assert_string_equal(k, "address");
        assert_string_equal(v, "127.0.0.1:9000");

        strcpy(s, "query=a=b");
        assert_int_equal(word_split_key_value(s, &k, &v), 0);
        assert_string_equal(k, "query");
        assert_string_equal(v, "a=b");

        strcpy(s, "empty=");
        assert_int_equal(word_split_key_value(s, &k, &v), 0);
        assert_string_equal(k, "empty");
        assert_string_equal(v, "");

        strcpy(s, "=value");
        assert_int_equal(word_split_key_value(s, &k, &v), -EINVAL);
        strcpy(s, "novalue");
        assert_int_equal(word_split_key_value(s, &k, &v), -EINVAL);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_lines),
                cmocka_unit_test(test_byte_by_byte),
                cmocka_unit_test(test_cr_and_nul),
                cmocka_unit_test(test_too_long),
                cmocka_unit_test(test_tokenize),
                cmocka_unit_test(test_tokenize_errors),
                cmocka_unit_test(test_key_value),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
