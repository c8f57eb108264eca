/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Record formats shared by the connector types: splitting a byte stream into records (lines, or
 * CSV records whose quoted fields may hold newlines), and turning one record into one JSON value:
 *
 *   jsonl  each line is one JSON value, validated (strict, see record_check_json()) and passed on
 *          byte for byte
 *   csv    RFC 4180, read by the one CSV reader of dpipe (common/csv.h, as dpipe-source): a BOM
 *          is skipped, the first record (or the csv_header option) names the fields, each later
 *          record becomes {"field":"value",...} (values are strings; fields missing at the end of
 *          a short record are absent; a record with more fields than the header is skipped)
 *   lines  raw text; each line becomes {"line":"..."}
 *   (csv and lines: text that is not UTF-8 can not become a JSON string, the record is skipped;
 *   control characters are escaped)
 *   dpipe  the dpipe-source protocol; lines are JSON objects handled by the tcp connector
 *
 * A record longer than max_record bytes, or one that does not parse, is counted, logged with the
 * source name and its line number, and skipped: bad input never stops a stream. */

#include <stdbool.h>

#include "buffer.h"
#include "connector.h"
#include "csv.h"

typedef enum RecordFormat {
        RECORD_FORMAT_AUTO,
        RECORD_FORMAT_DPIPE,
        RECORD_FORMAT_JSONL,
        RECORD_FORMAT_CSV,
        RECORD_FORMAT_LINES,
        RECORD_FORMAT_JSON, /* one JSON array of values (http bodies, daemons/connectors/http/http-body.c) */
        _RECORD_FORMAT_MAX,
        _RECORD_FORMAT_INVALID = -EINVAL,
} RecordFormat;

RecordFormat record_format_from_string(const char *s);
const char *record_format_to_string(RecordFormat f);

typedef struct RecordReader {
        RecordFormat format;
        size_t max_record;
        char **csv_fixed_header; /* from the csv_header option, kept across streams */
        size_t n_fixed_header;
        char **header; /* in use: fixed, or read from the stream's first record */
        size_t n_header;
        bool header_owned;
        Buffer scratch; /* the JSON built for csv and lines records */
        Buffer header_json;     /* the header names as JSON strings, one after the other, escaped once */
        size_t *header_json_end; /* where each of them ends in header_json */
        bool *header_json_escaped; /* whether each of them holds an escape */
        bool header_json_valid;
        const char *header_bad; /* why the header read from the stream is unusable: its records are skipped */
        CsvRecord csv;          /* the fields of the CSV record at hand, reused */

        /* record splitting state */
        size_t scan;          /* lines: bytes of the pending record looked at */
        CsvScanner csv_scan;  /* csv: where the pending record ends (quotes may span reads) */
        unsigned bom;         /* csv: byte order mark bytes matched at the stream start */
        bool skipping;
        uint64_t line;   /* number of the line being read, 1-based, for messages */
        uint64_t skipped_line; /* line of the last record record_reader_next() refused as too long */
        uint64_t offset; /* bytes consumed since the start of the stream */
} RecordReader;

int record_reader_init(RecordReader *r, RecordFormat format, size_t max_record, const char *csv_header);
void record_reader_done(RecordReader *r);
/* A new stream (reconnect, reopened file): the header is read again unless fixed by option. */
void record_reader_reset(RecordReader *r, uint64_t offset);

/* Takes the next record's text off the head of b (NUL-terminated in place, trailing '\r' removed).
 * Returns 1 with it, 0 when more bytes are needed (at eof, a last unterminated record is returned),
 * -E2BIG once for a record above max_record, which is then discarded up to its end (its line number
 * is in skipped_line). r->offset counts the bytes consumed so far. */
int record_reader_next(RecordReader *r, Buffer *b, bool eof, char **ret, size_t *ret_len);

/* Converts one record of a jsonl/csv/lines stream and hands it to the source. Returns 1 when
 * emitted, 0 when skipped (counted and logged) or consumed as the CSV header, negative errno on
 * fatal errors (out of memory). */
int record_reader_emit(RecordReader *r, Source *s, char *rec, size_t len);

/* Feeds everything complete in b through next() and emit(). Returns number emitted or negative errno. */
int record_reader_feed(RecordReader *r, Source *s, Buffer *b, bool eof);

/* The check of every JSON record at the edge: one JSON value on one line, strict (json_scan_line()).
 * Returns 0, or -EBADMSG with a reason for the skip message ("not valid JSON: invalid UTF-8 at byte
 * 7"; bytes count from 1). */
int record_check_json(const char *rec, size_t len, char *reason, size_t reason_size);

/* One line of the dpipe-source protocol (tcp connector, format dpipe), parsed in the one pass of
 * json_scan_line() without a tree: {"op":"record","seq":N,"data":...}, ping, pong, error. */
typedef enum DpipeLineKind {
        DPIPE_LINE_RECORD,
        DPIPE_LINE_PING,
        DPIPE_LINE_PONG,
        DPIPE_LINE_ERROR,
        DPIPE_LINE_OTHER, /* any other op: ignored */
} DpipeLineKind;

typedef struct DpipeLine {
        DpipeLineKind kind;
        uint64_t seq;      /* record */
        const char *data;  /* record: the value's bytes as received, one JSON value on one line */
        size_t data_len;
        ssize_t data_member; /* dpipe_line_parse_listed(), record: the member that is data, if an object, else -1 */
        char text[256];    /* error: the message; other: the op (both unescaped, maybe truncated) */
} DpipeLine;

/* Returns 0 with *ret filled, or -EBADMSG with the reason to skip the line ("not valid JSON: ...",
 * "not a JSON object", "record without seq or data"). A seq of UINT64_MAX is returned as it is:
 * the caller refuses it (it is not a bad line but a peer that can not be followed). */
int dpipe_line_parse(const char *line, size_t len, DpipeLine *ret, char *reason, size_t reason_size);
/* The same, listing the line's members into mt in the same pass (mt from source_members(s, 1)):
 * data_member is then the member whose value is the record, for source_emit_listed(). */
int dpipe_line_parse_listed(const char *line, size_t len, JsonScanMembers *mt, DpipeLine *ret, char *reason,
                            size_t reason_size);

