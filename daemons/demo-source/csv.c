/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "csv.h"

typedef enum CsvState {
        CSV_FIELD_START,
        CSV_UNQUOTED,
        CSV_QUOTED,
        CSV_QUOTED_QUOTE, /* a '"' inside a quoted field: an escaped quote or the closing one */
        CSV_AFTER_CR,
} CsvState;

struct CsvParser {
        Dataset *dataset;
        bool infer_types;
        CsvState state;

        unsigned long line, column; /* of the next byte */
        unsigned bom_seen;          /* leading BOM bytes matched so far; 3 = done */

        Buffer field;
        bool field_quoted;
        unsigned long field_line, field_column;
        size_t n_fields;  /* completed fields of the current record */
        size_t row_start; /* where the current row's text starts in the dataset */

        bool have_header;
        Buffer keys;       /* each header name as a JSON string followed by ':' */
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
        p->line = p->column = 1;
        p->key_offsets = calloc(1, sizeof(size_t));
        /* Allocate the field buffer up front: its data pointer is never NULL, even for "". */
        if (!p->key_offsets || buffer_reserve(&p->field, 256) < 0)
                return csv_parser_free(p);
        p->n_keys_allocated = 1;
        return p;
}

CsvParser *csv_parser_free(CsvParser *p) {
        if (!p)
                return NULL;
        buffer_done(&p->field);
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

static int finish_field(CsvParser *p, LoadError *err) {
        const char *v = buffer_begin(&p->field);
        size_t n = buffer_size(&p->field), ok;
        Buffer *out;
        int r;

        ok = utf8_valid_prefix(v, n);
        if (ok < n) {
                /* Point at the bad byte when the field has no line break before it. */
                bool same_line = !memchr(v, '\n', ok);
                return load_error_set(err, p->field_line,
                                      same_line ? p->field_column + ok + p->field_quoted : p->field_column,
                                      "invalid UTF-8 in field");
        }

        if (!p->have_header) {
                r = header_add(p, v, n);
                if (r < 0)
                        return r;
                p->n_fields++;
                buffer_clear(&p->field);
                return 0;
        }

        if (p->n_fields >= p->n_keys)
                return load_error_set(err, p->field_line, p->field_column,
                                      "record has more fields than the header (%zu)", p->n_keys);

        out = dataset_row_buffer(p->dataset);
        if (p->n_fields == 0) {
                p->row_start = out->tail;
                r = buffer_append(out, "{", 1);
        } else
                r = buffer_append(out, ",", 1);
        if (r < 0)
                return r;
        r = buffer_append(out, p->keys.data + p->key_offsets[p->n_fields],
                          p->key_offsets[p->n_fields + 1] - p->key_offsets[p->n_fields]);
        if (r < 0)
                return r;
        r = append_value(p, out, v, n);
        if (r < 0)
                return r;
        p->n_fields++;
        buffer_clear(&p->field);
        return 0;
}

static int header_check(CsvParser *p, LoadError *err) {
        /* Duplicate names would make two values fight for one key. Headers are short; quadratic is
         * fine here. */
        for (size_t i = 0; i < p->n_keys; i++)
                for (size_t j = i + 1; j < p->n_keys; j++) {
                        size_t li = p->key_offsets[i + 1] - p->key_offsets[i];
                        size_t lj = p->key_offsets[j + 1] - p->key_offsets[j];
                        if (li == lj && memcmp(p->keys.data + p->key_offsets[i],
                                               p->keys.data + p->key_offsets[j], li) == 0)
                                return load_error_set(err, p->field_line, 1,
                                                      "duplicate field name %.*s in header", (int) li - 1,
                                                      p->keys.data + p->key_offsets[j]);
                }
        return 0;
}

static int end_record(CsvParser *p, LoadError *err) {
        Buffer *out;
        int r;

        /* A blank line is no record. */
        if (p->n_fields == 0 && buffer_size(&p->field) == 0 && !p->field_quoted)
                return 0;

        r = finish_field(p, err);
        if (r < 0)
                return r;

        if (!p->have_header) {
                r = header_check(p, err);
                if (r < 0)
                        return r;
                p->have_header = true;
        } else {
                out = dataset_row_buffer(p->dataset);
                r = buffer_append(out, "}", 1);
                if (r < 0)
                        return r;
                r = dataset_row_commit(p->dataset, p->row_start);
                if (r < 0)
                        return r;
        }
        p->n_fields = 0;
        return 0;
}

static void field_begin(CsvParser *p) {
        p->field_line = p->line;
        p->field_column = p->column;
        p->field_quoted = false;
        buffer_clear(&p->field);
}

static int feed(CsvParser *p, const char *s, const char *end, LoadError *err) {
        const char *q;
        int r;

        while (s < end) {
                char c = *s;

                switch (p->state) {

                case CSV_AFTER_CR:
                        p->state = CSV_FIELD_START;
                        if (c == '\n') {
                                s++;
                                p->line++;
                                p->column = 1;
                        }
                        break;

                case CSV_FIELD_START:
                        field_begin(p);
                        if (c == '"') {
                                p->field_quoted = true;
                                p->state = CSV_QUOTED;
                                s++;
                                p->column++;
                        } else
                                p->state = CSV_UNQUOTED;
                        break;

                case CSV_UNQUOTED:
                        for (q = s; q < end && *q != ',' && *q != '\n' && *q != '\r' && *q != '"'; q++)
                                ;
                        r = buffer_append(&p->field, s, (size_t) (q - s));
                        if (r < 0)
                                return r;
                        p->column += (unsigned long) (q - s);
                        s = q;
                        if (s == end)
                                break;
                        c = *s;
                        if (c == '"')
                                return load_error_set(err, p->line, p->column,
                                                      "'\"' inside an unquoted field (quote the whole field)");
                        r = c == ',' ? finish_field(p, err) : end_record(p, err);
                        if (r < 0)
                                return r;
                        s++;
                        if (c == '\n') {
                                p->line++;
                                p->column = 1;
                                p->state = CSV_FIELD_START;
                        } else {
                                p->column++;
                                p->state = c == '\r' ? CSV_AFTER_CR : CSV_FIELD_START;
                        }
                        break;

                case CSV_QUOTED:
                        for (q = s; q < end && *q != '"' && *q != '\n'; q++)
                                ;
                        r = buffer_append(&p->field, s, (size_t) (q - s) + (q < end && *q == '\n'));
                        if (r < 0)
                                return r;
                        p->column += (unsigned long) (q - s);
                        s = q;
                        if (s == end)
                                break;
                        if (*s == '\n') {
                                p->line++;
                                p->column = 1;
                        } else {
                                p->column++;
                                p->state = CSV_QUOTED_QUOTE;
                        }
                        s++;
                        break;

                case CSV_QUOTED_QUOTE:
                        if (c == '"') {
                                r = buffer_append(&p->field, "\"", 1);
                                if (r < 0)
                                        return r;
                                p->state = CSV_QUOTED;
                                s++;
                                p->column++;
                                break;
                        }
                        if (c != ',' && c != '\r' && c != '\n')
                                return load_error_set(err, p->line, p->column,
                                                      "unexpected character after the closing quote of a field");
                        p->state = CSV_UNQUOTED; /* ends the field or record right away */
                        break;
                }
        }
        return 0;
}

/* Drops a half-written row, so that the dataset holds only whole rows after an error. */
static void rollback(CsvParser *p) {
        if (p->have_header && p->n_fields > 0)
                p->dataset->text.tail = p->row_start;
}

int csv_parser_feed(CsvParser *p, const char *data, size_t n, LoadError *err) {
        static const unsigned char bom[3] = { 0xef, 0xbb, 0xbf };
        int r;

        /* Skip a UTF-8 byte order mark at the very start (it may arrive split across chunks). */
        while (p->bom_seen < 3 && n > 0) {
                if ((unsigned char) *data != bom[p->bom_seen]) {
                        if (p->bom_seen > 0)
                                return load_error_set(err, 1, 1, "invalid UTF-8 (broken byte order mark)");
                        p->bom_seen = 3;
                        break;
                }
                p->bom_seen++;
                data++, n--;
        }

        r = feed(p, data, data + n, err);
        if (r < 0)
                rollback(p);
        return r;
}

static int finish(CsvParser *p, LoadError *err) {
        switch (p->state) {
        case CSV_QUOTED:
                return load_error_set(err, p->field_line, p->field_column,
                                      "unterminated quoted field at end of file");
        case CSV_QUOTED_QUOTE:
        case CSV_UNQUOTED:
                p->state = CSV_FIELD_START;
                return end_record(p, err);
        case CSV_FIELD_START:
                if (p->n_fields == 0)
                        return 0;
                /* "a,b," then end of file: the last field is empty. */
                field_begin(p);
                return end_record(p, err);
        case CSV_AFTER_CR:
                p->state = CSV_FIELD_START;
                return 0;
        }
        return 0;
}

int csv_parser_finish(CsvParser *p, LoadError *err) {
        int r;

        r = finish(p, err);
        if (r < 0)
                rollback(p);
        return r;
}
