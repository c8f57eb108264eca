/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Differential libFuzzer target for the one CSV reader (common/csv.h) and its two users. The same
 * CSV stream is read
 *   (a) by a connector's record reader (daemons/connectors/lib/connector-format.c, with
 *       tests/source-stub.h in place of the library) whole, in one read;
 *   (b) by the same reader in pieces of pseudo-random sizes (1..64 bytes, drawn from the first input
 *       bytes), as a socket or a growing file delivers it;
 *   (c) by dpipe-source's loader (daemons/source/csv-dataset.c), whole.
 * Oracle: (a) and (b) hand on the same records and skip the same number; and when (c) accepts the
 * file (valid UTF-8, no malformed record), the connector hands on exactly its rows, byte for byte,
 * and skips nothing. Input: bytes 0-3 seed the piece sizes, the rest is the stream. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "connector-format.h"
#include "csv-dataset.h"
#include "source-stub.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Everything the connector's reader hands on, one record a line, and how many it skipped. */
static char *read_stream(const char *s, size_t n, uint32_t seed, uint64_t *ret_skipped) {
        RecordReader r;
        Buffer b = {};
        char *out;

        stub_reset();
        assert(record_reader_init(&r, RECORD_FORMAT_CSV, 1024 * 1024, NULL) == 0);
        for (size_t i = 0; i < n;) {
                size_t piece = seed ? 1 + (seed >> 16) % 64 : n;

                seed = seed * 1103515245u + 12345u;
                piece = MIN(piece, n - i);
                assert(buffer_append(&b, s + i, piece) >= 0);
                assert(record_reader_feed(&r, NULL, &b, false) >= 0);
                i += piece;
        }
        assert(record_reader_feed(&r, NULL, &b, true) >= 0);
        assert(buffer_size(&b) == 0);
        out = strdup(stub_output());
        assert(out);
        *ret_skipped = stub_skipped;
        buffer_done(&b);
        record_reader_done(&r);
        stub_reset();
        return out;
}

/* dpipe-source's rows, one a line, or NULL if it refuses the file. */
static char *load_file(const char *s, size_t n) {
        Dataset *d = dataset_new();
        CsvParser *p = csv_parser_new(d, false);
        Buffer out = {};
        LoadError err;
        int r;

        assert(d && p);
        r = csv_parser_feed(p, s, n, &err);
        if (r >= 0)
                r = csv_parser_finish(p, &err);
        assert(r != -ENOMEM);
        if (r >= 0)
                for (size_t i = 0; i < d->n_rows; i++) {
                        size_t len;
                        const char *row = dataset_row(d, i, &len);

                        assert(buffer_append(&out, row, len) >= 0 && buffer_append(&out, "\n", 1) >= 0);
                }
        csv_parser_free(p);
        dataset_free(d);
        if (r < 0) {
                buffer_done(&out);
                return NULL;
        }
        {
                char *text = strndup(buffer_begin(&out) ?: "", buffer_size(&out));

                assert(text);
                buffer_done(&out);
                return text;
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_free_ char *whole = NULL, *pieces = NULL, *loaded = NULL;
        uint64_t skipped_whole, skipped_pieces;
        uint32_t seed;

        if (size < 4 || size > 64 * 1024)
                return 0;
        seed = (uint32_t) data[0] << 24 | (uint32_t) data[1] << 16 | (uint32_t) data[2] << 8 | data[3];
        seed |= 1; /* 0 would mean "whole" */
        data += 4, size -= 4;

        whole = read_stream((const char *) data, size, 0, &skipped_whole);
        pieces = read_stream((const char *) data, size, seed, &skipped_pieces);
        if (strcmp(whole, pieces) != 0 || skipped_whole != skipped_pieces)
                stub_violation("the records depend on how the stream was cut", (const char *) data, size);

        loaded = load_file((const char *) data, size);
        if (loaded && (strcmp(loaded, whole) != 0 || skipped_whole != 0))
                stub_violation("dpipe-source and the connectors read the file differently", (const char *) data, size);
        return 0;
}
