/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The loaded rows. Each row's JSON text is built once, at load time, and kept in one growing
 * arena, so that serving a row is a memcpy. Row i has the sequence number i. Memory is the text of
 * the rows plus 16 bytes of index per row. */

#include <stddef.h>
#include <stdint.h>

#include "buffer.h"
#include "macro.h"

typedef struct Row {
        uint64_t offset; /* into Dataset.text */
        uint64_t len;
} Row;

typedef struct Dataset {
        Buffer text;
        Row *rows;
        size_t n_rows;
        size_t n_allocated;
} Dataset;

Dataset *dataset_new(void);
Dataset *dataset_free(Dataset *d);
DEFINE_TRIVIAL_CLEANUP_FUNC(Dataset *, dataset_free);

int dataset_add_row(Dataset *d, const char *json, size_t len);

/* Rows may also be built in place: dataset_row_buffer() gives the arena, the caller appends the
 * row's text at its tail, then dataset_row_commit() records it (from the offset noted before). */
static inline Buffer *dataset_row_buffer(Dataset *d) {
        return &d->text;
}
int dataset_row_commit(Dataset *d, size_t start);

static inline const char *dataset_row(const Dataset *d, size_t i, size_t *ret_len) {
        *ret_len = (size_t) d->rows[i].len;
        return d->text.data + d->rows[i].offset;
}
static inline size_t dataset_size_bytes(const Dataset *d) {
        return d->text.tail + d->n_allocated * sizeof(Row);
}
