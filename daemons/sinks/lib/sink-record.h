/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The record lines dpiped pushes to a subscriber (dpiped(8), CLIENT PROTOCOL):
 *
 *     {"op":"record","offset":N,"source":S,"ts_us":T,"data":<the stored bytes>}
 *
 * The fast path reads exactly this layout (dpiped's own, docs/ARCHITECTURE.md "Streaming") without a
 * JSON parse: the data is the bytes between ,"data": and the final }, which dpiped copied from the
 * queue, where only one valid JSON value per record ever gets in. Any other layout (keys reordered,
 * an escaped source name) takes the slow path through json-c. */

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

#include "buffer.h"
#include "sink.h"

/* Returns true and fills *ret (pointers into line) when line has dpiped's layout; false otherwise,
 * and the caller parses the line as JSON. */
bool sink_record_parse_fast(const char *line, size_t len, SinkRecord *ret);

/* A parsed message whose "op" is "record": fills *ret, with the source and the data serialized into
 * scratch (cleared first). -EBADMSG when a field is missing or of the wrong type. */
int sink_record_from_json(json_object *msg, Buffer *scratch, SinkRecord *ret);
