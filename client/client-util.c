/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <langinfo.h>
#include <locale.h>
#include <wchar.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "client-util.h"
#include "utf8.h"
#include "util.h"

int subscribe_from_parse(const char *s, SubscribeFrom *ret) {
        uint64_t u;

        if (isempty(s))
                return -EINVAL;
        if (streq(s, "earliest")) {
                *ret = (SubscribeFrom) { .kind = SUBSCRIBE_FROM_EARLIEST };
                return 0;
        }
        if (streq(s, "latest")) {
                *ret = (SubscribeFrom) { .kind = SUBSCRIBE_FROM_LATEST };
                return 0;
        }
        if (safe_atou64(s, &u) < 0)
                return -EINVAL;
        *ret = (SubscribeFrom) { .kind = SUBSCRIBE_FROM_OFFSET, .offset = u };
        return 0;
}

int option_assignment_split(const char *s, char **ret_key, const char **ret_value) {
        const char *eq;
        char *k;

        if (!s)
                return -EINVAL;
        eq = strchr(s, '=');
        if (!eq || eq == s)
                return -EINVAL;
        for (const char *p = s; p < eq; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                      *p == '_' || *p == '-'))
                        return -EINVAL;
        k = strndup(s, (size_t) (eq - s));
        if (!k)
                return -ENOMEM;
        *ret_key = k;
        *ret_value = eq + 1;
        return 0;
}

static bool word_needs_quotes(const char *w) {
        if (!*w)
                return true;
        return strpbrk(w, " \t\"\\") != NULL;
}

int inline_command_append(Buffer *b, char *const *words, size_t n) {
        int r;

        for (size_t i = 0; i < n; i++) {
                const char *w = words[i];

                if (i > 0) {
                        r = buffer_append(b, " ", 1);
                        if (r < 0)
                                return r;
                }
                /* Newlines would end the line: the protocol has no way to carry them inline. */
                if (strpbrk(w, "\n\r"))
                        return -EINVAL;
                if (!word_needs_quotes(w)) {
                        r = buffer_append_str(b, w);
                        if (r < 0)
                                return r;
                        continue;
                }
                r = buffer_append(b, "\"", 1);
                if (r < 0)
                        return r;
                for (const char *p = w; *p; p++) {
                        if (*p == '"' || *p == '\\') {
                                r = buffer_append(b, "\\", 1);
                                if (r < 0)
                                        return r;
                        }
                        r = buffer_append(b, p, 1);
                        if (r < 0)
                                return r;
                }
                r = buffer_append(b, "\"", 1);
                if (r < 0)
                        return r;
        }
        return 0;
}

bool record_line_fast_offset(const char *line, size_t len, uint64_t *ret_offset) {
        static const char prefix[] = "{\"op\":\"record\",\"offset\":";
        const size_t plen = sizeof(prefix) - 1;
        uint64_t v = 0;
        size_t i;

        if (len <= plen || memcmp(line, prefix, plen) != 0)
                return false;
        for (i = plen; i < len && line[i] >= '0' && line[i] <= '9'; i++) {
                unsigned d = (unsigned) (line[i] - '0');

                if (v > (UINT64_MAX - d) / 10)
                        return false;
                v = v * 10 + d;
        }
        if (i == plen || i >= len || line[i] != ',' || line[len - 1] != '}')
                return false;
        *ret_offset = v;
        return true;
}

const char *format_bytes(char *buf, size_t size, uint64_t bytes) {
        static const char suffixes[] = "KMGTPE";
        double v = (double) bytes;
        size_t i;

        if (bytes < 1024) {
                snprintf(buf, size, "%" PRIu64 "B", bytes);
                return buf;
        }
        for (i = 0; i < sizeof(suffixes) - 2 && v >= 1024.0 * 1024.0; i++)
                v /= 1024.0;
        snprintf(buf, size, "%.1f%c", v / 1024.0, suffixes[i]);
        return buf;
}

const char *format_timestamp_relative(char *buf, size_t size, uint64_t usec, uint64_t now) {
        uint64_t d, s;

        if (usec == 0) {
                snprintf(buf, size, "n/a");
                return buf;
        }
        if (usec > now) {
                snprintf(buf, size, "in the future");
                return buf;
        }
        d = now - usec;
        s = d / USEC_PER_SEC;
        if (s < 1)
                snprintf(buf, size, "%" PRIu64 "ms ago", d / USEC_PER_MSEC);
        else if (s < 60)
                snprintf(buf, size, "%" PRIu64 "s ago", s);
        else if (s < 3600)
                snprintf(buf, size, "%" PRIu64 "min %" PRIu64 "s ago", s / 60, s % 60);
        else if (s < 86400)
                snprintf(buf, size, "%" PRIu64 "h %" PRIu64 "min ago", s / 3600, (s % 3600) / 60);
        else
                snprintf(buf, size, "%" PRIu64 " day%s ago", s / 86400, s / 86400 == 1 ? "" : "s");
        return buf;
}

const char *format_timestamp(char *buf, size_t size, uint64_t usec) {
        struct tm tm;
        time_t t;

        if (usec == 0) {
                snprintf(buf, size, "n/a");
                return buf;
        }
        t = (time_t) (usec / USEC_PER_SEC);
        if (!localtime_r(&t, &tm) || strftime(buf, size, "%a %Y-%m-%d %H:%M:%S %Z", &tm) == 0)
                snprintf(buf, size, "@%" PRIu64, usec / USEC_PER_SEC);
        return buf;
}

int csv_field_append(Buffer *b, const char *s) {
        int r;

        if (!strpbrk(s, ",\"\r\n"))
                return buffer_append_str(b, s);
        r = buffer_append(b, "\"", 1);
        if (r < 0)
                return r;
        for (const char *p = s; *p; p++) {
                r = buffer_append(b, p, 1);
                if (r >= 0 && *p == '"')
                        r = buffer_append(b, "\"", 1);
                if (r < 0)
                        return r;
        }
        return buffer_append(b, "\"", 1);
}

/* Display widths come from wcwidth(), which needs a UTF-8 LC_CTYPE: the user's, or C.UTF-8 when
 * theirs is not UTF-8 (the text we show is UTF-8 whatever the locale says). */
static void text_locale_setup(void) {
        static bool done = false;
        const char *l;

        if (done)
                return;
        done = true;
        l = setlocale(LC_CTYPE, "");
        if (!l || !streq_ptr(nl_langinfo(CODESET), "UTF-8"))
                (void) setlocale(LC_CTYPE, "C.UTF-8");
}

/* Decodes one UTF-8 sequence: its length (0 for invalid) and code point. */
static size_t utf8_decode(const unsigned char *p, uint32_t *ret) {
        size_t n = utf8_valid_prefix((const char *) p, strnlen((const char *) p, 4));
        uint32_t c;

        if (n == 0)
                return 0;
        if (p[0] < 0x80)
                n = 1, c = p[0];
        else if ((p[0] & 0xE0) == 0xC0 && n >= 2)
                n = 2, c = (uint32_t) (p[0] & 0x1F) << 6 | (p[1] & 0x3F);
        else if ((p[0] & 0xF0) == 0xE0 && n >= 3)
                n = 3, c = (uint32_t) (p[0] & 0x0F) << 12 | (uint32_t) (p[1] & 0x3F) << 6 | (p[2] & 0x3F);
        else if ((p[0] & 0xF8) == 0xF0 && n >= 4)
                n = 4, c = (uint32_t) (p[0] & 0x07) << 18 | (uint32_t) (p[1] & 0x3F) << 12 | (uint32_t) (p[2] & 0x3F) << 6 |
                           (p[3] & 0x3F);
        else
                return 0;
        *ret = c;
        return n;
}

size_t text_width_n(const char *s, size_t len) {
        const unsigned char *p = (const unsigned char *) s, *end = p + len;
        size_t w = 0;

        text_locale_setup();
        while (p < end && *p) {
                uint32_t c;
                size_t n;
                int cw;

                if (*p == 0x1b && p + 1 < end && p[1] == '[') {
                        p += 2;
                        while (p < end && *p && !((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z')))
                                p++;
                        if (p < end && *p)
                                p++;
                        continue;
                }
                n = utf8_decode(p, &c);
                if (n == 0 || p + n > end) {
                        w++; /* a stray byte: one cell of whatever the terminal shows for it */
                        p++;
                        continue;
                }
                cw = wcwidth((wchar_t) c);
                /* Combining marks take 0 cells, CJK and emoji 2; unprintable ones are escaped by the
                 * callers before they get here, so -1 only means "unknown here": count 1. */
                w += cw < 0 ? 1 : (size_t) cw;
                p += n;
        }
        return w;
}

size_t text_width(const char *s) {
        return text_width_n(s, strlen(s));
}

size_t text_prefix_for_width(const char *s, size_t width, size_t *ret_width) {
        const unsigned char *p = (const unsigned char *) s;
        size_t w = 0;

        text_locale_setup();
        while (*p) {
                uint32_t c;
                size_t n = utf8_decode(p, &c);
                int cw;

                if (n == 0)
                        n = 1, cw = 1;
                else
                        cw = wcwidth((wchar_t) c);
                if (cw < 0)
                        cw = 1;
                if (w + (size_t) cw > width)
                        break;
                w += (size_t) cw;
                p += n;
        }
        if (ret_width)
                *ret_width = w;
        return (size_t) (p - (const unsigned char *) s);
}

int text_escape_append(Buffer *b, const char *s) {
        const unsigned char *p = (const unsigned char *) s;
        int r = 0;

        while (*p && r >= 0) {
                uint32_t c;
                size_t n = utf8_decode(p, &c);

                if (n == 0) {
                        r = buffer_printf(b, "\\x%02x", *p); /* not UTF-8: the byte, visibly */
                        p++;
                        continue;
                }
                if (c == '\n')
                        r = buffer_append_str(b, "\\n");
                else if (c == '\r')
                        r = buffer_append_str(b, "\\r");
                else if (c == '\t')
                        r = buffer_append_str(b, "\\t");
                else if (c < 0x20 || c == 0x7f)
                        r = buffer_printf(b, "\\x%02x", (unsigned) c);
                else if (c >= 0x80 && c < 0xa0) /* C1 controls: a terminal acts on them too */
                        r = buffer_printf(b, "\\u%04x", (unsigned) c);
                else
                        r = buffer_append(b, p, n);
                p += n;
        }
        return r < 0 ? r : 0;
}

char *text_escape(const char *s) {
        _cleanup_(buffer_done) Buffer b = {};
        char *ret;

        if (text_escape_append(&b, s) < 0 || buffer_append(&b, "", 1) < 0)
                return NULL;
        ret = strdup(buffer_begin(&b));
        return ret;
}

const char *format_timestamp_local(char *buf, size_t size, uint64_t usec) {
        time_t sec = (time_t) (usec / USEC_PER_SEC);
        struct tm tm;
        size_t n;

        if (!localtime_r(&sec, &tm) || (n = strftime(buf, size, "%Y-%m-%d %H:%M:%S", &tm)) == 0) {
                snprintf(buf, size, "%" PRIu64, usec);
                return buf;
        }
        snprintf(buf + n, size - n, ".%06" PRIu64, usec % USEC_PER_SEC);
        return buf;
}

bool colors_enabled(void) {
        const char *e = getenv("NO_COLOR");

        if (!isempty(e))
                return false;
        return isatty(STDOUT_FILENO) > 0 && !streq_ptr(getenv("TERM"), "dumb");
}
