/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The last seq of every source. See source-table.h. */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "source-table.h"

static uint32_t source_hash(const char *s, size_t n) {
        uint32_t h = 2166136261u;
        for (size_t i = 0; i < n; i++)
                h = (h ^ (uint8_t) s[i]) * 16777619u;
        return h;
}

/* The slot holding the name, or the empty slot where it would go; NULL while the table has none. */
static SourceSlot *source_table_find(const SourceTable *t, const char *s, size_t n, uint32_t h) {
        if (t->n_slots == 0)
                return NULL;
        for (size_t i = h & (t->n_slots - 1);; i = (i + 1) & (t->n_slots - 1)) {
                SourceSlot *slot = t->slots + i;
                if (slot->len == 0)
                        return slot;
                if (slot->hash == h && slot->len == n && memcmp(slot->name, s, n) == 0)
                        return slot;
        }
}

static int source_table_grow(SourceTable *t) {
        SourceTable n = { .n_slots = t->n_slots ? t->n_slots * 2 : 16 };

        n.slots = calloc(n.n_slots, sizeof(SourceSlot));
        if (!n.slots)
                return -ENOMEM;
        for (size_t i = 0; i < t->n_slots; i++) {
                SourceSlot *o = t->slots + i;
                if (o->len == 0)
                        continue;
                *source_table_find(&n, o->name, o->len, o->hash) = *o;
                n.n_used++;
        }
        free(t->slots);
        *t = n;
        return 0;
}

void source_table_done(SourceTable *t) {
        free(t->slots);
        *t = (SourceTable) {};
}

int source_table_update(SourceTable *t, const char *s, size_t n, uint64_t seq) {
        uint32_t h = source_hash(s, n);
        SourceSlot *slot;
        int r;

        slot = source_table_find(t, s, n, h);
        if (slot && slot->len > 0) {
                if (seq > slot->last_seq)
                        slot->last_seq = seq;
                return 0;
        }
        if (n == 0 || n > SOURCE_NAME_MAX)
                return -EINVAL;
        if ((t->n_used + 1) * 2 > t->n_slots) {
                r = source_table_grow(t);
                if (r < 0)
                        return r;
                slot = source_table_find(t, s, n, h);
        }
        slot->hash = h;
        slot->len = (uint8_t) n;
        memcpy(slot->name, s, n);
        slot->last_seq = seq;
        t->n_used++;
        return 0;
}

bool source_table_get(const SourceTable *t, const char *s, size_t n, uint64_t *ret) {
        SourceSlot *slot;

        if (n == 0 || n > SOURCE_NAME_MAX)
                return false;
        slot = source_table_find(t, s, n, source_hash(s, n));
        if (!slot || slot->len == 0)
                return false;
        if (ret)
                *ret = slot->last_seq;
        return true;
}
