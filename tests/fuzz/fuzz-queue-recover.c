/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libFuzzer target for the queue's recovery and its readers (common/queue-recover.c,
 * common/queue-reader.c): the input becomes a queue directory of one or two segment files, which a
 * reader reads as found (damage and all, the way dpiped meets it), recovery opens, a reader reads
 * again, and the writer appends to.
 *
 * Input: byte 0 flags (bit 0: two segments; bit 1: a next-offset file saying the first segment's
 * offset plus bits 2..7), bytes 1..2 the length of the first segment file (little-endian), then the
 * first file, then the second. Each file is named after the first offset its header claims (bytes
 * 8..15), so that real segments get their real names. tests/fuzz/queue-seed.py packs segment files
 * of a real queue into this form.
 *
 * Oracle: nothing crashes or leaks; every record a reader returns is byte for byte a record of the
 * input whose CRC holds; records and reported losses account for every offset once, in order;
 * recovery never refuses a queue because of what is in it, leaves no damaged bytes behind (a reader
 * afterwards finds only gaps), never repairs the same thing twice (a second open reports nothing),
 * and leaves a queue that takes a new record at its next offset. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crc32c.h"
#include "frame.h"
#include "queue.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                 \
        do {                                                                                        \
                if (!(cond)) {                                                                      \
                        fprintf(stderr, "fuzz-queue-recover: %s:%d: %s\n", __FILE__, __LINE__, #cond); \
                        abort();                                                                    \
                }                                                                                   \
        } while (0)

static char base[64], qdir[96];

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        return remove(path);
}

/* Everything recovery may leave: segments, indexes, corrupt/, next-offset, the lock. */
static void clean_dir(const char *dir) {
        if (access(dir, F_OK) == 0)
                CHECK(nftw(dir, remove_one, 16, FTW_DEPTH | FTW_PHYS) == 0);
}

static void write_file(const char *dir, const char *name, const uint8_t *p, size_t n) {
        char path[256];
        int fd;

        snprintf(path, sizeof(path), "%s/%s", dir, name);
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        CHECK(fd >= 0);
        CHECK(write(fd, p, n) == (ssize_t) n);
        close(fd);
}

static uint64_t claimed_first(const uint8_t *p, size_t n) {
        return n >= 16 ? le64_get(p + 8) : 0;
}

/* The record as it would be stored, with its CRC computed: found in the input, or it was forged. */
static bool record_in_input(const QueueRecord *rec, const uint8_t *input, size_t input_size) {
        size_t size = QUEUE_RECORD_HEADER_SIZE + rec->source_len + rec->data_len;
        uint8_t *p = malloc(size);
        bool found;

        CHECK(p);
        le32_put(p, (uint32_t) size);
        le64_put(p + 8, rec->offset);
        le64_put(p + 16, rec->ts_us);
        le64_put(p + 24, rec->seq);
        le16_put(p + 32, rec->source_len);
        le16_put(p + 34, 0);
        le32_put(p + 36, rec->data_len);
        memcpy(p + QUEUE_RECORD_HEADER_SIZE, rec->source, rec->source_len);
        memcpy(p + QUEUE_RECORD_HEADER_SIZE + rec->source_len, rec->data, rec->data_len);
        le32_put(p + 4, crc32c(0, p + 8, size - 8));
        found = memmem(input, input_size, p, size) != NULL;
        free(p);
        return found;
}

/* Reads the whole queue from offset 0; returns the number of records and the offset after the last
 * thing read (record or loss). */
static uint64_t read_everything(const uint8_t *input, size_t input_size, bool after_recovery, uint64_t *ret_end) {
        QueueReader *r = NULL;
        QueueRecord rec;
        uint64_t n = 0, expect = 0, steps = 0;
        bool started = false;
        int k;

        if (queue_reader_open(qdir, 0, &r) < 0)
                return 0;
        while ((k = queue_reader_next(r, &rec)) > 0) {
                /* Every step makes progress through a file of bounded size: no endless loop. */
                CHECK(++steps <= input_size + 16);
                if (k == QUEUE_READER_LOST) {
                        const QueueLoss *l = queue_reader_loss(r);

                        CHECK(l->first <= l->last);
                        CHECK(!started || l->first == expect);
                        /* Recovery leaves gaps, never damaged bytes, in the files it keeps. */
                        CHECK(!after_recovery || !l->damaged);
                        started = true;
                        expect = l->last + 1;
                        if (l->last == UINT64_MAX)
                                break;
                        continue;
                }
                CHECK(k == QUEUE_READER_RECORD);
                CHECK(!started || rec.offset == expect);
                CHECK(record_in_input(&rec, input, input_size));
                started = true;
                expect = rec.offset + 1;
                n++;
                if (rec.offset == UINT64_MAX)
                        break;
        }
        CHECK(k >= 0 || k == -ENOMEM);
        queue_reader_free(r);
        if (ret_end)
                *ret_end = expect;
        return n;
}

static void count_event(QueueEvent ev, const char *message, void *userdata) {
        unsigned *repairs = userdata;

        if (ev == QUEUE_EVENT_TRUNCATED || ev == QUEUE_EVENT_QUARANTINED || ev == QUEUE_EVENT_SALVAGED)
                (*repairs)++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        unsigned repairs = 0;
        QueueOptions o = { .segment_size = 4096, .on_event = count_event, .userdata = &repairs };
        Queue *q = NULL;
        const uint8_t *a, *b = NULL;
        size_t a_size, b_size = 0;
        uint64_t a_first, next, end_after;
        char name[64];
        int r;

        if (size < 3)
                return 0;
        if (!base[0]) {
                snprintf(base, sizeof(base), "%s/fuzz-queue-recover.%d",
                         access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp", (int) getpid());
                snprintf(qdir, sizeof(qdir), "%s/queue", base);
                CHECK(mkdir(base, 0755) == 0 || errno == EEXIST);
        }
        clean_dir(qdir);
        CHECK(mkdir(qdir, 0755) == 0);

        a = data + 3;
        a_size = MIN((size_t) le16_get(data + 1), size - 3);
        if (data[0] & 1) {
                b = a + a_size;
                b_size = size - 3 - a_size;
        }
        a_first = claimed_first(a, a_size);
        snprintf(name, sizeof(name), "%020" PRIu64 ".seg", a_first);
        write_file(qdir, name, a, a_size);
        if (b) {
                uint64_t b_first = claimed_first(b, b_size);

                if (b_first == a_first)
                        b_first = a_first == UINT64_MAX ? 0 : a_first + 1;
                snprintf(name, sizeof(name), "%020" PRIu64 ".seg", b_first);
                write_file(qdir, name, b, b_size);
        }
        if (data[0] & 2) {
                char text[32];
                int n = snprintf(text, sizeof(text), "%" PRIu64 "\n", a_first + (uint64_t) (data[0] >> 2));
                write_file(qdir, "next-offset", (const uint8_t *) text, (size_t) n);
        }

        /* As a live reader finds it. */
        (void) read_everything(data, size, false, NULL);

        /* Recovery takes whatever it finds. */
        r = queue_open(qdir, &o, &q);
        if (r == -ENOMEM)
                return 0;
        CHECK(r == 0);
        next = queue_next_offset(q);
        queue_free(q);

        (void) read_everything(data, size, true, &end_after);
        CHECK(end_after <= next);

        /* Nothing left to repair; and the queue takes a record at its next offset. */
        repairs = 0;
        q = NULL;
        CHECK(queue_open(qdir, &o, &q) == 0);
        CHECK(repairs == 0);
        CHECK(queue_next_offset(q) == next);
        if (next < UINT64_MAX - 1) {
                QueueAppend rec = { .seq = 1, .ts_us = 1, .data = "{}", .data_len = 2 };
                uint64_t offset;
                QueueReader *rd = NULL;
                QueueRecord got;
                int k;

                CHECK(queue_append(q, "fuzz", 4, &rec, 1, &offset) == 0);
                CHECK(offset == next);
                CHECK(queue_sync(q) == 0);
                CHECK(queue_reader_open(qdir, next, &rd) == 0);
                do
                        k = queue_reader_next(rd, &got);
                while (k == QUEUE_READER_LOST);
                CHECK(k == QUEUE_READER_RECORD);
                CHECK(got.offset == next && got.data_len == 2 && memcmp(got.data, "{}", 2) == 0);
                queue_reader_free(rd);
        }
        queue_free(q);
        return 0;
}
