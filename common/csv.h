/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The one CSV reader of dpipe (RFC 4180), used by dpipe-source's loader and by every connector.
 * It works in two steps, so that a stream read in pieces of any size gives the same records as the
 * whole text:
 *
 *   csv_scan_record()   finds where a record ends in the bytes read so far: at a line feed outside
 *                       quotes (a quoted field may hold commas, quotes and line breaks, and may
 *                       span reads); only bytes not looked at before are scanned.
 *   csv_split_record()  takes one complete record apart, in place: quotes removed, "" unescaped,
 *                       a CR before the line feed dropped. Nothing is allocated per record.
 *
 * The rules, the same for every user (man:dpipe-source(1), man:dpipe-connector(7)):
 *   - a UTF-8 byte order mark at the start of a stream is skipped (csv_bom_skip());
 *   - records end at LF or CRLF; an empty line is no record;
 *   - the first record is the header (unless the names are given);
 *   - a record with fewer fields than the header has the missing trailing fields absent from its
 *     object (not empty, not an error);
 *   - a record with more fields than the header is malformed, as are a '"' inside an unquoted
 *     field, a character between a closing quote and the next separator, and an unterminated
 *     quote: dpipe-source refuses the file (naming line and column), a connector skips the record
 *     (counted, with the reason);
 *   - values are strings (dpipe-source --infer-types may make numbers, booleans and null of them). */

#include <stdbool.h>
#include <stddef.h>

typedef struct CsvScanner {
        size_t scan;    /* bytes of the pending record looked at so far */
        bool in_quotes;
} CsvScanner;

/* Where the record starting at p ends: the index of its terminating '\n', or n if the bytes so far
 * hold no end (call again with the same start and more bytes; s remembers how far it got). After a
 * record was found (or the pending bytes are dropped) the scanner starts afresh. */
size_t csv_scan_record(CsvScanner *s, const char *p, size_t n);
static inline void csv_scanner_reset(CsvScanner *s) {
        *s = (CsvScanner) {};
}

typedef struct CsvField {
        const char *value; /* unescaped, in the record's storage; not NUL-terminated */
        size_t len;
        size_t at;         /* where the field starts in the record as read (for positions) */
        bool quoted;
} CsvField;

typedef struct CsvRecord {
        CsvField *fields;
        size_t n_fields, n_allocated;
} CsvRecord;

void csv_record_done(CsvRecord *r);

/* Splits rec[0..len) (one record without its '\n') in place into r. Returns the number of fields
 * (0 for an empty line: no record), -EBADMSG with *ret_error (a static message) and *ret_error_at
 * (the offset in rec it is about) for a malformed record, or -ENOMEM. */
int csv_split_record(CsvRecord *r, char *rec, size_t len, const char **ret_error, size_t *ret_error_at);

/* Skips a UTF-8 byte order mark at the start of a stream, also one split across reads: *state
 * counts the BOM bytes matched so far (0 at the start of a stream, 3 once decided). Returns the
 * number of bytes of data to skip, or -EILSEQ when the stream starts with a broken BOM. */
int csv_bom_skip(unsigned *state, const char *data, size_t n);

/* The first duplicate among names[0..n) (header names), as an index, or -1. */
ssize_t csv_header_find_duplicate(const CsvField *names, size_t n);
