/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>

#include "batch.h"
#include "json-scan.h"
#include "util.h"

int batch_begin(BatchBuilder *bb, Buffer *out, uint64_t batch_id, const char *source, size_t source_len) {
        uint8_t h[BATCH_HEADER_SIZE];
        size_t pos;
        int r;

        if (!source_name_is_valid_n(source, source_len))
                return -EINVAL;
        r = frame_begin(out, FRAME_BATCH, &pos);
        if (r < 0)
                return r;
        le64_put(h, batch_id);
        le16_put(h + 8, (uint16_t) source_len);
        le16_put(h + 10, 0);
        le32_put(h + 12, 0);
        r = buffer_append(out, h, sizeof(h));
        if (r < 0)
                return r;
        r = buffer_append(out, source, source_len);
        if (r < 0)
                return r;
        *bb = (BatchBuilder) { .buffer = out, .frame_pos = pos };
        return 0;
}

int batch_add(BatchBuilder *bb, uint64_t seq, uint64_t ts_us, const void *data, uint32_t len) {
        uint8_t *p;
        int r;

        r = buffer_reserve(bb->buffer, BATCH_RECORD_HEADER_SIZE + (size_t) len);
        if (r < 0)
                return r;
        p = (uint8_t *) buffer_tail(bb->buffer);
        le32_put(p, len);
        le32_put(p + 4, 0);
        le64_put(p + 8, seq);
        le64_put(p + 16, ts_us);
        memcpy(p + BATCH_RECORD_HEADER_SIZE, data, len);
        buffer_advance(bb->buffer, BATCH_RECORD_HEADER_SIZE + (size_t) len);
        bb->count++;
        return 0;
}

int batch_add_open(BatchBuilder *bb, uint64_t seq, uint64_t ts_us, size_t *ret_at) {
        uint8_t *p;
        int r;

        r = buffer_reserve(bb->buffer, BATCH_RECORD_HEADER_SIZE);
        if (r < 0)
                return r;
        *ret_at = buffer_size(bb->buffer);
        p = (uint8_t *) buffer_tail(bb->buffer);
        le32_put(p, 0); /* the length, once known */
        le32_put(p + 4, 0);
        le64_put(p + 8, seq);
        le64_put(p + 16, ts_us);
        buffer_advance(bb->buffer, BATCH_RECORD_HEADER_SIZE);
        return 0;
}

int batch_add_close(BatchBuilder *bb, size_t at, uint32_t *ret_len) {
        size_t len = buffer_size(bb->buffer) - at - BATCH_RECORD_HEADER_SIZE;

        if (len > UINT32_MAX) {
                batch_add_abort(bb, at);
                return -EMSGSIZE;
        }
        le32_put((uint8_t *) buffer_begin(bb->buffer) + at, (uint32_t) len);
        bb->count++;
        *ret_len = (uint32_t) len;
        return 0;
}

void batch_add_abort(BatchBuilder *bb, size_t at) {
        bb->buffer->tail = bb->buffer->head + at;
}

size_t batch_size(const BatchBuilder *bb) {
        return bb->buffer->tail - bb->buffer->head - bb->frame_pos;
}

int batch_end(BatchBuilder *bb) {
        uint8_t *h = (uint8_t *) buffer_begin(bb->buffer) + bb->frame_pos + FRAME_HEADER_SIZE;

        le32_put(h + 12, bb->count);
        return frame_finish(bb->buffer, bb->frame_pos);
}

int batch_parse(const Frame *f, BatchView *ret) {
        const uint8_t *p = f->payload;
        size_t pos, end = f->size;
        BatchView v;

        if (f->type != FRAME_BATCH || f->size < BATCH_HEADER_SIZE)
                return -EBADMSG;
        v = (BatchView) {
                .batch_id = le64_get(p),
                .source_len = le16_get(p + 8),
                .count = le32_get(p + 12),
        };
        if (v.source_len > end - BATCH_HEADER_SIZE)
                return -EBADMSG;
        v.source = (const char *) p + BATCH_HEADER_SIZE;
        if (!source_name_is_valid_n(v.source, v.source_len))
                return -EBADMSG;
        v.records = p + BATCH_HEADER_SIZE + v.source_len;
        v.records_size = end - BATCH_HEADER_SIZE - v.source_len;

        /* Walk once so that batch_next() can trust every length. */
        pos = 0;
        for (uint32_t i = 0; i < v.count; i++) {
                uint32_t len;

                if (v.records_size - pos < BATCH_RECORD_HEADER_SIZE)
                        return -EBADMSG;
                len = le32_get(v.records + pos);
                pos += BATCH_RECORD_HEADER_SIZE;
                if (v.records_size - pos < len)
                        return -EBADMSG;
                pos += len;
        }
        if (pos != v.records_size)
                return -EBADMSG;

        *ret = v;
        return 0;
}

int batch_next(const BatchView *v, size_t *pos, BatchRecord *ret) {
        const uint8_t *p;

        if (*pos >= v->records_size)
                return 0;
        p = v->records + *pos;
        *ret = (BatchRecord) {
                .len = le32_get(p),
                .seq = le64_get(p + 8),
                .ts_us = le64_get(p + 16),
                .data = (const char *) p + BATCH_RECORD_HEADER_SIZE,
        };
        *pos += BATCH_RECORD_HEADER_SIZE + ret->len;
        return 1;
}

int batch_record_check(const BatchRecord *rec, size_t *ret_error_offset) {
        if (rec->seq == UINT64_MAX)
                return -ERANGE;
        if (json_scan_line_check(rec->data, rec->len, ret_error_offset) < 0)
                return -EBADMSG;
        return 0;
}

int batch_ack_append(Buffer *out, const BatchAck *ack) {
        uint8_t p[BATCH_ACK_SIZE];

        le64_put(p, ack->batch_id);
        le64_put(p + 8, ack->first_offset);
        le32_put(p + 16, ack->stored);
        le32_put(p + 20, ack->duplicates);
        le32_put(p + 24, (uint32_t) ack->error);
        le32_put(p + 28, ack->record);
        return frame_append(out, FRAME_ACK, p, sizeof(p));
}

int batch_ack_parse(const Frame *f, BatchAck *ret) {
        const uint8_t *p = f->payload;

        if (f->type != FRAME_ACK || f->size < BATCH_ACK_SIZE)
                return -EBADMSG;
        *ret = (BatchAck) {
                .batch_id = le64_get(p),
                .first_offset = le64_get(p + 8),
                .stored = le32_get(p + 16),
                .duplicates = le32_get(p + 20),
                .error = (int32_t) le32_get(p + 24),
                .record = le32_get(p + 28),
        };
        return 0;
}
