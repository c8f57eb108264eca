/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client-format.h"
#include "client-util.h"
#include "json-util.h"
#include "table.h"

#define TABLE_CELL_MAX 40u
#define N_FIXED_COLUMNS 3u
#define JSON_PRETTY_FLAGS (JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE)

static const char *const format_names[_OUTPUT_FORMAT_MAX] = {
        [OUTPUT_JSON] = "json",
        [OUTPUT_JSON_PRETTY] = "json-pretty",
        [OUTPUT_CSV] = "csv",
        [OUTPUT_TABLE] = "table",
};

OutputFormat output_format_from_string(const char *s) {
        for (size_t i = 0; i < _OUTPUT_FORMAT_MAX; i++)
                if (streq_ptr(s, format_names[i]))
                        return (OutputFormat) i;
        return _OUTPUT_FORMAT_INVALID;
}

void record_formatter_init(RecordFormatter *f, OutputFormat format) {
        *f = (RecordFormatter) { .format = format };
}

void record_formatter_done(RecordFormatter *f) {
        json_object_putp(&f->columns);
        free(f->widths);
        *f = (RecordFormatter) { .format = f->format };
}

/* The text of one value in a cell: strings as they are, everything else as compact JSON. */
static const char *value_text(struct json_object *v) {
        if (!v)
                return "";
        if (json_object_is_type(v, json_type_string))
                return json_object_get_string(v);
        return json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
}

static size_t n_columns(const RecordFormatter *f) {
        return N_FIXED_COLUMNS + (f->columns ? json_object_array_length(f->columns) : 1);
}

static const char *column_name(const RecordFormatter *f, size_t i) {
        /* The table shows the time for people; CSV keeps the raw microseconds for programs. */
        const char *const fixed[N_FIXED_COLUMNS] = { "offset", "source", f->format == OUTPUT_TABLE ? "time" : "ts_us" };

        if (i < N_FIXED_COLUMNS)
                return fixed[i];
        if (!f->columns)
                return "data";
        return json_object_get_string(json_object_array_get_idx(f->columns, i - N_FIXED_COLUMNS));
}

static bool columns_has(const RecordFormatter *f, const char *key) {
        for (size_t i = 0; i < json_object_array_length(f->columns); i++)
                if (streq(json_object_get_string(json_object_array_get_idx(f->columns, i)), key))
                        return true;
        return false;
}

/* The data fields of a record become columns: those of the first record, and in a table the new
 * ones of any later record too (CSV cannot change its header line once written). Returns 1 when
 * columns were added. */
static int formatter_learn_columns(RecordFormatter *f, struct json_object *data) {
        int added = 0;

        if (!json_object_is_type(data, json_type_object))
                return 0;
        if (!f->columns) {
                if (f->header_done)
                        return 0; /* the first record was not an object: one "data" column */
                f->columns = json_object_new_array();
                if (!f->columns)
                        return -ENOMEM;
        } else if (f->format != OUTPUT_TABLE)
                return 0;
        json_object_object_foreach(data, key, val) {
                (void) val;
                if (columns_has(f, key))
                        continue;
                if (json_object_array_add(f->columns, json_object_new_string(key)) < 0)
                        return -ENOMEM;
                added = 1;
        }
        return added;
}

static void free_values(char **vals, size_t n) {
        if (!vals)
                return;
        for (size_t i = 0; i < n; i++)
                free(vals[i]);
        free(vals);
}

/* The text of every column for one record; in a table escaped (one row stays one line). */
static int record_values(RecordFormatter *f, struct json_object *rec, char ***ret, size_t *ret_n) {
        struct json_object *data = NULL, *v;
        size_t n = n_columns(f);
        bool table = f->format == OUTPUT_TABLE;
        char **vals, buf[64];
        uint64_t u;

        (void) json_object_object_get_ex(rec, "data", &data);
        vals = calloc(n, sizeof(char *));
        if (!vals)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                const char *text = "";

                if (i == 0) {
                        if (json_get_uint64(rec, "offset", &u))
                                snprintf(buf, sizeof(buf), "%" PRIu64, u), text = buf;
                } else if (i == 2) {
                        if (json_get_uint64(rec, "ts_us", &u)) {
                                if (table)
                                        text = format_timestamp_local(buf, sizeof(buf), u);
                                else
                                        snprintf(buf, sizeof(buf), "%" PRIu64, u), text = buf;
                        }
                } else if (i == 1)
                        text = json_get_string(rec, "source") ?: "";
                else {
                        if (f->columns)
                                v = json_object_is_type(data, json_type_object) &&
                                                    json_object_object_get_ex(data, column_name(f, i), &v) ? v : NULL;
                        else
                                v = data;
                        text = value_text(v);
                }
                vals[i] = table ? text_escape(text) : strdup(text);
                if (!vals[i]) {
                        free_values(vals, n);
                        return -ENOMEM;
                }
        }
        *ret = vals;
        *ret_n = n;
        return 0;
}

static int append_cell(Buffer *out, const char *s, size_t width, bool last) {
        int r;

        if (last)
                return buffer_append_str(out, s); /* the last column is never cut nor padded */
        r = text_append_ellipsized(out, s, width);
        for (size_t w = r < 0 ? width : (size_t) r; w < width; w++)
                if (buffer_append(out, " ", 1) < 0)
                        return -ENOMEM;
        return r < 0 ? r : 0;
}

static int append_row(RecordFormatter *f, Buffer *out, char *const *vals, bool header) {
        size_t n = n_columns(f);
        int r = 0;

        for (size_t i = 0; i < n && r >= 0; i++) {
                const char *s = header ? column_name(f, i) : vals[i];

                if (i > 0)
                        r = buffer_append(out, f->format == OUTPUT_CSV ? "," : " ", 1);
                if (r < 0)
                        break;
                if (f->format == OUTPUT_CSV)
                        r = csv_field_append(out, s);
                else
                        r = append_cell(out, s, f->widths[i], i == n - 1);
        }
        return r < 0 ? r : buffer_append(out, "\n", 1);
}

/* Widens the table's columns to this row (up to TABLE_CELL_MAX; the last column is free). Returns
 * 1 when a column got wider, so that the header is printed again above the new layout. */
static int formatter_fit(RecordFormatter *f, char *const *vals) {
        size_t n = n_columns(f);
        bool changed = false;

        if (n > f->n_widths) {
                bool had = f->n_widths > 0;
                size_t *w = realloc(f->widths, n * sizeof(size_t));

                if (!w)
                        return -ENOMEM;
                for (size_t i = f->n_widths; i < n; i++)
                        w[i] = MIN(text_width(column_name(f, i)), TABLE_CELL_MAX);
                f->widths = w;
                f->n_widths = n;
                changed = had; /* new fields: a new header */
                /* Offsets grow: leave room for a few more digits. */
                f->widths[0] = MAX(f->widths[0], (size_t) 8);
        }
        for (size_t i = 0; i < n; i++) {
                size_t w = MIN(text_width(vals[i]), TABLE_CELL_MAX);

                if (w > f->widths[i]) {
                        f->widths[i] = w;
                        /* The last column is not padded: its width moves nothing. */
                        changed = changed || (i + 1 < n && f->header_done);
                }
        }
        return changed;
}

int record_formatter_append(RecordFormatter *f, const char *line, size_t len, Buffer *out) {
        _cleanup_json_ struct json_object *rec = NULL;
        struct json_object *data = NULL;
        char **vals = NULL;
        size_t n = 0;
        bool header;
        int r;

        if (f->format == OUTPUT_JSON) {
                r = buffer_append(out, line, len);
                return r < 0 ? r : buffer_append(out, "\n", 1);
        }

        r = json_parse_n(line, len, &rec, NULL);
        if (r < 0)
                return r;
        if (f->format == OUTPUT_JSON_PRETTY)
                return buffer_printf(out, "%s\n", json_object_to_json_string_ext(rec, JSON_PRETTY_FLAGS));

        (void) json_object_object_get_ex(rec, "data", &data);
        r = formatter_learn_columns(f, data);
        if (r < 0)
                return r;
        header = !f->header_done || r > 0;
        r = record_values(f, rec, &vals, &n);
        if (r < 0)
                return r;

        if (f->format == OUTPUT_TABLE) {
                r = formatter_fit(f, vals);
                if (r < 0)
                        goto finish;
                header = header || r > 0;
        }
        if (header && (f->format == OUTPUT_TABLE || !f->header_done)) {
                r = append_row(f, out, NULL, true);
                if (r < 0)
                        goto finish;
        }
        f->header_done = true;
        r = append_row(f, out, vals, false);
finish:
        free_values(vals, n);
        return r;
}

int reply_format_append(OutputFormat format, const char *line, size_t len, struct json_object *msg, Buffer *out) {
        static const char *const keys[] = { "name", "type", "state", "address", "records" };
        struct json_object *sources;
        int r;

        if (format == OUTPUT_JSON_PRETTY)
                return buffer_printf(out, "%s\n", json_object_to_json_string_ext(msg, JSON_PRETTY_FLAGS));
        if (format == OUTPUT_JSON || !streq_ptr(json_get_string(msg, "op"), "sources") ||
            !json_object_object_get_ex(msg, "sources", &sources) || !json_object_is_type(sources, json_type_array)) {
                r = buffer_append(out, line, len);
                return r < 0 ? r : buffer_append(out, "\n", 1);
        }

        if (format == OUTPUT_CSV) {
                r = buffer_append_str(out, "name,type,state,address,records\n");
                for (size_t i = 0; r >= 0 && i < json_object_array_length(sources); i++) {
                        struct json_object *s = json_object_array_get_idx(sources, i), *v;

                        for (size_t k = 0; r >= 0 && k < ELEMENTSOF(keys); k++) {
                                if (k > 0)
                                        r = buffer_append(out, ",", 1);
                                if (r >= 0)
                                        r = csv_field_append(out, json_object_object_get_ex(s, keys[k], &v) ? value_text(v) : "");
                        }
                        if (r >= 0)
                                r = buffer_append(out, "\n", 1);
                }
                return r;
        }

        _cleanup_(table_freep) Table *t = table_new(ELEMENTSOF(keys), (const char *const[]) { "NAME", "TYPE", "STATE", "ADDRESS", "RECORDS" });
        if (!t)
                return -ENOMEM;
        table_set_align_right(t, 4, true);
        for (size_t i = 0; i < json_object_array_length(sources); i++) {
                struct json_object *s = json_object_array_get_idx(sources, i), *v;

                for (size_t k = 0; k < ELEMENTSOF(keys); k++) {
                        r = table_add_cell(t, json_object_object_get_ex(s, keys[k], &v) ? value_text(v) : NULL, NULL);
                        if (r < 0)
                                return r;
                }
        }
        return table_format(t, &(TableFormat) { .header = true }, out);
}
