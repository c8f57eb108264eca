/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The queue's on-disk format, shared by the queue's own files only (common/queue*.c): file names,
 * the segment header, records, the sparse index, and a cursor that reads a segment file record by
 * record. Everything here is about bytes on disk; what the writer and the readers do with them is
 * in queue-internal.h and queue.h. The format is documented in docs/queue-format.md:
 *
 *     <dir>/<first offset, 20 digits>.seg   segment: 32-byte header, then records back to back
 *     <dir>/<first offset, 20 digits>.idx   sparse index of that segment: (u64 offset, u64 position)
 *     <dir>/next-offset                     lower bound for the next offset (survives deletion)
 *     <dir>/spare-segment                   the next segment's file, reserved ahead (no data)
 *     <dir>/salvage-segment                 a damaged segment's copy being written (recovery)
 *     <dir>/.lock                           flock()ed by the one writer
 *     <dir>/corrupt/                        quarantined segments and copies of damaged ones
 *
 * A record:
 *
 *     u32 size        whole record, header included
 *     u32 crc32c      of every byte after this field
 *     u64 offset
 *     u64 ts_us
 *     u64 seq
 *     u16 source_len
 *     u16 flags       0
 *     u32 data_len
 *     u8  source[source_len]
 *     u8  data[data_len]
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buffer.h"
#include "frame.h"
#include "queue.h"

#define SEGMENT_MAGIC "DPQSEG01"
#define SEGMENT_VERSION 1u
#define SEGMENT_NAME_DIGITS 20
#define NEXT_OFFSET_FILE "next-offset"
#define SPARE_FILE "spare-segment"
#define SALVAGE_FILE "salvage-segment"
#define CORRUPT_DIR "corrupt"
#define RECORD_SIZE_MAX (QUEUE_RECORD_HEADER_SIZE + SOURCE_NAME_MAX + QUEUE_DATA_MAX)

/* ---- segment names and headers ---- */

typedef struct SegmentRef {
        uint64_t first;
        uint64_t size;       /* bytes on disk */
        uint64_t mtime_usec; /* last modification, for age retention */
} SegmentRef;

/* "<first, 20 digits>.<suffix>" */
void segment_name(char buf[static 32], uint64_t first, const char *suffix);
bool segment_name_parse(const char *name, uint64_t *ret);
/* Lists the segments of dir_fd sorted by first offset; sizes and times only with with_stat. */
int segments_list(int dir_fd, bool with_stat, SegmentRef **ret, size_t *ret_n);

void segment_header_build(uint8_t h[static QUEUE_SEGMENT_HEADER_SIZE], uint64_t first, uint64_t created_us);
int segment_header_check(const uint8_t *h, uint64_t first, uint64_t *ret_created_us);

/* ---- records ---- */

/* The header of a record with its CRC field zero: the caller computes the CRC once the source and
 * data are in place behind it. Inline: queue_append() builds one per record. */
static inline void record_header_build(uint8_t *h, uint32_t size, uint64_t offset, uint64_t ts_us, uint64_t seq,
                                       uint16_t source_len, uint32_t data_len) {
        le32_put(h, size);
        le32_put(h + 4, 0);
        le64_put(h + 8, offset);
        le64_put(h + 16, ts_us);
        le64_put(h + 24, seq);
        le16_put(h + 32, source_len);
        le16_put(h + 34, 0);
        le32_put(h + 36, data_len);
}
/* Parses the record at p (avail bytes there). Returns 1 with *ret filled and *ret_size set, 0 when
 * more bytes are needed (avail is shorter than the record claims), -EBADMSG when it is invalid. */
int record_parse(const uint8_t *p, size_t avail, QueueRecord *ret, uint32_t *ret_size);

/* After the bytes at position from of a segment file turned out not to be a valid record (damage):
 * finds the first position after it where a valid record starts whose offset is in [min_offset,
 * max_offset] — the offset after the last valid record before the damage, and below the next
 * segment, if known. Candidates are checked cheaply first (sizes that add up, flags 0, the offset),
 * so random bytes almost never cost a CRC; the CRC decides. Returns 1 with the record's position and
 * offset, 0 when the file holds none up to its end, negative errno if it cannot be read. */
int segment_resync(int fd, uint64_t from, uint64_t min_offset, uint64_t max_offset, uint64_t *ret_pos,
                   uint64_t *ret_offset);

/* ---- the sparse index ---- */

/* The position of the last entry at or below target in the index of segment first (seg_size bytes),
 * or the first record's position. Stops trusting the file at the first entry out of order or out
 * of the segment. */
uint64_t index_lookup(int dir_fd, uint64_t first, uint64_t target, uint64_t seg_size);

/* ---- the next-offset file ---- */

int next_offset_file_read(int dir_fd, uint64_t *ret);

/* ---- reading a segment file sequentially ---- */

typedef struct SegmentCursor {
        int fd;
        Buffer buf;
        uint64_t pos; /* file position of the buffer's head */
} SegmentCursor;

void segment_cursor_done(SegmentCursor *c);
int segment_cursor_seek(SegmentCursor *c, uint64_t pos);
/* Returns 1 with the next record (its position in *ret_pos), 0 at a clean end of the file, -EPIPE
 * when the file ends inside a record (torn, or still being written), -EBADMSG when the bytes at
 * c->pos are not a valid record. Reads on from where it stopped when called again later. */
int segment_cursor_next(SegmentCursor *c, QueueRecord *ret, uint64_t *ret_pos);
