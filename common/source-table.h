/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The highest seq stored per source: what makes the writer's appends idempotent (a record whose seq
 * is not above its source's is a duplicate) and what it tells a connector in its hello. Rebuilt from
 * the queue at start-up, then kept up to date with every append. A small open-addressing hash table
 * (FNV-1a, linear probing, at most half full): one lookup per batch on the writer's data path, no
 * allocation once every source has a slot. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

typedef struct SourceSlot {
        uint64_t last_seq;
        uint32_t hash;
        uint8_t len; /* 0 = empty */
        char name[SOURCE_NAME_MAX];
} SourceSlot;

typedef struct SourceTable {
        SourceSlot *slots;
        size_t n_slots; /* power of two */
        size_t n_used;
} SourceTable;

void source_table_done(SourceTable *t);
/* Raises the source's last seq to seq (adds the source if it is new). -EINVAL for a name of 0 or more
 * than SOURCE_NAME_MAX bytes, -ENOMEM; the table is unchanged on failure. */
int source_table_update(SourceTable *t, const char *name, size_t len, uint64_t seq);
/* The source's last seq; false if it has none. */
bool source_table_get(const SourceTable *t, const char *name, size_t len, uint64_t *ret);
