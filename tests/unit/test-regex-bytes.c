/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* common/regex-bytes: a pattern rewritten for the C locale matches exactly what the original
 * matches in C.UTF-8, on every subject of a set of UTF-8 texts (differentially, with glibc's two
 * matchers), and the patterns it can not rewrite exactly are left alone. */

#include <errno.h>
#include <locale.h>
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "regex-bytes.h"
#include "util.h"

static const char *const patterns[] = {
        "^GET ", "a.b", "^.$", "^..$", "^.{3}$", "^.*$", ".+é", "é+$", "^(é|x)*$", "日本*",
        "[a-z]+", "^[a-z]+$", "^[^a]$", "^[^a-z]+$", "[^]a]", "^[^a-]$", "^[]x]$", "[-a]", "^[^-x]$",
        "^a|b$", "(ab|c.)d", "x{2,3}", "\\.", "\\\\", "^\\(.\\)$", "[.]", "^[^.]*$", "😀.", "^.😀?$",
        "^(.)(..)?$", "ß{2}", "a[^b]*c",
};

/* Subjects with their lengths (some hold NUL). */
static const struct {
        const char *s;
        size_t n;
} subjects[] = {
#define S(lit) { lit, sizeof(lit) - 1 }
        S(""), S("a"), S("é"), S("ab"), S("aéb"), S("a b"), S("GET /x"), S("日本語"), S("日本本本"),
        S("ééé"), S("xé"), S("abc"), S("Abc"), S("]"), S("-"), S("x"), S("a\nb"), S("a\0b"), S("\0"),
        S("."), S("\\"), S("(é)"), S("😀"), S("😀a"), S("a😀"), S("ßß"), S("ß"), S("acé c"), S("abd"),
        S("cxd"), S("céd"), S("xx"), S("xxx"), S("zéé"), S("a]"), S("[a"),
#undef S
};

static bool match(const regex_t *re, locale_t l, const char *s, size_t n) {
        regmatch_t span[1] = { { .rm_so = 0, .rm_eo = (regoff_t) n } };
        locale_t old = uselocale(l);
        int k = regexec(re, s, 1, span, REG_STARTEND);

        (void) uselocale(old);
        return k == 0;
}

static void test_differential(void **state) {
        locale_t utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t) 0), c = newlocale(LC_ALL_MASK, "C", (locale_t) 0);
        unsigned rewritten = 0;

        if (!utf8)
                skip();
        assert_non_null(c);
        for (size_t i = 0; i < ELEMENTSOF(patterns); i++) {
                _cleanup_free_ char *bytes = regex_bytes_translate(patterns[i]);
                regex_t a, b;
                locale_t old;

                if (!bytes) {
                        fail_msg("%s was not rewritten (errno %d)", patterns[i], errno);
                        continue;
                }
                old = uselocale(utf8);
                assert_int_equal(regcomp(&a, patterns[i], REG_EXTENDED | REG_NOSUB), 0);
                (void) uselocale(c);
                if (regcomp(&b, bytes, REG_EXTENDED | REG_NOSUB) != 0)
                        fail_msg("%s: the rewriting does not compile", patterns[i]);
                (void) uselocale(old);
                for (size_t j = 0; j < ELEMENTSOF(subjects); j++) {
                        bool x = match(&a, utf8, subjects[j].s, subjects[j].n),
                             y = match(&b, c, subjects[j].s, subjects[j].n);
                        if (x != y)
                                fail_msg("%s on \"%.*s\" (%zu bytes): %s in UTF-8, %s rewritten", patterns[i],
                                         (int) subjects[j].n, subjects[j].s, subjects[j].n, x ? "matches" : "does not match",
                                         y ? "matches" : "does not match");
                }
                regfree(&a);
                regfree(&b);
                rewritten++;
        }
        assert_int_equal(rewritten, ELEMENTSOF(patterns));
        freelocale(utf8);
        freelocale(c);
}

static void test_left_alone(void **state) {
        static const char *const left[] = {
                "[[:alpha:]]", "[[=e=]]", "[[.a.]]", "[é]", "[a-é]", "\\w", "\\W", "\\s", "\\b", "\\<a", "a\\>",
                "(a)\\1", "[^]a-]", "[^-a-]", "^[^ß]",
        };

        for (size_t i = 0; i < ELEMENTSOF(left); i++) {
                char *s = regex_bytes_translate(left[i]);
                if (s)
                        fail_msg("%s was rewritten as %s", left[i], s);
                assert_int_equal(errno, EINVAL);
        }
}

static void test_expanded_size(void **state) {
        static const struct {
                const char *pattern;
                size_t size;
        } cases[] = {
                { "abc", 3 },         { "é+", 2 },          { "x{3}", 3 },        { "x{2,5}", 5 },
                { "x{4,}", 5 },       { "(ab){3}", 6 },     { "((x{9}){9}){9}", 729 },
                { "x++", 4 },         { "a|b|c", 3 },       { "[a-z]{10}", 10 },  { "\\.{2}", 2 },
                { "[]a]+x", 3 },      { "[[:alpha:]]{3}", 3 }, { "{a}", 3 },       { "x{,3}", 5 },
                { "", 0 },            { "(", 0 },           { "a)", 2 },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++)
                if (regex_expanded_size(cases[i].pattern) != cases[i].size)
                        fail_msg("%s: %zu parts, expected %zu", cases[i].pattern, regex_expanded_size(cases[i].pattern),
                                 cases[i].size);
        /* 20 stacked '+', nested intervals: far too many (saturating, not wrapping). */
        assert_true(regex_expanded_size("x++++++++++++++++++++") == 2u << 19);
        assert_true(regex_expanded_size("((((x{1,30}){1,30}){1,30}){1,30})") == 810000);
        assert_true(regex_expanded_size("((((((x{99999}){99999}){99999}){99999}){99999}){99999})") == SIZE_MAX);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_differential),
                cmocka_unit_test(test_left_alone),
                cmocka_unit_test(test_expanded_size),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
