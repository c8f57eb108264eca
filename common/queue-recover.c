/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The start-up phases of queue_open() (queue.c): take the lock, recover the state (next-offset file,
 * segment list), verify every segment, start the active segment, commit. What recovery does to
 * damaged files, and why, is in docs/queue-format.md ("Recovery at start-up"). Recovery never refuses
 * to start because of the data it found and never runs the same repair twice, so a damaged queue
 * cannot cause a crash loop. */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "frame.h"
#include "queue-internal.h"
#include "util.h"

static int copy_fd(int from, int to) {
        char buf[64 * 1024];
        off_t pos = 0;

        for (;;) {
                ssize_t n = pread(from, buf, sizeof(buf), pos);
                if (n < 0)
                        return -errno;
                if (n == 0)
                        return 0;
                for (ssize_t w = 0; w < n;) {
                        ssize_t k = write(to, buf + w, (size_t) (n - w));
                        if (k < 0)
                                return -errno;
                        w += k;
                }
                pos += n;
        }
}

/* Moves (or copies, when keep is set because the live file will be cut back instead) a segment
 * into corrupt/. Returns the name it got there in ret_name. */
static int queue_quarantine(Queue *q, uint64_t first, bool keep, char ret_name[static 64]) {
        char name[32], idx[32], target[64];
        int r;

        segment_name(name, first, "seg");
        segment_name(idx, first, "idx");
        if (mkdirat(q->dir_fd, CORRUPT_DIR, 0755) < 0 && errno != EEXIST)
                return -errno;
        snprintf(target, sizeof(target), CORRUPT_DIR "/%s", name);
        if (faccessat(q->dir_fd, target, F_OK, 0) == 0)
                snprintf(target, sizeof(target), CORRUPT_DIR "/%s.%" PRIu64, name, now_usec(CLOCK_REALTIME));

        if (keep) {
                _cleanup_close_ int from = -EBADF, to = -EBADF;

                from = openat(q->dir_fd, name, O_RDONLY | O_CLOEXEC);
                if (from < 0)
                        return -errno;
                to = openat(q->dir_fd, target, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
                if (to < 0)
                        return -errno;
                r = copy_fd(from, to);
                if (r >= 0 && fsync(to) < 0)
                        r = -errno;
                if (r < 0) {
                        (void) unlinkat(q->dir_fd, target, 0);
                        return r;
                }
        } else {
                if (renameat(q->dir_fd, name, q->dir_fd, target) < 0)
                        return -errno;
                (void) unlinkat(q->dir_fd, idx, 0);
        }
        (void) fsync(q->dir_fd);
        snprintf(ret_name, 64, "%s", target);
        return 0;
}

/* After a bad record at position from: are there valid records further on? Then it is corruption,
 * not a torn tail. Returns true and the highest offset found. */
static int segment_resync(int fd, uint64_t from, uint64_t size, bool *ret_found, uint64_t *ret_max_offset) {
        _cleanup_free_ uint8_t *buf = NULL;
        uint64_t max_offset = 0;
        bool found = false;
        size_t len;
        ssize_t n;

        *ret_found = false;
        if (size <= from + 1)
                return 0;
        len = (size_t) (size - from - 1);
        buf = malloc(len);
        if (!buf)
                return -ENOMEM;
        n = pread(fd, buf, len, (off_t) from + 1);
        if (n < 0)
                return -errno;
        for (size_t i = 0; i + QUEUE_RECORD_HEADER_SIZE <= (size_t) n;) {
                QueueRecord rec;
                uint32_t rsize;

                if (record_parse(buf + i, (size_t) n - i, &rec, &rsize) > 0) {
                        found = true;
                        max_offset = MAX(max_offset, rec.offset);
                        i += rsize;
                } else
                        i++;
        }
        *ret_found = found;
        *ret_max_offset = max_offset;
        return 0;
}

typedef struct ScanResult {
        uint64_t next_offset; /* after the last valid record */
        uint64_t valid_end;   /* position after the last valid record */
        uint64_t records;
        int error;            /* 0, -EPIPE (ends inside a record), -EBADMSG (invalid record at valid_end) */
} ScanResult;

/* Verifies every record of a segment whose header is valid; feeds the source table; collects index
 * entries when idx is given. */
static int segment_scan(Queue *q, int fd, uint64_t first, Buffer *idx, ScanResult *ret) {
        _cleanup_(segment_cursor_done) SegmentCursor c = { .fd = fd };
        uint64_t expected = first, idx_last = 0;
        int r;

        r = segment_cursor_seek(&c, QUEUE_SEGMENT_HEADER_SIZE);
        if (r < 0)
                return r;
        *ret = (ScanResult) { .next_offset = first, .valid_end = QUEUE_SEGMENT_HEADER_SIZE };
        for (;;) {
                QueueRecord rec;
                uint64_t pos;

                r = segment_cursor_next(&c, &rec, &pos);
                if (r == 0)
                        return 0;
                if (r == -EPIPE || r == -EBADMSG) {
                        ret->error = r;
                        return 0;
                }
                if (r < 0)
                        return r;
                if (rec.offset != expected) {
                        ret->error = -EBADMSG;
                        return 0;
                }
                r = source_table_update(&q->sources, rec.source, rec.source_len, rec.seq);
                if (r < 0)
                        return r;
                if (idx && pos - idx_last >= QUEUE_INDEX_INTERVAL) {
                        uint8_t e[16];
                        le64_put(e, rec.offset);
                        le64_put(e + 8, pos);
                        r = buffer_append(idx, e, sizeof(e));
                        if (r < 0)
                                return r;
                        idx_last = pos;
                }
                expected++;
                ret->records++;
                ret->next_offset = expected;
                ret->valid_end = c.pos;
        }
}

/* Moves segment s (open as fd) to corrupt/ as a whole, without trusting its header or its scan: the
 * offsets it had handed out — from its name up to the highest offset any valid record in it still
 * carries — are never handed out again. */
static int queue_quarantine_unreadable(Queue *q, const SegmentRef *s, int fd, char qname[static 64]) {
        uint64_t max_offset = 0;
        bool found = false;
        int r;

        r = segment_resync(fd, 0, s->size, &found, &max_offset);
        if (r < 0)
                return r;
        r = queue_quarantine(q, s->first, false, qname);
        if (r < 0)
                return r;
        q->next_offset = MAX(q->next_offset, s->first);
        if (found)
                q->next_offset = MAX(q->next_offset, max_offset + 1);
        return 0;
}

/* Recovers the last segment: keeps what is valid, cuts a torn tail, quarantines corruption. Returns
 * 1 if it stays the active segment (fds set), 0 if it was quarantined as a whole. */
static int queue_recover_last(Queue *q, const SegmentRef *s) {
        _cleanup_close_ int fd = -EBADF, ifd = -EBADF;
        _cleanup_(buffer_done) Buffer idx = {};
        uint8_t h[QUEUE_SEGMENT_HEADER_SIZE];
        char name[32], iname[32], qname[64];
        uint64_t created_us = 0, size = s->size;
        ScanResult scan;
        ssize_t n;
        int r;

        segment_name(name, s->first, "seg");
        segment_name(iname, s->first, "idx");
        fd = openat(q->dir_fd, name, O_RDWR | O_APPEND | O_CLOEXEC);
        if (fd < 0)
                return -errno;

        n = pread(fd, h, sizeof(h), 0);
        if (n < 0)
                return -errno;
        if ((size_t) n < sizeof(h)) {
                /* Torn while the segment was being created: nothing was in it yet. */
                created_us = now_usec(CLOCK_REALTIME);
                segment_header_build(h, s->first, created_us);
                if (ftruncate(fd, 0) < 0)
                        return -errno;
                r = write_all(fd, h, sizeof(h));
                if (r < 0)
                        return r;
                queue_event(q, QUEUE_EVENT_TRUNCATED, "Segment %s had a torn header (%zd bytes), rewrote it", name, n);
                size = sizeof(h);
        } else if (segment_header_check(h, s->first, &created_us) < 0) {
                r = queue_quarantine_unreadable(q, s, fd, qname);
                if (r < 0)
                        return r;
                queue_event(q, QUEUE_EVENT_QUARANTINED,
                            "Segment %s has a corrupt header; moved it to %s, continuing at offset %" PRIu64, name,
                            qname, q->next_offset);
                return 0;
        }

        r = segment_scan(q, fd, s->first, &idx, &scan);
        if (r < 0)
                return r;
        if (scan.error != 0) {
                uint64_t cut = size - scan.valid_end, max_offset = 0;
                bool found = false;

                if (scan.error == -EBADMSG) {
                        r = segment_resync(fd, scan.valid_end, size, &found, &max_offset);
                        if (r < 0)
                                return r;
                }
                if (scan.error == -EBADMSG) {
                        /* A complete but invalid record: not a torn write. Keep a copy of the whole
                         * segment, then cut the live one back to what is valid. */
                        r = queue_quarantine(q, s->first, true, qname);
                        if (r < 0)
                                return r;
                        if (ftruncate(fd, (off_t) scan.valid_end) < 0)
                                return -errno;
                        if (found)
                                q->next_offset = MAX(q->next_offset, max_offset + 1);
                        queue_event(q, QUEUE_EVENT_QUARANTINED,
                                    "Segment %s has a corrupt record at position %" PRIu64
                                    " (offset %" PRIu64 "); copied the segment to %s and cut %" PRIu64
                                    " bytes%s, continuing at offset %" PRIu64,
                                    name, scan.valid_end, scan.next_offset, qname, cut,
                                    found ? " including later valid records" : "",
                                    MAX(q->next_offset, scan.next_offset));
                } else {
                        if (ftruncate(fd, (off_t) scan.valid_end) < 0)
                                return -errno;
                        queue_event(q, QUEUE_EVENT_TRUNCATED,
                                    "Segment %s ended in a torn record at position %" PRIu64 " (offset %" PRIu64
                                    "); cut %" PRIu64 " bytes",
                                    name, scan.valid_end, scan.next_offset, cut);
                }
                if (fsync(fd) < 0)
                        return -errno;
                size = scan.valid_end;
        }

        /* The sparse index of the active segment is rebuilt from the scan. */
        ifd = openat(q->dir_fd, iname, O_RDWR | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
        if (ifd < 0)
                return -errno;
        r = write_all(ifd, buffer_begin(&idx), buffer_size(&idx));
        if (r < 0)
                return r;

        r = queue_add_segment_ref(q, &(SegmentRef) { .first = s->first, .size = size, .mtime_usec = s->mtime_usec });
        if (r < 0)
                return r;
        q->active_fd = TAKE_FD(fd);
        q->index_fd = TAKE_FD(ifd);
        q->active_first = s->first;
        q->active_size = size;
        q->writeback_pos = size; /* what is there was written back before: no writeback for it */
        q->active_created_us = created_us;
        q->last_write_usec = s->mtime_usec;
        q->index_last_pos = buffer_size(&idx) >= 16 ? le64_get((const uint8_t *) buffer_begin(&idx) + buffer_size(&idx) - 8) : 0;
        q->active_end = scan.next_offset;
        q->next_offset = MAX(q->next_offset, scan.next_offset);
        return 1;
}

/* The second-to-last segment s (open as fd) failed its scan. If it ends in a torn tail — the file
 * ends inside a record, or no valid record follows the bad bytes (zeros or garbage to the end, what
 * a power loss leaves in a file whose last writes were not durable) — it was the segment that was
 * sealed at a roll while its last sync had not completed yet (roll_when_synced): cut it back to its
 * last valid record like a torn last segment, and rebuild its index. Returns 1 when it did (the
 * caller quarantines the last segment, written after the lost records), 0 when it is corruption
 * (the caller quarantines this segment as a whole, as for any other). */
static int queue_recover_sealed(Queue *q, const SegmentRef *s, int fd, const ScanResult *scan, const Buffer *idx) {
        _cleanup_close_ int wfd = -EBADF, ifd = -EBADF;
        char name[32], iname[32];
        uint64_t max_offset = 0;
        bool found = false;
        int r;

        if (scan->error == -EBADMSG) {
                r = segment_resync(fd, scan->valid_end, s->size, &found, &max_offset);
                if (r < 0)
                        return r;
                if (found)
                        return 0; /* valid records after it: corruption, not a torn tail */
        }

        segment_name(name, s->first, "seg");
        segment_name(iname, s->first, "idx");
        wfd = openat(q->dir_fd, name, O_WRONLY | O_CLOEXEC);
        if (wfd < 0)
                return -errno;
        if (ftruncate(wfd, (off_t) scan->valid_end) < 0)
                return -errno;
        if (fsync(wfd) < 0)
                return -errno;
        /* Its index must not point past the cut. */
        ifd = openat(q->dir_fd, iname, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (ifd >= 0 && write_all(ifd, buffer_begin(idx), buffer_size(idx)) < 0)
                (void) ftruncate(ifd, 0);
        queue_event(q, QUEUE_EVENT_TRUNCATED,
                    "Segment %s (not the last one) ended in a torn tail at position %" PRIu64 " (offset %" PRIu64
                    "): its last sync did not complete before a crash; cut %" PRIu64 " bytes",
                    name, scan->valid_end, scan->next_offset, s->size - scan->valid_end);
        return 1;
}


void queue_recovery_done(QueueRecovery *rec) {
        free(rec->found);
        *rec = (QueueRecovery) {};
}

int queue_recover_lock(Queue *q) {
        int r;

        r = mkdir_p(q->dir, 0755);
        if (r < 0)
                return r;
        q->dir_fd = open(q->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (q->dir_fd < 0)
                return -errno;
        q->lock_fd = openat(q->dir_fd, ".lock", O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (q->lock_fd < 0)
                return -errno;
        if (flock(q->lock_fd, LOCK_EX | LOCK_NB) < 0)
                return errno == EWOULDBLOCK ? -EBUSY : -errno;

        /* A spare segment left by a crash holds nothing. */
        if (unlinkat(q->dir_fd, SPARE_FILE, 0) < 0 && errno != ENOENT)
                return -errno;
        return 0;
}

int queue_recover_state(Queue *q, QueueRecovery *rec) {
        uint64_t persisted = 0;

        rec->have_persisted = next_offset_file_read(q->dir_fd, &persisted) >= 0;
        q->next_offset = persisted;
        return segments_list(q->dir_fd, true, &rec->found, &rec->n_found);
}

/* What the verification of one segment tells the next. */
typedef struct VerifyState {
        bool have_prev;
        uint64_t prev_end;     /* offset after the last record of the last segment kept */
        bool quarantine_last;  /* the second-to-last segment had a torn tail */
} VerifyState;

/* A segment before the last one: kept, cut back (a torn second-to-last segment) or quarantined. */
static int queue_recover_older(Queue *q, const QueueRecovery *rec, size_t i, VerifyState *v) {
        const SegmentRef *s = rec->found + i;
        _cleanup_close_ int fd = -EBADF;
        _cleanup_(buffer_done) Buffer idx = {};
        uint8_t h[QUEUE_SEGMENT_HEADER_SIZE];
        char name[32], qname[64];
        ScanResult scan = {};
        bool second_to_last = i + 2 == rec->n_found;
        ssize_t k;
        int r;

        segment_name(name, s->first, "seg");
        fd = openat(q->dir_fd, name, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        k = pread(fd, h, sizeof(h), 0);
        if (k < 0)
                return -errno;
        if ((size_t) k < sizeof(h) || segment_header_check(h, s->first, NULL) < 0)
                scan.error = -EBADMSG;
        else {
                r = segment_scan(q, fd, s->first, second_to_last ? &idx : NULL, &scan);
                if (r == -EIO)
                        scan.error = r; /* unreadable: quarantine it, do not crash-loop */
                else if (r < 0)
                        return r;
        }
        /* Only with an intact header: a bad one is not what a torn tail looks like. */
        if (second_to_last && scan.valid_end >= QUEUE_SEGMENT_HEADER_SIZE &&
            (scan.error == -EPIPE || scan.error == -EBADMSG)) {
                r = queue_recover_sealed(q, s, fd, &scan, &idx);
                if (r < 0)
                        return r;
                if (r > 0) {
                        v->quarantine_last = true;
                        scan.error = 0;
                }
        }
        if (scan.error != 0) {
                r = queue_quarantine(q, s->first, false, qname);
                if (r < 0)
                        return r;
                queue_event(q, QUEUE_EVENT_QUARANTINED,
                            "Segment %s is corrupt at position %" PRIu64 " (after offset %" PRIu64
                            "); moved it to %s, its records are no longer served",
                            name, scan.valid_end, scan.next_offset, qname);
                /* Its offsets are never handed out again. */
                q->next_offset = MAX(q->next_offset, rec->found[i + 1].first);
                return 0;
        }
        r = queue_add_segment_ref(q, &(SegmentRef) {
                .first = s->first,
                .size = v->quarantine_last ? scan.valid_end : s->size,
                .mtime_usec = s->mtime_usec,
        });
        if (r < 0)
                return r;
        q->next_offset = MAX(q->next_offset, scan.next_offset);
        v->prev_end = scan.next_offset;
        v->have_prev = true;
        return 0;
}

int queue_recover_segments(Queue *q, QueueRecovery *rec) {
        VerifyState v = {};
        size_t n = rec->n_found;
        int r;

        for (size_t i = 0; i < n; i++) {
                const SegmentRef *s = rec->found + i;
                char name[32], qname[64];

                segment_name(name, s->first, "seg");
                if (n > 1)
                        queue_event(q, QUEUE_EVENT_PROGRESS, "Verifying segment %zu of %zu (%s)", i + 1, n, name);
                if (v.have_prev && s->first < v.prev_end) {
                        /* Overlaps what the segments before it hold: it can not be trusted. */
                        r = queue_quarantine(q, s->first, false, qname);
                        if (r < 0)
                                return r;
                        queue_event(q, QUEUE_EVENT_QUARANTINED,
                                    "Segment %s overlaps the segment before it (which ends at offset %" PRIu64
                                    "); moved it to %s",
                                    name, v.prev_end, qname);
                        continue;
                }

                if (i + 1 == n && v.quarantine_last) {
                        /* Everything in it was written after records of the segment before it
                         * that did not survive: see the torn second-to-last segment. */
                        _cleanup_close_ int fd = -EBADF;

                        fd = openat(q->dir_fd, name, O_RDONLY | O_CLOEXEC);
                        if (fd < 0)
                                return -errno;
                        r = queue_quarantine_unreadable(q, s, fd, qname);
                        if (r < 0)
                                return r;
                        queue_event(q, QUEUE_EVENT_QUARANTINED,
                                    "Segment %s was written after records of the segment before it that were "
                                    "lost (not durable at a crash); moved it to %s, continuing at offset %" PRIu64,
                                    name, qname, q->next_offset);
                        continue;
                }

                if (i + 1 == n) {
                        r = queue_recover_last(q, s);
                        if (r < 0)
                                return r;
                        rec->active = r > 0;
                } else {
                        r = queue_recover_older(q, rec, i, &v);
                        if (r < 0)
                                return r;
                }
        }
        return 0;
}

int queue_recover_active(Queue *q, QueueRecovery *rec) {
        if (!rec->active) {
                if (rec->n_found == 0 && !rec->have_persisted)
                        queue_event(q, QUEUE_EVENT_CREATED, "Created a new queue in %s", q->dir);
                return queue_create_segment(q);
        }
        if (q->next_offset > q->active_end) {
                /* Offsets up to next_offset were handed out before (a quarantined tail, or the
                 * next-offset file is ahead of the segments): never reuse them. An empty active
                 * segment is replaced, so that names keep matching first offsets; a non-empty one is
                 * closed and a new one starts at next_offset. */
                if (q->active_end == q->active_first) {
                        char name[32], iname[32];

                        segment_name(name, q->active_first, "seg");
                        segment_name(iname, q->active_first, "idx");
                        (void) unlinkat(q->dir_fd, name, 0);
                        (void) unlinkat(q->dir_fd, iname, 0);
                        q->disk_bytes -= q->segments[--q->n_segments].size;
                        return queue_create_segment(q);
                }
                return queue_roll(q);
        }
        return 0;
}

int queue_recover_commit(Queue *q) {
        int r;

        r = queue_persist_next_offset(q);
        if (r < 0)
                return r;
        if (fsync(q->dir_fd) < 0)
                return -errno;
        q->need_dir_sync = false;
        return queue_sync(q);
}
