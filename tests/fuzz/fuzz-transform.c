/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libFuzzer target for common/transform.c: the parser of the transform language and the engine.
 * The input's first line is the program, each further line a record. Oracle: a program either
 * compiles or is refused with a message naming where; a record is called invalid exactly when
 * json_scan_line() refuses it; whatever the engine emits is one JSON object on one line that
 * json_scan_line() and json-c both accept; filtered and skipped records leave the output alone.
 * Program and records are copied to buffers of exactly their size, so that ASan catches any read
 * past their end. */
#include <json-c/json.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json-scan.h"
#include "transform.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, const char *s, size_t n) {
        fprintf(stderr, "fuzz-transform: %s: '%.*s'\n", what, (int) (n > 300 ? 300 : n), s);
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const uint8_t *nl = memchr(data, '\n', size), *p, *end = data + size;
        size_t plen = nl ? (size_t) (nl - data) : size;
        static const TransformEnv env = { .source = "fuzz", .host = "h\"ost", .ts_us = 42 };
        Transform *t = NULL;
        char *program, *error = NULL;
        Buffer out = {};
        int r;

        program = malloc(plen + 1);
        if (!program)
                return 0;
        memcpy(program, data, plen);
        program[plen] = 0;
        r = transform_compile(program, &t, &error);
        if (r < 0) {
                if (r == -EINVAL && (!error || !*error))
                        fail("refused without a message", program, plen);
                if (r == -EINVAL && !strstr(error, "column") && !strstr(error, "step") && !strstr(error, "program"))
                        fail("a message that says not where", error, strlen(error));
                free(error);
                free(program);
                return 0;
        }
        if (error || transform_n_steps(t) == 0)
                fail("compiled with an error message or no steps", program, plen);

        for (p = nl ? nl + 1 : end; p < end;) {
                const uint8_t *e = memchr(p, '\n', (size_t) (end - p));
                size_t n = e ? (size_t) (e - p) : (size_t) (end - p), before;
                TransformResult res;
                char *rec = malloc(n ? n : 1);

                if (!rec)
                        break;
                memcpy(rec, p, n);
                (void) buffer_append(&out, "#", 1);
                before = buffer_size(&out);
                r = transform_run(t, rec, n, &env, &out, &res);
                if (r < 0) {
                        free(rec);
                        break; /* -ENOMEM */
                }
                if ((res.verdict == TRANSFORM_INVALID) != !json_scan_line_valid(rec, n))
                        fail("invalid is not what json_scan_line() refuses", rec, n);
                if (res.verdict == TRANSFORM_EMIT) {
                        const char *o = buffer_begin(&out) + before;
                        size_t on = buffer_size(&out) - before;
                        json_tokener *tok;
                        json_object *j;

                        if (json_scan_line(o, on, NULL, 0, NULL) != JSON_SCAN_OBJECT)
                                fail("emitted something that is not one JSON object on one line", o, on);
                        tok = json_tokener_new();
                        j = tok ? json_tokener_parse_ex(tok, o, (int) on) : NULL;
                        if (tok && !j)
                                fail("emitted something json-c refuses", o, on);
                        json_object_put(j);
                        if (tok)
                                json_tokener_free(tok);
                } else if (buffer_size(&out) != before)
                        fail("wrote output for a record it did not emit", rec, n);
                if (res.verdict == TRANSFORM_SKIP && (!res.reason || !*res.reason))
                        fail("skipped without a reason", rec, n);
                free(rec);
                p = e ? e + 1 : end;
        }
        buffer_done(&out);
        transform_free(t);
        free(program);
        return 0;
}
