/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>

#include "frame.h"

int frame_peek(const Buffer *b, uint32_t max_size, Frame *ret) {
        const uint8_t *p = (const uint8_t *) buffer_begin(b);
        uint32_t size;

        if (buffer_size(b) < FRAME_HEADER_SIZE)
                return 0;
        size = le32_get(p);
        if (size > max_size)
                return -EMSGSIZE;
        if (buffer_size(b) - FRAME_HEADER_SIZE < size)
                return 0;
        *ret = (Frame) {
                .size = size,
                .type = le16_get(p + 4),
                .flags = le16_get(p + 6),
                .payload = p + FRAME_HEADER_SIZE,
        };
        return 1;
}

int frame_begin(Buffer *b, uint16_t type, size_t *ret_pos) {
        uint8_t *h;
        int r;

        r = buffer_reserve(b, FRAME_HEADER_SIZE);
        if (r < 0)
                return r;
        /* The position is relative to the unconsumed head: buffer_reserve() may move the unconsumed
         * bytes to the front, which keeps such positions valid. Callers must not consume from b
         * between frame_begin() and frame_finish(). */
        *ret_pos = b->tail - b->head;
        h = (uint8_t *) buffer_tail(b);
        le32_put(h, 0);
        le16_put(h + 4, type);
        le16_put(h + 6, 0);
        buffer_advance(b, FRAME_HEADER_SIZE);
        return 0;
}

int frame_finish(Buffer *b, size_t pos) {
        size_t size = b->tail - b->head - pos - FRAME_HEADER_SIZE;

        if (size > FRAME_SIZE_MAX)
                return -EMSGSIZE;
        le32_put((uint8_t *) b->data + b->head + pos, (uint32_t) size);
        return 0;
}

int frame_append(Buffer *b, uint16_t type, const void *payload, uint32_t size) {
        uint8_t h[FRAME_HEADER_SIZE];
        int r;

        if (size > FRAME_SIZE_MAX)
                return -EMSGSIZE;
        r = buffer_reserve(b, FRAME_HEADER_SIZE + (size_t) size);
        if (r < 0)
                return r;
        le32_put(h, size);
        le16_put(h + 4, type);
        le16_put(h + 6, 0);
        (void) buffer_append(b, h, sizeof(h));
        return buffer_append(b, payload, size);
}

int frame_append_json(Buffer *b, struct json_object *o) {
        size_t len;
        const char *s;

        s = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN, &len);
        if (!s)
                return -ENOMEM;
        if (len > FRAME_SIZE_MAX)
                return -EMSGSIZE;
        return frame_append(b, FRAME_CONTROL, s, (uint32_t) len);
}

int frame_parse_json(const Frame *f, struct json_object **ret) {
        struct json_tokener *tok;
        struct json_object *o;

        if (f->type != FRAME_CONTROL)
                return -EBADMSG;
        tok = json_tokener_new();
        if (!tok)
                return -ENOMEM;
        o = json_tokener_parse_ex(tok, (const char *) f->payload, (int) f->size);
        if (o && json_tokener_get_parse_end(tok) != f->size) {
                json_object_put(o);
                o = NULL;
        }
        json_tokener_free(tok);
        if (!o)
                return -EBADMSG;
        if (!json_object_is_type(o, json_type_object)) {
                json_object_put(o);
                return -EBADMSG;
        }
        *ret = o;
        return 0;
}
