/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The Prometheus text exposition format, version 0.0.4: what dpiped's GET /metrics answers.
 * A family is announced once with prom_family() (# HELP and # TYPE), then its samples follow with
 * prom_sample*(). Label values are escaped as the format says (backslash, double quote, line feed);
 * HELP text escapes backslash and line feed. Nothing here allocates beyond the Buffer. */

#include <stdbool.h>
#include <stdint.h>

#include "buffer.h"

typedef enum PromType {
        PROM_COUNTER,
        PROM_GAUGE,
        PROM_HISTOGRAM,
        PROM_UNTYPED,
} PromType;

/* A label: name (a valid label name, never escaped) and value (any text, escaped). */
typedef struct PromLabel {
        const char *name;
        const char *value;
} PromLabel;

/* Metric and label names: [a-zA-Z_:][a-zA-Z0-9_:]* (labels: no ':'). */
bool prom_name_is_valid(const char *name, bool label);

int prom_append_label_value(Buffer *b, const char *value);
int prom_family(Buffer *b, const char *name, PromType type, const char *help);
/* name{labels...} value. Integers print exactly (counters up to 2^64-1), doubles with %.17g,
 * NaN and infinities as the format spells them. */
int prom_sample_u64(Buffer *b, const char *name, const PromLabel *labels, size_t n_labels, uint64_t value);
int prom_sample_double(Buffer *b, const char *name, const PromLabel *labels, size_t n_labels, double value);

/* A histogram with cumulative buckets: counts[i] observations <= bounds[i] (not cumulative: this
 * sums them), plus the +Inf bucket (count), _sum and _count. */
int prom_histogram(Buffer *b, const char *name, const PromLabel *labels, size_t n_labels, const double *bounds,
                   const uint64_t *counts, size_t n_bounds, uint64_t count, double sum);
