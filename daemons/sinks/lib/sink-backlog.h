/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The records dpiped sent that the sink type has not taken yet, in offset order: their source names
 * and data copied into one byte buffer, their offsets and timestamps in an array. Nothing is
 * allocated per record once the buffers have grown to the window's size; taken records are dropped
 * from the front, and the storage of dropped ones is reused (buffer.h moves the rest to the front
 * when it needs room). */

#include <stddef.h>
#include <stdint.h>

#include "buffer.h"
#include "sink.h"

typedef struct BacklogEntry {
        uint64_t offset;
        uint64_t ts_us;
        uint64_t pos;        /* of the source name in the byte stream; the data follows it */
        uint32_t source_len;
        size_t data_len;
} BacklogEntry;

typedef struct Backlog {
        Buffer bytes;
        uint64_t consumed;      /* stream position of the first byte still in bytes */
        uint64_t appended;      /* stream position after the last byte appended */
        BacklogEntry *entries;
        size_t allocated, first, n; /* the live entries are entries[first .. first + n) */
} Backlog;

void backlog_done(Backlog *b);
void backlog_clear(Backlog *b);
static inline size_t backlog_size(const Backlog *b) {
        return b->n;
}
/* Bytes held for the live entries. */
static inline uint64_t backlog_bytes(const Backlog *b) {
        return b->appended - b->consumed;
}
int backlog_push(Backlog *b, const SinkRecord *r);
/* Fills out[0 .. max) with the first records (pointers into the backlog, valid until the next push
 * or pop) and returns how many. */
size_t backlog_peek(const Backlog *b, SinkRecord *out, size_t max);
/* Drops the first n records. */
void backlog_pop(Backlog *b, size_t n);
