/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sink-backlog.h"

void backlog_done(Backlog *b) {
        buffer_done(&b->bytes);
        free(b->entries);
        *b = (Backlog) {};
}

void backlog_clear(Backlog *b) {
        buffer_clear(&b->bytes);
        b->consumed = b->appended = 0;
        b->first = b->n = 0;
}

static int backlog_reserve_entry(Backlog *b) {
        BacklogEntry *e;
        size_t a;

        if (b->first + b->n < b->allocated)
                return 0;
        /* Slide the live entries to the front before growing: a backlog that is taken as fast as it
         * fills never grows. */
        if (b->first > 0) {
                memmove(b->entries, b->entries + b->first, b->n * sizeof(BacklogEntry));
                b->first = 0;
                if (b->n < b->allocated)
                        return 0;
        }
        a = b->allocated ? b->allocated * 2 : 1024;
        if (a > SIZE_MAX / sizeof(BacklogEntry))
                return -ENOMEM;
        e = realloc(b->entries, a * sizeof(BacklogEntry));
        if (!e)
                return -ENOMEM;
        b->entries = e;
        b->allocated = a;
        return 0;
}

int backlog_push(Backlog *b, const SinkRecord *r) {
        BacklogEntry *e;
        int r2;

        if (r->source_len > UINT32_MAX)
                return -E2BIG;
        r2 = backlog_reserve_entry(b);
        if (r2 < 0)
                return r2;
        r2 = buffer_reserve(&b->bytes, r->source_len + r->data_len);
        if (r2 < 0)
                return r2;
        memcpy(buffer_tail(&b->bytes), r->source, r->source_len);
        memcpy(buffer_tail(&b->bytes) + r->source_len, r->data, r->data_len);
        buffer_advance(&b->bytes, r->source_len + r->data_len);

        e = &b->entries[b->first + b->n];
        *e = (BacklogEntry) {
                .offset = r->offset,
                .ts_us = r->ts_us,
                .pos = b->appended,
                .source_len = (uint32_t) r->source_len,
                .data_len = r->data_len,
        };
        b->appended += r->source_len + r->data_len;
        b->n++;
        return 0;
}

size_t backlog_peek(const Backlog *b, SinkRecord *out, size_t max) {
        const char *base = buffer_begin(&b->bytes);
        size_t n = MIN(max, b->n);

        for (size_t i = 0; i < n; i++) {
                const BacklogEntry *e = &b->entries[b->first + i];
                const char *p = base + (e->pos - b->consumed);

                out[i] = (SinkRecord) {
                        .offset = e->offset,
                        .ts_us = e->ts_us,
                        .source = p,
                        .source_len = e->source_len,
                        .data = p + e->source_len,
                        .data_len = e->data_len,
                };
        }
        return n;
}

void backlog_pop(Backlog *b, size_t n) {
        uint64_t upto;

        n = MIN(n, b->n);
        if (n == 0)
                return;
        b->first += n;
        b->n -= n;
        if (b->n == 0) {
                backlog_clear(b);
                return;
        }
        upto = b->entries[b->first].pos;
        buffer_consume(&b->bytes, (size_t) (upto - b->consumed));
        b->consumed = upto;
}
