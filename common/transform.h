/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Transforms: the source option `transform` (interfaces §11), a program of steps separated by ';'
 * that shapes each record (a JSON object) in the connector, between parsing and the writer:
 *
 *   select F1,F2,...        keep only these fields ("a.b" reaches into nested objects)
 *   drop F1,F2,...          remove these fields
 *   rename OLD=NEW,...      rename (or move: NEW may be a path) fields
 *   where F OP VALUE        keep the record only if it holds; OP == != < <= > >= (numeric when both
 *                           sides are numbers) or ~ (POSIX extended regex)
 *   convert F:TYPE,...      TYPE int, float, bool or string; a value that does not convert skips
 *                           the record
 *   set F=VALUE             a string field; VALUE may be $source, $ts_us or $host
 *
 * The program is compiled once (transform_compile()); running it on a record (transform_run()) is
 * the record's one parse: json_scan_line_members() validates it and lists its members, the steps
 * work on that list, and the output is written from the input's bytes into a Buffer. Nothing is
 * allocated per record once the tables have grown to the records' size. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buffer.h"
#include "json-scan.h"
#include "macro.h"

/* Longest program accepted (bytes). */
#define TRANSFORM_PROGRAM_MAX 16384u

typedef struct Transform Transform;

/* Compiles program. On error returns -EINVAL and, in *ret_error (malloc'ed), a message naming the
 * step and column: "step 2 (rename a): column 16: expected OLD=NEW". -ENOMEM otherwise. */
int transform_compile(const char *program, Transform **ret, char **ret_error);
Transform *transform_free(Transform *t);
DEFINE_TRIVIAL_CLEANUP_FUNC(Transform *, transform_free);

/* How many steps, and the text of step i (0-based, as written, blanks trimmed), for messages. */
unsigned transform_n_steps(const Transform *t);
const char *transform_step_text(const Transform *t, unsigned i);

/* What $source, $ts_us and $host stand for when the program runs. */
typedef struct TransformEnv {
        const char *source;
        const char *host;
        uint64_t ts_us;
} TransformEnv;

typedef enum TransformVerdict {
        TRANSFORM_EMIT,     /* the output record was appended to out */
        TRANSFORM_FILTERED, /* a `where` step did not hold: drop the record, count it as filtered */
        TRANSFORM_SKIP,     /* the record can not be transformed (not an object, a failed convert) */
        TRANSFORM_INVALID,  /* the record is not valid JSON on one line (error_offset says where) */
} TransformVerdict;

typedef struct TransformResult {
        TransformVerdict verdict;
        unsigned step;        /* FILTERED/SKIP: the step (1-based; 0 for the record as a whole) */
        size_t error_offset;  /* INVALID: offset of the offending byte */
        const char *reason;   /* SKIP: why, e.g. `convert n:int: "x1" is not an integer` (valid until
                               * the next run) */
} TransformResult;

/* Runs the program on one record. Returns 0 with *ret filled (the output appended to out for
 * TRANSFORM_EMIT; out is left as it was otherwise), or -ENOMEM. */
int transform_run(Transform *t, const char *rec, size_t len, const TransformEnv *env, Buffer *out,
                  TransformResult *ret);

/* How deep the program reaches into a record (1 for top-level names only): a listing of the
 * record's members for transform_run_listed() must go this deep. */
unsigned transform_depth(const Transform *t);

/* transform_run() on a record whose members were listed already, by the pass that validated it, so
 * that it is not scanned again: members[0..n_members) as json_scan_line_members() (or
 * json_scan_prefix_line_members()) lists them, or as a connector lists the JSON object it built.
 * With root -1 the record is the listed value itself (an object), listed with max_depth
 * transform_depth(t); else it is the value of members[root], an object, listed with max_depth at
 * least transform_depth(t) + members[root].depth (a protocol line whose "data" is the record).
 * rec[0..len) is the record's JSON text. Never TRANSFORM_INVALID; otherwise as transform_run(). */
int transform_run_listed(Transform *t, const char *rec, size_t len, const JsonScanMember *members, size_t n_members,
                         ssize_t root, const TransformEnv *env, Buffer *out, TransformResult *ret);
