/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libFuzzer target for the connectors' record reader (daemons/connectors/lib/connector-format.c): a
 * stream in one of the formats jsonl, csv, lines and dpipe (the tcp connector's protocol lines,
 * dpipe_line_parse()), read in pieces as a socket would deliver it, with a small max_record so that
 * oversized records are skipped too. Input: byte 0 picks the format and whether a csv_header is
 * fixed, byte 1 the size of the pieces, the rest is the stream. Oracle (tests/source-stub.h): every
 * record handed on is one JSON value on one line that json_scan_line() takes, and json-c too. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connector-format.h"
#include "json-scan-oracle.h"
#include "source-stub.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_dpipe(RecordReader *r, Buffer *b, bool eof) {
        char *line, reason[160];
        size_t len;
        DpipeLine l;
        int k;

        while ((k = record_reader_next(r, b, eof, &line, &len)) != 0) {
                if (k < 0)
                        continue; /* -E2BIG: skipped */
                if (dpipe_line_parse(line, len, &l, reason, sizeof(reason)) < 0 || l.kind != DPIPE_LINE_RECORD)
                        continue;
                if (!(l.data >= line && l.data + l.data_len <= line + len))
                        stub_violation("data outside the line", line, len);
                (void) source_emit_seq(NULL, l.seq == UINT64_MAX ? 0 : l.seq, l.data, l.data_len);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static const RecordFormat formats[] = { RECORD_FORMAT_JSONL, RECORD_FORMAT_CSV, RECORD_FORMAT_LINES,
                                                RECORD_FORMAT_DPIPE };
        RecordFormat f;
        RecordReader r;
        Buffer b = {};
        size_t piece;

        if (size < 2)
                return 0;
        f = formats[data[0] % ELEMENTSOF(formats)];
        piece = 1 + data[1] % 64;
        data += 2, size -= 2;

        stub_reset();
        if (record_reader_init(&r, f, 256, f == RECORD_FORMAT_CSV && (data[-2] & 0x80) ? "a,b,\"c,d\"" : NULL) < 0)
                return 0;
        for (size_t i = 0; i < size; i += piece) {
                if (buffer_append(&b, data + i, MIN(piece, size - i)) < 0)
                        break;
                if (f == RECORD_FORMAT_DPIPE)
                        check_dpipe(&r, &b, false);
                else if (record_reader_feed(&r, NULL, &b, false) < 0)
                        abort();
        }
        if (f == RECORD_FORMAT_DPIPE)
                check_dpipe(&r, &b, true);
        else if (record_reader_feed(&r, NULL, &b, true) < 0)
                abort();
        if (buffer_size(&b) != 0)
                stub_violation("bytes left after the end of the stream", buffer_begin(&b), buffer_size(&b));
        /* And json-c agrees with every record handed on. */
        for (const char *p = stub_output(), *nl; (nl = strchr(p, '\n')); p = nl + 1) {
                json_object *o = NULL;
                if (!oracle_jsonc_parse(p, (size_t) (nl - p), &o))
                        stub_violation("a record json-c refuses", p, (size_t) (nl - p));
                json_object_put(o);
        }
        buffer_done(&b);
        record_reader_done(&r);
        stub_reset();
        return 0;
}
