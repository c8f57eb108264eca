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

static const char *const format_names[_OUTPUT_FORMAT_MAX] = {
        [OUTPUT_JSON] = "json",
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
        return json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
}

static int record_values(RecordFormatter *f, struct json_object *rec, char ***ret, size_t *ret_n) {
        struct json_object *data = NULL, *v;
        size_t n_fields = f->columns ? json_object_array_length(f->columns) : 1, n = 3 + n_fields;
        char **vals;
        uint64_t u;

        (void) json_object_object_get_ex(rec, "data", &data);
        vals = calloc(n, sizeof(char *));
        if (!vals)
                return -ENOMEM;
        if (json_get_uint64(rec, "offset", &u) && asprintf(&vals[0], "%" PRIu64, u) < 0)
                vals[0] = NULL;
        vals[1] = strdup(json_get_string(rec, "source") ?: "");
        if (json_get_uint64(rec, "ts_us", &u) && asprintf(&vals[2], "%" PRIu64, u) < 0)
                vals[2] = NULL;
        for (size_t i = 0; i < n_fields; i++) {
                if (f->columns) {
                        const char *key = json_object_get_string(json_object_array_get_idx(f->columns, i));
                        v = json_object_is_type(data, json_type_object) && json_object_object_get_ex(data, key, &v) ? v : NULL;
                } else
                        v = data;
                vals[3 + i] = strdup(value_text(v));
        }
        for (size_t i = 0; i < n; i++)
                if (!vals[i] && !(vals[i] = strdup(""))) {
                        for (size_t j = 0; j < n; j++)
                                free(vals[j]);
                        free(vals);
                        return -ENOMEM;
                }
        *ret = vals;
        *ret_n = n;
        return 0;
}

static int formatter_setup(RecordFormatter *f, struct json_object *rec) {
        struct json_object *data = NULL;

        (void) json_object_object_get_ex(rec, "data", &data);
        if (json_object_is_type(data, json_type_object)) {
                f->columns = json_object_new_array();
                if (!f->columns)
                        return -ENOMEM;
                json_object_object_foreach(data, key, val) {
                        (void) val;
                        if (json_object_array_add(f->columns, json_object_new_string(key)) < 0)
                                return -ENOMEM;
                }
        }
        return 0;
}

static const char *column_name(RecordFormatter *f, size_t i) {
        static const char *const fixed[] = { "offset", "source", "ts_us" };

        if (i < 3)
                return fixed[i];
        if (!f->columns)
                return "data";
        return json_object_get_string(json_object_array_get_idx(f->columns, i - 3));
}

static int append_cell(Buffer *out, const char *s, size_t width, bool last) {
        size_t w = text_width(s);
        int r;

        if (w > width) {
                /* Cut to the column (and mark it): the stream cannot widen its columns later. */
                size_t keep = 0, cells = 0;
                while (s[keep] && cells + 1 < width) {
                        keep++;
                        while ((s[keep] & 0xC0) == 0x80)
                                keep++;
                        cells++;
                }
                r = buffer_append(out, s, keep);
                if (r >= 0)
                        r = buffer_append_str(out, "…");
                return r;
        }
        r = buffer_append_str(out, s);
        if (r < 0 || last)
                return r;
        for (; w < width; w++)
                if (buffer_append(out, " ", 1) < 0)
                        return -ENOMEM;
        return 0;
}

int record_formatter_append(RecordFormatter *f, const char *line, size_t len, Buffer *out) {
        _cleanup_json_ struct json_object *rec = NULL;
        char **vals = NULL;
        size_t n = 0;
        int r;

        if (f->format == OUTPUT_JSON) {
                r = buffer_append(out, line, len);
                return r < 0 ? r : buffer_append(out, "\n", 1);
        }

        r = json_parse_n(line, len, &rec, NULL);
        if (r < 0)
                return r;
        if (!f->header_done) {
                r = formatter_setup(f, rec);
                if (r < 0)
                        return r;
        }
        r = record_values(f, rec, &vals, &n);
        if (r < 0)
                return r;

        if (!f->header_done) {
                f->header_done = true;
                if (f->format == OUTPUT_TABLE) {
                        f->widths = calloc(n, sizeof(size_t));
                        if (!f->widths) {
                                r = -ENOMEM;
                                goto finish;
                        }
                        f->n_widths = n;
                        for (size_t i = 0; i < n; i++)
                                f->widths[i] = MIN(MAX(text_width(column_name(f, i)), text_width(vals[i])), TABLE_CELL_MAX);
                        /* Offsets grow: leave room for a few more digits. */
                        f->widths[0] = MAX(f->widths[0], (size_t) 8);
                }
                for (size_t i = 0; i < n && r >= 0; i++) {
                        if (i > 0)
                                r = buffer_append(out, f->format == OUTPUT_CSV ? "," : " ", 1);
                        if (r < 0)
                                break;
                        if (f->format == OUTPUT_CSV)
                                r = csv_field_append(out, column_name(f, i));
                        else
                                r = append_cell(out, column_name(f, i), f->widths[i], i == n - 1);
                }
                if (r >= 0)
                        r = buffer_append(out, "\n", 1);
                if (r < 0)
                        goto finish;
        }

        for (size_t i = 0; i < n && r >= 0; i++) {
                if (i > 0)
                        r = buffer_append(out, f->format == OUTPUT_CSV ? "," : " ", 1);
                if (r < 0)
                        break;
                if (f->format == OUTPUT_CSV)
                        r = csv_field_append(out, vals[i]);
                else
                        r = append_cell(out, vals[i], i < f->n_widths ? f->widths[i] : 0, i == n - 1);
        }
        if (r >= 0)
                r = buffer_append(out, "\n", 1);
finish:
        for (size_t i = 0; i < n; i++)
                free(vals[i]);
        free(vals);
        return r;
}

int reply_format_append(OutputFormat format, const char *line, size_t len, struct json_object *msg, Buffer *out) {
        static const char *const keys[] = { "name", "type", "state", "address", "records" };
        struct json_object *sources;
        int r;

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
