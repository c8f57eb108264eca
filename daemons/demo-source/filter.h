/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Row selection for the TCP "query" op ({"where":{field:value}}) and HTTP ?field=value filters.
 * A row matches when every field named in where is present and equal. Equality is JSON equality,
 * widened so that a string compares equal to a scalar with the same JSON text ("42" = 42,
 * "true" = true): CSV values are strings unless --infer-types, and URLs carry only strings. */

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

#include "macro.h"

typedef struct Filter Filter;

/* where must be a JSON object; the filter takes a reference. NULL or {} matches every row. */
int filter_new(struct json_object *where, Filter **ret);
Filter *filter_free(Filter *f);
DEFINE_TRIVIAL_CLEANUP_FUNC(Filter *, filter_free);

bool filter_is_empty(const Filter *f);
/* -ENOMEM aside, 1 for a match, 0 for none. The row is parsed only when a cheap text test passes. */
int filter_match(Filter *f, const char *row, size_t len);
