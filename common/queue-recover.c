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

#define COPY_CHUNK (1024u * 1024u)
/* Offset ranges and positions named in one message, at most. */
#define RANGE_LIST_MAX 8u

/* Copies bytes [start, end) of from (to its end, with UINT64_MAX) to the end of to. */
static int copy_range(int from, int to, uint64_t start, uint64_t end) {
        _cleanup_free_ char *buf = NULL;
        uint64_t pos = start;

        buf = malloc(COPY_CHUNK);
        if (!buf)
                return -ENOMEM;
        while (pos < end) {
                ssize_t n = pread(from, buf, (size_t) MIN((uint64_t) COPY_CHUNK, end - pos), (off_t) pos);
                int r;

                if (n < 0)
                        return -errno;
                if (n == 0)
                        return end == UINT64_MAX ? 0 : -EPIPE;
                r = loop_write(to, buf, (size_t) n);
                if (r < 0)
                        return r;
                pos += (uint64_t) n;
        }
        return 0;
}

/* A free name in corrupt/ for the segment file name (the name itself, or with the time appended when
 * an earlier quarantine took it), with corrupt/ created. */
static int corrupt_target(Queue *q, const char *name, char ret[static 64]) {
        if (mkdirat(q->dir_fd, CORRUPT_DIR, 0755) < 0 && errno != EEXIST)
                return -errno;
        snprintf(ret, 64, CORRUPT_DIR "/%s", name);
        if (faccessat(q->dir_fd, ret, F_OK, 0) == 0)
                snprintf(ret, 64, CORRUPT_DIR "/%s.%" PRIu64, name, now_usec(CLOCK_REALTIME));
        return 0;
}

/* Makes the entries of the queue directory and of corrupt/ durable. */
static int queue_sync_dirs(Queue *q) {
        _cleanup_close_ int fd = -EBADF;

        fd = openat(q->dir_fd, CORRUPT_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd >= 0 && fsync(fd) < 0)
                return -errno;
        return fsync(q->dir_fd) < 0 ? -errno : 0;
}

/* Moves (or copies, when keep is set because the live file will be cut back instead) a segment
 * into corrupt/. Returns the name it got there in ret_name. */
static int queue_quarantine(Queue *q, uint64_t first, bool keep, char ret_name[static 64]) {
        char name[32], idx[32], target[64];
        int r;

        segment_name(name, first, "seg");
        segment_name(idx, first, "idx");
        r = corrupt_target(q, name, target);
        if (r < 0)
                return r;

        if (keep) {
                _cleanup_close_ int from = -EBADF, to = -EBADF;

                from = openat(q->dir_fd, name, O_RDONLY | O_CLOEXEC);
                if (from < 0)
                        return -errno;
                to = openat(q->dir_fd, target, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
                if (to < 0)
                        return -errno;
                r = copy_range(from, to, 0, UINT64_MAX);
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
        (void) queue_sync_dirs(q);
        snprintf(ret_name, 64, "%s", target);
        return 0;
}

/* After a bad record at position from: are there valid records (of any offset) further on? Then it
 * is corruption, not a torn tail. Returns true and the highest offset found. Used where the segment
 * is not salvaged, only its offsets kept from being handed out again. */
static int segment_max_offset(int fd, uint64_t from, uint64_t size, bool *ret_found, uint64_t *ret_max_offset) {
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

/* Damaged bytes [pos, end) of a segment, followed by a valid record at end; the offsets
 * [first, next) had their records in them (none, if next == first). */
typedef struct Damage {
        uint64_t pos, end;
        uint64_t first, next;
} Damage;

typedef struct ScanResult {
        uint64_t next_offset; /* after the last valid record */
        uint64_t valid_end;   /* position after the last valid record */
        uint64_t records;     /* valid ones */
        int error;            /* 0, -EPIPE (ends inside a record), -EBADMSG (no valid record from valid_end on) */
        Damage *damage;       /* with salvage: the damaged bytes before valid_end, in order */
        size_t n_damage;
} ScanResult;

static void scan_result_done(ScanResult *s) {
        free(s->damage);
        *s = (ScanResult) {};
}

/* Verifies every record of a segment whose header is valid; feeds the source table; collects index
 * entries when idx is given. Offsets increase record by record; a gap is where records were lost and
 * salvaged before. Without salvage the scan stops at the first bad record (error); with it, it
 * resyncs to the next valid record (offsets from the one expected up to max_offset) and notes the
 * damaged bytes, and error says only that the bytes after the last valid record hold none. */
static int segment_scan(Queue *q, int fd, uint64_t first, uint64_t max_offset, bool salvage, Buffer *idx,
                        ScanResult *ret) {
        _cleanup_(segment_cursor_done) SegmentCursor c = { .fd = fd };
        uint64_t expected = first, idx_last = 0;
        int r;

        r = segment_cursor_seek(&c, QUEUE_SEGMENT_HEADER_SIZE);
        if (r < 0)
                return r;
        *ret = (ScanResult) { .next_offset = first, .valid_end = QUEUE_SEGMENT_HEADER_SIZE };
        for (;;) {
                QueueRecord rec;
                uint64_t pos, bad = c.pos, good_pos, good_offset;

                r = segment_cursor_next(&c, &rec, &pos);
                if (r == 0)
                        return 0;
                if (r > 0 && rec.offset < expected) {
                        r = -EBADMSG; /* a valid CRC, but offsets never go down */
                        bad = pos;
                }
                if (r == -EPIPE || r == -EBADMSG) {
                        Damage *d;

                        if (!salvage) {
                                ret->error = r;
                                return 0;
                        }
                        r = segment_resync(fd, bad, expected, max_offset, &good_pos, &good_offset);
                        if (r < 0)
                                return r;
                        if (r == 0) {
                                ret->error = -EBADMSG;
                                return 0;
                        }
                        d = reallocarray(ret->damage, ret->n_damage + 1, sizeof(Damage));
                        if (!d)
                                return -ENOMEM;
                        ret->damage = d;
                        ret->damage[ret->n_damage++] = (Damage) {
                                .pos = bad,
                                .end = good_pos,
                                .first = expected,
                                .next = good_offset,
                        };
                        r = segment_cursor_seek(&c, good_pos);
                        if (r < 0)
                                return r;
                        continue;
                }
                if (r < 0)
                        return r;
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
                expected = rec.offset + 1;
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

        r = segment_max_offset(fd, 0, s->size, &found, &max_offset);
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
 * 1 if it stays the active segment (fds set), 0 if it was quarantined as a whole. It is not salvaged
 * like the others: the writer appends to it, so it must end in its last valid record. */
static int queue_recover_last(Queue *q, const SegmentRef *s) {
        _cleanup_close_ int fd = -EBADF, ifd = -EBADF;
        _cleanup_(buffer_done) Buffer idx = {};
        _cleanup_(scan_result_done) ScanResult scan = {};
        uint8_t h[QUEUE_SEGMENT_HEADER_SIZE];
        char name[32], iname[32], qname[64];
        uint64_t created_us = 0, size = s->size;
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
                r = loop_write(fd, h, sizeof(h));
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

        r = segment_scan(q, fd, s->first, UINT64_MAX, false, &idx, &scan);
        if (r < 0)
                return r;
        if (scan.error != 0) {
                uint64_t cut = size - scan.valid_end, max_offset = 0;
                bool found = false;

                if (scan.error == -EBADMSG) {
                        r = segment_max_offset(fd, scan.valid_end, size, &found, &max_offset);
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
        r = loop_write(ifd, buffer_begin(&idx), buffer_size(&idx));
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

/* Writes a segment's index file (advisory: a failure leaves it empty, readers then scan). */
static void queue_write_index(Queue *q, uint64_t first, const Buffer *idx) {
        _cleanup_close_ int ifd = -EBADF;
        char iname[32];

        segment_name(iname, first, "idx");
        ifd = openat(q->dir_fd, iname, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (ifd >= 0 && loop_write(ifd, buffer_begin(idx), buffer_size(idx)) < 0)
                (void) ftruncate(ifd, 0);
}

/* The second-to-last segment s ends in a torn tail: the file ends inside a record, or no valid record
 * follows the bad bytes (zeros or garbage to the end, what a power loss leaves in a file whose last
 * writes were not durable). It was the segment that was sealed at a roll while its last sync had not
 * completed yet (roll_when_synced): cut it back to its last valid record like a torn last segment,
 * and rebuild its index. The caller quarantines the last segment, written after the lost records. */
static int queue_cut_sealed(Queue *q, const SegmentRef *s, const ScanResult *scan, const Buffer *idx) {
        _cleanup_close_ int wfd = -EBADF;
        char name[32];

        segment_name(name, s->first, "seg");
        wfd = openat(q->dir_fd, name, O_WRONLY | O_CLOEXEC);
        if (wfd < 0)
                return -errno;
        if (ftruncate(wfd, (off_t) scan->valid_end) < 0)
                return -errno;
        if (fsync(wfd) < 0)
                return -errno;
        /* Its index must not point past the cut. */
        queue_write_index(q, s->first, idx);
        queue_event(q, QUEUE_EVENT_TRUNCATED,
                    "Segment %s (not the last one) ended in a torn tail at position %" PRIu64 " (offset %" PRIu64
                    "): its last sync did not complete before a crash; cut %" PRIu64 " bytes",
                    name, scan->valid_end, scan->next_offset, s->size - scan->valid_end);
        return 0;
}

/* Appends "first..next-1" (or "first" alone) to a comma-separated list in buf, which holds at most
 * RANGE_LIST_MAX of them (then "..."); nothing for an empty range. */
static void range_list_add(char *buf, size_t size, unsigned *n, uint64_t first, uint64_t next) {
        size_t len = strlen(buf);

        if (next <= first)
                return;
        if (++*n > RANGE_LIST_MAX) {
                if (*n == RANGE_LIST_MAX + 1)
                        snprintf(buf + len, size - len, ", ...");
                return;
        }
        if (next - first == 1)
                snprintf(buf + len, size - len, "%s%" PRIu64, *n > 1 ? ", " : "", first);
        else
                snprintf(buf + len, size - len, "%s%" PRIu64 "..%" PRIu64, *n > 1 ? ", " : "", first, next - 1);
}

/* Salvages segment s (open as fd): writes a copy without the damaged bytes the scan found (and
 * without its bad tail, up to scan->valid_end), verifies it, keeps the damaged file in corrupt/ for
 * the operator, and puts the copy in its place, with a new index. Every valid record stays where
 * readers expect it; the lost ones leave a gap in the offsets, which readers report. lost_tail_next:
 * where the offsets of the bad tail end (the next segment's first offset), or scan->next_offset when
 * the tail is not counted as lost here. Returns the new size. */
static int queue_salvage(Queue *q, const SegmentRef *s, int fd, const ScanResult *scan, uint64_t lost_tail_next,
                         uint64_t *ret_size) {
        _cleanup_close_ int out = -EBADF;
        _cleanup_(buffer_done) Buffer idx = {};
        _cleanup_(scan_result_done) ScanResult check = {};
        char name[32], iname[32], target[64], lost[256] = "", where[128] = "";
        uint64_t from = 0, lost_count = 0;
        unsigned n_lost = 0, n_where = 0;
        struct stat st;
        int r;

        segment_name(name, s->first, "seg");
        segment_name(iname, s->first, "idx");

        out = openat(q->dir_fd, SALVAGE_FILE, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (out < 0)
                return -errno;
        for (size_t k = 0; k <= scan->n_damage; k++) {
                uint64_t to = k < scan->n_damage ? scan->damage[k].pos : scan->valid_end;

                r = copy_range(fd, out, from, to);
                if (r < 0)
                        goto fail;
                if (k < scan->n_damage) {
                        const Damage *d = scan->damage + k;

                        from = d->end;
                        range_list_add(lost, sizeof(lost), &n_lost, d->first, d->next);
                        lost_count += d->next - d->first;
                        range_list_add(where, sizeof(where), &n_where, d->pos, d->pos + 1);
                }
        }
        if (lost_tail_next > scan->next_offset) {
                range_list_add(lost, sizeof(lost), &n_lost, scan->next_offset, lost_tail_next);
                lost_count += lost_tail_next - scan->next_offset;
                range_list_add(where, sizeof(where), &n_where, scan->valid_end, scan->valid_end + 1);
        }

        /* What was written must scan clean, and its index is built from that scan (positions moved). */
        r = segment_scan(q, out, s->first, UINT64_MAX, false, &idx, &check);
        if (r < 0)
                goto fail;
        if (check.error != 0 || check.records != scan->records || check.next_offset != scan->next_offset) {
                r = -EIO;
                goto fail;
        }
        if (fsync(out) < 0 || fstat(out, &st) < 0) {
                r = -errno;
                goto fail;
        }

        /* The damaged file stays for the operator: a link, no copy. If we crash before the rename
         * below, the next start finds the damage again and salvages again. */
        (void) unlinkat(q->dir_fd, iname, 0);
        r = corrupt_target(q, name, target);
        if (r < 0)
                goto fail;
        if (linkat(q->dir_fd, name, q->dir_fd, target, 0) < 0) {
                r = -errno;
                goto fail;
        }
        if (renameat(q->dir_fd, SALVAGE_FILE, q->dir_fd, name) < 0) {
                r = -errno;
                goto fail;
        }
        /* Done: should the renames not be durable after all, a crash brings the damaged file back
         * and the next start salvages it again. */
        queue_write_index(q, s->first, &idx);
        (void) queue_sync_dirs(q);

        queue_event(q, QUEUE_EVENT_SALVAGED,
                    "Segment %s/%s is damaged (at byte %s): lost %" PRIu64 " record(s), offsets %s; kept the other %" PRIu64
                    " records, the damaged file is %s/%s",
                    q->dir, name, where[0] ? where : "?", lost_count, lost[0] ? lost : "none", scan->records, q->dir,
                    target);
        *ret_size = (uint64_t) st.st_size;
        return 0;

fail:
        (void) unlinkat(q->dir_fd, SALVAGE_FILE, 0);
        return r;
}

/* What the verification of one segment tells the next. */
typedef struct VerifyState {
        bool have_prev;
        uint64_t prev_end;     /* offset after the last record of the last segment kept */
        bool quarantine_last;  /* the second-to-last segment had a torn tail */
} VerifyState;

/* A segment before the last one: kept, salvaged, cut back (a torn second-to-last segment) or
 * quarantined when nothing in it can be trusted. */
static int queue_recover_older(Queue *q, const QueueRecovery *rec, size_t i, VerifyState *v) {
        const SegmentRef *s = rec->found + i;
        uint64_t next_first = rec->found[i + 1].first, size = s->size;
        _cleanup_close_ int fd = -EBADF;
        _cleanup_(buffer_done) Buffer idx = {};
        _cleanup_(scan_result_done) ScanResult scan = {};
        uint8_t h[QUEUE_SEGMENT_HEADER_SIZE];
        char name[32], qname[64];
        bool second_to_last = i + 2 == rec->n_found, torn, salvaged = false;
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
                scan.error = -EBADMSG; /* not one of ours, or not any more: nothing to salvage */
        else {
                r = segment_scan(q, fd, s->first, next_first - 1, true, second_to_last ? &idx : NULL, &scan);
                if (r == -EIO) {
                        scan_result_done(&scan);
                        scan.error = r; /* unreadable: quarantine it, do not crash-loop */
                } else if (r < 0)
                        return r;
        }

        /* Only with an intact header: a bad one is not what a torn tail looks like. A torn tail is
         * bytes after the last valid record that hold no valid record. */
        torn = second_to_last && scan.valid_end >= QUEUE_SEGMENT_HEADER_SIZE && scan.error != 0 && scan.error != -EIO;
        if (!torn && scan.error != 0 && (scan.records == 0 || scan.error == -EIO)) {
                r = queue_quarantine(q, s->first, false, qname);
                if (r < 0)
                        return r;
                queue_event(q, QUEUE_EVENT_QUARANTINED,
                            "Segment %s is corrupt at position %" PRIu64 " (after offset %" PRIu64
                            "); moved it to %s, its records are no longer served",
                            name, scan.valid_end, scan.next_offset, qname);
                /* Its offsets are never handed out again. */
                q->next_offset = MAX(q->next_offset, next_first);
                return 0;
        }
        if (scan.n_damage > 0 || (scan.error != 0 && !torn)) {
                /* Damaged records with valid ones after them (or, in an older segment, a bad tail):
                 * only they are lost. A torn tail's offsets go with the last segment, below. */
                r = queue_salvage(q, s, fd, &scan, torn ? scan.next_offset : next_first, &size);
                if (r == -ENOMEM)
                        return r;
                if (r < 0)
                        /* No room for the copy, say: the damaged file stays as it is, readers skip
                         * the damaged records themselves, and the next start tries again. Starting
                         * matters more. */
                        queue_event(q, QUEUE_EVENT_SALVAGED,
                                    "Segment %s/%s is damaged at position %" PRIu64 ", but writing its salvaged copy "
                                    "failed (%s); left it as it is, readers skip the damaged records",
                                    q->dir, name, scan.n_damage > 0 ? scan.damage[0].pos : scan.valid_end, strerror(-r));
                else
                        salvaged = true;
        }
        if (torn) {
                if (!salvaged) {
                        r = queue_cut_sealed(q, s, &scan, &idx);
                        if (r < 0)
                                return r;
                        size = scan.valid_end;
                } else
                        queue_event(q, QUEUE_EVENT_TRUNCATED,
                                    "Segment %s (not the last one) ended in a torn tail at position %" PRIu64
                                    " (offset %" PRIu64 "): its last sync did not complete before a crash; cut it",
                                    name, scan.valid_end, scan.next_offset);
                v->quarantine_last = true;
        }
        r = queue_add_segment_ref(q, &(SegmentRef) {
                .first = s->first,
                .size = size,
                .mtime_usec = s->mtime_usec,
        });
        if (r < 0)
                return r;
        q->next_offset = MAX(q->next_offset, scan.next_offset);
        v->prev_end = scan.next_offset;
        v->have_prev = true;
        return 0;
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

        /* A spare segment left by a crash holds nothing; an unfinished salvage copy is made again. */
        if (unlinkat(q->dir_fd, SPARE_FILE, 0) < 0 && errno != ENOENT)
                return -errno;
        if (unlinkat(q->dir_fd, SALVAGE_FILE, 0) < 0 && errno != ENOENT)
                return -errno;
        return 0;
}

int queue_recover_state(Queue *q, QueueRecovery *rec) {
        uint64_t persisted = 0;

        rec->have_persisted = next_offset_file_read(q->dir_fd, &persisted) >= 0;
        q->next_offset = persisted;
        return segments_list(q->dir_fd, true, &rec->found, &rec->n_found);
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
