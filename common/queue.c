/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The message queue. Format: docs/queue-format.md. In short:
 *
 *     <dir>/<first offset, 20 digits>.seg   segment: 32-byte header, then records back to back
 *     <dir>/<first offset, 20 digits>.idx   sparse index of that segment: (u64 offset, u64 position)
 *     <dir>/next-offset                     lower bound for the next offset (survives deletion)
 *     <dir>/.lock                           flock()ed by the one writer
 *     <dir>/corrupt/                        quarantined segments
 *
 * The writer appends into memory (queue_append: one memcpy and one CRC per record, no syscall, no
 * allocation in the steady state), writes everything with one write() per queue_flush(), and
 * makes it durable with one fdatasync() per queue_sync(). */

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buffer.h"
#include "crc32c.h"
#include "frame.h"
#include "log.h"
#include "queue.h"
#include "util.h"

#define SEGMENT_MAGIC "DPQSEG01"
#define SEGMENT_VERSION 1u
#define SEGMENT_NAME_DIGITS 20
#define FLUSH_THRESHOLD (4u * 1024u * 1024u)
/* fallocate() takes a journal handle and waits for a journal commit in progress (the sync thread's
 * fdatasync()): 4-10 ms on the loop. In chunks this large it runs about once per segment. */
#define PREALLOC_CHUNK (64u * 1024u * 1024u)
#define READ_CHUNK (256u * 1024u)
#define WRITEBACK_CHUNK (1024u * 1024u) /* queue_writeback_begin() hands out whole aligned ones */
#define NEXT_OFFSET_FILE "next-offset"
#define SPARE_FILE "spare-segment"
#define CORRUPT_DIR "corrupt"
/* A directory listing younger than this after the directory's last change proves nothing about
 * later changes (see reader_next_segment()). */
#define DIR_STAMP_RACY_NSEC INT64_C(100000000)

/* ---- segment names and headers ---- */

typedef struct SegmentRef {
        uint64_t first;
        uint64_t size;       /* bytes on disk */
        uint64_t mtime_usec; /* last modification, for age retention */
} SegmentRef;

static void segment_name(char buf[static 32], uint64_t first, const char *suffix) {
        snprintf(buf, 32, "%0" STRINGIFY(SEGMENT_NAME_DIGITS) PRIu64 ".%s", first, suffix);
}

static bool segment_name_parse(const char *name, uint64_t *ret) {
        uint64_t v = 0;

        if (strlen(name) != SEGMENT_NAME_DIGITS + 4 || !streq(name + SEGMENT_NAME_DIGITS, ".seg"))
                return false;
        for (int i = 0; i < SEGMENT_NAME_DIGITS; i++) {
                if (name[i] < '0' || name[i] > '9')
                        return false;
                if (v > (UINT64_MAX - (uint64_t) (name[i] - '0')) / 10)
                        return false;
                v = v * 10 + (uint64_t) (name[i] - '0');
        }
        *ret = v;
        return true;
}

static int segment_ref_compare(const void *a, const void *b) {
        const SegmentRef *x = a, *y = b;
        return x->first < y->first ? -1 : x->first > y->first;
}

/* Lists the segments of dir_fd sorted by first offset; sizes and times only with with_stat. */
static int segments_list(int dir_fd, bool with_stat, SegmentRef **ret, size_t *ret_n) {
        _cleanup_free_ SegmentRef *list = NULL;
        size_t n = 0, allocated = 0;
        DIR *d;
        int fd;

        fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        d = fdopendir(fd);
        if (!d) {
                safe_close(fd);
                return -errno;
        }
        for (struct dirent *de; (de = readdir(d));) {
                struct stat st = {};
                uint64_t first;

                if (!segment_name_parse(de->d_name, &first))
                        continue;
                if (with_stat && fstatat(dir_fd, de->d_name, &st, 0) < 0)
                        continue; /* removed by retention meanwhile */
                if (n == allocated) {
                        size_t a = allocated ? allocated * 2 : 16;
                        SegmentRef *p = reallocarray(list, a, sizeof(SegmentRef));
                        if (!p) {
                                closedir(d);
                                return -ENOMEM;
                        }
                        list = p;
                        allocated = a;
                }
                list[n++] = (SegmentRef) {
                        .first = first,
                        .size = (uint64_t) st.st_size,
                        .mtime_usec = (uint64_t) st.st_mtim.tv_sec * USEC_PER_SEC +
                                      (uint64_t) st.st_mtim.tv_nsec / NSEC_PER_USEC,
                };
        }
        closedir(d);
        if (n > 0)
                qsort(list, n, sizeof(SegmentRef), segment_ref_compare);
        *ret = TAKE_PTR(list);
        *ret_n = n;
        return 0;
}

static void segment_header_build(uint8_t h[static QUEUE_SEGMENT_HEADER_SIZE], uint64_t first, uint64_t created_us) {
        memcpy(h, SEGMENT_MAGIC, 8);
        le64_put(h + 8, first);
        le64_put(h + 16, created_us);
        le32_put(h + 24, SEGMENT_VERSION);
        le32_put(h + 28, crc32c(0, h, 28));
}

static int segment_header_check(const uint8_t *h, uint64_t first, uint64_t *ret_created_us) {
        if (memcmp(h, SEGMENT_MAGIC, 8) != 0 || le32_get(h + 28) != crc32c(0, h, 28) ||
            le32_get(h + 24) != SEGMENT_VERSION || le64_get(h + 8) != first)
                return -EBADMSG;
        if (ret_created_us)
                *ret_created_us = le64_get(h + 16);
        return 0;
}

/* ---- records ----
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

static void record_header_build(uint8_t *h, uint32_t size, uint64_t offset, uint64_t ts_us, uint64_t seq,
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
static int record_parse(const uint8_t *p, size_t avail, QueueRecord *ret, uint32_t *ret_size) {
        uint32_t size, data_len;
        uint16_t source_len;

        if (avail < QUEUE_RECORD_HEADER_SIZE)
                return 0;
        size = le32_get(p);
        source_len = le16_get(p + 32);
        data_len = le32_get(p + 36);
        if (size < QUEUE_RECORD_HEADER_SIZE || size > QUEUE_RECORD_HEADER_SIZE + SOURCE_NAME_MAX + QUEUE_DATA_MAX ||
            source_len == 0 || source_len > SOURCE_NAME_MAX || data_len > QUEUE_DATA_MAX ||
            (uint64_t) QUEUE_RECORD_HEADER_SIZE + source_len + data_len != size)
                return -EBADMSG;
        if (avail < size)
                return 0;
        if (crc32c(0, p + 8, size - 8) != le32_get(p + 4))
                return -EBADMSG;
        *ret = (QueueRecord) {
                .offset = le64_get(p + 8),
                .ts_us = le64_get(p + 16),
                .seq = le64_get(p + 24),
                .source = (const char *) p + QUEUE_RECORD_HEADER_SIZE,
                .source_len = source_len,
                .data = (const char *) p + QUEUE_RECORD_HEADER_SIZE + source_len,
                .data_len = data_len,
        };
        *ret_size = size;
        return 1;
}

/* ---- the last seq of every source: a small open-addressing hash table ---- */

typedef struct SourceSlot {
        uint64_t last_seq;
        uint32_t hash;
        uint8_t len; /* 0 = empty */
        char name[SOURCE_NAME_MAX];
} SourceSlot;

typedef struct SourceTable {
        SourceSlot *slots;
        size_t n_slots; /* power of two */
        size_t n_used;
} SourceTable;

static uint32_t source_hash(const char *s, size_t n) {
        uint32_t h = 2166136261u;
        for (size_t i = 0; i < n; i++)
                h = (h ^ (uint8_t) s[i]) * 16777619u;
        return h;
}

static SourceSlot *source_table_find(const SourceTable *t, const char *s, size_t n, uint32_t h) {
        if (t->n_slots == 0)
                return NULL;
        for (size_t i = h & (t->n_slots - 1);; i = (i + 1) & (t->n_slots - 1)) {
                SourceSlot *slot = t->slots + i;
                if (slot->len == 0)
                        return slot;
                if (slot->hash == h && slot->len == n && memcmp(slot->name, s, n) == 0)
                        return slot;
        }
}

static int source_table_grow(SourceTable *t) {
        SourceTable n = { .n_slots = t->n_slots ? t->n_slots * 2 : 16 };

        n.slots = calloc(n.n_slots, sizeof(SourceSlot));
        if (!n.slots)
                return -ENOMEM;
        for (size_t i = 0; i < t->n_slots; i++) {
                SourceSlot *o = t->slots + i;
                if (o->len == 0)
                        continue;
                *source_table_find(&n, o->name, o->len, o->hash) = *o;
                n.n_used++;
        }
        free(t->slots);
        *t = n;
        return 0;
}

/* Records seq for the source if it is higher than what is known. */
static int source_table_update(SourceTable *t, const char *s, size_t n, uint64_t seq) {
        uint32_t h = source_hash(s, n);
        SourceSlot *slot;
        int r;

        slot = source_table_find(t, s, n, h);
        if (slot && slot->len > 0) {
                if (seq > slot->last_seq)
                        slot->last_seq = seq;
                return 0;
        }
        if (n == 0 || n > SOURCE_NAME_MAX)
                return -EINVAL;
        if ((t->n_used + 1) * 2 > t->n_slots) {
                r = source_table_grow(t);
                if (r < 0)
                        return r;
                slot = source_table_find(t, s, n, h);
        }
        slot->hash = h;
        slot->len = (uint8_t) n;
        memcpy(slot->name, s, n);
        slot->last_seq = seq;
        t->n_used++;
        return 0;
}

/* ---- reading a segment file sequentially ---- */

typedef struct Cursor {
        int fd;
        Buffer buf;
        uint64_t pos; /* file position of the buffer's head */
} Cursor;

static void cursor_done(Cursor *c) {
        buffer_done(&c->buf);
}

static int cursor_seek(Cursor *c, uint64_t pos) {
        if (lseek(c->fd, (off_t) pos, SEEK_SET) < 0)
                return -errno;
        buffer_clear(&c->buf);
        c->pos = pos;
        return 0;
}

/* Returns 1 with the next record (its position in *ret_pos), 0 at a clean end of the file, -EPIPE
 * when the file ends inside a record (torn, or still being written), -EBADMSG when the bytes at
 * c->pos are not a valid record. Reads on from where it stopped when called again later. */
static int cursor_next(Cursor *c, QueueRecord *ret, uint64_t *ret_pos) {
        for (;;) {
                const uint8_t *p = (const uint8_t *) buffer_begin(&c->buf);
                size_t avail = buffer_size(&c->buf), needed;
                uint32_t size;
                ssize_t n;
                int r;

                r = record_parse(p, avail, ret, &size);
                if (r < 0)
                        return r;
                if (r > 0) {
                        if (ret_pos)
                                *ret_pos = c->pos;
                        buffer_consume(&c->buf, size);
                        c->pos += size;
                        return 1;
                }
                needed = avail >= QUEUE_RECORD_HEADER_SIZE ? le32_get(p) : QUEUE_RECORD_HEADER_SIZE;
                n = buffer_read_fd(&c->buf, c->fd, MAX((size_t) READ_CHUNK, needed));
                if (n == -EAGAIN)
                        continue;
                if (n < 0)
                        return (int) n;
                if (n == 0)
                        return buffer_size(&c->buf) > 0 ? -EPIPE : 0;
        }
}

/* ---- the writer side ---- */

struct Queue {
        char *dir;
        int dir_fd;
        int lock_fd;
        QueueOptions opts;

        SegmentRef *segments; /* sorted; the last one is the active segment */
        size_t n_segments, allocated_segments;
        uint64_t disk_bytes; /* sum of segment sizes on disk */

        int active_fd;
        int index_fd;
        uint64_t active_created_us;
        uint64_t active_first;
        uint64_t active_size;
        uint64_t index_last_pos; /* position of the last index entry in the active segment */
        uint64_t active_end;     /* offset after the last record of the active segment at open */
        uint64_t last_write_usec; /* of the active segment, for age retention */
        uint64_t writeback_pos;   /* queue_writeback_begin() handed out up to here */
        uint64_t allocated_end;   /* fallocate()d up to here in the active segment */
        bool no_fallocate;        /* the file system does not support it */

        uint64_t next_offset;    /* assigned to the next appended record */
        Buffer pending;          /* appended, not yet written */
        Buffer index_pending;    /* index entries for the pending bytes */
        bool need_data_sync, need_dir_sync;
        /* queue_sync_begin() handed out a sync that queue_sync_end() has not reported yet, and what
         * it covers: until then, those bytes count as not durable (roll and queue_sync() sync them). */
        bool sync_in_flight, inflight_data, inflight_dir;
        /* opts.roll_when_synced: a dup of the segment closed at the last roll while it was not
         * durable yet, or -EBADF. The next sync covers it before the active segment; there is at
         * most one (a second roll syncs it first). sealed_inflight: the sync queue_sync_begin()
         * handed out covers it. */
        int sealed_fd;
        bool sealed_inflight;
        /* The next segment's file, created and reserved ahead (queue_spare_begin()), so that a roll
         * does not wait for the block allocator: open unless SPARE_NONE. */
        int spare_fd;
        enum { SPARE_NONE, SPARE_RESERVING, SPARE_READY } spare_state;
        bool spare_failed;          /* for the active segment: no second try until the next one */
        uint64_t spare_failed_first;

        SourceTable sources;
};

static void queue_event(Queue *q, QueueEvent ev, const char *fmt, ...) _printf_(3, 4);
static void queue_event(Queue *q, QueueEvent ev, const char *fmt, ...) {
        char buf[768];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);
        log_debug("queue %s: %s", q->dir, buf);
        if (q->opts.on_event)
                q->opts.on_event(ev, buf, q->opts.userdata);
}

static int read_next_offset_file(int dir_fd, uint64_t *ret) {
        char buf[32];
        _cleanup_close_ int fd = -EBADF;
        ssize_t n;

        fd = openat(dir_fd, NEXT_OFFSET_FILE, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        n = read(fd, buf, sizeof(buf) - 1);
        if (n < 0)
                return -errno;
        buf[n] = 0;
        buf[strcspn(buf, "\n")] = 0;
        return safe_atou64(buf, ret);
}

/* The offset after the last record written to the files: pending records (appended, not written)
 * have offsets from here on. */
static uint64_t queue_written_next_offset(Queue *q) {
        if (buffer_size(&q->pending) >= QUEUE_RECORD_HEADER_SIZE)
                return le64_get((const uint8_t *) buffer_begin(&q->pending) + 8);
        return q->next_offset;
}

static int queue_persist_next_offset(Queue *q) {
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
        _cleanup_(cursor_done) Cursor c = { .fd = fd };
        uint64_t expected = first, idx_last = 0;
        int r;

        r = cursor_seek(&c, QUEUE_SEGMENT_HEADER_SIZE);
        if (r < 0)
                return r;
        *ret = (ScanResult) { .next_offset = first, .valid_end = QUEUE_SEGMENT_HEADER_SIZE };
        for (;;) {
                QueueRecord rec;
                uint64_t pos;

                r = cursor_next(&c, &rec, &pos);
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

static int queue_add_segment_ref(Queue *q, const SegmentRef *s) {
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

static int write_all(int fd, const void *p, size_t n) {
        while (n > 0) {
                ssize_t k = write(fd, p, n);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p = (const uint8_t *) p + k;
                n -= (size_t) k;
        }
        return 0;
}

/* Creates a new, empty active segment starting at the offset of the next record to be written. */
static int queue_create_segment(Queue *q) {
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
        r = write_all(fd, h, sizeof(h));
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

/* Makes the sealed segment (closed at a roll, not durable yet) durable on the caller's thread. */
static int queue_sync_sealed(Queue *q) {
        if (q->sealed_fd < 0)
                return 0;
        if (fdatasync(q->sealed_fd) < 0)
                return -errno;
        q->sealed_fd = safe_close(q->sealed_fd);
        q->sealed_inflight = false;
        return 0;
}

/* Closes the active segment and starts a new one (pending bytes, if any, go to the new one). */
static int queue_roll(Queue *q) {
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

Queue *queue_free(Queue *q) {
        if (!q)
                return NULL;
        if (q->active_fd >= 0 && queue_sync(q) >= 0)
                (void) queue_persist_next_offset(q);
        safe_close(q->active_fd);
        safe_close(q->index_fd);
        safe_close(q->sealed_fd);
        if (q->spare_state != SPARE_NONE)
                (void) unlinkat(q->dir_fd, SPARE_FILE, 0);
        safe_close(q->spare_fd);
        safe_close(q->lock_fd);
        safe_close(q->dir_fd);
        buffer_done(&q->pending);
        buffer_done(&q->index_pending);
        free(q->sources.slots);
        free(q->segments);
        free(q->dir);
        free(q);
        return NULL;
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

int queue_open(const char *dir, const QueueOptions *opts, Queue **ret) {
        _cleanup_(queue_freep) Queue *q = NULL;
        _cleanup_free_ SegmentRef *list = NULL;
        size_t n = 0;
        uint64_t persisted = 0;
        bool have_persisted, active = false, have_prev = false, quarantine_last = false;
        uint64_t prev_end = 0;
        int r;

        q = calloc(1, sizeof(Queue));
        if (!q)
                return -ENOMEM;
        q->dir_fd = q->lock_fd = q->active_fd = q->index_fd = q->sealed_fd = q->spare_fd = -EBADF;
        if (opts)
                q->opts = *opts;
        if (q->opts.segment_size == 0)
                q->opts.segment_size = QUEUE_SEGMENT_SIZE_DEFAULT;
        q->dir = strdup(dir);
        if (!q->dir)
                return -ENOMEM;

        r = mkdir_p(dir, 0755);
        if (r < 0)
                return r;
        q->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
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

        have_persisted = read_next_offset_file(q->dir_fd, &persisted) >= 0;
        q->next_offset = persisted;

        r = segments_list(q->dir_fd, true, &list, &n);
        if (r < 0)
                return r;

        for (size_t i = 0; i < n; i++) {
                const SegmentRef *s = list + i;
                char name[32], qname[64];

                segment_name(name, s->first, "seg");
                if (n > 1)
                        queue_event(q, QUEUE_EVENT_PROGRESS, "Verifying segment %zu of %zu (%s)", i + 1, n, name);
                if (have_prev && s->first < prev_end) {
                        /* Overlaps what the segments before it hold: it can not be trusted. */
                        r = queue_quarantine(q, s->first, false, qname);
                        if (r < 0)
                                return r;
                        queue_event(q, QUEUE_EVENT_QUARANTINED,
                                    "Segment %s overlaps the segment before it (which ends at offset %" PRIu64
                                    "); moved it to %s",
                                    name, prev_end, qname);
                        continue;
                }

                if (i + 1 == n && quarantine_last) {
                        /* Everything in it was written after records of the segment before it
                         * that did not survive: see the torn second-to-last segment below. */
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
                        active = r > 0;
                } else {
                        _cleanup_close_ int fd = -EBADF;
                        _cleanup_(buffer_done) Buffer idx = {};
                        uint8_t h[QUEUE_SEGMENT_HEADER_SIZE];
                        ScanResult scan = {};
                        bool second_to_last = i + 2 == n;
                        ssize_t k;

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
                                        quarantine_last = true;
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
                                q->next_offset = MAX(q->next_offset, i + 1 < n ? list[i + 1].first : scan.next_offset);
                                continue;
                        }
                        r = queue_add_segment_ref(q, &(SegmentRef) {
                                .first = s->first,
                                .size = quarantine_last ? scan.valid_end : s->size,
                                .mtime_usec = s->mtime_usec,
                        });
                        if (r < 0)
                                return r;
                        q->next_offset = MAX(q->next_offset, scan.next_offset);
                        prev_end = scan.next_offset;
                        have_prev = true;
                }
        }

        if (!active) {
                if (n == 0 && !have_persisted)
                        queue_event(q, QUEUE_EVENT_CREATED, "Created a new queue in %s", dir);
                r = queue_create_segment(q);
                if (r < 0)
                        return r;
        } else if (q->next_offset > q->active_end) {
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
                        r = queue_create_segment(q);
                } else
                        r = queue_roll(q);
                if (r < 0)
                        return r;
        }

        r = queue_persist_next_offset(q);
        if (r < 0)
                return r;
        if (fsync(q->dir_fd) < 0)
                return -errno;
        q->need_dir_sync = false;
        r = queue_sync(q);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(q);
        return 0;
}

int queue_append(Queue *q, const char *source, size_t source_len, const QueueAppend *records, size_t n,
                 uint64_t *ret_first_offset) {
        uint64_t total = 0, pos, max_seq = 0;
        uint32_t h;
        SourceSlot *slot;
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
        h = source_hash(source, source_len);
        slot = source_table_find(&q->sources, source, source_len, h);
        if (!slot || slot->len == 0) {
                r = source_table_update(&q->sources, source, source_len, max_seq);
                if (r < 0)
                        return r;
        } else
                slot->last_seq = MAX(slot->last_seq, max_seq);

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

int queue_spare_begin(Queue *q, int *ret_fd, uint64_t *ret_size) {
        _cleanup_close_ int fd = -EBADF;
        int dup_fd;

        assert(q);
        assert(ret_fd);
        assert(ret_size);

        if (q->no_fallocate || q->spare_state != SPARE_NONE || q->active_fd < 0 ||
            q->active_size < q->opts.segment_size / 2 || (q->spare_failed && q->spare_failed_first == q->active_first))
                return 0;
        fd = openat(q->dir_fd, SPARE_FILE, O_RDWR | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
        if (fd < 0)
                return -errno;
        dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (dup_fd < 0) {
                int r = -errno;
                (void) unlinkat(q->dir_fd, SPARE_FILE, 0);
                return r;
        }
        q->spare_fd = TAKE_FD(fd);
        q->spare_state = SPARE_RESERVING;
        *ret_fd = dup_fd;
        *ret_size = q->opts.segment_size;
        return 1;
}

void queue_spare_end(Queue *q, int error) {
        assert(q);

        if (q->spare_state != SPARE_RESERVING)
                return;
        if (error >= 0) {
                q->spare_state = SPARE_READY;
                return;
        }
        /* No room, or no fallocate(): the roll creates the segment and reserves as before (and
         * finds out about either itself). Not again before that roll: on a full disk every commit
         * would create and remove the file. */
        q->spare_failed = true;
        q->spare_failed_first = q->active_first;
        (void) unlinkat(q->dir_fd, SPARE_FILE, 0);
        q->spare_fd = safe_close(q->spare_fd);
        q->spare_state = SPARE_NONE;
}

int queue_writeback_begin(Queue *q, int *ret_fd, uint64_t *ret_offset, uint64_t *ret_length) {
        uint64_t end;
        int fd;

        assert(q);
        assert(ret_fd);
        assert(ret_offset);
        assert(ret_length);

        if (q->writeback_pos > q->active_size)
                q->writeback_pos = q->active_size / WRITEBACK_CHUNK * WRITEBACK_CHUNK; /* cut back */
        /* Whole chunks only, never the partly filled last block: once that block is on disk, the
         * next write() that extends the file moves the on-disk size (ext4: the inode's i_data_sem
         * and a journal handle) and so waits for the conversion of the blocks just written back,
         * which holds both. Writing back after every write() made that wait part of every write;
         * this way only the periodic fdatasync() writes the last block. */
        end = q->active_size / WRITEBACK_CHUNK * WRITEBACK_CHUNK;
        if (end <= q->writeback_pos)
                return 0;
        /* A duplicate: the caller may roll (and close) the segment before the writeback runs. */
        fd = fcntl(q->active_fd, F_DUPFD_CLOEXEC, 3);
        if (fd < 0)
                return -errno;
        *ret_fd = fd;
        *ret_offset = q->writeback_pos;
        *ret_length = end - q->writeback_pos;
        q->writeback_pos = end;
        return 1;
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
                r = write_all(q->active_fd, buffer_begin(&q->pending), size);
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
                    write_all(q->index_fd, buffer_begin(&q->index_pending), buffer_size(&q->index_pending)) < 0)
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

int queue_sync(Queue *q) {
        int r;

        assert(q);

        r = queue_flush(q);
        if (r < 0)
                return r;
        r = queue_sync_sealed(q);
        if (r < 0)
                return r;
        /* What an unfinished queue_sync_begin() covers is not durable yet either. */
        if (q->need_data_sync || q->inflight_data) {
                if (fdatasync(q->active_fd) < 0)
                        return -errno;
                q->need_data_sync = false;
        }
        if (q->need_dir_sync || q->inflight_dir) {
                if (fsync(q->dir_fd) < 0)
                        return -errno;
                q->need_dir_sync = false;
        }
        return 0;
}

int queue_sync_begin(Queue *q, int ret_fds[static 3]) {
        _cleanup_close_ int sealed_fd = -EBADF, data_fd = -EBADF, dir_fd = -EBADF;
        int r;

        assert(q);
        assert(ret_fds);

        if (q->sync_in_flight)
                return -EBUSY;
        r = queue_flush(q);
        if (r < 0)
                return r;
        if (!q->need_data_sync && !q->need_dir_sync && q->sealed_fd < 0)
                return 0;

        if (q->sealed_fd >= 0) {
                sealed_fd = fcntl(q->sealed_fd, F_DUPFD_CLOEXEC, 3);
                if (sealed_fd < 0)
                        return -errno;
        }

        /* Duplicates: the caller may close, roll or unlink the segment while the sync runs. */
        if (q->need_data_sync) {
                data_fd = fcntl(q->active_fd, F_DUPFD_CLOEXEC, 3);
                if (data_fd < 0)
                        return -errno;
        }
        if (q->need_dir_sync) {
                dir_fd = fcntl(q->dir_fd, F_DUPFD_CLOEXEC, 3);
                if (dir_fd < 0)
                        return -errno;
        }
        q->inflight_data = q->need_data_sync;
        q->inflight_dir = q->need_dir_sync;
        q->sealed_inflight = q->sealed_fd >= 0;
        q->need_data_sync = q->need_dir_sync = false;
        q->sync_in_flight = true;
        ret_fds[0] = TAKE_FD(sealed_fd);
        ret_fds[1] = TAKE_FD(data_fd);
        ret_fds[2] = TAKE_FD(dir_fd);
        return 1;
}

void queue_sync_end(Queue *q, int error) {
        assert(q);

        if (!q->sync_in_flight)
                return;
        if (error < 0) {
                /* Not durable after all: the next sync (or roll) does it again. */
                q->need_data_sync = q->need_data_sync || q->inflight_data;
                q->need_dir_sync = q->need_dir_sync || q->inflight_dir;
        } else if (q->sealed_inflight)
                q->sealed_fd = safe_close(q->sealed_fd);
        q->sync_in_flight = q->inflight_data = q->inflight_dir = q->sealed_inflight = false;
}

bool queue_sync_in_flight(Queue *q) {
        return q->sync_in_flight;
}

bool queue_last_seq(Queue *q, const char *source, size_t source_len, uint64_t *ret) {
        SourceSlot *slot;

        if (source_len == 0 || source_len > SOURCE_NAME_MAX)
                return false;
        slot = source_table_find(&q->sources, source, source_len, source_hash(source, source_len));
        if (!slot || slot->len == 0)
                return false;
        if (ret)
                *ret = slot->last_seq;
        return true;
}

uint64_t queue_first_offset(Queue *q) {
        return q->n_segments > 0 ? q->segments[0].first : q->next_offset;
}

uint64_t queue_next_offset(Queue *q) {
        return q->next_offset;
}

uint64_t queue_disk_bytes(Queue *q) {
        return q->disk_bytes;
}

int queue_apply_retention(Queue *q) {
        uint64_t now = now_usec(CLOCK_REALTIME);
        int removed = 0, r;

        assert(q);

        /* A whole active segment that is older than the retention is closed, so that it can go. */
        if (q->opts.retention_usec > 0 && q->active_size > QUEUE_SEGMENT_HEADER_SIZE &&
            buffer_size(&q->pending) == 0 && q->last_write_usec + q->opts.retention_usec < now) {
                r = queue_roll(q);
                if (r < 0)
                        return r;
        }

        while (q->n_segments > 1) {
                const SegmentRef *s = q->segments;
                bool by_size = q->opts.retention_bytes > 0 && q->disk_bytes > q->opts.retention_bytes;
                bool by_age = q->opts.retention_usec > 0 && s->mtime_usec + q->opts.retention_usec < now;
                char name[32], iname[32];

                if (!by_size && !by_age)
                        break;
                segment_name(name, s->first, "seg");
                segment_name(iname, s->first, "idx");
                if (unlinkat(q->dir_fd, name, 0) < 0 && errno != ENOENT)
                        return -errno;
                (void) unlinkat(q->dir_fd, iname, 0);
                q->disk_bytes -= s->size;
                q->n_segments--;
                memmove(q->segments, q->segments + 1, q->n_segments * sizeof(SegmentRef));
                removed++;
                queue_event(q, QUEUE_EVENT_REMOVED,
                            "Retention removed segment %s (%s); the queue now starts at offset %" PRIu64, name,
                            by_size ? "total size above the limit" : "older than the retention time",
                            q->segments[0].first);
        }
        if (removed > 0)
                q->need_dir_sync = true;
        return removed;
}

/* ---- the reader side ---- */

struct QueueReader {
        char *dir;
        int dir_fd;
        Cursor cursor;  /* cursor.fd < 0: no segment open */
        uint64_t seg_first;
        bool index_seek; /* positioned through the index: a bad record there falls back to the start */
        uint64_t target; /* offset of the next record to return (at least) */
        /* The directory's mtime at the last listing that found no segment after seg_first, when that
         * listing can be trusted to have seen every file created before a later mtime change. */
        bool dir_stamp_valid;
        struct timespec dir_mtime;
};

QueueReader *queue_reader_free(QueueReader *r) {
        if (!r)
                return NULL;
        safe_close(r->cursor.fd);
        cursor_done(&r->cursor);
        safe_close(r->dir_fd);
        free(r->dir);
        free(r);
        return NULL;
}

static int open_dir_lazily(const char *dir, int *fd) {
        if (*fd >= 0)
                return 1;
        *fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (*fd < 0) {
                *fd = -EBADF;
                return errno == ENOENT ? 0 : -errno;
        }
        return 1;
}

/* Reads the sparse index of a segment: the position of the last entry at or below target, or the
 * first record's position. */
static uint64_t index_lookup(int dir_fd, uint64_t first, uint64_t target, uint64_t seg_size) {
        _cleanup_close_ int fd = -EBADF;
        uint8_t buf[16 * 256];
        uint64_t best = QUEUE_SEGMENT_HEADER_SIZE, last_pos = 0;
        char iname[32];
        off_t at = 0;

        segment_name(iname, first, "idx");
        fd = openat(dir_fd, iname, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return best;
        for (;;) {
                ssize_t n = pread(fd, buf, sizeof(buf), at);
                if (n <= 0)
                        return best;
                for (ssize_t i = 0; i + 16 <= n; i += 16) {
                        uint64_t off = le64_get(buf + i), pos = le64_get(buf + i + 8);
                        if (off > target)
                                return best;
                        if (pos <= last_pos || pos >= seg_size)
                                return best; /* not trustworthy from here on */
                        best = pos;
                        last_pos = pos;
                }
                at += n - n % 16;
        }
}

/* Opens the segment holding r->target (or the first one, clamping the target up). Returns 1 when a
 * segment is open, 0 when there is none yet. */
static int reader_open_segment(QueueReader *r) {
        _cleanup_free_ SegmentRef *list = NULL;
        _cleanup_close_ int fd = -EBADF;
        uint8_t h[QUEUE_SEGMENT_HEADER_SIZE];
        struct stat st;
        char name[32];
        size_t n = 0, i;
        uint64_t pos;
        ssize_t k;
        int q;

        q = open_dir_lazily(r->dir, &r->dir_fd);
        if (q <= 0)
                return q;
        q = segments_list(r->dir_fd, false, &list, &n);
        if (q < 0)
                return q;
        if (n == 0)
                return 0;
        if (r->target < list[0].first)
                r->target = list[0].first;
        for (i = n - 1; i > 0 && list[i].first > r->target; i--)
                ;

        segment_name(name, list[i].first, "seg");
        fd = openat(r->dir_fd, name, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return errno == ENOENT ? -EAGAIN : -errno; /* removed by retention just now */
        k = pread(fd, h, sizeof(h), 0);
        if (k < 0)
                return -errno;
        if ((size_t) k < sizeof(h))
                return 0; /* being created */
        if (segment_header_check(h, list[i].first, NULL) < 0)
                return -EBADMSG;
        if (fstat(fd, &st) < 0)
                return -errno;

        pos = index_lookup(r->dir_fd, list[i].first, r->target, (uint64_t) st.st_size);
        r->cursor.fd = TAKE_FD(fd);
        q = cursor_seek(&r->cursor, pos);
        if (q < 0) {
                r->cursor.fd = safe_close(r->cursor.fd);
                return q;
        }
        r->index_seek = pos != QUEUE_SEGMENT_HEADER_SIZE;
        r->seg_first = list[i].first;
        r->dir_stamp_valid = false;
        return 1;
}

static int64_t timespec_nsec(const struct timespec *ts) {
        return (int64_t) ts->tv_sec * 1000000000 + ts->tv_nsec;
}

/* The first offset of the segment after the open one, if there is one.
 *
 * A reader that follows the writer gets here at every wake-up, while a new segment appears only
 * once per segment size: listing the directory each time (open, getdents, close: ~6 syscalls) was
 * most of a live reader's syscalls. Creating, renaming or removing a segment changes the
 * directory's mtime, so as long as it is the one seen by the last listing that found nothing
 * newer, nothing newer exists: one fstat() instead. File systems stamp times with a coarse clock
 * (a tick of up to 10 ms), so a file created in the same tick as a listing could leave the mtime
 * as it was: a listing taken less than DIR_STAMP_RACY_NSEC after the mtime is not trusted, and the
 * next call lists again (as git treats a "racily clean" index). */
static int reader_next_segment(QueueReader *r, uint64_t *ret_first) {
        _cleanup_free_ SegmentRef *list = NULL;
        struct timespec now;
        struct stat st;
        size_t n = 0;
        int q;

        /* The time before the fstat(): every change after the listing is later than it. */
        if (clock_gettime(CLOCK_REALTIME, &now) < 0)
                return -errno;
        if (fstat(r->dir_fd, &st) < 0)
                return -errno;
        if (r->dir_stamp_valid && st.st_mtim.tv_sec == r->dir_mtime.tv_sec &&
            st.st_mtim.tv_nsec == r->dir_mtime.tv_nsec)
                return 0;

        q = segments_list(r->dir_fd, false, &list, &n);
        if (q < 0)
                return q;
        for (size_t i = 0; i < n; i++)
                if (list[i].first > r->seg_first) {
                        *ret_first = list[i].first;
                        return 1;
                }
        r->dir_mtime = st.st_mtim;
        r->dir_stamp_valid = timespec_nsec(&now) - timespec_nsec(&st.st_mtim) >= DIR_STAMP_RACY_NSEC;
        return 0;
}

/* Retention may remove the chosen segment between listing and opening: list again. */
static int reader_open_segment_retry(QueueReader *r) {
        int q = -EAGAIN;

        for (unsigned attempt = 0; attempt < 64 && q == -EAGAIN; attempt++)
                q = reader_open_segment(r);
        return q == -EAGAIN ? 0 : q;
}

int queue_reader_open(const char *dir, uint64_t offset, QueueReader **ret) {
        _cleanup_(queue_reader_freep) QueueReader *r = NULL;
        int q;

        r = calloc(1, sizeof(QueueReader));
        if (!r)
                return -ENOMEM;
        r->dir_fd = r->cursor.fd = -EBADF;
        r->target = offset;
        r->dir = strdup(dir);
        if (!r->dir)
                return -ENOMEM;
        q = reader_open_segment_retry(r);
        if (q < 0)
                return q;
        *ret = TAKE_PTR(r);
        return 0;
}

int queue_reader_next(QueueReader *r, QueueRecord *ret) {
        assert(r);
        assert(ret);

        for (;;) {
                QueueRecord rec;
                uint64_t next_first = 0;
                int q;

                if (r->cursor.fd < 0) {
                        q = reader_open_segment_retry(r);
                        if (q <= 0)
                                return q;
                }

                q = cursor_next(&r->cursor, &rec, NULL);
                if (q == -EBADMSG && r->index_seek) {
                        r->index_seek = false;
                        q = cursor_seek(&r->cursor, QUEUE_SEGMENT_HEADER_SIZE);
                        if (q < 0)
                                return q;
                        continue;
                }
                if (q > 0) {
                        r->index_seek = false;
                        if (rec.offset < r->target)
                                continue;
                        r->target = rec.offset + 1;
                        *ret = rec;
                        return 1;
                }
                if (q < 0 && q != -EPIPE)
                        return q;
                if (q == -EPIPE) {
                        /* The file ends inside a record: it is being written, or it was torn by a
                         * crash and the writer's recovery will cut it and write other bytes there.
                         * Read it again from its start next time, never glue old and new bytes. */
                        q = cursor_seek(&r->cursor, r->cursor.pos);
                        if (q < 0)
                                return q;
                }

                /* The end of what this segment holds now. Done with it only once a newer segment
                 * exists, and after one more read: the writer may have appended just before rolling. */
                q = reader_next_segment(r, &next_first);
                if (q <= 0)
                        return q;
                q = cursor_next(&r->cursor, &rec, NULL);
                if (q > 0) {
                        /* Put it back by re-reading: simplest is to handle it right here. */
                        r->index_seek = false;
                        if (rec.offset >= r->target) {
                                r->target = rec.offset + 1;
                                *ret = rec;
                                return 1;
                        }
                        continue;
                }
                if (q < 0 && q != -EPIPE && q != -EBADMSG)
                        return q;
                /* Any bytes left are a torn record that the writer's recovery cuts: skip them. The
                 * offsets between here and the next segment do not exist (quarantined). */
                r->cursor.fd = safe_close(r->cursor.fd);
                buffer_clear(&r->cursor.buf);
                r->target = MAX(r->target, next_first);
        }
}

int queue_reader_seek(QueueReader *r, uint64_t offset) {
        assert(r);

        r->cursor.fd = safe_close(r->cursor.fd);
        buffer_clear(&r->cursor.buf);
        r->target = offset;
        return 0;
}

uint64_t queue_reader_offset(QueueReader *r) {
        return r->target;
}

int queue_bounds(const char *dir, uint64_t *ret_first, uint64_t *ret_next) {
        _cleanup_free_ SegmentRef *list = NULL;
        _cleanup_close_ int dir_fd = -EBADF;
        _cleanup_(cursor_done) Cursor c = { .fd = -EBADF };
        uint64_t first, next, v = 0;
        struct stat st;
        char name[32];
        size_t n = 0;
        int r;

        r = open_dir_lazily(dir, &dir_fd);
        if (r < 0)
                return r;
        if (r == 0) {
                first = next = 0;
                goto finish;
        }
        r = segments_list(dir_fd, false, &list, &n);
        if (r < 0)
                return r;
        if (n == 0) {
                (void) read_next_offset_file(dir_fd, &v);
                first = next = v;
                goto finish;
        }
        first = list[0].first;
        next = list[n - 1].first;

        segment_name(name, list[n - 1].first, "seg");
        c.fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC);
        if (c.fd >= 0 && fstat(c.fd, &st) >= 0) {
                uint64_t pos = index_lookup(dir_fd, list[n - 1].first, UINT64_MAX, (uint64_t) st.st_size);

                for (bool retried = false;;) {
                        QueueRecord rec;

                        r = cursor_seek(&c, pos);
                        if (r < 0)
                                break;
                        while ((r = cursor_next(&c, &rec, NULL)) > 0)
                                next = rec.offset + 1;
                        if (r == -EBADMSG && !retried && pos != QUEUE_SEGMENT_HEADER_SIZE) {
                                pos = QUEUE_SEGMENT_HEADER_SIZE;
                                retried = true;
                                continue;
                        }
                        break;
                }
                c.fd = safe_close(c.fd);
        }

finish:
        if (ret_first)
                *ret_first = first;
        if (ret_next)
                *ret_next = next;
        return 0;
}

int queue_watch_open(const char *dir, int *ret_fd) {
        _cleanup_close_ int fd = -EBADF;

        fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (fd < 0)
                return -errno;
        if (inotify_add_watch(fd, dir, IN_MODIFY | IN_CREATE | IN_MOVED_TO | IN_DELETE | IN_ONLYDIR) < 0)
                return -errno;
        *ret_fd = TAKE_FD(fd);
        return 0;
}

void queue_watch_drain(int fd) {
        char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));

        while (read(fd, buf, sizeof(buf)) > 0)
                ;
}
