/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The framing on every Unix socket between dpipe processes (dpiped <-> connectors, connectors ->
 * writer). A frame is an 8-byte little-endian header followed by the payload:
 *
 *     u32 size     payload bytes (not counting the header), at most FRAME_SIZE_MAX
 *     u16 type     FRAME_CONTROL, FRAME_BATCH, FRAME_ACK
 *     u16 flags    0 (reserved; receivers ignore unknown flags)
 *
 * FRAME_CONTROL carries one JSON object (UTF-8, no trailing newline): low-rate control traffic.
 * FRAME_BATCH and FRAME_ACK are binary, see batch.h: the data path never parses JSON.
 * docs/ARCHITECTURE.md and man/dpipe-connector.7 describe the protocol for implementers. */

#include <json-c/json.h>
#include <stdint.h>

#include "buffer.h"

#define FRAME_HEADER_SIZE 8u
#define FRAME_SIZE_MAX (64u * 1024u * 1024u)

enum {
        FRAME_CONTROL = 1,
        FRAME_BATCH = 2,
        FRAME_ACK = 3,
};

typedef struct Frame {
        uint32_t size;
        uint16_t type;
        uint16_t flags;
        const uint8_t *payload; /* points into the buffer it was peeked from */
} Frame;

/* Looks at the head of b. Returns 1 and fills *ret when a whole frame is there (the caller consumes
 * it with buffer_consume(b, FRAME_HEADER_SIZE + ret->size) once done with the payload), 0 when more
 * bytes are needed, -EMSGSIZE when the header announces more than max_size. */
int frame_peek(const Buffer *b, uint32_t max_size, Frame *ret);

int frame_append(Buffer *b, uint16_t type, const void *payload, uint32_t size);
int frame_append_json(Buffer *b, struct json_object *o);

/* Reserves a header at the tail and returns its position, so that the payload can be written in
 * place and the size filled in afterwards with frame_finish(). */
int frame_begin(Buffer *b, uint16_t type, size_t *ret_pos);
int frame_finish(Buffer *b, size_t pos);

/* Parses a FRAME_CONTROL payload into a JSON object; -EBADMSG if it is not a JSON object. */
int frame_parse_json(const Frame *f, struct json_object **ret);

static inline uint16_t le16_get(const uint8_t *p) {
        return (uint16_t) (p[0] | (p[1] << 8));
}
static inline uint32_t le32_get(const uint8_t *p) {
        return (uint32_t) p[0] | ((uint32_t) p[1] << 8) | ((uint32_t) p[2] << 16) | ((uint32_t) p[3] << 24);
}
static inline uint64_t le64_get(const uint8_t *p) {
        return (uint64_t) le32_get(p) | ((uint64_t) le32_get(p + 4) << 32);
}
static inline void le16_put(uint8_t *p, uint16_t v) {
        p[0] = (uint8_t) v, p[1] = (uint8_t) (v >> 8);
}
static inline void le32_put(uint8_t *p, uint32_t v) {
        p[0] = (uint8_t) v, p[1] = (uint8_t) (v >> 8), p[2] = (uint8_t) (v >> 16), p[3] = (uint8_t) (v >> 24);
}
static inline void le64_put(uint8_t *p, uint64_t v) {
        le32_put(p, (uint32_t) v);
        le32_put(p + 4, (uint32_t) (v >> 32));
}
