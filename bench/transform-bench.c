/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* transform-bench: the connector's per-record work on a JSON Lines record, alone, for instruction
 * counts (valgrind --tool=callgrind) that do not depend on the machine's load:
 *
 *   transform-bench check N             json_scan_line_check() of N records (jsonl, no transform)
 *   transform-bench transform N PROGRAM transform_run() of N records with PROGRAM
 *   transform-bench dpipe N PROGRAM     the records as data of dpipe protocol lines, as the tcp
 *                                       connector runs a transform on them: the one scan of the line
 *                                       lists data's members, transform_run_listed()
 *   transform-bench dpipe-twice N PROGRAM  the same as before that: the line scanned for op/seq/data,
 *                                       then transform_run() on data (a second scan)
 *   transform-bench csv N PROGRAM       records as a csv connector builds them ({"s":"0","i":"7",...},
 *                                       all strings) and lists them while building: transform_run_listed()
 *   transform-bench csv-twice N PROGRAM the same built records scanned again: transform_run()
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

static const char *const modes[] = { "check", "transform", "dpipe", "dpipe-twice", "csv", "csv-twice" };

int main(int argc, char *argv[]) {
        static char recs[RECORDS][SIZE + 1], lines[RECORDS][SIZE + 64], built[RECORDS][SIZE + 16];
        static size_t line_len[RECORDS], built_len[RECORDS];
        static JsonScanMembers listed[RECORDS];
        JsonScanMembers mt = {};
        const char *mode;
        _cleanup_(transform_freep) Transform *t = NULL;
        _cleanup_free_ char *error = NULL;
        Buffer out = {};
        TransformEnv env = { .source = "s0", .host = "h", .ts_us = 1 };
        uint64_t n, t0, emitted = 0;
        bool transform;

        mode = argc >= 2 ? argv[1] : "";
        transform = strcmp(mode, "check") != 0;
        {
                bool known = false;
                for (size_t i = 0; i < ELEMENTSOF(modes); i++)
                        known = known || strcmp(mode, modes[i]) == 0;
                if (!known || argc < 3 || safe_atou64(argv[2], &n) < 0 || argc != (transform ? 4 : 3)) {
                        fprintf(stderr, "usage: transform-bench check N | transform|dpipe|dpipe-twice|csv|csv-twice N PROGRAM\n");
                        return 2;
                }
        }
        if (transform && transform_compile(argv[3], &t, &error) < 0) {
                fprintf(stderr, "invalid program: %s\n", error);
                return 1;
        }
        for (unsigned i = 0; i < RECORDS; i++) {
                int k = snprintf(recs[i], sizeof(recs[i]), "{\"s\":0,\"i\":%u,\"t\":%" PRIu64 ",\"p\":\"", i * 7919,
                                 UINT64_C(1700000000000000) + i);
                memset(recs[i] + k, 'x', SIZE - 2 - (size_t) k);
                memcpy(recs[i] + SIZE - 2, "\"}", 3);
                line_len[i] = (size_t) snprintf(lines[i], sizeof(lines[i]), "{\"op\":\"record\",\"seq\":%u,\"data\":%s}",
                                                i, recs[i]);
                /* As the csv reader builds it from the row "0,I,T,xxx..." */
                k = snprintf(built[i], sizeof(built[i]), "{\"s\":\"0\",\"i\":\"%u\",\"t\":\"%" PRIu64 "\",\"p\":\"", i * 7919,
                             UINT64_C(1700000000000000) + i);
                memset(built[i] + k, 'x', SIZE - 2 - (size_t) k);
                memcpy(built[i] + SIZE - 2, "\"}", 3);
                built_len[i] = SIZE;
                if (strncmp(mode, "csv", 3) == 0) {
                        /* (the list the reader makes while building, made here once) */
                        listed[i].max_depth = 1;
                        if (json_scan_line_members(built[i], built_len[i], &listed[i], NULL) != JSON_SCAN_OBJECT)
                                return 1;
                }
        }
        if (transform)
                mt.max_depth = transform_depth(t) + 1;
        t0 = now_usec(CLOCK_MONOTONIC);
        for (uint64_t i = 0; i < n; i++) {
                const char *r = recs[i % RECORDS];
                TransformResult res;

                if (!transform) {
                        emitted += json_scan_line_check(r, SIZE, NULL) > 0;
                        continue;
                }
                buffer_clear(&out);
                if (strcmp(mode, "transform") == 0) {
                        if (transform_run(t, r, SIZE, &env, &out, &res) < 0)
                                return 1;
                } else if (strcmp(mode, "dpipe") == 0) {
                        const char *l = lines[i % RECORDS];
                        ssize_t data = -1;

                        if (json_scan_line_members(l, line_len[i % RECORDS], &mt, NULL) != JSON_SCAN_OBJECT)
                                return 1;
                        for (size_t k = 0; k < mt.n; k++)
                                if (mt.members[k].depth == 1 && mt.members[k].key_len == 6 &&
                                    memcmp(mt.members[k].key, "\"data\"", 6) == 0)
                                        data = (ssize_t) k;
                        if (data < 0 || transform_run_listed(t, mt.members[data].value, mt.members[data].value_len, mt.members,
                                                             mt.n, data, &env, &out, &res) < 0)
                                return 1;
                } else if (strcmp(mode, "dpipe-twice") == 0) {
                        JsonScanField f[] = { { .key = "op" }, { .key = "seq" }, { .key = "data" }, { .key = "message" } };

                        if (json_scan_line(lines[i % RECORDS], line_len[i % RECORDS], f, ELEMENTSOF(f), NULL) != JSON_SCAN_OBJECT ||
                            transform_run(t, f[2].value, f[2].value_len, &env, &out, &res) < 0)
                                return 1;
                } else if (strcmp(mode, "csv") == 0) {
                        const JsonScanMembers *m = &listed[i % RECORDS];

                        if (transform_run_listed(t, built[i % RECORDS], built_len[i % RECORDS], m->members, m->n, -1, &env,
                                                 &out, &res) < 0)
                                return 1;
                } else if (transform_run(t, built[i % RECORDS], built_len[i % RECORDS], &env, &out, &res) < 0)
                        return 1;
                emitted += res.verdict == TRANSFORM_EMIT;
        }
        printf("%s: %" PRIu64 " records, %" PRIu64 " emitted, %.1f ns/record\n", mode, n, emitted,
               n ? (double) (now_usec(CLOCK_MONOTONIC) - t0) * 1000.0 / (double) n : 0.0);
        if (transform && out.data)
                printf("last output: %.*s\n", (int) buffer_size(&out), buffer_begin(&out));
        buffer_done(&out);
        json_scan_members_done(&mt);
        for (unsigned i = 0; i < RECORDS; i++)
                json_scan_members_done(&listed[i]);
        return 0;
}
