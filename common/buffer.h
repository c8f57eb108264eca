/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A growable byte buffer with a consumed-prefix ("head"), used for every socket's input and
 * output: readers append at the tail and consume from the head; the storage is reused and only
 * grows, so the steady state makes no allocation per message. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "macro.h"

typedef struct Buffer {
        char *data;
        size_t head;      /* first unconsumed byte */
        size_t tail;      /* one past the last valid byte */
        size_t allocated;
} Buffer;

static inline size_t buffer_size(const Buffer *b) {
        return b->tail - b->head;
}
static inline char *buffer_begin(const Buffer *b) {
        /* A buffer never filled has no storage: NULL + 0 would be undefined behaviour. */
        return b->data ? b->data + b->head : NULL;
}
static inline void buffer_consume(Buffer *b, size_t n) {
        b->head += n;
        if (b->head >= b->tail)
                b->head = b->tail = 0;
}
static inline void buffer_clear(Buffer *b) {
        b->head = b->tail = 0;
}

void buffer_done(Buffer *b);                                /* frees the storage */
int buffer_reserve(Buffer *b, size_t n);                    /* room for n more bytes at the tail */
/* Moves the unconsumed bytes to the front and makes the storage exactly allocated bytes (at least
 * buffer_size(b); 0 frees it): for buffers whose memory is accounted, which grow and shrink in
 * steps the caller chooses instead of doubling and staying. */
int buffer_resize(Buffer *b, size_t allocated);
int buffer_append(Buffer *b, const void *p, size_t n);
int buffer_append_str(Buffer *b, const char *s);
int buffer_printf(Buffer *b, const char *fmt, ...) _printf_(2, 3);
/* Appends s as a JSON string literal (with quotes), escaping as RFC 8259 requires. */
int buffer_append_json_string(Buffer *b, const char *s, size_t n);
/* Pointer to the tail after buffer_reserve(); commit what was written with buffer_advance(). */
static inline char *buffer_tail(Buffer *b) {
        return b->data + b->tail;
}
static inline void buffer_advance(Buffer *b, size_t n) {
        b->tail += n;
}

/* read() as much as fits (growing the buffer to at least min_room free bytes first). Returns bytes
 * read, 0 on EOF, -EAGAIN when nothing is there, or another negative errno. */
ssize_t buffer_read_fd(Buffer *b, int fd, size_t min_room);
/* write() what is buffered; returns bytes written (possibly 0 on EAGAIN) or negative errno. */
ssize_t buffer_write_fd(Buffer *b, int fd);
