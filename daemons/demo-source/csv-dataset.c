/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* dpipe-source's CSV loader: the records of common/csv.h (the reader every connector uses too)
 * written into the Dataset as JSON objects. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csv-dataset.h"
#include "csv.h"

struct CsvParser {
        Dataset *dataset;
        bool infer_types;

        unsigned bom;         /* csv_bom_skip() state */
        Buffer pending;       /* bytes of records not complete yet */
        CsvScanner scanner;
        Buffer scratch;       /* the record being split (the original stays for error positions) */
        CsvRecord record;
        unsigned long line;   /* line the pending record starts on */

        bool have_header;
        Buffer keys;         /* each header name as a JSON string followed by ':' */
        size_t *key_offsets; /* n_keys + 1 offsets into keys */
        size_t n_keys, n_keys_allocated;
};

CsvParser *csv_parser_new(Dataset *d, bool infer_types) {
        CsvParser *p;

        p = calloc(1, sizeof(CsvParser));
        if (!p)
                return NULL;
        p->dataset = d;
        p->infer_types = infer_types;
        p->line = 1;
        p->key_offsets = calloc(1, sizeof(size_t));
        if (!p->key_offsets)
                return csv_parser_free(p);
        p->n_keys_allocated = 1;
        return p;
}

CsvParser *csv_parser_free(CsvParser *p) {
        if (!p)
                return NULL;
        buffer_done(&p->pending);
        buffer_done(&p->scratch);
        csv_record_done(&p->record);
        buffer_done(&p->keys);
        free(p->key_offsets);
        free(p);
        return NULL;
}

void csv_parser_set_dataset(CsvParser *p, Dataset *d) {
        p->dataset = d;
}

size_t csv_parser_n_fields(const CsvParser *p) {
        return p->have_header ? p->n_keys : 0;
}

/* JSON's number grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? — so "007" stays a string. */
static bool is_json_number(const char *s, size_t n) {
        size_t i = 0, d;

        if (i < n && s[i] == '-')
                i++;
        if (i >= n)
                return false;
        if (s[i] == '0')
                i++;
        else if (s[i] >= '1' && s[i] <= '9')
                while (i < n && s[i] >= '0' && s[i] <= '9')
                        i++;
        else
                return false;
        if (i < n && s[i] == '.') {
                i++;
                for (d = i; i < n && s[i] >= '0' && s[i] <= '9'; i++)
                        ;
                if (i == d)
                        return false;
        }
        if (i < n && (s[i] == 'e' || s[i] == 'E')) {
                i++;
                if (i < n && (s[i] == '+' || s[i] == '-'))
                        i++;
                for (d = i; i < n && s[i] >= '0' && s[i] <= '9'; i++)
                        ;
                if (i == d)
                        return false;
        }
        return i == n;
}

static int append_value(CsvParser *p, Buffer *out, const char *v, size_t n) {
        if (p->infer_types) {
                if (n == 0)
                        return buffer_append(out, "null", 4);
                if ((n == 4 && memcmp(v, "true", 4) == 0) || (n == 5 && memcmp(v, "false", 5) == 0) ||
                    is_json_number(v, n))
                        return buffer_append(out, v, n);
        }
        return buffer_append_json_string(out, v, n);
}

static int header_add(CsvParser *p, const char *name, size_t n) {
        int r;

        if (p->n_keys + 2 > p->n_keys_allocated) {
                size_t a = p->n_keys_allocated * 2;
                size_t *o = realloc(p->key_offsets, a * sizeof(size_t));
                if (!o)
                        return -ENOMEM;
                p->key_offsets = o;
                p->n_keys_allocated = a;
        }
        r = buffer_append_json_string(&p->keys, name, n);
        if (r < 0)
                return r;
        r = buffer_append(&p->keys, ":", 1);
        if (r < 0)
                return r;
        p->key_offsets[++p->n_keys] = p->keys.tail;
        return 0;
}

/* The error message at byte at of the record rec that starts on p->line (line and column). */
static int record_error(CsvParser *p, const char *rec, size_t at, LoadError *err, const char *message) {
        unsigned long line = p->line, column = 1;

        for (size_t i = 0; i < at; i++)
                if (rec[i] == '\n')
                        line++, column = 1;
                else
                        column++;
        return load_error_set(err, line, column, "%s", message);
}

static int write_row(CsvParser *p, const CsvRecord *r) {
        Buffer *out = dataset_row_buffer(p->dataset);
        size_t row_start = out->tail;
        int k;

        for (size_t i = 0; i < r->n_fields; i++) {
                k = buffer_append(out, i == 0 ? "{" : ",", 1);
                if (k >= 0)
                        k = buffer_append(out, p->keys.data + p->key_offsets[i], p->key_offsets[i + 1] - p->key_offsets[i]);
                if (k >= 0)
                        k = append_value(p, out, r->fields[i].value, r->fields[i].len);
                if (k < 0) {
                        out->tail = row_start;
                        return k;
                }
        }
        k = buffer_append(out, "}", 1);
        if (k < 0) {
                out->tail = row_start;
                return k;
        }
        return dataset_row_commit(p->dataset, row_start);
}

/* One complete record, rec[0..len) without its line feed. */
static int process_record(CsvParser *p, const char *rec, size_t len, bool at_eof, LoadError *err) {
        const char *why = NULL;
        size_t at = 0;
        int n, k;

        buffer_clear(&p->scratch);
        k = buffer_append(&p->scratch, rec, len);
        if (k < 0)
                return k;
        n = csv_split_record(&p->record, buffer_begin(&p->scratch), len, &why, &at);
        if (n == -ENOMEM)
                return n;
        if (n < 0)
                return record_error(p, rec, at, err,
                                    at_eof && streq(why, "unterminated quoted field") ? "unterminated quoted field at end of file"
                                                                                      : why);
        if (n == 0)
                return 0; /* an empty line */

        for (int i = 0; i < n; i++) {
                const CsvField *f = p->record.fields + i;
                size_t ok = utf8_valid_prefix(f->value, f->len);

                if (ok < f->len) {
                        /* Point at the bad byte when the field has no line break before it. */
                        bool same_line = !memchr(f->value, '\n', ok);
                        return record_error(p, rec, f->at + (same_line ? ok + f->quoted : 0), err,
                                            "invalid UTF-8 in field");
                }
        }

        if (!p->have_header) {
                ssize_t d = csv_header_find_duplicate(p->record.fields, (size_t) n);

                if (d >= 0)
                        return load_error_set(err, p->line, 1, "duplicate field name \"%.*s\" in header",
                                              (int) MIN(p->record.fields[d].len, (size_t) 64), p->record.fields[d].value);
                for (int i = 0; i < n; i++) {
                        k = header_add(p, p->record.fields[i].value, p->record.fields[i].len);
                        if (k < 0)
                                return k;
                }
                p->have_header = true;
                return 0;
        }
        if ((size_t) n > p->n_keys) {
                char message[80];

                (void) snprintf(message, sizeof(message), "record has more fields than the header (%zu)", p->n_keys);
                return record_error(p, rec, p->record.fields[p->n_keys].at, err, message);
        }
        return write_row(p, &p->record);
}

static unsigned long count_lines(const char *s, size_t n) {
        unsigned long k = 0;

        for (const char *e = s + n; (s = memchr(s, '\n', (size_t) (e - s))); s++)
                k++;
        return k;
}

int csv_parser_feed(CsvParser *p, const char *data, size_t n, LoadError *err) {
        int r;

        r = csv_bom_skip(&p->bom, data, n);
        if (r < 0)
                return load_error_set(err, 1, 1, "invalid UTF-8 (broken byte order mark)");
        data += r, n -= (size_t) r;

        r = buffer_append(&p->pending, data, n);
        if (r < 0)
                return r;
        for (;;) {
                char *b = buffer_begin(&p->pending);
                size_t size = buffer_size(&p->pending), end;

                end = csv_scan_record(&p->scanner, b, size);
                if (end >= size)
                        return 0;
                r = process_record(p, b, end, false, err);
                if (r < 0)
                        return r;
                p->line += count_lines(b, end) + 1;
                buffer_consume(&p->pending, end + 1);
        }
}

int csv_parser_finish(CsvParser *p, LoadError *err) {
        size_t size = buffer_size(&p->pending);
        int r;

        if (p->bom > 0 && p->bom < 3) /* the file ends inside what began as a byte order mark */
                return load_error_set(err, 1, 1, "invalid UTF-8 (broken byte order mark)");
        if (size == 0)
                return 0;
        /* A last record without line break. */
        r = process_record(p, buffer_begin(&p->pending), size, true, err);
        if (r < 0)
                return r;
        buffer_clear(&p->pending);
        csv_scanner_reset(&p->scanner);
        return 0;
}
