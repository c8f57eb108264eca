/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client-util.h"
#include "table.h"

#define ANSI_UNDERLINE "\x1b[0;4m"
#define ANSI_NORMAL "\x1b[0m"

typedef struct TableCell {
        char *text;
        const char *color;
} TableCell;

struct Table {
        size_t n_columns;
        char **headers;
        bool *align_right;
        TableCell *cells;
        size_t n_cells, allocated;
};

Table *table_new(size_t n_columns, const char *const *headers) {
        _cleanup_(table_freep) Table *t = NULL;

        if (n_columns == 0)
                return NULL;
        t = calloc(1, sizeof(Table));
        if (!t)
                return NULL;
        t->n_columns = n_columns;
        t->headers = calloc(n_columns, sizeof(char *));
        t->align_right = calloc(n_columns, sizeof(bool));
        if (!t->headers || !t->align_right)
                return NULL;
        for (size_t i = 0; i < n_columns; i++) {
                t->headers[i] = strdup(headers[i] ?: "");
                if (!t->headers[i])
                        return NULL;
        }
        return TAKE_PTR(t);
}

Table *table_free(Table *t) {
        if (!t)
                return NULL;
        if (t->headers)
                for (size_t i = 0; i < t->n_columns; i++)
                        free(t->headers[i]);
        free(t->headers);
        free(t->align_right);
        for (size_t i = 0; i < t->n_cells; i++)
                free(t->cells[i].text);
        free(t->cells);
        free(t);
        return NULL;
}

void table_set_align_right(Table *t, size_t column, bool right) {
        if (column < t->n_columns)
                t->align_right[column] = right;
}

int table_add_cell(Table *t, const char *text, const char *color) {
        char *s;

        if (t->n_cells >= t->allocated) {
                size_t n = MAX(t->allocated * 2, (size_t) 16);
                TableCell *c = realloc(t->cells, n * sizeof(TableCell));

                if (!c)
                        return -ENOMEM;
                t->cells = c;
                t->allocated = n;
        }
        /* Control characters would break the layout (and could drive the terminal): shown escaped. */
        s = text_escape(isempty(text) ? "-" : text);
        if (!s)
                return -ENOMEM;
        t->cells[t->n_cells++] = (TableCell) { .text = s, .color = color };
        return 0;
}

int table_add_cellf(Table *t, const char *color, const char *fmt, ...) {
        _cleanup_free_ char *s = NULL;
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = vasprintf(&s, fmt, ap);
        va_end(ap);
        if (r < 0)
                return -ENOMEM;
        return table_add_cell(t, s, color);
}

size_t table_get_rows(const Table *t) {
        return (t->n_cells + t->n_columns - 1) / t->n_columns;
}

/* Appends at most width cells of s, replacing the tail with "…" when it had to cut. Returns the
 * cells written (a cut before a wide character may leave one less than width). */
int text_append_ellipsized(Buffer *b, const char *s, size_t width) {
        size_t n, w = text_width(s);

        if (w <= width)
                return buffer_append_str(b, s) < 0 ? -ENOMEM : (int) w;
        if (width == 0)
                return 0;
        n = text_prefix_for_width(s, width - 1, &w);
        if (buffer_append(b, s, n) < 0 || buffer_append_str(b, "…") < 0)
                return -ENOMEM;
        return (int) w + 1;
}

static int append_padding(Buffer *b, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (buffer_append(b, " ", 1) < 0)
                        return -ENOMEM;
        return 0;
}

static int format_row(const Table *t, const TableFormat *fmt, const size_t *widths, const char *const *texts,
                      const char *const *colors, bool header, Buffer *b) {
        size_t last = t->n_columns - 1;
        int r;

        if (header && fmt->colors) {
                r = buffer_append_str(b, ANSI_UNDERLINE);
                if (r < 0)
                        return r;
        }
        for (size_t c = 0; c < t->n_columns; c++) {
                const char *s = texts[c];
                size_t w = MIN(text_width(s), widths[c]);
                bool colored = !header && fmt->colors && colors && colors[c];

                if (c > 0 && (r = buffer_append(b, " ", 1)) < 0)
                        return r;
                if (t->align_right[c] && (r = append_padding(b, widths[c] - w)) < 0)
                        return r;
                if (colored && (r = buffer_append_str(b, colors[c])) < 0)
                        return r;
                if ((r = text_append_ellipsized(b, s, widths[c])) < 0)
                        return r;
                w = (size_t) r;
                if (colored && (r = buffer_append_str(b, ANSI_NORMAL)) < 0)
                        return r;
                /* No trailing blanks after the last column, except under the header's underline. */
                if (!t->align_right[c] && (c < last || (header && fmt->colors)) &&
                    (r = append_padding(b, widths[c] - w)) < 0)
                        return r;
        }
        if (header && fmt->colors && (r = buffer_append_str(b, ANSI_NORMAL)) < 0)
                return r;
        return buffer_append(b, "\n", 1);
}

int table_format(const Table *t, const TableFormat *fmt, Buffer *b) {
        size_t rows = table_get_rows(t), total = 0;
        _cleanup_free_ size_t *widths = NULL;
        int r;

        widths = calloc(t->n_columns, sizeof(size_t));
        if (!widths)
                return -ENOMEM;
        for (size_t c = 0; c < t->n_columns; c++) {
                if (fmt->header)
                        widths[c] = text_width(t->headers[c]);
                for (size_t i = c; i < t->n_cells; i += t->n_columns)
                        widths[c] = MAX(widths[c], text_width(t->cells[i].text));
                total += widths[c] + (c > 0);
        }

        /* Too wide for the terminal: take the excess from the widest column, as long as it keeps a
         * few characters. */
        if (fmt->max_width > 0 && total > fmt->max_width) {
                size_t widest = 0;

                for (size_t c = 1; c < t->n_columns; c++)
                        if (widths[c] > widths[widest])
                                widest = c;
                widths[widest] = MAX(widths[widest] - MIN(total - fmt->max_width, widths[widest]), (size_t) 6);
        }

        if (fmt->header) {
                r = format_row(t, fmt, widths, (const char *const *) t->headers, NULL, true, b);
                if (r < 0)
                        return r;
        }
        for (size_t row = 0; row < rows; row++) {
                const char *texts[t->n_columns], *colors[t->n_columns];

                for (size_t c = 0; c < t->n_columns; c++) {
                        size_t i = row * t->n_columns + c;

                        texts[c] = i < t->n_cells ? t->cells[i].text : "";
                        colors[c] = i < t->n_cells ? t->cells[i].color : NULL;
                }
                r = format_row(t, fmt, widths, texts, colors, false, b);
                if (r < 0)
                        return r;
        }
        return 0;
}
