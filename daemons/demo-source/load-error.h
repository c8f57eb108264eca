/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "utf8.h"

/* Where and why a data file was refused: printed as "file:line:column: message". Lines and
 * columns count from 1; columns count bytes. */

#include <stdarg.h>
#include <stdio.h>

#include "macro.h"

typedef struct LoadError {
        unsigned long line;
        unsigned long column;
        char message[256];
} LoadError;

static inline int _printf_(4, 5) load_error_set(LoadError *e, unsigned long line, unsigned long column,
                                                const char *fmt, ...) {
        va_list ap;

        if (e) {
                e->line = line;
                e->column = column;
                va_start(ap, fmt);
                vsnprintf(e->message, sizeof(e->message), fmt, ap);
                va_end(ap);
        }
        return -EBADMSG;
}

