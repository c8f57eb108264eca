/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The queue's on-disk format: names, headers, records, the sparse index, and the cursor that reads
 * a segment file record by record. See queue-format.h and docs/queue-format.md. */

#include <dirent.h>
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
#include "queue-format.h"
#include "util.h"

#define READ_CHUNK (256u * 1024u)
#define RESYNC_CHUNK (1024u * 1024u)

/* ---- segment names and headers ---- */

void segment_name(char buf[static 32], uint64_t first, const char *suffix) {
        snprintf(buf, 32, "%0" STRINGIFY(SEGMENT_NAME_DIGITS) PRIu64 ".%s", first, suffix);
}

bool segment_name_parse(const char *name, uint64_t *ret) {
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

int segments_list(int dir_fd, bool with_stat, SegmentRef **ret, size_t *ret_n) {
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

void segment_header_build(uint8_t h[static QUEUE_SEGMENT_HEADER_SIZE], uint64_t first, uint64_t created_us) {
        memcpy(h, SEGMENT_MAGIC, 8);
        le64_put(h + 8, first);
        le64_put(h + 16, created_us);
        le32_put(h + 24, SEGMENT_VERSION);
        le32_put(h + 28, crc32c(0, h, 28));
}

int segment_header_check(const uint8_t *h, uint64_t first, uint64_t *ret_created_us) {
        if (memcmp(h, SEGMENT_MAGIC, 8) != 0 || le32_get(h + 28) != crc32c(0, h, 28) ||
            le32_get(h + 24) != SEGMENT_VERSION || le64_get(h + 8) != first)
                return -EBADMSG;
        if (ret_created_us)
                *ret_created_us = le64_get(h + 16);
        return 0;
}

/* ---- records ---- */

/* Inlined into segment_cursor_next(), the readers' per-record path: as a call it cost ~15% more
 * instructions per record read (callgrind, bench/queue-dump --bench). */
static inline int record_parse_inline(const uint8_t *p, size_t avail, QueueRecord *ret, uint32_t *ret_size) {
        uint32_t size, data_len;
        uint16_t source_len;
        uint64_t offset;

        if (avail < QUEUE_RECORD_HEADER_SIZE)
                return 0;
        size = le32_get(p);
        source_len = le16_get(p + 32);
        data_len = le32_get(p + 36);
        if (size < QUEUE_RECORD_HEADER_SIZE || size > RECORD_SIZE_MAX || source_len == 0 ||
            source_len > SOURCE_NAME_MAX || data_len > QUEUE_DATA_MAX ||
            (uint64_t) QUEUE_RECORD_HEADER_SIZE + source_len + data_len != size)
                return -EBADMSG;
        if (avail < size)
                return 0;
        if (crc32c(0, p + 8, size - 8) != le32_get(p + 4))
                return -EBADMSG;
        offset = le64_get(p + 8);
        /* The last offset there is cannot be stored: the one after it would wrap to 0. */
        if (offset == UINT64_MAX)
                return -EBADMSG;
        *ret = (QueueRecord) {
                .offset = offset,
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

int record_parse(const uint8_t *p, size_t avail, QueueRecord *ret, uint32_t *ret_size) {
        return record_parse_inline(p, avail, ret, ret_size);
}

/* Could a record start at p (QUEUE_RECORD_HEADER_SIZE bytes there)? */
static bool record_header_plausible(const uint8_t *p, uint64_t min_offset, uint64_t max_offset) {
        uint32_t size = le32_get(p), data_len = le32_get(p + 36);
        uint16_t source_len = le16_get(p + 32);
        uint64_t offset = le64_get(p + 8);

        return le16_get(p + 34) == 0 && source_len > 0 && source_len <= SOURCE_NAME_MAX && data_len <= QUEUE_DATA_MAX &&
               (uint64_t) QUEUE_RECORD_HEADER_SIZE + source_len + data_len == size && offset >= min_offset &&
               offset <= max_offset && offset != UINT64_MAX;
}

/* Does the CRC of the plausible record at pos hold? have: its first have_len bytes, already read.
 * The rest is read in pieces: a candidate may claim up to 64 MiB, which is no reason for a buffer
 * that large. A record the file ends inside of is not valid (yet). */
static int record_crc_holds(int fd, uint64_t pos, const uint8_t *have, size_t have_len, uint8_t **piece) {
        uint32_t size = le32_get(have), crc;
        uint64_t at;

        if (have_len >= size)
                return crc32c(0, have + 8, size - 8) == le32_get(have + 4);
        if (!*piece) {
                *piece = malloc(RESYNC_CHUNK);
                if (!*piece)
                        return -ENOMEM;
        }
        crc = crc32c(0, have + 8, have_len - 8);
        for (at = pos + have_len; at < pos + size;) {
                ssize_t n = pread(fd, *piece, MIN((size_t) RESYNC_CHUNK, (size_t) (pos + size - at)), (off_t) at);
                if (n < 0)
                        return -errno;
                if (n == 0)
                        return false;
                crc = crc32c(crc, *piece, (size_t) n);
                at += (uint64_t) n;
        }
        return crc == le32_get(have + 4);
}

int segment_resync(int fd, uint64_t from, uint64_t min_offset, uint64_t max_offset, uint64_t *ret_pos,
                   uint64_t *ret_offset) {
        _cleanup_free_ uint8_t *buf = NULL, *piece = NULL;
        uint64_t at = from + 1; /* file position of buf[0] */

        buf = malloc(RESYNC_CHUNK);
        if (!buf)
                return -ENOMEM;
        for (;;) {
                ssize_t n = pread(fd, buf, RESYNC_CHUNK, (off_t) at);

                if (n < 0)
                        return -errno;
                for (size_t i = 0; i + QUEUE_RECORD_HEADER_SIZE <= (size_t) n; i++) {
                        int r;

                        if (!record_header_plausible(buf + i, min_offset, max_offset))
                                continue;
                        r = record_crc_holds(fd, at + i, buf + i, (size_t) n - i, &piece);
                        if (r < 0)
                                return r;
                        if (r > 0) {
                                *ret_pos = at + i;
                                *ret_offset = le64_get(buf + i + 8);
                                return 1;
                        }
                }
                if ((size_t) n < RESYNC_CHUNK)
                        return 0; /* the end of the file */
                /* On with the next chunk, from the first position not looked at. */
                at += (uint64_t) n - (QUEUE_RECORD_HEADER_SIZE - 1);
        }
}

/* ---- the sparse index ---- */

uint64_t index_lookup(int dir_fd, uint64_t first, uint64_t target, uint64_t seg_size) {
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

/* ---- the next-offset file ---- */

int next_offset_file_read(int dir_fd, uint64_t *ret) {
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

/* ---- reading a segment file sequentially ---- */

void segment_cursor_done(SegmentCursor *c) {
        buffer_done(&c->buf);
}

int segment_cursor_seek(SegmentCursor *c, uint64_t pos) {
        if (lseek(c->fd, (off_t) pos, SEEK_SET) < 0)
                return -errno;
        buffer_clear(&c->buf);
        c->pos = pos;
        return 0;
}

int segment_cursor_next(SegmentCursor *c, QueueRecord *ret, uint64_t *ret_pos) {
        for (;;) {
                const uint8_t *p = (const uint8_t *) buffer_begin(&c->buf);
                size_t avail = buffer_size(&c->buf), needed;
                uint32_t size;
                ssize_t n;
                int r;

                r = record_parse_inline(p, avail, ret, &size);
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
