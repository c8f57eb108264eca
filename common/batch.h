/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Record batches (connector -> writer) and their acks (writer -> connector), the payloads of
 * FRAME_BATCH and FRAME_ACK. All integers little-endian.
 *
 * FRAME_BATCH payload:
 *     u64 batch_id       chosen by the connector, echoed in the ack
 *     u16 source_len     1..64
 *     u16 reserved       0
 *     u32 count          records that follow
 *     u8  source[source_len]
 *     count times:
 *         u32 data_len
 *         u32 reserved   0
 *         u64 seq        source-side sequence number, strictly increasing within the source
 *         u64 ts_us      CLOCK_REALTIME microseconds when the connector received the record
 *         u8  data[data_len]   one JSON value on one line: strict JSON (RFC 8259, UTF-8), no CR or LF
 *
 * FRAME_ACK payload (BATCH_ACK_SIZE bytes):
 *     u64 batch_id
 *     u64 first_offset   queue offset of the first record stored by this batch (valid if stored > 0)
 *     u32 stored         records appended to the queue
 *     u32 duplicates     records dropped because the queue already holds their seq
 *     i32 error          0, or a negative errno: nothing of the batch was stored. -EBADMSG (a record's
 *                        data is not one JSON value on one line) and -ERANGE (a seq of UINT64_MAX,
 *                        which nothing could follow) refuse the batch for good: sending it again can
 *                        not succeed. Any other error: send it again later.
 *     u32 record         with -EBADMSG or -ERANGE: the index of the first record refused; else 0
 *
 * The builder writes a batch straight into an output Buffer, so a connector appends each record
 * with one memcpy and no allocation; the parser validates the whole frame once and then walks it
 * without copying. */

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#include "buffer.h"
#include "frame.h"

#define BATCH_HEADER_SIZE 16u
#define BATCH_RECORD_HEADER_SIZE 24u
#define BATCH_ACK_SIZE 32u

typedef struct BatchBuilder {
        Buffer *buffer;
        size_t frame_pos; /* where the frame header sits, relative to the buffer's head */
        uint32_t count;
} BatchBuilder;

int batch_begin(BatchBuilder *bb, Buffer *out, uint64_t batch_id, const char *source, size_t source_len);
int batch_add(BatchBuilder *bb, uint64_t seq, uint64_t ts_us, const void *data, uint32_t len);
/* A record whose data is written straight into the batch's buffer (e.g. by a transform): open()
 * writes the record header and says where it is (relative to the buffer's head, so that a move of
 * the buffer's contents does not matter); the caller appends the data to bb->buffer; close()
 * patches its length in and counts the record, or abort() takes header and data back out. */
int batch_add_open(BatchBuilder *bb, uint64_t seq, uint64_t ts_us, size_t *ret_at);
int batch_add_close(BatchBuilder *bb, size_t at, uint32_t *ret_len);
void batch_add_abort(BatchBuilder *bb, size_t at);
/* Patches count and frame size; returns -EMSGSIZE when the batch grew beyond FRAME_SIZE_MAX. */
int batch_end(BatchBuilder *bb);
/* Bytes the batch occupies so far (header included), for deciding when to flush. */
size_t batch_size(const BatchBuilder *bb);

typedef struct BatchView {
        uint64_t batch_id;
        const char *source; /* not NUL-terminated */
        uint16_t source_len;
        uint32_t count;
        const uint8_t *records;
        size_t records_size;
} BatchView;

typedef struct BatchRecord {
        uint64_t seq;
        uint64_t ts_us;
        const char *data; /* not NUL-terminated */
        uint32_t len;
} BatchRecord;

/* The writer's check of a record before it is stored (connectors make the same one when the record
 * enters, see json_scan_line()): 0, -ERANGE for seq UINT64_MAX, or -EBADMSG when the data is not one
 * JSON value on one line, with the offset of the offending byte in *ret_error_offset. One pass over
 * the bytes, no allocation. */
int batch_record_check(const BatchRecord *rec, size_t *ret_error_offset);

/* Validates the whole payload (sizes, counts, source name) and fills *ret; -EBADMSG when malformed. */
int batch_parse(const Frame *f, BatchView *ret);
/* Iterates: *pos starts at 0. Returns 1 with *ret filled, 0 at the end. Only for a parsed view. */
int batch_next(const BatchView *v, size_t *pos, BatchRecord *ret);

typedef struct BatchAck {
        uint64_t batch_id;
        uint64_t first_offset;
        uint32_t stored;
        uint32_t duplicates;
        int32_t error;
        uint32_t record;
} BatchAck;

/* Whether an ack's error refuses its batch for good (see above), rather than asking to resend it. */
static inline bool batch_ack_refused(const BatchAck *ack) {
        return ack->error == -EBADMSG || ack->error == -ERANGE;
}

int batch_ack_append(Buffer *out, const BatchAck *ack);
int batch_ack_parse(const Frame *f, BatchAck *ret);
