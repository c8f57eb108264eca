/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* dpiped's tokens file (dpiped(8), ACCESS): the format, every way it can be malformed (with the line
 * number), and the lookup of a presented secret. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "dpiped-tokens.h"
#include "util.h"

#define ADMIN "0123456789abcdef0123456789"
#define READER "fedcba9876543210fedcba"

static TokenSet *parse_ok(const char *text) {
        TokenSet *s = NULL;
        char error[256] = "";
        unsigned line = 0;

        assert_int_equal(token_set_parse(text, strlen(text), &s, &line, error, sizeof(error)), 0);
        assert_non_null(s);
        return s;
}

static void parse_bad(const char *text, unsigned want_line, const char *why_part) {
        TokenSet *s = NULL;
        char error[256] = "";
        unsigned line = 0;

        assert_int_equal(token_set_parse(text, strlen(text), &s, &line, error, sizeof(error)), -EINVAL);
        assert_null(s);
        assert_int_equal(line, want_line);
        if (!strstr(error, why_part))
                fail_msg("\"%s\" not in \"%s\"", why_part, error);
}

static void test_parse(void **state) {
        _cleanup_(token_set_freep) TokenSet *s = NULL;

        s = parse_ok("# tokens\n\n   # indented comment\nops admin " ADMIN "\r\n\tviewer  read\t" READER "\n");
        assert_int_equal(s->n_tokens, 2);
        assert_string_equal(s->tokens[0].name, "ops");
        assert_int_equal(s->tokens[0].role, TOKEN_ROLE_ADMIN);
        assert_string_equal(s->tokens[1].name, "viewer");
        assert_int_equal(s->tokens[1].role, TOKEN_ROLE_READ);
        assert_string_equal(token_role_to_string(TOKEN_ROLE_ADMIN), "admin");
        assert_string_equal(token_role_to_string(TOKEN_ROLE_READ), "read");
        token_set_free(TAKE_PTR(s));

        /* No final newline; an empty file is a valid set of no tokens. */
        s = parse_ok("a.b@c-d_e admin " ADMIN);
        assert_string_equal(s->tokens[0].name, "a.b@c-d_e");
        token_set_free(TAKE_PTR(s));
        s = parse_ok("");
        assert_int_equal(s->n_tokens, 0);
}

static void test_malformed(void **state) {
        parse_bad("ops admin\n", 1, "expected \"NAME ROLE SECRET\"");
        parse_bad("# c\nops\n", 2, "expected \"NAME ROLE SECRET\"");
        parse_bad("ops admin " ADMIN " more\n", 1, "found more words");
        parse_bad("ops root " ADMIN "\n", 1, "invalid role \"root\" of token ops");
        parse_bad("ops Admin " ADMIN "\n", 1, "invalid role");
        parse_bad("o/ps admin " ADMIN "\n", 1, "invalid token name \"o/ps\"");
        parse_bad("o\xc3\xa9 admin " ADMIN "\n", 1, "invalid token name");
        parse_bad("ops admin short\n", 1, "has 5 characters, it needs 16-4096");
        parse_bad("ops admin 0123456789abcde\n", 1, "has 15 characters");
        parse_bad("ops admin " ADMIN "\nops read " READER "\n", 2, "token name ops is used twice");
        parse_bad("ops admin " ADMIN "\nviewer read " ADMIN "\n", 2, "tokens ops and viewer have the same secret");
        parse_bad("ops admin 0123456789abcdef\x01\n", 1, "control character");
        {
                static const char nul[] = "ops admin " ADMIN "\nx\0y read " READER "\n";
                TokenSet *s = NULL;
                char error[256];
                unsigned line = 0;

                assert_int_equal(token_set_parse(nul, sizeof(nul) - 1, &s, &line, error, sizeof(error)), -EINVAL);
                assert_int_equal(line, 2);
                assert_non_null(strstr(error, "NUL"));
        }
        {
                char name[TOKEN_NAME_MAX + 2], text[256];

                memset(name, 'n', sizeof(name) - 1);
                name[sizeof(name) - 1] = 0;
                snprintf(text, sizeof(text), "%s read " READER "\n", name);
                parse_bad(text, 1, "invalid token name");
                name[TOKEN_NAME_MAX] = 0;
                snprintf(text, sizeof(text), "%s read " READER "\n", name);
                token_set_free(parse_ok(text));
        }
}

static void test_find(void **state) {
        _cleanup_(token_set_freep) TokenSet *s = parse_ok("ops admin " ADMIN "\nviewer read " READER "\n");
        const Token *t;

        t = token_set_find(s, ADMIN, strlen(ADMIN));
        assert_non_null(t);
        assert_string_equal(t->name, "ops");
        t = token_set_find(s, READER, strlen(READER));
        assert_non_null(t);
        assert_string_equal(t->name, "viewer");
        /* A prefix, an extension, one byte off, another length: nothing. */
        assert_null(token_set_find(s, ADMIN, strlen(ADMIN) - 1));
        assert_null(token_set_find(s, ADMIN "0", strlen(ADMIN) + 1));
        assert_null(token_set_find(s, "1123456789abcdef0123456789", strlen(ADMIN)));
        assert_null(token_set_find(s, "", 0));
        /* The secret is the bytes given, not a C string. */
        assert_null(token_set_find(s, ADMIN "\0", strlen(ADMIN) + 1));
        assert_null(token_set_find(NULL, ADMIN, strlen(ADMIN)));
}

static void test_load(void **state) {
        char dir[] = "/tmp/test-dpiped-tokens.XXXXXX", *path, error[512];
        TokenSet *s = NULL;
        bool others = true;
        int fd;

        assert_non_null(mkdtemp(dir));
        path = path_join(dir, "tokens");
        assert_non_null(path);

        assert_int_equal(token_set_load(path, &s, &others, error, sizeof(error)), -ENOENT);
        assert_non_null(strstr(error, "No such file or directory"));

        fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, "ops admin " ADMIN "\n", strlen("ops admin " ADMIN "\n")),
                         (ssize_t) strlen("ops admin " ADMIN "\n"));
        close(fd);
        assert_int_equal(token_set_load(path, &s, &others, error, sizeof(error)), 0);
        assert_false(others);
        assert_int_equal(s->n_tokens, 1);
        token_set_free(TAKE_PTR(s));

        assert_int_equal(chmod(path, 0644), 0);
        assert_int_equal(token_set_load(path, &s, &others, error, sizeof(error)), 0);
        assert_true(others);
        token_set_free(TAKE_PTR(s));

        /* "PATH:LINE: reason" */
        fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, "bad\n", 4), 4);
        close(fd);
        assert_int_equal(token_set_load(path, &s, &others, error, sizeof(error)), -EINVAL);
        assert_non_null(strstr(error, ":2: expected"));
        assert_int_equal(strncmp(error, path, strlen(path)), 0);

        /* Not a regular file. */
        assert_int_equal(token_set_load(dir, &s, &others, error, sizeof(error)), -EINVAL);
        assert_non_null(strstr(error, "not a regular file"));

        assert_int_equal(unlink(path), 0);
        assert_int_equal(rmdir(dir), 0);
        free(path);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse),
                cmocka_unit_test(test_malformed),
                cmocka_unit_test(test_find),
                cmocka_unit_test(test_load),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
