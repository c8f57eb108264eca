/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>

#include "line.h"

int line_next(Buffer *b, size_t max, char **ret_line, size_t *ret_len) {
        char *start = buffer_begin(b), *nl, *w;
        size_t avail = buffer_size(b), len;

        nl = memchr(start, '\n', avail);
        if (!nl) {
                if (avail > max)
                        return -E2BIG;
                return 0;
        }
        len = (size_t) (nl - start);
        if (len > max)
                return -E2BIG;

        /* Drop NUL bytes and a trailing CR in place: the line shrinks, never grows. */
        w = memchr(start, 0, len);
        if (w) {
                char *r = w;
                for (; r < nl; r++)
                        if (*r)
                                *w++ = *r;
                len = (size_t) (w - start);
        }
        if (len > 0 && start[len - 1] == '\r')
                len--;
        start[len] = 0;

        buffer_consume(b, (size_t) (nl - start) + 1);
        *ret_line = start;
        *ret_len = len;
        return 1;
}

int line_tokenize(char *line, char **words, size_t max_words) {
        size_t n = 0;
        char *r = line, *w;

        for (;;) {
                while (*r == ' ' || *r == '\t')
                        r++;
                if (!*r)
                        return (int) n;
                if (n >= max_words)
                        return -E2BIG;

                w = r;
                words[n++] = w;
                while (*r && *r != ' ' && *r != '\t') {
                        if (*r != '"') {
                                *w++ = *r++;
                                continue;
                        }
                        /* A quoted part: may contain blanks; \" and \\ are escapes. */
                        r++;
                        for (;;) {
                                if (!*r)
                                        return -EINVAL;
                                if (*r == '"') {
                                        r++;
                                        break;
                                }
                                if (*r == '\\' && (r[1] == '"' || r[1] == '\\'))
                                        r++;
                                *w++ = *r++;
                        }
                }
                if (*r)
                        r++;
                *w = 0;
        }
}

int word_split_key_value(char *word, char **ret_key, char **ret_value) {
        char *eq = strchr(word, '=');

        if (!eq || eq == word)
                return -EINVAL;
        *eq = 0;
        *ret_key = word;
        *ret_value = eq + 1;
        return 0;
}
