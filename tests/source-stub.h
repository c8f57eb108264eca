/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Stand-ins for the connector library's source_emit(), source_emit_seq() and source_skip_record(),
 * for the unit tests and fuzz targets of the record readers (connector-format.c, the http
 * connector's http-body.c): they compile those files alone and include this in exactly one file.
 * Every record handed over is checked to be what the writer takes (json_scan_line(), seq below
 * UINT64_MAX); a violation calls stub_violation(), which aborts unless the test replaces it. The
 * records are kept one per line in stub_records, with "seq " in front when stub_with_seqs is set.
 * With stub_transform set, records go through it as with the source option transform: those the
 * reader listed itself (source_emit_listed(), counted in stub_listed) with
 * transform_run_listed(), the others with transform_run(). */

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buffer.h"
#include "connector-format.h"
#include "connector.h"
#include "json-scan.h"
#include "transform.h"

static Buffer stub_records;
static uint64_t stub_next_seq, stub_emitted, stub_skipped, stub_filtered, stub_listed;
static bool stub_with_seqs;
static char stub_skip_reason[512];
static Transform *stub_transform;
static JsonScanMembers stub_members;
static Buffer stub_out;

static void stub_reset(void) {
        buffer_done(&stub_records);
        buffer_done(&stub_out);
        json_scan_members_done(&stub_members);
        stub_next_seq = stub_emitted = stub_skipped = stub_filtered = stub_listed = 0;
        stub_skip_reason[0] = 0;
}

static void stub_violation(const char *what, const char *data, size_t len) {
        fprintf(stderr, "source stub: %s: '%.*s'\n", what, (int) MIN(len, (size_t) 200), data);
        abort();
}

static int stub_queue(uint64_t seq, const char *data, size_t len) {
        char prefix[32];

        if (!json_scan_line_valid(data, len))
                stub_violation("a record that is not one JSON value on one line", data, len);
        stub_next_seq = seq + 1;
        stub_emitted++;
        if (stub_with_seqs) {
                (void) snprintf(prefix, sizeof(prefix), "%" PRIu64 " ", seq);
                if (buffer_append_str(&stub_records, prefix) < 0)
                        return -ENOMEM;
        }
        if (buffer_append(&stub_records, data, len) < 0 || buffer_append(&stub_records, "\n", 1) < 0)
                return -ENOMEM;
        return 1;
}

void source_skip_record(Source *s, const char *position, const char *fmt, ...) _printf_(3, 4);

static int stub_transformed(uint64_t seq, const char *data, size_t len, const JsonScanMembers *mt, ssize_t root) {
        TransformResult res;
        char pos[48];
        int r;

        buffer_clear(&stub_out);
        if (mt)
                r = transform_run_listed(stub_transform, data, len, mt->members, mt->n, root, NULL, &stub_out, &res);
        else
                r = transform_run(stub_transform, data, len, NULL, &stub_out, &res);
        if (r < 0)
                return r;
        (void) snprintf(pos, sizeof(pos), "seq %" PRIu64, seq);
        switch (res.verdict) {
        case TRANSFORM_EMIT:
                return stub_queue(seq, buffer_begin(&stub_out), buffer_size(&stub_out));
        case TRANSFORM_FILTERED:
                stub_filtered++;
                break;
        case TRANSFORM_SKIP:
                source_skip_record(NULL, pos, "transform: %s", res.reason);
                break;
        default:
                source_skip_record(NULL, pos, "not valid JSON: %s at byte %zu",
                                   json_scan_error_reason(data, len, res.error_offset), res.error_offset + 1);
                break;
        }
        stub_next_seq = seq + 1;
        return 0;
}

int source_emit_seq(Source *s, uint64_t seq, const char *data, size_t len) {
        (void) s;
        if (seq == SOURCE_SEQ_INVALID)
                return -ERANGE;
        if (seq < stub_next_seq)
                return 0;
        if (stub_transform)
                return stub_transformed(seq, data, len, NULL, -1);
        return stub_queue(seq, data, len);
}

uint64_t source_next_seq(Source *s) {
        (void) s;
        return stub_next_seq;
}

JsonScanMembers *source_members(Source *s, unsigned extra_depth) {
        (void) s;
        if (!stub_transform)
                return NULL;
        stub_members.max_depth = transform_depth(stub_transform) + extra_depth;
        return &stub_members;
}

int source_emit_listed(Source *s, uint64_t seq, const char *data, size_t len, const JsonScanMembers *mt, ssize_t root,
                       const char *what, uint64_t n) {
        (void) s;
        (void) what;
        (void) n;
        if (!stub_transform || mt != &stub_members)
                stub_violation("a listed record without the source's transform or table", data, len);
        if (seq == SOURCE_SEQ_INVALID)
                return -ERANGE;
        if (seq < stub_next_seq)
                return 0;
        stub_listed++;
        return stub_transformed(seq, data, len, mt, root);
}

int source_emit(Source *s, const char *data, size_t len) {
        return source_emit_seq(s, stub_next_seq, data, len);
}

void source_skip_record(Source *s, const char *position, const char *fmt, ...) {
        char msg[400];
        va_list ap;

        (void) s;
        va_start(ap, fmt);
        (void) vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        stub_skipped++;
        (void) snprintf(stub_skip_reason, sizeof(stub_skip_reason), "%s: %s", position ?: "?", msg);
}

int source_emit_unchecked(Source *s, const char *data, size_t len, const char *what, uint64_t n) {
        char reason[128], pos[48];

        if (stub_transform)
                return source_emit_seq(s, stub_next_seq, data, len); /* the transform's scan checks it */
        if (record_check_json(data, len, reason, sizeof(reason)) < 0) {
                (void) snprintf(pos, sizeof(pos), "%s %" PRIu64, what, n);
                source_skip_record(s, pos, "%s", reason);
                return 0;
        }
        return source_emit(s, data, len);
}

/* NUL-terminated view of what was emitted. */
static const char *stub_output(void) {
        if (buffer_reserve(&stub_records, 1) < 0)
                abort();
        stub_records.data[stub_records.tail] = 0;
        return buffer_begin(&stub_records);
}
