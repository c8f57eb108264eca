/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>

#include "dataset.h"

Dataset *dataset_new(void) {
        return calloc(1, sizeof(Dataset));
}

Dataset *dataset_free(Dataset *d) {
        if (!d)
                return NULL;
        buffer_done(&d->text);
        free(d->rows);
        free(d);
        return NULL;
}

static int dataset_grow_rows(Dataset *d) {
        size_t n;
        Row *p;

        if (d->n_rows < d->n_allocated)
                return 0;
        n = d->n_allocated ? d->n_allocated * 2 : 1024;
        if (n > SIZE_MAX / sizeof(Row))
                return -ENOMEM;
        p = realloc(d->rows, n * sizeof(Row));
        if (!p)
                return -ENOMEM;
        d->rows = p;
        d->n_allocated = n;
        return 0;
}

int dataset_row_commit(Dataset *d, size_t start) {
        int r;

        r = dataset_grow_rows(d);
        if (r < 0)
                return r;
        d->rows[d->n_rows++] = (Row) { .offset = start, .len = d->text.tail - start };
        return 0;
}

int dataset_add_row(Dataset *d, const char *json, size_t len) {
        size_t start = d->text.tail;
        int r;

        r = buffer_append(&d->text, json, len);
        if (r < 0)
                return r;
        return dataset_row_commit(d, start);
}
