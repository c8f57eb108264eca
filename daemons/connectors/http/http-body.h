/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* One HTTP response body turned into records, fed as it arrives. Separate from the curl and event
 * loop code so that the reader can be tested and fuzzed alone (tests/fuzz/fuzz-http-body.c).
 *
 *  - jsonl and csv bodies are split into records as they arrive: what is held is the unfinished
 *    record, not the body.
 *  - a JSON array (format json) and a dpipe-source page ({"records":[...],"next_offset":K}) are
 *    held until the body is complete, then walked element by element without a tree: each element
 *    is checked on its own (json_scan_prefix()), a bad one is skipped with its reason and the walk
 *    goes on after it (json_scan_lenient() finds its end); the bytes of a good one go on as they
 *    came, except that an element spread over several lines is put on one (blanks between tokens
 *    dropped).
 *  - with format auto the body decides: '[' an array, '{' a page when its first line is one, else
 *    JSON lines; a CSV Content-Type or anything else, CSV.
 *
 * A body that is not what the source expects is refused as a whole, with a message naming what it
 * is: a Content-Type that says so (an HTML page, XML, an image, ...), a body that starts like HTML
 * or XML, a json body that is no array, a page without a records array, a jsonl body whose first
 * line is not JSON. Records go to the source with source_emit()/source_emit_seq() and skips with
 * source_skip_record(). */

#include <stdbool.h>
#include <stdint.h>

#include "buffer.h"
#include "connector-format.h"
#include "connector.h"

typedef struct HttpBody {
        /* Set by http_body_begin() for each response. */
        RecordFormat declared; /* the source's format: AUTO, DPIPE (pages), JSON, JSONL or CSV */
        bool page_expected;    /* a dpipe-source collection: '{' is a page without looking further */
        uint64_t skip;         /* documents: records handed over from earlier responses (the cursor) */
        bool page_seqs;        /* pages: record i gets seq first_seq + i (else the source's own seqs) */
        uint64_t first_seq;
        RecordReader *reader; /* the source's: fixed CSV header, max_record, line numbers */

        /* What the body turned out to be: AUTO while undecided. */
        RecordFormat format;
        bool undecided_until_end; /* auto: a '{' body whose first line is no JSON value */
        bool first_record_checked;
        bool streaming;           /* jsonl/csv: records leave as they arrive */
        Buffer buf;               /* streaming: the unfinished record; otherwise the whole body */
        Buffer scratch;           /* an element put on one line */

        /* Results. */
        uint64_t index;   /* documents: records of the body passed so far (before the cursor or not) */
        uint64_t emitted; /* records handed to the source by this body */
        uint64_t elements; /* pages: elements of the records array */
        uint64_t next_offset, total;
        bool have_next_offset, have_total;
        bool shrank; /* json documents: fewer records than the cursor, read anew from the start */
        char error[512];
} HttpBody;

/* Prepares for a new response. reader is reset (a new stream). */
void http_body_begin(HttpBody *b, RecordFormat declared, bool page_expected, RecordReader *reader, uint64_t skip,
                     bool page_seqs, uint64_t first_seq);
/* Frees what a finished body holds (a large buffer is given back, a small one kept for the next). */
void http_body_release(HttpBody *b);
void http_body_done(HttpBody *b);

/* The response's Content-Type (may be NULL), once its headers are in: -EMEDIUMTYPE with b->error when
 * it says the body is something else (an HTML page, XML, an image...). */
int http_body_check_content_type(HttpBody *b, const char *content_type);

/* Takes the next bytes of the body. 0, -EMEDIUMTYPE with b->error when the body is not what was
 * expected (nothing more should be fed), -ERANGE when a page's seq can not be followed, or -ENOMEM. */
int http_body_feed(HttpBody *b, Source *s, const char *content_type, const char *p, size_t n);
/* The body is complete: handles what was held. Same returns. */
int http_body_end(HttpBody *b, Source *s, const char *content_type);

/* Bytes of the body held now (the unit of max_body_bytes and of the connector's global limit). */
static inline size_t http_body_held(const HttpBody *b) {
        return buffer_size(&b->buf);
}

/* "a JSON array", "JSON lines", ... for messages. */
const char *http_body_expected(RecordFormat declared);
