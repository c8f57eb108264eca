/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libFuzzer target for dpipe-source's JSON reader (arrays, JSON Lines, documents). The first byte
 * picks a chunk size and whether a --records pointer is used. Oracle: every row is one valid JSON
 * object on one line, and the result does not depend on how the input was split. */
#include <assert.h>
#include <json-c/json.h>
#include <stdint.h>
#include <string.h>

#include "json-load.h"
#include "fuzz-dataset-oracle.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t load(const char *s, size_t n, const char *pointer, size_t chunk, Dataset *d) {
        JsonLoader *l = json_loader_new(d, pointer);
        LoadError err;
        int r = 0;

        assert(l);
        for (size_t i = 0; i < n && r >= 0; i += chunk)
                r = json_loader_feed(l, s + i, n - i < chunk ? n - i : chunk, &err);
        if (r >= 0)
                r = json_loader_finish(l, false, &err);
        json_loader_free(l);
        return r < 0 ? SIZE_MAX : d->n_rows;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const char *pointer;
        Dataset *a, *b;
        size_t chunk, na, nb;

        if (size < 1)
                return 0;
        chunk = (data[0] & 0x3f) + 1;
        pointer = (data[0] & 0xc0) == 0x40 ? "/items" : (data[0] & 0xc0) == 0x80 ? "" : NULL;
        data++, size--;

        a = dataset_new();
        b = dataset_new();
        assert(a && b);
        na = load((const char *) data, size, pointer, size ? size : 1, a);
        nb = load((const char *) data, size, pointer, chunk, b);
        assert_same_rows(a, na, b, nb);
        dataset_free(a);
        dataset_free(b);
        return 0;
}
