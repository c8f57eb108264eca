/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The writer's data path: records are appended into memory (one memcpy and one CRC per record, no
 * system call, no allocation in the steady state), written to the active segment with one write()
 * per flush after the space was reserved, and a full segment rolls to a new one. Durability is
 * queue-sync.c's job. See docs/queue-format.md, "Writing and durability". */

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crc32c.h"
#include "frame.h"
#include "queue-internal.h"
#include "util.h"

/* Past this many bytes appended and not written, queue_append() writes first: bounded memory when
 * the caller appends a lot between flushes. */
#define FLUSH_THRESHOLD (4u * 1024u * 1024u)
/* fallocate() takes a journal handle and waits for a journal commit in progress (the sync thread's
 * fdatasync()): 4-10 ms on the loop. In chunks this large it runs about once per segment. */
#define PREALLOC_CHUNK (64u * 1024u * 1024u)

uint64_t queue_written_next_offset(Queue *q) {
        if (buffer_size(&q->pending) >= QUEUE_RECORD_HEADER_SIZE)
                return le64_get((const uint8_t *) buffer_begin(&q->pending) + 8);
        return q->next_offset;
}

/* Replaces the next-offset file atomically (write, fsync, rename): at a clean exit and after recovery. */
int queue_persist_next_offset(Queue *q) {
        _cleanup_free_ char *path = NULL;
        char buf[32];
        int n;

        path = path_join(q->dir, NEXT_OFFSET_FILE);
        if (!path)
                return -ENOMEM;
        n = snprintf(buf, sizeof(buf), "%" PRIu64 "\n", queue_written_next_offset(q));
        return write_file_atomic(path, buf, (size_t) n);
}

/* The same at a segment roll, without fsync() (two of them cost milliseconds on the writer's loop):
 * there the new segment's name carries the same offset, and recovery takes the highest of both, so
 * a stale or empty file after a crash changes nothing. The directory is synced with the new
 * segment's entry. Written in place, not by a rename: replacing the file frees the old inode's
 * block, and on a file system mounted with "discard" that waited for a discard on the loop at every
 * roll. Reading stops at the first newline, so a shorter number leaves nothing stale in effect. */
static void queue_persist_next_offset_lazy(Queue *q) {
        _cleanup_close_ int fd = -EBADF;
        char buf[32];
        int n;

        n = snprintf(buf, sizeof(buf), "%" PRIu64 "\n", queue_written_next_offset(q));
        fd = openat(q->dir_fd, NEXT_OFFSET_FILE, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0)
                return;
        (void) pwrite(fd, buf, (size_t) n, 0);
}

int queue_add_segment_ref(Queue *q, const SegmentRef *s) {
        if (q->n_segments == q->allocated_segments) {
                size_t a = q->allocated_segments ? q->allocated_segments * 2 : 16;
                SegmentRef *p = reallocarray(q->segments, a, sizeof(SegmentRef));
                if (!p)
                        return -ENOMEM;
                q->segments = p;
                q->allocated_segments = a;
        }
        q->segments[q->n_segments++] = *s;
        q->disk_bytes += s->size;
        return 0;
}

int queue_create_segment(Queue *q) {
        _cleanup_close_ int fd = -EBADF, ifd = -EBADF;
        uint8_t h[QUEUE_SEGMENT_HEADER_SIZE];
        char name[32], idx[32];
        uint64_t now = now_usec(CLOCK_REALTIME), first = queue_written_next_offset(q), allocated = 0;
        int r;

        r = queue_add_segment_ref(q, &(SegmentRef) { .first = first, .size = 0, .mtime_usec = now });
        if (r < 0)
                return r;
        q->n_segments--; /* reserved the slot; committed below */

        segment_name(name, first, "seg");
        segment_name(idx, first, "idx");
        if (q->spare_state == SPARE_READY && renameat(q->dir_fd, SPARE_FILE, q->dir_fd, name) >= 0) {
                fd = TAKE_FD(q->spare_fd);
                q->spare_state = SPARE_NONE;
                allocated = q->opts.segment_size;
        } else {
                fd = openat(q->dir_fd, name, O_RDWR | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
                if (fd < 0)
                        return -errno;
        }
        segment_header_build(h, first, now);
        r = loop_write(fd, h, sizeof(h));
        if (r < 0) {
                (void) unlinkat(q->dir_fd, name, 0);
                return r;
        }
        ifd = openat(q->dir_fd, idx, O_RDWR | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
        if (ifd < 0) {
                r = -errno;
                (void) unlinkat(q->dir_fd, name, 0);
                return r;
        }

        safe_close(q->active_fd);
        safe_close(q->index_fd);
        q->active_fd = TAKE_FD(fd);
        q->index_fd = TAKE_FD(ifd);
        q->active_first = first;
        q->active_size = QUEUE_SEGMENT_HEADER_SIZE;
        q->writeback_pos = 0;
        q->allocated_end = allocated;
        q->active_created_us = now;
        q->last_write_usec = now;
        q->index_last_pos = 0;
        q->segments[q->n_segments++] = (SegmentRef) { .first = first, .size = QUEUE_SEGMENT_HEADER_SIZE, .mtime_usec = now };
        q->disk_bytes += QUEUE_SEGMENT_HEADER_SIZE;
        q->need_data_sync = true;
        q->need_dir_sync = true;
        return 0;
}

int queue_roll(Queue *q) {
        _cleanup_close_ int sealed = -EBADF;
        bool unsynced = q->need_data_sync || q->inflight_data;
        int r;

        /* At most one closed segment is not durable, and it is the one before the active one:
         * recovery relies on that (see queue_recover_sealed()). Sync an earlier one here. */
        r = queue_sync_sealed(q);
        if (r < 0)
                return r;
        if (unsynced && q->opts.roll_when_synced) {
                /* The old segment becomes the sealed one: the next sync makes it durable before
                 * the new segment, and until then acks under --sync=batch wait. Should its tail be
                 * lost in a crash, recovery cuts it and quarantines the new segment as a whole. */
                sealed = fcntl(q->active_fd, F_DUPFD_CLOEXEC, 3);
                if (sealed < 0)
                        return -errno;
        } else if (unsynced) {
                /* The old segment must be durable before anything lands in the new one. A sync
                 * running elsewhere (queue_sync_begin()) has not necessarily finished: do it here. */
                if (fdatasync(q->active_fd) < 0)
                        return -errno;
                q->need_data_sync = false;
        }
        /* Give back the space reserved past the end of the segment we close. */
        if (q->allocated_end > q->active_size)
                (void) ftruncate(q->active_fd, (off_t) q->active_size);
        q->segments[q->n_segments - 1].mtime_usec = q->last_write_usec > 0 ? q->last_write_usec : now_usec(CLOCK_REALTIME);
        r = queue_create_segment(q);
        if (r < 0)
                return r;
        if (sealed >= 0) {
                q->sealed_fd = TAKE_FD(sealed);
                q->sealed_inflight = false;
        }
        queue_persist_next_offset_lazy(q);
        return 0;
}

int queue_append(Queue *q, const char *source, size_t source_len, const QueueAppend *records, size_t n,
                 uint64_t *ret_first_offset) {
        uint64_t total = 0, pos, max_seq = 0;
        uint8_t *p;
        int r;

        assert(q);
        assert(records || n == 0);

        if (!source_name_is_valid_n(source, source_len))
                return -EINVAL;
        if (n == 0) {
                if (ret_first_offset)
                        *ret_first_offset = q->next_offset;
                return 0;
        }
        for (size_t i = 0; i < n; i++) {
                if (records[i].data_len > QUEUE_DATA_MAX)
                        return -EMSGSIZE;
                total += QUEUE_RECORD_HEADER_SIZE + source_len + records[i].data_len;
                max_seq = MAX(max_seq, records[i].seq);
        }
        if (q->opts.max_bytes > 0 && q->disk_bytes + buffer_size(&q->pending) + total > q->opts.max_bytes)
                return -ENOSPC;

        /* Keep the memory bounded when the caller appends a lot between flushes. */
        if (buffer_size(&q->pending) >= FLUSH_THRESHOLD) {
                r = queue_flush(q);
                if (r < 0)
                        return r;
        }

        /* Everything that can fail comes first, so that a failure stores nothing. */
        r = buffer_reserve(&q->pending, (size_t) total);
        if (r < 0)
                return r;
        r = buffer_reserve(&q->index_pending, (size_t) (total / QUEUE_INDEX_INTERVAL + 2) * 16);
        if (r < 0)
                return r;
        r = source_table_update(&q->sources, source, source_len, max_seq);
        if (r < 0)
                return r;

        if (ret_first_offset)
                *ret_first_offset = q->next_offset;
        pos = q->active_size + buffer_size(&q->pending);
        for (size_t i = 0; i < n; i++) {
                const QueueAppend *a = records + i;
                uint32_t size = QUEUE_RECORD_HEADER_SIZE + (uint32_t) source_len + a->data_len;
                uint32_t crc;

                p = (uint8_t *) buffer_tail(&q->pending);
                record_header_build(p, size, q->next_offset, a->ts_us, a->seq, (uint16_t) source_len, a->data_len);
                memcpy(p + QUEUE_RECORD_HEADER_SIZE, source, source_len);
                memcpy(p + QUEUE_RECORD_HEADER_SIZE + source_len, a->data, a->data_len);
                crc = crc32c(0, p + 8, size - 8);
                le32_put(p + 4, crc);
                buffer_advance(&q->pending, size);

                if (pos - q->index_last_pos >= QUEUE_INDEX_INTERVAL) {
                        uint8_t *e = (uint8_t *) buffer_tail(&q->index_pending);
                        le64_put(e, q->next_offset);
                        le64_put(e + 8, pos);
                        buffer_advance(&q->index_pending, 16);
                        q->index_last_pos = pos;
                }
                pos += size;
                q->next_offset++;
        }
        return 0;
}

/* Reserves disk space before writing (fallocate with KEEP_SIZE: the file size, and so what readers
 * see, does not change). A full disk then shows up here, before a single byte is written, rather
 * than as a short write whose bytes a reader may already have seen. */
static int queue_reserve_space(Queue *q, uint64_t end) {
        uint64_t want;

        if (q->no_fallocate || end <= q->allocated_end)
                return 0;
        want = MAX(end, MIN(end + PREALLOC_CHUNK, MAX(q->opts.segment_size, end)));
        for (;;) {
                if (fallocate(q->active_fd, FALLOC_FL_KEEP_SIZE, (off_t) q->active_size,
                              (off_t) (want - q->active_size)) >= 0) {
                        q->allocated_end = want;
                        return 0;
                }
                if (errno == EOPNOTSUPP || errno == ENOSYS || errno == EINVAL) {
                        q->no_fallocate = true;
                        return 0;
                }
                if (errno == EINTR)
                        continue;
                if ((errno == ENOSPC || errno == EDQUOT) && want > end) {
                        want = end; /* no room for the read-ahead: try what is needed now */
                        continue;
                }
                return -errno;
        }
}

size_t queue_pending_bytes(Queue *q) {
        return buffer_size(&q->pending);
}

int queue_flush(Queue *q) {
        size_t size = buffer_size(&q->pending);
        int r;

        assert(q);

        if (size > 0) {
                r = queue_reserve_space(q, q->active_size + size);
                if (r < 0)
                        return r; /* nothing written: readers never see records that might go away */
                r = loop_write(q->active_fd, buffer_begin(&q->pending), size);
                if (r < 0) {
                        /* Cut back whatever part made it, so the file never holds half a flush; the
                         * bytes stay pending (same offsets, same content) for the next attempt. */
                        if (ftruncate(q->active_fd, (off_t) q->active_size) < 0)
                                return -errno;
                        return r;
                }
                buffer_clear(&q->pending);
                q->active_size += size;
                q->disk_bytes += size;
                q->segments[q->n_segments - 1].size = q->active_size;
                q->need_data_sync = true;
                if (q->opts.retention_usec > 0)
                        q->last_write_usec = now_usec(CLOCK_REALTIME);
        }
        if (buffer_size(&q->index_pending) > 0) {
                struct stat st;
                /* The index is advisory (readers verify every record and fall back to a scan): on
                 * failure drop the new entries rather than fail the append. */
                if (fstat(q->index_fd, &st) >= 0 &&
                    loop_write(q->index_fd, buffer_begin(&q->index_pending), buffer_size(&q->index_pending)) < 0)
                        (void) ftruncate(q->index_fd, st.st_size);
                buffer_clear(&q->index_pending);
        }
        if (q->active_size >= q->opts.segment_size && q->next_offset > q->active_first) {
                r = queue_roll(q);
                if (r == -ENOSPC || r == -EDQUOT)
                        return 0; /* keep writing to the full segment; try again after the next flush */
                if (r < 0)
                        return r;
                (void) queue_apply_retention(q);
        }
        return 0;
}

