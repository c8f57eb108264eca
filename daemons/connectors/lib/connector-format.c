/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "connector-format.h"
#include "json-scan.h"
#include "log.h"
#include "utf8.h"

static const char *const record_format_table[_RECORD_FORMAT_MAX] = {
        [RECORD_FORMAT_AUTO] = "auto",   [RECORD_FORMAT_DPIPE] = "dpipe", [RECORD_FORMAT_JSONL] = "jsonl",
        [RECORD_FORMAT_CSV] = "csv",     [RECORD_FORMAT_LINES] = "lines", [RECORD_FORMAT_JSON] = "json",
};

RecordFormat record_format_from_string(const char *s) {
        if (!s)
                return _RECORD_FORMAT_INVALID;
        for (int i = 0; i < _RECORD_FORMAT_MAX; i++)
                if (streq(s, record_format_table[i]))
                        return (RecordFormat) i;
        return _RECORD_FORMAT_INVALID;
}

const char *record_format_to_string(RecordFormat f) {
        return f >= 0 && f < _RECORD_FORMAT_MAX ? record_format_table[f] : NULL;
}

static void strv_free_n(char **v, size_t n) {
        if (!v)
                return;
        for (size_t i = 0; i < n; i++)
                free(v[i]);
        free(v);
}

static uint64_t count_newlines(const char *p, size_t n) {
        uint64_t k = 0;

        for (const char *e = p + n; (p = memchr(p, '\n', (size_t) (e - p))); p++)
                k++;
        return k;
}

static int header_from_fields(const CsvField *fields, size_t n, char ***ret, size_t *ret_n) {
        char **h = calloc(MAX(n, (size_t) 1), sizeof(char *));

        if (!h)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                h[i] = strndup(fields[i].value, fields[i].len);
                if (!h[i]) {
                        strv_free_n(h, i);
                        return -ENOMEM;
                }
        }
        *ret = h;
        *ret_n = n;
        return 0;
}

int record_reader_init(RecordReader *r, RecordFormat format, size_t max_record, const char *csv_header) {
        int k;

        *r = (RecordReader) {
                .format = format,
                .max_record = max_record,
                .line = 1,
        };
        if (!isempty(csv_header)) {
                _cleanup_free_ char *copy = NULL;

                if (!utf8_is_valid_n(csv_header, strlen(csv_header)))
                        return -EINVAL;
                copy = strdup(csv_header);

                if (!copy)
                        return -ENOMEM;
                const char *why;
                size_t at;

                k = csv_split_record(&r->csv, copy, strlen(copy), &why, &at);
                if (k < 0)
                        return k == -ENOMEM ? k : -EINVAL;
                if (csv_header_find_duplicate(r->csv.fields, (size_t) k) >= 0)
                        return -EINVAL;
                k = header_from_fields(r->csv.fields, (size_t) k, &r->csv_fixed_header, &r->n_fixed_header);
                if (k < 0)
                        return k;
                r->header = r->csv_fixed_header;
                r->n_header = r->n_fixed_header;
        }
        return 0;
}

static void record_reader_drop_header(RecordReader *r) {
        if (r->header_owned)
                strv_free_n(r->header, r->n_header);
        r->header_owned = false;
        r->header = r->csv_fixed_header;
        r->n_header = r->n_fixed_header;
        r->header_json_valid = false;
        r->header_bad = NULL;
}

/* The header's names escaped as JSON strings once per header, not once per record: from the
 * fields of the header record as read (a name may hold any byte, NUL too), else from the names. */
static int record_reader_header_json_from(RecordReader *r, const CsvField *fields) {
        size_t *end;
        bool *escaped;

        end = reallocarray(r->header_json_end, MAX(r->n_header, (size_t) 1), sizeof(size_t));
        if (!end)
                return -ENOMEM;
        r->header_json_end = end;
        escaped = reallocarray(r->header_json_escaped, MAX(r->n_header, (size_t) 1), sizeof(bool));
        if (!escaped)
                return -ENOMEM;
        r->header_json_escaped = escaped;
        buffer_clear(&r->header_json);
        for (size_t i = 0; i < r->n_header; i++) {
                size_t n = fields ? fields[i].len : strlen(r->header[i]), before = buffer_size(&r->header_json);

                if (buffer_append_json_string(&r->header_json, fields ? fields[i].value : r->header[i], n) < 0)
                        return -ENOMEM;
                end[i] = buffer_size(&r->header_json);
                /* Every escape makes the string longer than the name and its quotes. */
                escaped[i] = end[i] - before != n + 2;
        }
        r->header_json_valid = true;
        return 0;
}

static int record_reader_header_json(RecordReader *r) {
        return r->header_json_valid ? 0 : record_reader_header_json_from(r, NULL);
}

void record_reader_done(RecordReader *r) {
        record_reader_drop_header(r);
        strv_free_n(r->csv_fixed_header, r->n_fixed_header);
        r->csv_fixed_header = r->header = NULL;
        csv_record_done(&r->csv);
        buffer_done(&r->scratch);
        buffer_done(&r->header_json);
        free(r->header_json_end);
        r->header_json_end = NULL;
        free(r->header_json_escaped);
        r->header_json_escaped = NULL;
        r->header_json_valid = false;
}

void record_reader_reset(RecordReader *r, uint64_t offset) {
        record_reader_drop_header(r);
        r->scan = 0;
        csv_scanner_reset(&r->csv_scan);
        r->bom = offset > 0 ? 3 : 0; /* a BOM is only at the very start */
        r->skipping = false;
        r->line = 1;
        r->offset = offset;
}

/* Where the record at p ends: its '\n', or n if not there yet. CSV records end at a line feed
 * outside quotes (common/csv.h), the others at every line feed. */
static size_t record_end(RecordReader *r, const char *p, size_t n) {
        const char *nl;

        if (r->format == RECORD_FORMAT_CSV)
                return csv_scan_record(&r->csv_scan, p, n);
        /* Lines: memchr() finds the end many bytes at a time. */
        nl = memchr(p + r->scan, '\n', n - r->scan);
        if (nl) {
                r->scan = 0;
                return (size_t) (nl - p);
        }
        r->scan = n;
        return n;
}

/* The pending bytes p[0..n) are dropped (an oversized record): what was scanned of them is gone,
 * but a CSV quote still open stays open. */
static void record_scan_dropped(RecordReader *r) {
        r->scan = 0;
        r->csv_scan.scan = 0;
}

int record_reader_next(RecordReader *r, Buffer *b, bool eof, char **ret, size_t *ret_len) {
        for (;;) {
                char *p = buffer_begin(b);
                size_t n = buffer_size(b), i, len;

                if (n == 0)
                        return 0; /* (and no storage to point into, maybe) */

                if (r->format == RECORD_FORMAT_CSV && r->bom < 3) {
                        /* A byte order mark at the start of the stream is no part of the header. It
                         * is taken only whole, so that where the stream was cut does not matter; a
                         * broken one is left in: the header is then not UTF-8, and refused. */
                        unsigned st = 0;
                        int k = csv_bom_skip(&st, p, MIN(n, (size_t) 3));

                        if (k == 3) {
                                r->bom = 3;
                                r->offset += 3;
                                buffer_consume(b, 3);
                                continue;
                        }
                        if (k > 0 && st < 3 && !eof)
                                return 0; /* the start of a BOM so far */
                        r->bom = 3;
                }

                i = record_end(r, p, n);
                if (r->skipping) {
                        /* Dropping an oversized record up to its end. */
                        if (i >= n) {
                                r->offset += n;
                                buffer_consume(b, n);
                                record_scan_dropped(r);
                                if (eof)
                                        csv_scanner_reset(&r->csv_scan), r->skipping = false;
                                return 0;
                        }
                        r->offset += i + 1;
                        r->line += 1 + (r->format == RECORD_FORMAT_CSV ? count_newlines(p, i) : 0);
                        buffer_consume(b, i + 1);
                        r->skipping = false;
                        continue;
                }
                if (i >= n) {
                        if (n > r->max_record) {
                                /* Oversized and still incomplete: drop what we have, skip to its end. */
                                r->skipped_line = r->line;
                                r->line += r->format == RECORD_FORMAT_CSV ? count_newlines(p, n) : 0;
                                r->offset += n;
                                buffer_consume(b, n);
                                record_scan_dropped(r);
                                r->skipping = true;
                                return -E2BIG;
                        }
                        if (!eof || n == 0)
                                return 0;
                        /* The last record of a finished stream needs no newline. */
                        r->scan = 0;
                        csv_scanner_reset(&r->csv_scan);
                        len = n;
                        r->offset += n;
                        if (n >= b->allocated - b->tail) {
                                if (buffer_reserve(b, 1) < 0)
                                        return -ENOMEM;
                                p = buffer_begin(b);
                        }
                        p[n] = 0;
                        buffer_consume(b, n);
                } else {
                        len = i;
                        r->offset += i + 1;
                        p[i] = 0;
                        buffer_consume(b, i + 1);
                        if (len > r->max_record) {
                                r->skipped_line = r->line;
                                r->line += 1 + (r->format == RECORD_FORMAT_CSV ? count_newlines(p, len) : 0);
                                return -E2BIG;
                        }
                }
                /* A CSV record's CR (one, before the line feed) is the CSV reader's to drop. */
                while (r->format != RECORD_FORMAT_CSV && len > 0 && (p[len - 1] == '\r' || p[len - 1] == 0))
                        p[--len] = 0;
                *ret = p;
                *ret_len = len;
                return 1;
        }
}

/* "line N" for a message about a skipped record: formatted only then, never for every record. */
static const char *line_position(char buf[static 32], uint64_t line) {
        (void) snprintf(buf, 32, "line %" PRIu64, line);
        return buf;
}

static bool blank(const char *s, size_t len) {
        for (size_t i = 0; i < len; i++)
                if (!strchr(" \t\r", s[i]))
                        return false;
        return true;
}

int record_check_json(const char *rec, size_t len, char *reason, size_t reason_size) {
        size_t at = 0;

        /* One pass: strict JSON (no NaN/Infinity, UTF-8 checked, no raw control characters in strings)
         * and one line, the writer's rule, so that nothing this lets through is refused there. */
        if (json_scan_line_check(rec, len, &at) > 0)
                return 0;
        (void) snprintf(reason, reason_size, "not valid JSON: %s at byte %zu", json_scan_error_reason(rec, len, at),
                        at + 1);
        return -EBADMSG;
}

/* Whether the member is the string s: the bytes as sent ("record", quotes included, compared in
 * place) in the common case, any escaped spelling of it otherwise. */
static bool field_is_string_n(const JsonScanField *f, const char *quoted, size_t quoted_len, const char *s) {
        if (f->type != JSON_SCAN_STRING)
                return false;
        if (f->value_len == quoted_len && memcmp(f->value, quoted, quoted_len) == 0)
                return true;
        return memchr(f->value, '\\', f->value_len) && json_scan_string_equal(f->value, f->value_len, s);
}
#define field_is_string(f, s) field_is_string_n((f), "\"" s "\"", sizeof("\"" s "\"") - 1, (s))

enum { FIELD_OP, FIELD_SEQ, FIELD_DATA, FIELD_MESSAGE, _FIELD_MAX };

static int dpipe_line_interpret(const char *line, size_t len, int r, size_t at, const JsonScanField f[static _FIELD_MAX],
                                DpipeLine *ret, char *reason, size_t reason_size);

int dpipe_line_parse(const char *line, size_t len, DpipeLine *ret, char *reason, size_t reason_size) {
        JsonScanField f[] = {
                [FIELD_OP] = { .key = "op" },
                [FIELD_SEQ] = { .key = "seq" },
                [FIELD_DATA] = { .key = "data" },
                [FIELD_MESSAGE] = { .key = "message" },
        };
        size_t at = 0;
        int r;

        /* The one parse of the record on its whole way: validates the line (strict, and one line as
         * the writer wants it) and finds the members; data is handed on as the bytes received (no
         * tree, no re-serialisation). */
        r = json_scan_line(line, len, f, ELEMENTSOF(f), &at);
        ret->data_member = -1;
        return dpipe_line_interpret(line, len, r, at, f, ret, reason, reason_size);
}

/* Whether the member's name (a JSON string span) is the NUL-terminated name. */
static bool member_is(const JsonScanMember *m, const char *name, size_t name_len) {
        if (m->key_escaped)
                return json_scan_string_equal(m->key, m->key_len, name);
        return m->key_len == name_len + 2 && memcmp(m->key + 1, name, name_len) == 0;
}

int dpipe_line_parse_listed(const char *line, size_t len, JsonScanMembers *mt, DpipeLine *ret, char *reason,
                            size_t reason_size) {
        static const struct {
                const char *name;
                size_t len;
        } names[_FIELD_MAX] = {
                [FIELD_OP] = { "op", 2 },
                [FIELD_SEQ] = { "seq", 3 },
                [FIELD_DATA] = { "data", 4 },
                [FIELD_MESSAGE] = { "message", 7 },
        };
        JsonScanField f[_FIELD_MAX] = {};
        ssize_t data = -1;
        size_t at = 0;
        int r;

        /* The same one pass, which also lists the members of data (and of the line) for the
         * transform: the line's own members are those at depth 1, the last of a name counts. */
        r = json_scan_line_members(line, len, mt, &at);
        if (r == -ENOMEM)
                return r;
        if (r == JSON_SCAN_OBJECT)
                for (size_t k = 0; k < mt->n; k++) {
                        const JsonScanMember *m = &mt->members[k];

                        if (m->depth != 1)
                                continue;
                        for (size_t i = 0; i < _FIELD_MAX; i++)
                                if (member_is(m, names[i].name, names[i].len)) {
                                        f[i] = (JsonScanField) {
                                                .key = names[i].name,
                                                .type = m->type,
                                                .value = m->value,
                                                .value_len = m->value_len,
                                        };
                                        if (i == FIELD_DATA)
                                                data = (ssize_t) k;
                                        break;
                                }
                }
        ret->data_member = data >= 0 && mt->members[data].type == JSON_SCAN_OBJECT ? data : -1;
        return dpipe_line_interpret(line, len, r, at, f, ret, reason, reason_size);
}

static int dpipe_line_interpret(const char *line, size_t len, int r, size_t at, const JsonScanField f[static _FIELD_MAX],
                                DpipeLine *ret, char *reason, size_t reason_size) {
        if (r < 0) {
                (void) snprintf(reason, reason_size, "not valid JSON: %s at byte %zu", json_scan_error_reason(line, len, at),
                                at + 1);
                return -EBADMSG;
        }
        if (r != JSON_SCAN_OBJECT) {
                (void) snprintf(reason, reason_size, "not a JSON object");
                return -EBADMSG;
        }
        ret->text[0] = 0;
        if (field_is_string(&f[FIELD_OP], "record")) {
                if (f[FIELD_SEQ].type != JSON_SCAN_NUMBER || f[FIELD_DATA].type == JSON_SCAN_NONE ||
                    json_scan_uint64(f[FIELD_SEQ].value, f[FIELD_SEQ].value_len, &ret->seq) < 0) {
                        (void) snprintf(reason, reason_size, "record without seq or data");
                        return -EBADMSG;
                }
                ret->kind = DPIPE_LINE_RECORD;
                ret->data = f[FIELD_DATA].value;
                ret->data_len = f[FIELD_DATA].value_len;
        } else if (field_is_string(&f[FIELD_OP], "ping"))
                ret->kind = DPIPE_LINE_PING;
        else if (field_is_string(&f[FIELD_OP], "pong"))
                ret->kind = DPIPE_LINE_PONG;
        else if (field_is_string(&f[FIELD_OP], "error")) {
                ret->kind = DPIPE_LINE_ERROR;
                if (f[FIELD_MESSAGE].type == JSON_SCAN_STRING)
                        (void) json_scan_string_unescape(f[FIELD_MESSAGE].value, f[FIELD_MESSAGE].value_len, ret->text,
                                                         sizeof(ret->text));
        } else {
                ret->kind = DPIPE_LINE_OTHER;
                if (f[FIELD_OP].type == JSON_SCAN_STRING)
                        (void) json_scan_string_unescape(f[FIELD_OP].value, f[FIELD_OP].value_len, ret->text,
                                                         sizeof(ret->text));
        }
        return 0;
}

/* Text (csv, lines) becomes JSON strings: control characters are escaped then, but bytes that are
 * not UTF-8 can not be written as JSON at all. */
static int record_check_text(const char *rec, size_t len, char *reason, size_t reason_size) {
        size_t at = utf8_valid_prefix(rec, len);

        if (at == len)
                return 0;
        (void) snprintf(reason, reason_size, "invalid UTF-8 at byte %zu", at + 1);
        return -EILSEQ;
}

/* A string member of the object a connector built (csv, lines), for the transform. */
static int member_add(JsonScanMembers *mt, const char *key, size_t key_len, bool key_escaped, const char *value,
                      size_t value_len, bool value_escaped) {
        if (mt->n >= mt->allocated && json_scan_members_grow(mt) < 0)
                return -ENOMEM;
        mt->members[mt->n++] = (JsonScanMember) {
                .key = key,
                .key_len = (uint32_t) key_len,
                .value = value,
                .value_len = (uint32_t) value_len,
                .parent = -1,
                .depth = 1,
                .type = JSON_SCAN_STRING,
                .key_escaped = key_escaped,
                .value_escaped = value_escaped,
        };
        return 0;
}

int record_reader_emit(RecordReader *r, Source *s, char *rec, size_t len) {
        char pos[32], reason[128];
        uint64_t line = r->line;
        JsonScanMembers *mt;
        int k;

        /* Count lines, including those inside quoted CSV fields (only CSV records can hold a
         * newline: every other format splits at each one). */
        r->line++;
        if (r->format == RECORD_FORMAT_CSV)
                for (const char *p = rec, *e = rec + len; (p = memchr(p, '\n', (size_t) (e - p))); p++)
                        r->line++;

        switch (r->format) {
        case RECORD_FORMAT_JSONL:
        case RECORD_FORMAT_DPIPE:
        case RECORD_FORMAT_AUTO:
        case RECORD_FORMAT_JSON:
                if (blank(rec, len))
                        return 0;
                /* Validated in one pass without building a tree (with a transform: its pass); the
                 * bytes go on unchanged (or as the transform rewrote them). */
                return source_emit_unchecked(s, rec, len, "line", line);
        case RECORD_FORMAT_LINES:
                if (record_check_text(rec, len, reason, sizeof(reason)) < 0) {
                        source_skip_record(s, line_position(pos, line), "%s", reason);
                        return 0;
                }
                buffer_clear(&r->scratch);
                if (buffer_append(&r->scratch, "{\"line\":", sizeof("{\"line\":") - 1) < 0 ||
                    buffer_append_json_string(&r->scratch, rec, len) < 0 || buffer_append(&r->scratch, "}", 1) < 0)
                        return -ENOMEM;
                mt = source_members(s, 0);
                if (mt) {
                        /* The record is ours: its one member is known without scanning it. */
                        const char *b = buffer_begin(&r->scratch);
                        size_t n = buffer_size(&r->scratch);

                        mt->n = 0;
                        /* (every escape makes the string longer than the text and its quotes) */
                        if (member_add(mt, b + 1, 6, false, b + 8, n - 9, n - 9 != len + 2) < 0)
                                return -ENOMEM;
                        k = source_emit_listed(s, source_next_seq(s), b, n, mt, -1, "line", line);
                } else
                        k = source_emit(s, buffer_begin(&r->scratch), buffer_size(&r->scratch));
                return k < 0 ? k : k > 0;
        case RECORD_FORMAT_CSV: {
                const char *why = NULL;
                size_t at = 0;
                int n;

                if (r->header && r->header_bad) {
                        source_skip_record(s, line_position(pos, line), "%s", r->header_bad);
                        return 0;
                }
                if (record_check_text(rec, len, reason, sizeof(reason)) < 0) {
                        /* A header that is not UTF-8 is taken all the same (the next record is data,
                         * not a header), but no record can be built with its names. */
                        if (!r->header) {
                                r->header_owned = true;
                                r->header = calloc(1, sizeof(char *));
                                if (!r->header)
                                        return -ENOMEM;
                                r->n_header = 0;
                                r->header_json_valid = false;
                                r->header_bad = "the CSV header is not valid UTF-8";
                                source_skip_record(s, line_position(pos, line), "CSV header: %s", reason);
                                return 0;
                        }
                        source_skip_record(s, line_position(pos, line), "%s", reason);
                        return 0;
                }
                /* The one CSV reader of dpipe (common/csv.h), as dpipe-source reads files. */
                n = csv_split_record(&r->csv, rec, len, &why, &at);
                if (n == -ENOMEM)
                        return n;
                if (n < 0) {
                        source_skip_record(s, line_position(pos, line), "%s (byte %zu)", why, at + 1);
                        return 0;
                }
                if (n == 0)
                        return 0; /* an empty line */
                if (!r->header) {
                        ssize_t d = csv_header_find_duplicate(r->csv.fields, (size_t) n);

                        k = header_from_fields(r->csv.fields, (size_t) n, &r->header, &r->n_header);
                        if (k < 0)
                                return k;
                        r->header_owned = true;
                        if (record_reader_header_json_from(r, r->csv.fields) < 0)
                                return -ENOMEM;
                        if (d >= 0) {
                                r->header_bad = "the CSV header names a field twice";
                                source_skip_record(s, line_position(pos, line), "CSV header: duplicate field name \"%s\"",
                                                   r->header[d]);
                        }
                        return 0;
                }
                /* Fewer fields than the header: the missing ones are absent. More: malformed. */
                if ((size_t) n > r->n_header) {
                        source_skip_record(s, line_position(pos, line), "%d CSV fields where the header has %zu", n,
                                           r->n_header);
                        return 0;
                }
                if (record_reader_header_json(r) < 0)
                        return -ENOMEM;
                mt = source_members(s, 0);
                buffer_clear(&r->scratch);
                /* Room for the whole object at once (every byte of a value may become \u00XX): with
                 * a transform, the members point into it as it is written. */
                if (buffer_reserve(&r->scratch, buffer_size(&r->header_json) + 6 * len + 4 * (size_t) n + 2) < 0)
                        return -ENOMEM;
                if (mt)
                        mt->n = 0;
                if (buffer_append(&r->scratch, "{", 1) < 0)
                        return -ENOMEM;
                for (int i = 0; i < n; i++) {
                        size_t start = i > 0 ? r->header_json_end[i - 1] : 0, key, value;

                        if (i > 0 && buffer_append(&r->scratch, ",", 1) < 0)
                                return -ENOMEM;
                        key = buffer_size(&r->scratch);
                        if (buffer_append(&r->scratch, buffer_begin(&r->header_json) + start,
                                          r->header_json_end[i] - start) < 0 ||
                            buffer_append(&r->scratch, ":", 1) < 0)
                                return -ENOMEM;
                        value = buffer_size(&r->scratch);
                        if (buffer_append_json_string(&r->scratch, r->csv.fields[i].value, r->csv.fields[i].len) < 0)
                                return -ENOMEM;
                        if (mt && member_add(mt, buffer_begin(&r->scratch) + key, r->header_json_end[i] - start,
                                             r->header_json_escaped[i], buffer_begin(&r->scratch) + value,
                                             buffer_size(&r->scratch) - value,
                                             buffer_size(&r->scratch) - value != r->csv.fields[i].len + 2) < 0)
                                return -ENOMEM;
                }
                if (buffer_append(&r->scratch, "}", 1) < 0)
                        return -ENOMEM;
                if (mt)
                        /* The object the connector built is not scanned again: its members are known. */
                        k = source_emit_listed(s, source_next_seq(s), buffer_begin(&r->scratch), buffer_size(&r->scratch),
                                               mt, -1, "line", line);
                else
                        k = source_emit(s, buffer_begin(&r->scratch), buffer_size(&r->scratch));
                return k < 0 ? k : k > 0;
        }
        default:
                return -EINVAL;
        }
}

int record_reader_feed(RecordReader *r, Source *s, Buffer *b, bool eof) {
        int emitted = 0, k;

        for (;;) {
                char *rec;
                size_t len;

                k = record_reader_next(r, b, eof, &rec, &len);
                if (k == 0)
                        return emitted;
                if (k == -E2BIG) {
                        char pos[64];
                        (void) snprintf(pos, sizeof(pos), "line %" PRIu64, r->skipped_line);
                        source_skip_record(s, pos, "record longer than %zu bytes", r->max_record);
                        continue;
                }
                if (k < 0)
                        return k;
                k = record_reader_emit(r, s, rec, len);
                if (k < 0)
                        return k;
                emitted += k;
        }
}
