/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libFuzzer target for what dpipe-writer parses of a connector's stream (common/frame.c,
 * common/batch.c): frames peeked from a buffer, batches parsed and walked, every record checked with
 * batch_record_check(), acks and control messages parsed. Oracle: nothing reads past the input (ASan;
 * the input is copied to a buffer of exactly its size), the walk visits exactly `count` records
 * inside the payload, and a record the check lets through is one JSON value that json-c in strict
 * mode takes, without CR or LF, with a seq below UINT64_MAX: what dpiped may put into a client's line. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "json-scan-oracle.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok, const char *what) {
        if (!ok) {
                fprintf(stderr, "fuzz-batch: %s\n", what);
                abort();
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        Buffer b = {};
        Frame f;
        int r;

        if (buffer_append(&b, data, size) < 0)
                return 0;
        /* The writer's conn_process(): frames one after the other until one is incomplete. */
        while ((r = frame_peek(&b, FRAME_SIZE_MAX, &f)) > 0) {
                check((size_t) f.size + FRAME_HEADER_SIZE <= buffer_size(&b), "a frame larger than the buffer");
                if (f.type == FRAME_BATCH) {
                        BatchView v;
                        BatchRecord rec;
                        size_t pos = 0;
                        uint32_t n = 0;

                        if (batch_parse(&f, &v) == 0) {
                                check(source_name_is_valid_n(v.source, v.source_len), "an invalid source name accepted");
                                while (batch_next(&v, &pos, &rec) > 0) {
                                        size_t at = SIZE_MAX;
                                        json_object *o = NULL;
                                        char *copy;

                                        n++;
                                        check((const uint8_t *) rec.data >= v.records &&
                                                      (const uint8_t *) rec.data + rec.len <= v.records + v.records_size,
                                              "a record outside the payload");
                                        /* The record alone, so that ASan sees any read past its end. */
                                        copy = malloc(rec.len ? rec.len : 1);
                                        if (!copy)
                                                break;
                                        memcpy(copy, rec.data, rec.len);
                                        rec.data = copy;
                                        r = batch_record_check(&rec, &at);
                                        if (r == 0) {
                                                check(rec.seq != UINT64_MAX, "seq UINT64_MAX accepted");
                                                check(!memchr(copy, '\n', rec.len) && !memchr(copy, '\r', rec.len),
                                                      "a record with a line break accepted");
                                                check(oracle_jsonc_parse(copy, rec.len, &o), "a record json-c refuses accepted");
                                                json_object_put(o);
                                        } else if (r == -EBADMSG)
                                                check(at <= rec.len && json_scan_error_reason(copy, rec.len, at),
                                                      "a bad error offset");
                                        else
                                                check(r == -ERANGE && rec.seq == UINT64_MAX, "an unexpected result");
                                        free(copy);
                                }
                                check(n == v.count, "the walk did not visit count records");
                        }
                } else if (f.type == FRAME_ACK) {
                        BatchAck ack;
                        (void) batch_ack_parse(&f, &ack);
                } else if (f.type == FRAME_CONTROL) {
                        json_object *o = NULL;
                        if (frame_parse_json(&f, &o) == 0)
                                json_object_put(o);
                }
                buffer_consume(&b, FRAME_HEADER_SIZE + f.size);
        }
        buffer_done(&b);
        return 0;
}
