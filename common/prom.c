/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "prom.h"

static const char *const prom_type_table[] = {
        [PROM_COUNTER] = "counter",
        [PROM_GAUGE] = "gauge",
        [PROM_HISTOGRAM] = "histogram",
        [PROM_UNTYPED] = "untyped",
};

bool prom_name_is_valid(const char *name, bool label) {
        if (!name || !name[0])
                return false;
        for (const char *p = name; *p; p++) {
                char c = *p;
                bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (!label && c == ':') ||
                          (p > name && c >= '0' && c <= '9');
                if (!ok)
                        return false;
        }
        return true;
}

/* Escapes backslash and line feed, and the double quote when quote is set (label values). */
static int append_escaped(Buffer *b, const char *s, bool quote) {
        const char *run = s;
        int r;

        for (const char *p = s; *p; p++) {
                const char *esc = NULL;

                if (*p == '\\')
                        esc = "\\\\";
                else if (*p == '\n')
                        esc = "\\n";
                else if (quote && *p == '"')
                        esc = "\\\"";
                if (!esc)
                        continue;
                r = buffer_append(b, run, (size_t) (p - run));
                if (r < 0)
                        return r;
                r = buffer_append(b, esc, 2);
                if (r < 0)
                        return r;
                run = p + 1;
        }
        return buffer_append_str(b, run);
}

int prom_append_label_value(Buffer *b, const char *value) {
        return append_escaped(b, value ?: "", true);
}

int prom_family(Buffer *b, const char *name, PromType type, const char *help) {
        int r;

        if (!prom_name_is_valid(name, false) || type < 0 || type > PROM_UNTYPED)
                return -EINVAL;
        r = buffer_printf(b, "# HELP %s ", name);
        if (r >= 0)
                r = append_escaped(b, help ?: "", false);
        if (r >= 0)
                r = buffer_printf(b, "\n# TYPE %s %s\n", name, prom_type_table[type]);
        return r < 0 ? r : 0;
}

static int append_series(Buffer *b, const char *name, const char *suffix, const PromLabel *labels, size_t n_labels,
                         const char *le) {
        int r;

        r = buffer_printf(b, "%s%s", name, suffix ?: "");
        if (r < 0)
                return r;
        if (n_labels == 0 && !le)
                return buffer_append(b, " ", 1);
        r = buffer_append(b, "{", 1);
        for (size_t i = 0; r >= 0 && i < n_labels; i++) {
                if (!prom_name_is_valid(labels[i].name, true))
                        return -EINVAL;
                r = buffer_printf(b, "%s%s=\"", i > 0 ? "," : "", labels[i].name);
                if (r >= 0)
                        r = prom_append_label_value(b, labels[i].value);
                if (r >= 0)
                        r = buffer_append(b, "\"", 1);
        }
        if (r >= 0 && le)
                r = buffer_printf(b, "%sle=\"%s\"", n_labels > 0 ? "," : "", le);
        if (r >= 0)
                r = buffer_append(b, "} ", 2);
        return r;
}

static int append_double(Buffer *b, double v) {
        if (isnan(v))
                return buffer_append_str(b, "NaN\n");
        if (isinf(v))
                return buffer_append_str(b, v > 0 ? "+Inf\n" : "-Inf\n");
        return buffer_printf(b, "%.17g\n", v);
}

int prom_sample_u64(Buffer *b, const char *name, const PromLabel *labels, size_t n_labels, uint64_t value) {
        int r;

        r = append_series(b, name, NULL, labels, n_labels, NULL);
        if (r >= 0)
                r = buffer_printf(b, "%" PRIu64 "\n", value);
        return r < 0 ? r : 0;
}

int prom_sample_double(Buffer *b, const char *name, const PromLabel *labels, size_t n_labels, double value) {
        int r;

        r = append_series(b, name, NULL, labels, n_labels, NULL);
        if (r >= 0)
                r = append_double(b, value);
        return r < 0 ? r : 0;
}

int prom_histogram(Buffer *b, const char *name, const PromLabel *labels, size_t n_labels, const double *bounds,
                   const uint64_t *counts, size_t n_bounds, uint64_t count, double sum) {
        uint64_t cumulative = 0;
        char le[32];
        int r = 0;

        for (size_t i = 0; r >= 0 && i < n_bounds; i++) {
                cumulative += counts[i];
                (void) snprintf(le, sizeof(le), "%g", bounds[i]);
                r = append_series(b, name, "_bucket", labels, n_labels, le);
                if (r >= 0)
                        r = buffer_printf(b, "%" PRIu64 "\n", cumulative);
        }
        /* The +Inf bucket is the count; a count smaller than the buckets' sum would be a bug. */
        if (r >= 0)
                r = append_series(b, name, "_bucket", labels, n_labels, "+Inf");
        if (r >= 0)
                r = buffer_printf(b, "%" PRIu64 "\n", count < cumulative ? cumulative : count);
        if (r >= 0)
                r = append_series(b, name, "_sum", labels, n_labels, NULL);
        if (r >= 0)
                r = append_double(b, sum);
        if (r >= 0)
                r = append_series(b, name, "_count", labels, n_labels, NULL);
        if (r >= 0)
                r = buffer_printf(b, "%" PRIu64 "\n", count < cumulative ? cumulative : count);
        return r < 0 ? r : 0;
}
