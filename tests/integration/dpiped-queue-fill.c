/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Test helper of the dpiped integration tests: appends N records of one source to a queue, the way
 * dpipe-writer would, so that dpiped's streaming can be tested without the rest of the pipeline.
 * Record i (counting from the source's last seq + 1) is {"i":i,"pad":"..."}. Never installed. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "queue.h"
#include "util.h"

int main(int argc, char *argv[]) {
        _cleanup_(queue_freep) Queue *q = NULL;
        _cleanup_free_ char *pad = NULL, *buf = NULL;
        QueueOptions opts = { .segment_size = 4 * 1024 * 1024 };
        uint64_t n, pad_len = 0, seq = 0, offset;
        const char *source;
        int r;

        if (argc < 4 || safe_atou64(argv[2], &n) < 0 || (argc > 4 && safe_atou64(argv[4], &pad_len) < 0)) {
                fprintf(stderr, "usage: %s QUEUE-DIR COUNT SOURCE [PAD-BYTES]\n", argv[0]);
                return EXIT_FAILURE;
        }
        source = argv[3];
        pad = malloc(pad_len + 1);
        buf = malloc(pad_len + 64);
        if (!pad || !buf)
                return EXIT_FAILURE;
        memset(pad, 'x', pad_len);
        pad[pad_len] = 0;

        r = queue_open(argv[1], &opts, &q);
        if (r < 0) {
                log_error_errno(r, "Failed to open queue %s: %m", argv[1]);
                return EXIT_FAILURE;
        }
        (void) queue_last_seq(q, source, strlen(source), &seq);
        for (uint64_t i = 0; i < n; i++) {
                int len = snprintf(buf, pad_len + 64, "{\"i\":%" PRIu64 ",\"pad\":\"%s\"}", seq + 1 + i, pad);
                QueueAppend a = {
                        .seq = seq + 1 + i,
                        .ts_us = now_usec(CLOCK_REALTIME),
                        .data = buf,
                        .data_len = (uint32_t) len,
                };
                r = queue_append(q, source, strlen(source), &a, 1, &offset);
                if (r < 0) {
                        log_error_errno(r, "Failed to append: %m");
                        return EXIT_FAILURE;
                }
        }
        r = queue_sync(q);
        if (r < 0) {
                log_error_errno(r, "Failed to sync: %m");
                return EXIT_FAILURE;
        }
        return EXIT_SUCCESS;
}
