/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* transform-bench: the connector's per-record work on a JSON Lines record, alone, for instruction
 * counts (valgrind --tool=callgrind) that do not depend on the machine's load:
 *
 *   transform-bench check N             json_scan_line_check() of N records (jsonl, no transform)
 *   transform-bench transform N PROGRAM transform_run() of N records with PROGRAM
 *
 * The records are bench/run's: {"s":0,"i":I,"t":T,"p":"xxx..."} of 100 bytes. Prints the time per
 * record; the instruction counts come from callgrind (divide Ir by N). */

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buffer.h"
#include "json-scan.h"
#include "transform.h"
#include "util.h"

#define RECORDS 1024
#define SIZE 100

int main(int argc, char *argv[]) {
        static char recs[RECORDS][SIZE + 1];
        _cleanup_(transform_freep) Transform *t = NULL;
        _cleanup_free_ char *error = NULL;
        Buffer out = {};
        TransformEnv env = { .source = "s0", .host = "h", .ts_us = 1 };
        uint64_t n, t0, emitted = 0;
        bool transform;

        if (argc < 3 || (strcmp(argv[1], "check") != 0 && strcmp(argv[1], "transform") != 0) ||
            safe_atou64(argv[2], &n) < 0 || (strcmp(argv[1], "transform") == 0 && argc != 4)) {
                fprintf(stderr, "usage: transform-bench check N | transform N PROGRAM\n");
                return 2;
        }
        transform = strcmp(argv[1], "transform") == 0;
        if (transform && transform_compile(argv[3], &t, &error) < 0) {
                fprintf(stderr, "invalid program: %s\n", error);
                return 1;
        }
        for (unsigned i = 0; i < RECORDS; i++) {
                int k = snprintf(recs[i], sizeof(recs[i]), "{\"s\":0,\"i\":%u,\"t\":%" PRIu64 ",\"p\":\"", i * 7919,
                                 UINT64_C(1700000000000000) + i);
                memset(recs[i] + k, 'x', SIZE - 2 - (size_t) k);
                memcpy(recs[i] + SIZE - 2, "\"}", 3);
        }
        t0 = now_usec(CLOCK_MONOTONIC);
        for (uint64_t i = 0; i < n; i++) {
                const char *r = recs[i % RECORDS];
                TransformResult res;

                if (!transform) {
                        emitted += json_scan_line_check(r, SIZE, NULL) > 0;
                        continue;
                }
                buffer_clear(&out);
                if (transform_run(t, r, SIZE, &env, &out, &res) < 0)
                        return 1;
                emitted += res.verdict == TRANSFORM_EMIT;
        }
        printf("%s: %" PRIu64 " records, %" PRIu64 " emitted, %.1f ns/record\n", argv[1], n, emitted,
               n ? (double) (now_usec(CLOCK_MONOTONIC) - t0) * 1000.0 / (double) n : 0.0);
        if (transform && out.data)
                printf("last output: %.*s\n", (int) buffer_size(&out), buffer_begin(&out));
        buffer_done(&out);
        return 0;
}
