/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Record lines from dpiped, see sink-record.h. */

#include <errno.h>
#include <string.h>

#include "json-util.h"
#include "sink-record.h"

static bool parse_u64(const char *p, const char *end, const char **ret_end, uint64_t *ret) {
        const char *start = p;
        uint64_t v = 0;

        for (; p < end && *p >= '0' && *p <= '9'; p++) {
                unsigned d = (unsigned) (*p - '0');

                if (v > (UINT64_MAX - d) / 10)
                        return false;
                v = v * 10 + d;
        }
        if (p == start || (p - start > 1 && *start == '0'))
                return false;
        *ret_end = p;
        *ret = v;
        return true;
}

static bool skip_literal(const char **p, const char *end, const char *lit, size_t n) {
        if ((size_t) (end - *p) < n || memcmp(*p, lit, n) != 0)
                return false;
        *p += n;
        return true;
}

#define SKIP(p, end, lit) skip_literal(&(p), (end), (lit), sizeof(lit) - 1)

bool sink_record_parse_fast(const char *line, size_t len, SinkRecord *ret) {
        const char *p = line, *end = line + len, *source;
        uint64_t offset, ts;

        if (!SKIP(p, end, "{\"op\":\"record\",\"offset\":") || !parse_u64(p, end, &p, &offset))
                return false;
        if (!SKIP(p, end, ",\"source\":\""))
                return false;
        source = p;
        /* Source names are [A-Za-z0-9_.-]: an escape means another writer, take the slow path. */
        while (p < end && *p != '"' && *p != '\\')
                p++;
        if (p >= end || *p != '"')
                return false;
        ret->source_len = (size_t) (p - source);
        p++;
        if (!SKIP(p, end, ",\"ts_us\":") || !parse_u64(p, end, &p, &ts))
                return false;
        if (!SKIP(p, end, ",\"data\":"))
                return false;
        /* The data runs to the line's closing brace. */
        if (end - p < 2 || end[-1] != '}')
                return false;
        ret->offset = offset;
        ret->ts_us = ts;
        ret->source = source;
        ret->data = p;
        ret->data_len = (size_t) (end - 1 - p);
        return true;
}

int sink_record_from_json(json_object *msg, Buffer *scratch, SinkRecord *ret) {
        json_object *data = NULL, *src;
        const char *source, *text;
        size_t source_len, text_len;
        uint64_t offset, ts = 0;
        int r;

        if (!json_get_uint64(msg, "offset", &offset))
                return -EBADMSG;
        if (!json_object_object_get_ex(msg, "source", &src) || !json_object_is_type(src, json_type_string))
                return -EBADMSG;
        if (!json_object_object_get_ex(msg, "data", &data))
                return -EBADMSG;
        (void) json_get_uint64(msg, "ts_us", &ts);

        source = json_object_get_string(src);
        source_len = (size_t) json_object_get_string_len(src);
        text = json_object_to_json_string_ext(data, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        if (!text)
                return -ENOMEM;
        text_len = strlen(text);

        buffer_clear(scratch);
        r = buffer_append(scratch, source, source_len);
        if (r >= 0)
                r = buffer_append(scratch, text, text_len);
        if (r < 0)
                return r;
        ret->offset = offset;
        ret->ts_us = ts;
        ret->source = buffer_begin(scratch);
        ret->source_len = source_len;
        ret->data = buffer_begin(scratch) + source_len;
        ret->data_len = text_len;
        return 0;
}
