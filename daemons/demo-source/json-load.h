/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A streaming reader of JSON data files. Accepted shapes:
 *   - a top-level array of objects: each element is one row;
 *   - JSON Lines: one object per line (blank lines are skipped);
 *   - a document holding the rows in an array inside it: chosen with records_pointer (an RFC 6901
 *     JSON Pointer, e.g. "/data/items"), or found automatically when the file is one object whose
 *     top level has exactly one non-empty array of objects.
 * Arrays and JSON Lines are read element by element (json-c's incremental tokener, one element in
 * memory at a time); only the document shape needs the whole document parsed. Each row is
 * re-serialised once, compactly, into the Dataset. */

#include <stdbool.h>
#include <stddef.h>

#include "dataset.h"
#include "load-error.h"

typedef struct JsonLoader JsonLoader;

JsonLoader *json_loader_new(Dataset *d, const char *records_pointer);
JsonLoader *json_loader_free(JsonLoader *l);
DEFINE_TRIVIAL_CLEANUP_FUNC(JsonLoader *, json_loader_free);

void json_loader_set_dataset(JsonLoader *l, Dataset *d);

/* 0, -EBADMSG with *err filled, or -ENOMEM. */
int json_loader_feed(JsonLoader *l, const char *data, size_t n, LoadError *err);
/* End of the data currently in the file. With more_may_follow (--follow), an element cut short is
 * not an error yet: it is completed by later feeds. */
int json_loader_finish(JsonLoader *l, bool more_may_follow, LoadError *err);

/* Only JSON Lines can grow by appending. */
bool json_loader_can_follow(const JsonLoader *l);
/* "array", "lines", "document" or "empty". */
const char *json_loader_shape(const JsonLoader *l);
