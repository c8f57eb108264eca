/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* How dpipe-client prints what the server sends: JSON lines (the exact line the server pushed),
 * pretty JSON (re-indented), CSV (a header from the first record's fields, then one row per record),
 * or an aligned table for people: widths measured in terminal cells (CJK takes two), control
 * characters escaped so that a row stays one line, times in local time, and columns that widen
 * (up to 40 cells; the last one is never cut) or appear as later records need, the header printed
 * again above each new layout. */

#include <errno.h>
#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

#include "buffer.h"

typedef enum OutputFormat {
        OUTPUT_JSON,
        OUTPUT_JSON_PRETTY, /* each message re-indented (a stream of JSON values, not lines) */
        OUTPUT_CSV,
        OUTPUT_TABLE,
        _OUTPUT_FORMAT_MAX,
        _OUTPUT_FORMAT_INVALID = -EINVAL,
} OutputFormat;

OutputFormat output_format_from_string(const char *s);

typedef struct RecordFormatter {
        OutputFormat format;
        bool header_done;
        struct json_object *columns; /* array of the data field names, or NULL for a non-object */
        size_t *widths;              /* table: width of every column (3 fixed + fields) */
        size_t n_widths;
} RecordFormatter;

void record_formatter_init(RecordFormatter *f, OutputFormat format);
void record_formatter_done(RecordFormatter *f);
/* Appends one record line (as the server sent it, len bytes) in the chosen format. */
int record_formatter_append(RecordFormatter *f, const char *line, size_t len, Buffer *out);
/* Appends a reply: JSON as sent; a "sources" reply as CSV or a table in those formats. */
int reply_format_append(OutputFormat format, const char *line, size_t len, struct json_object *msg, Buffer *out);
