/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Helpers of the queue tests (tests/unit/test-queue-*.c): temporary queues, records whose data
 * follows from their seq, reading a whole queue back, and damaging files. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "queue.h"

/* What the queue reported through QueueOptions.on_event: a count and the last message per event. */
typedef struct Events {
        unsigned count[8];
        char last[8][768];
} Events;
void on_event(QueueEvent ev, const char *message, void *userdata);

/* A temporary directory (free with rm_rf()), and the queue directory inside it. */
char *make_tmp(void);
void rm_rf(char *p);
char *qdir_of(const char *tmp);

/* Record i of a test: fixed size data, so positions are predictable. */
size_t make_data(char *buf, uint64_t i);
/* Appends n records of source with seqs first_seq.., asserting their offsets. */
void append_n(Queue *q, const char *source, uint64_t first_seq, uint64_t n, uint64_t expect_first_offset);
/* Appends n * 50 records of source "s" (seq 1.., offsets 0..) in n writes of 50. */
void append_flushed_fifties(Queue *q, unsigned n);
/* Reads dir from offset to its end, checking every record's data against its seq and that records
 * and reported losses account for every offset once, in order; returns how many records and stores
 * the first max offsets. read_all_lost() also returns the losses (the first 16). */
typedef struct Losses {
        size_t n;
        QueueLoss l[16];
} Losses;
uint64_t read_all(const char *dir, uint64_t from, uint64_t *offsets, size_t max);
uint64_t read_all_lost(const char *dir, uint64_t from, uint64_t *offsets, size_t max, Losses *lost);

int file_read_all(const char *path, uint8_t **ret, size_t *ret_size);
void file_write_all(const char *path, const uint8_t *p, size_t n);
/* Files in dir/corrupt/. */
unsigned count_corrupt(const char *dir);
/* Flips a bit of the byte at pos. */
void flip_byte(const char *path, off_t pos);
/* malloc'ed path of the segment file that starts at first. */
char *segment_path(const char *dir, uint64_t first);
/* Three segments of 100, 100 and 50 records (source "s", seq = offset + 1, RECORD_SIZE bytes each,
 * segment_size 4096), named 0, 100 and 200; RECORD_POS(k) is where record k of a segment starts. */
#define RECORD_SIZE (QUEUE_RECORD_HEADER_SIZE + 1 + 14)
#define RECORD_POS(k) (QUEUE_SEGMENT_HEADER_SIZE + (k) * RECORD_SIZE)
void make_three_segments(const char *dir);
