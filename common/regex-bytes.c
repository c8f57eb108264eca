/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "macro.h"

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

static size_t mul_sat(size_t a, size_t b) {
        return b != 0 && a > SIZE_MAX / b ? SIZE_MAX : a * b;
}

static size_t add_sat(size_t a, size_t b) {
        return a > SIZE_MAX - b ? SIZE_MAX : a + b;
}

/* The interval at p[0] == '{': its factor (how many copies glibc makes), and the index after it;
 * 0 if it is no interval (then '{' is an ordinary character). */
static size_t interval(const char *p, size_t *ret_factor) {
        size_t i = 1, m = 0, n = 0;
        bool comma = false, have_n = false;

        if (p[i] < '0' || p[i] > '9')
                return 0;
        for (; p[i] >= '0' && p[i] <= '9'; i++)
                m = add_sat(mul_sat(m, 10), (size_t) (p[i] - '0'));
        if (p[i] == ',') {
                comma = true;
                for (i++; p[i] >= '0' && p[i] <= '9'; i++) {
                        n = add_sat(mul_sat(n, 10), (size_t) (p[i] - '0'));
                        have_n = true;
                }
        }
        if (p[i] != '}')
                return 0;
        *ret_factor = !comma ? m : have_n ? (n > m ? n : m) : add_sat(m, 1);
        if (*ret_factor == 0)
                *ret_factor = 1;
        return i + 1;
}

size_t regex_expanded_size(const char *pattern) {
        struct {
                size_t sum, last;
        } frames[64];
        unsigned depth = 0;

        frames[0].sum = frames[0].last = 0;
        for (size_t i = 0; pattern[i];) {
                char c = pattern[i];
                size_t factor = 0, next;

                switch (c) {
                case '(':
                        if (++depth >= ELEMENTSOF(frames))
                                return SIZE_MAX;
                        frames[depth].sum = frames[depth].last = 0;
                        i++;
                        continue;
                case ')':
                        if (depth == 0) { /* an unmatched ')' is an ordinary character */
                                frames[0].sum = add_sat(frames[0].sum, 1);
                                frames[0].last = 1;
                                i++;
                                continue;
                        }
                        depth--;
                        frames[depth].last = frames[depth + 1].sum > 0 ? frames[depth + 1].sum : 1;
                        frames[depth].sum = add_sat(frames[depth].sum, frames[depth].last);
                        i++;
                        continue;
                case '|':
                        frames[depth].last = 0;
                        i++;
                        continue;
                case '*':
                case '?':
                        factor = 1;
                        next = i + 1;
                        break;
                case '+':
                        factor = 2;
                        next = i + 1;
                        break;
                case '{':
                        next = interval(pattern + i, &factor);
                        if (next > 0)
                                next += i;
                        break;
                default:
                        next = 0;
                }
                if (factor > 0 && next > 0) {
                        /* The last atom (or group) repeated: its copies replace it. */
                        size_t last = frames[depth].last;

                        frames[depth].sum = add_sat(frames[depth].sum - last, mul_sat(last, factor));
                        frames[depth].last = mul_sat(last, factor);
                        i = next;
                        continue;
                }
                /* An atom: a character (all bytes of a multi-byte one), an escaped one, a bracket. */
                if (c == '\\' && pattern[i + 1])
                        i += 2;
                else if (c == '[') {
                        size_t j = i + 1;

                        if (pattern[j] == '^')
                                j++;
                        if (pattern[j] == ']')
                                j++;
                        while (pattern[j] && pattern[j] != ']') {
                                if (pattern[j] == '[' && (pattern[j + 1] == ':' || pattern[j + 1] == '=' || pattern[j + 1] == '.')) {
                                        const char *e = strstr(pattern + j + 2, (const char[]) { pattern[j + 1], ']', 0 });
                                        j = e ? (size_t) (e - pattern) + 2 : j + 1;
                                } else
                                        j++;
                        }
                        i = pattern[j] ? j + 1 : j;
                } else {
                        i++;
                        while (((unsigned char) pattern[i] & 0xc0) == 0x80)
                                i++;
                }
                frames[depth].sum = add_sat(frames[depth].sum, 1);
                frames[depth].last = 1;
        }
        while (depth > 0) { /* (unbalanced: regcomp refuses it anyway) */
                depth--;
                frames[depth].sum = add_sat(frames[depth].sum, frames[depth + 1].sum);
        }
        return frames[0].sum;
}
