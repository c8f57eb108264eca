/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libFuzzer target for dpipe-source's CSV reader. The first byte picks a chunk size and the type
 * inference flag; the rest is the file. Oracle: every row the reader produces is one valid JSON
 * object, and the result does not depend on how the input was split. */
#include <assert.h>
#include <json-c/json.h>
#include <stdint.h>
#include <string.h>

#include "csv-dataset.h"
#include "fuzz-dataset-oracle.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t load(const char *s, size_t n, bool infer, size_t chunk, Dataset *d) {
        CsvParser *p = csv_parser_new(d, infer);
        LoadError err;
        int r = 0;

        assert(p);
        for (size_t i = 0; i < n && r >= 0; i += chunk)
                r = csv_parser_feed(p, s + i, n - i < chunk ? n - i : chunk, &err);
        if (r >= 0)
                r = csv_parser_finish(p, &err);
        csv_parser_free(p);
        return r < 0 ? SIZE_MAX : d->n_rows;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        Dataset *a, *b;
        size_t chunk, na, nb;
        bool infer;

        if (size < 1)
                return 0;
        chunk = (data[0] & 0x7f) + 1;
        infer = data[0] & 0x80;
        data++, size--;

        a = dataset_new();
        b = dataset_new();
        assert(a && b);
        na = load((const char *) data, size, infer, size ? size : 1, a);
        nb = load((const char *) data, size, infer, chunk, b);
        assert_same_rows(a, na, b, nb);
        dataset_free(a);
        dataset_free(b);
        return 0;
}
