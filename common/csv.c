/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "csv.h"
#include "macro.h"

size_t csv_scan_record(CsvScanner *s, const char *p, size_t n) {
        size_t i = s->scan;

        while (i < n) {
                if (!s->in_quotes) {
                        /* Outside quotes only '"' and '\n' matter: find the first of either. */
                        const char *q = memchr(p + i, '"', n - i), *nl = memchr(p + i, '\n', n - i);

                        if (nl && (!q || nl < q)) {
                                csv_scanner_reset(s);
                                return (size_t) (nl - p);
                        }
                        if (!q)
                                break;
                        i = (size_t) (q - p) + 1;
                        s->in_quotes = true;
                } else {
                        /* Inside: the next '"' closes (or starts an escaped "", which reopens). */
                        const char *q = memchr(p + i, '"', n - i);

                        if (!q)
                                break;
                        i = (size_t) (q - p) + 1;
                        s->in_quotes = false;
                }
        }
        s->scan = n;
        return n;
}

void csv_record_done(CsvRecord *r) {
        free(r->fields);
        *r = (CsvRecord) {};
}

static int record_add(CsvRecord *r, const char *value, size_t len, size_t at, bool quoted) {
        if (r->n_fields >= r->n_allocated) {
                size_t k = MAX(r->n_allocated * 2, (size_t) 16);
                CsvField *f = realloc(r->fields, k * sizeof(CsvField));

                if (!f)
                        return -ENOMEM;
                r->fields = f;
                r->n_allocated = k;
        }
        r->fields[r->n_fields++] = (CsvField) { .value = value, .len = len, .at = at, .quoted = quoted };
        return 0;
}

int csv_split_record(CsvRecord *r, char *rec, size_t len, const char **ret_error, size_t *ret_error_at) {
        size_t i = 0;
        int k;

        r->n_fields = 0;
        if (len > 0 && rec[len - 1] == '\r')
                len--;
        if (len == 0)
                return 0;

        for (;;) {
                size_t start = i;
                char *w = rec + i;

                if (i < len && rec[i] == '"') {
                        /* Quoted: copied down in place, "" is a quote, the closing quote ends it. */
                        i++;
                        for (;;) {
                                if (i >= len) {
                                        *ret_error = "unterminated quoted field";
                                        *ret_error_at = start;
                                        return -EBADMSG;
                                }
                                if (rec[i] == '"') {
                                        if (i + 1 < len && rec[i + 1] == '"') {
                                                *w++ = '"';
                                                i += 2;
                                                continue;
                                        }
                                        i++;
                                        break;
                                }
                                *w++ = rec[i++];
                        }
                        if (i < len && rec[i] != ',') {
                                *ret_error = "unexpected character after the closing quote of a field";
                                *ret_error_at = i;
                                return -EBADMSG;
                        }
                        k = record_add(r, rec + start, (size_t) (w - (rec + start)), start, true);
                } else {
                        const char *sep = memchr(rec + i, ',', len - i), *e = sep ?: rec + len;
                        const char *q = memchr(rec + i, '"', (size_t) (e - (rec + i)));

                        if (q) {
                                *ret_error = "'\"' inside an unquoted field (quote the whole field)";
                                *ret_error_at = (size_t) (q - rec);
                                return -EBADMSG;
                        }
                        k = record_add(r, rec + start, (size_t) (e - (rec + start)), start, false);
                        i = (size_t) (e - rec);
                }
                if (k < 0)
                        return k;
                if (i >= len)
                        return (int) MIN(r->n_fields, (size_t) INT_MAX);
                i++; /* the ',' */
        }
}

int csv_bom_skip(unsigned *state, const char *data, size_t n) {
        static const unsigned char bom[3] = { 0xef, 0xbb, 0xbf };
        size_t skip = 0;

        while (*state < 3 && skip < n) {
                if ((unsigned char) data[skip] != bom[*state]) {
                        if (*state > 0)
                                return -EILSEQ;
                        *state = 3;
                        break;
                }
                (*state)++;
                skip++;
        }
        return (int) skip;
}

ssize_t csv_header_find_duplicate(const CsvField *names, size_t n) {
        /* Headers are short; quadratic is fine here. */
        for (size_t j = 1; j < n; j++)
                for (size_t i = 0; i < j; i++)
                        if (names[i].len == names[j].len && memcmp(names[i].value, names[j].value, names[j].len) == 0)
                                return (ssize_t) j;
        return -1;
}
