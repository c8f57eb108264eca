/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libFuzzer target for common/regex-bytes.c, differentially: the input's first line is a pattern,
 * each further line a subject. When the pattern compiles in C.UTF-8 and is rewritten for the C
 * locale, the rewriting must compile, and it must match exactly the subjects that are valid UTF-8
 * (what the transform matches) that the original matches. */
#include <locale.h>
#include <regex.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "regex-bytes.h"
#include "utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool match(const regex_t *re, locale_t l, const char *s, size_t n) {
        regmatch_t span[1] = { { .rm_so = 0, .rm_eo = (regoff_t) n } };
        locale_t old;
        char *copy;
        int k;

        /* (A terminated copy: ASan's regexec() interceptor reads up to a NUL, REG_STARTEND or not.) */
        copy = malloc(n + 1);
        if (!copy)
                abort();
        memcpy(copy, s, n);
        copy[n] = 0;
        old = uselocale(l);
        k = regexec(re, copy, 1, span, REG_STARTEND);
        (void) uselocale(old);
        free(copy);
        return k == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static locale_t utf8, c;
        const uint8_t *nl = memchr(data, '\n', size), *p, *end = data + size;
        size_t plen = nl ? (size_t) (nl - data) : size;
        char *pattern, *bytes;
        regex_t a, b;
        locale_t old;
        int k;

        if (!utf8) {
                utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t) 0);
                c = newlocale(LC_ALL_MASK, "C", (locale_t) 0);
                if (!utf8 || !c)
                        abort();
        }
        /* Patterns as the transform takes them: UTF-8 without NUL; not huge, and with few
         * repetitions (stacked ones, "x++++", make glibc's regcomp() exponential: not what is
         * tested here). */
        if (plen > 64 || memchr(data, 0, plen) || !utf8_is_valid_n((const char *) data, plen))
                return 0;
        k = 0;
        for (size_t i = 0; i < plen; i++)
                k += data[i] == '*' || data[i] == '+' || data[i] == '?' || data[i] == '{';
        if (k > 6)
                return 0;
        pattern = strndup((const char *) data, plen);
        if (!pattern)
                return 0;
        old = uselocale(utf8);
        k = regcomp(&a, pattern, REG_EXTENDED | REG_NOSUB);
        (void) uselocale(old);
        if (k != 0) {
                free(pattern);
                return 0;
        }
        bytes = regex_bytes_translate(pattern);
        if (bytes) {
                old = uselocale(c);
                k = regcomp(&b, bytes, REG_EXTENDED | REG_NOSUB);
                (void) uselocale(old);
                if (k != 0) {
                        fprintf(stderr, "fuzz-regex-bytes: '%s' rewritten as '%s' does not compile\n", pattern, bytes);
                        abort();
                }
                for (p = nl ? nl + 1 : end; p < end;) {
                        const uint8_t *e = memchr(p, '\n', (size_t) (end - p));
                        size_t n = (size_t) ((e ? e : end) - p);

                        if (utf8_is_valid_n((const char *) p, n) &&
                            match(&a, utf8, (const char *) p, n) != match(&b, c, (const char *) p, n)) {
                                fprintf(stderr, "fuzz-regex-bytes: '%s' (rewritten '%s') on '%.*s': %s in UTF-8 only\n",
                                        pattern, bytes, (int) n, (const char *) p,
                                        match(&a, utf8, (const char *) p, n) ? "matches" : "does not match");
                                abort();
                        }
                        p = e ? e + 1 : end;
                }
                regfree(&b);
                free(bytes);
        }
        regfree(&a);
        free(pattern);
        return 0;
}
