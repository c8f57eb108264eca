/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libFuzzer target for common/json-scan.c, the connector's one JSON parse per record. Oracle
 * (json-scan-oracle.h): json_scan() never accepts what json-c refuses, refuses what json-c accepts
 * only for one of json-c's known laxities, and finds exactly json-c's top-level members. The input
 * is scanned from a copy of exactly its size, so ASan catches any read past the end. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json-scan-oracle.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const char *msg;
        char *copy;

        copy = malloc(size ? size : 1);
        if (!copy)
                return 0;
        memcpy(copy, data, size);
        msg = json_scan_oracle(copy, size);
        if (msg) {
                fprintf(stderr, "fuzz-json-scan: %s\n", msg);
                abort();
        }
        free(copy);
        return 0;
}
