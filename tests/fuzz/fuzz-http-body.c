/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libFuzzer target for the http connector's body reader (daemons/connectors/http/http-body.c): a
 * response body in pieces as curl delivers it, for every declared format, with or without a
 * Content-Type and a cursor. Input: byte 0 picks the format, the Content-Type and whether a page is
 * expected, byte 1 the size of the pieces, byte 2 the cursor, the rest is the body. Oracle
 * (tests/source-stub.h): every record handed on is one JSON value on one line (json_scan_line() and
 * json-c agree), a refused body says why, and a page never emits a seq that can not be followed. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http-body.h"
#include "json-scan-oracle.h"
#include "source-stub.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static const RecordFormat formats[] = { RECORD_FORMAT_AUTO, RECORD_FORMAT_JSON, RECORD_FORMAT_JSONL,
                                                RECORD_FORMAT_CSV, RECORD_FORMAT_DPIPE };
        static const char *const types[] = { NULL, "application/json", "text/csv", "text/html", "text/plain; charset=x" };
        RecordReader reader;
        HttpBody b = {};
        size_t piece;
        const char *ct;
        int r;

        if (size < 3)
                return 0;
        ct = types[(data[0] / 8) % ELEMENTSOF(types)];
        piece = 1 + data[1] % 128;
        stub_reset();
        stub_next_seq = data[2] % 4;
        if (record_reader_init(&reader, RECORD_FORMAT_JSONL, 256, NULL) < 0)
                return 0;
        http_body_begin(&b, formats[data[0] % ELEMENTSOF(formats)], data[0] & 0x80, &reader, data[2] % 4,
                        data[0] & 0x40, data[2] & 0x80 ? UINT64_MAX - 3 : 0);
        data += 3, size -= 3;

        r = http_body_check_content_type(&b, ct);
        for (size_t i = 0; r >= 0 && i < size; i += piece)
                r = http_body_feed(&b, NULL, ct, (const char *) data + i, MIN(piece, size - i));
        if (r >= 0)
                r = http_body_end(&b, NULL, ct);
        if (r < 0 && r != -ENOMEM && !b.error[0])
                stub_violation("a refused body without a reason", (const char *) data, size);
        if (r < 0 && r != -EMEDIUMTYPE && r != -ERANGE && r != -ENOMEM)
                stub_violation("an unexpected error", (const char *) data, size);
        for (const char *p = stub_output(), *nl; (nl = strchr(p, '\n')); p = nl + 1) {
                json_object *o = NULL;
                if (!oracle_jsonc_parse(p, (size_t) (nl - p), &o))
                        stub_violation("a record json-c refuses", p, (size_t) (nl - p));
                json_object_put(o);
        }
        http_body_done(&b);
        record_reader_done(&reader);
        stub_reset();
        return 0;
}
