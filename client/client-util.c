/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "client-util.h"
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

char source_option_type(const char *key) {
        static const char *const numeric[] = { "interval_ms", "heartbeat_ms", "timeout_ms" };

        for (size_t i = 0; i < ELEMENTSOF(numeric); i++)
                if (streq(key, numeric[i]))
                        return 'u';
        return 's';
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

size_t text_width(const char *s) {
        size_t w = 0;

        for (const unsigned char *p = (const unsigned char *) s; *p; p++) {
                if (*p == 0x1b && p[1] == '[') {
                        p += 2;
                        while (*p && !((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z')))
                                p++;
                        if (!*p)
                                break;
                        continue;
                }
                /* Count code points: every byte that is not a UTF-8 continuation byte. */
                if ((*p & 0xC0) != 0x80)
                        w++;
        }
        return w;
}
