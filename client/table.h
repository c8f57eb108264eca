/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Aligned text tables in the style of systemctl/networkctl list output: one blank between
 * columns, no trailing blanks, an (optionally underlined) header line, numbers right-aligned,
 * colours that do not count towards the width. The layout is pure logic (tested by
 * tests/unit/test-client-table.c); the caller decides where the text goes. */

#include <stdbool.h>
#include <stddef.h>

#include "buffer.h"
#include "macro.h"

typedef struct Table Table;

/* headers: n_columns strings. */
Table *table_new(size_t n_columns, const char *const *headers);
Table *table_free(Table *t);
DEFINE_TRIVIAL_CLEANUP_FUNC(Table *, table_free);

void table_set_align_right(Table *t, size_t column, bool right);
/* Fills cells row by row; a NULL or empty text is shown as "-". color is an ANSI sequence such
 * as "\x1b[0;32m" (or NULL) used only when the table is formatted with colours. */
int table_add_cell(Table *t, const char *text, const char *color);
int table_add_cellf(Table *t, const char *color, const char *fmt, ...) _printf_(3, 4);

size_t table_get_rows(const Table *t); /* data rows, the header not counted */

typedef struct TableFormat {
        bool header;
        bool colors;
        size_t max_width; /* 0: unlimited; otherwise the widest column is ellipsized to fit */
} TableFormat;

/* Appends the table (each line ending in '\n') to b. */
int table_format(const Table *t, const TableFormat *fmt, Buffer *b);

/* Appends at most width cells of s (display width), cut with "…" when longer; returns the cells
 * written or -ENOMEM. Shared with the record table of dpipe-client. */
int text_append_ellipsized(Buffer *b, const char *s, size_t width);
