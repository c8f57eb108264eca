/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* dpipectl test-transform PROGRAM: what a transform makes of sample records, before it is deployed.
 * The same engine as the connectors' (common/transform.c): what it prints here is what a source
 * with this program would queue. */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dpipectl.h"
#include "json-scan.h"
#include "json-util.h"
#include "log.h"
#include "transform.h"
#include "util.h"

static int print_result(uint64_t line, const TransformResult *res, const char *rec, size_t len, const Buffer *out,
                        const Transform *t) {
        if (arg_json) {
                _cleanup_json_ struct json_object *o = json_object_new_object();
                struct json_object *record = NULL;

                if (!o)
                        return -ENOMEM;
                json_object_object_add(o, "line", json_object_new_uint64(line));
                switch (res->verdict) {
                case TRANSFORM_EMIT:
                        json_object_object_add(o, "result", json_object_new_string("emitted"));
                        if (json_parse_n(buffer_begin(out), buffer_size(out), &record, NULL) < 0)
                                return -EBADMSG;
                        json_object_object_add(o, "record", record);
                        break;
                case TRANSFORM_FILTERED:
                        json_object_object_add(o, "result", json_object_new_string("filtered"));
                        json_object_object_add(o, "step", json_object_new_uint64(res->step));
                        break;
                case TRANSFORM_SKIP:
                        json_object_object_add(o, "result", json_object_new_string("skipped"));
                        json_object_object_add(o, "reason", json_object_new_string(res->reason));
                        break;
                case TRANSFORM_INVALID: {
                        char why[160];

                        (void) snprintf(why, sizeof(why), "not valid JSON: %s at byte %zu",
                                        json_scan_error_reason(rec, len, res->error_offset), res->error_offset + 1);
                        json_object_object_add(o, "result", json_object_new_string("skipped"));
                        json_object_object_add(o, "reason", json_object_new_string(why));
                        break;
                }
                }
                puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
                return 0;
        }

        /* Records on stdout exactly as they would be queued; what happened to the others on stderr,
         * so that stdout can go on to jq. */
        switch (res->verdict) {
        case TRANSFORM_EMIT:
                fwrite(buffer_begin(out), 1, buffer_size(out), stdout);
                fputc('\n', stdout);
                break;
        case TRANSFORM_FILTERED:
                fflush(stdout);
                fprintf(stderr, "line %" PRIu64 ": filtered by step %u (%s)\n", line, res->step,
                        transform_step_text(t, res->step - 1) ?: "?");
                break;
        case TRANSFORM_SKIP:
                fflush(stdout);
                fprintf(stderr, "line %" PRIu64 ": skipped: %s\n", line, res->reason);
                break;
        case TRANSFORM_INVALID:
                fflush(stdout);
                fprintf(stderr, "line %" PRIu64 ": skipped: not valid JSON: %s at byte %zu\n", line,
                        json_scan_error_reason(rec, len, res->error_offset), res->error_offset + 1);
                break;
        }
        return 0;
}

int verb_test_transform(sd_bus *bus, int argc, char **argv) {
        _cleanup_(transform_freep) Transform *t = NULL;
        _cleanup_free_ char *error = NULL, *line = NULL;
        _cleanup_(buffer_done) Buffer out = {};
        uint64_t n = 0, emitted = 0, filtered = 0, skipped = 0;
        char host[65] = "";
        size_t allocated = 0;
        TransformEnv env;
        ssize_t len;
        int r;

        r = transform_compile(argv[1], &t, &error);
        if (r == -ENOMEM)
                return log_oom(), EXIT_FAILURE;
        if (r < 0) {
                log_error("Invalid transform: %s", error);
                return EXIT_FAILURE;
        }
        (void) gethostname(host, sizeof(host) - 1);
        env = (TransformEnv) { .source = "test-transform", .host = host };

        while ((len = getline(&line, &allocated, stdin)) >= 0) {
                TransformResult res;
                size_t k = (size_t) len;

                n++;
                while (k > 0 && (line[k - 1] == '\n' || line[k - 1] == '\r'))
                        k--;
                if (strspn(line, " \t") >= k)
                        continue; /* blank lines are no records (as in the connectors) */
                env.ts_us = now_usec(CLOCK_REALTIME);
                buffer_clear(&out);
                r = transform_run(t, line, k, &env, &out, &res);
                if (r < 0)
                        return log_error_errno(r, "Failed to run the transform: %m"), EXIT_FAILURE;
                emitted += res.verdict == TRANSFORM_EMIT;
                filtered += res.verdict == TRANSFORM_FILTERED;
                skipped += res.verdict == TRANSFORM_SKIP || res.verdict == TRANSFORM_INVALID;
                r = print_result(n, &res, line, k, &out, t);
                if (r < 0)
                        return log_error_errno(r, "Failed to print the result: %m"), EXIT_FAILURE;
        }
        if (ferror(stdin))
                return log_error_errno(errno, "Failed to read the records: %m"), EXIT_FAILURE;
        if (!arg_json) {
                fflush(stdout);
                fprintf(stderr, "%" PRIu64 " emitted, %" PRIu64 " filtered, %" PRIu64 " skipped.\n", emitted, filtered,
                        skipped);
        }
        return EXIT_SUCCESS;
}
