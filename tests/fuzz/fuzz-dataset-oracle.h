/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The oracle both loader fuzzers share: loading the same input whole (a) and in small chunks (b)
 * gives the same result, and every row is one JSON object on one line. */

#include <assert.h>
#include <json-c/json.h>
#include <stdint.h>
#include <string.h>

#include "dataset.h"

static inline void assert_same_rows(Dataset *a, size_t na, Dataset *b, size_t nb) {
        assert(na == nb);
        if (na == SIZE_MAX)
                return;
        for (size_t i = 0; i < a->n_rows; i++) {
                size_t la, lb;
                const char *ra = dataset_row(a, i, &la), *rb = dataset_row(b, i, &lb);
                struct json_tokener *tok = json_tokener_new();
                struct json_object *o;

                assert(la == lb && memcmp(ra, rb, la) == 0);
                assert(!memchr(ra, '\n', la));
                o = json_tokener_parse_ex(tok, ra, (int) la);
                assert(o && json_object_is_type(o, json_type_object));
                assert(json_tokener_get_parse_end(tok) == la);
                json_object_put(o);
                json_tokener_free(tok);
        }
}
