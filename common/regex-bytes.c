/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <string.h>

#include "buffer.h"
#include "regex-bytes.h"

/* One UTF-8 character: an ASCII byte but NUL (a `.` matches no NUL in POSIX syntax), or a lead
 * byte and the continuation bytes after it. In valid UTF-8 no atom of a rewritten pattern can
 * start at a continuation byte, so the `*` can only take all of a character's. */
#define ANY_CHAR_REST "|[\xc2-\xf4][\x80-\xbf]*)"
static const char any_char[] = "([\x01-\x7f]" ANY_CHAR_REST;
static const char any_char_rest[] = "]" ANY_CHAR_REST;
static const char high_bytes[] = "\x80-\xff";

static bool is_ascii_word_char(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* The bracket expression at pattern[i] == '[': appended rewritten; returns the index after it, or 0
 * if it can not be rewritten. */
static size_t bracket(const char *pattern, size_t i, Buffer *out, int *ret) {
        size_t start, j;
        bool negated = false;

        *ret = 0;
        j = i + 1;
        if (pattern[j] == '^') {
                negated = true;
                j++;
        }
        start = j;
        if (pattern[j] == ']') /* a ']' first is a member */
                j++;
        for (; pattern[j] && pattern[j] != ']'; j++) {
                if ((unsigned char) pattern[j] >= 0x80)
                        return 0; /* a non-ASCII member, or a range to one */
                if (pattern[j] == '[' && (pattern[j + 1] == ':' || pattern[j + 1] == '=' || pattern[j + 1] == '.'))
                        return 0; /* [:alpha:] knows non-ASCII letters in UTF-8; [=e=] and [.x.] too */
        }
        if (pattern[j] != ']')
                return 0;
        if (!negated) {
                /* ASCII members only: each matches one byte, which is one whole character. */
                if (buffer_append(out, pattern + i, j + 1 - i) < 0)
                        *ret = -ENOMEM;
                return j + 1;
        }
        /* [^SET]: any character not in SET, i.e. an ASCII byte not in SET (nor a byte above 0x7f)
         * or a multi-byte character. The range of bytes above 0x7f goes last, unless SET ends with a
         * '-' (which must stay last); then first, unless SET starts with a ']' or '-' (which must
         * stay first): such a set is left. */
        if (buffer_append(out, "([^", 3) < 0)
                goto oom;
        if (pattern[j - 1] != '-') {
                if (buffer_append(out, pattern + start, j - start) < 0 || buffer_append(out, high_bytes, 3) < 0)
                        goto oom;
        } else if (pattern[start] != ']' && pattern[start] != '-') {
                if (buffer_append(out, high_bytes, 3) < 0 || buffer_append(out, pattern + start, j - start) < 0)
                        goto oom;
        } else
                return 0;
        if (buffer_append(out, any_char_rest, strlen(any_char_rest)) < 0)
                goto oom;
        return j + 1;
oom:
        *ret = -ENOMEM;
        return j + 1;
}

char *regex_bytes_translate(const char *pattern) {
        _cleanup_(buffer_done) Buffer out = {};
        char *s;
        int r;

        for (size_t i = 0; pattern[i];) {
                unsigned char c = (unsigned char) pattern[i];

                if (c == '\\') {
                        char e = pattern[i + 1];

                        /* An escaped character stands for itself, but GNU gives letters, digits
                         * (back-references) and <>`' other meanings: those stay in UTF-8. */
                        if (!e || (unsigned char) e >= 0x80 || is_ascii_word_char(e) || strchr("<>`'", e))
                                goto untranslatable;
                        if (buffer_append(&out, pattern + i, 2) < 0)
                                goto oom;
                        i += 2;
                } else if (c == '.') {
                        if (buffer_append(&out, any_char, strlen(any_char)) < 0)
                                goto oom;
                        i++;
                } else if (c == '[') {
                        size_t next = bracket(pattern, i, &out, &r);

                        if (r < 0)
                                goto oom;
                        if (next == 0)
                                goto untranslatable;
                        i = next;
                } else if (c >= 0x80) {
                        /* A multi-byte character: one atom, so that a quantifier after it takes
                         * all of its bytes. */
                        size_t n = 1;

                        while (((unsigned char) pattern[i + n] & 0xc0) == 0x80)
                                n++;
                        if (buffer_append(&out, "(", 1) < 0 || buffer_append(&out, pattern + i, n) < 0 ||
                            buffer_append(&out, ")", 1) < 0)
                                goto oom;
                        i += n;
                } else {
                        if (buffer_append(&out, pattern + i, 1) < 0)
                                goto oom;
                        i++;
                }
        }
        if (buffer_append(&out, "", 1) < 0)
                goto oom;
        s = strdup(buffer_begin(&out));
        if (!s)
                goto oom;
        return s;

untranslatable:
        errno = EINVAL;
        return NULL;
oom:
        errno = ENOMEM;
        return NULL;
}
