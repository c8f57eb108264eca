/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A streaming RFC 4180 reader. Bytes are fed in chunks of any size (a record may span chunks); each
 * complete record becomes one JSON object in the Dataset, keyed by the header row's field names.
 * A UTF-8 BOM is skipped, LF and CRLF both end records, blank lines are skipped, a record with
 * fewer fields than the header leaves the missing ones out, one with more is an error.
 *
 * Values are JSON strings; with infer_types, values that are JSON numbers (no leading zeros),
 * true/false, and empty values (null) are written as such. Work and memory are linear in the input:
 * each byte is looked at once, and a row's text is written once, straight into the Dataset. */

#include <stdbool.h>
#include <stddef.h>

#include "dataset.h"
#include "load-error.h"

typedef struct CsvParser CsvParser;

CsvParser *csv_parser_new(Dataset *d, bool infer_types);
CsvParser *csv_parser_free(CsvParser *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(CsvParser *, csv_parser_free);

/* Rows go to d from now on (used when a reload swaps datasets). */
void csv_parser_set_dataset(CsvParser *p, Dataset *d);

/* 0, or -EBADMSG with *err filled, or -ENOMEM. After an error the parser must not be fed again. */
int csv_parser_feed(CsvParser *p, const char *data, size_t n, LoadError *err);
/* End of input: completes a last record that has no line break, refuses an open quote. */
int csv_parser_finish(CsvParser *p, LoadError *err);

size_t csv_parser_n_fields(const CsvParser *p); /* header width, 0 before the header */
