/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The writer side of the queue, shared by its files only (not for users of queue.h):
 *
 *     queue.c            the Queue object: queue_open() as a list of phases, queue_free(), getters
 *     queue-recover.c    start-up phases: recover state, verify every segment, start the active one
 *     queue-append.c     append into memory, write (flush), reserve space, roll to a new segment
 *     queue-sync.c       durability: sync, the sync thread's begin/end, the spare, early writeback
 *     queue-retention.c  whole-segment retention
 *
 * The readers (queue-reader.c, queue-watch.c) share only the format (queue-format.h). */

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

#include "buffer.h"
#include "io-util.h"
#include "queue-format.h"
#include "queue.h"
#include "source-table.h"

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

/* queue.c: reports what start-up, a roll or retention did to the files (debug log + opts.on_event). */
void queue_event(Queue *q, QueueEvent ev, const char *fmt, ...) _printf_(3, 4);

/* queue-recover.c: the phases of queue_open(), in this order. */
typedef struct QueueRecovery {
        SegmentRef *found;   /* the segments in the directory at start-up, oldest first */
        size_t n_found;
        bool have_persisted; /* a next-offset file was there */
        bool active;         /* the last segment stays the active one */
} QueueRecovery;

void queue_recovery_done(QueueRecovery *rec);
/* The directory, the writer's lock, no spare segment left by a crash. */
int queue_recover_lock(Queue *q);
/* The next-offset file and the list of segments. */
int queue_recover_state(Queue *q, QueueRecovery *rec);
/* Verifies every segment, oldest first: cuts torn tails, quarantines what cannot be trusted, and
 * rebuilds the last seq of every source. */
int queue_recover_segments(Queue *q, QueueRecovery *rec);
/* The segment appends go to, starting past every offset handed out before. */
int queue_recover_active(Queue *q, QueueRecovery *rec);
/* Makes the outcome durable: the next-offset file, the directory, the active segment. */
int queue_recover_commit(Queue *q);

/* queue-append.c */
int queue_add_segment_ref(Queue *q, const SegmentRef *s);
/* The offset after the last record written to the files: pending records (appended, not written)
 * have offsets from here on. */
uint64_t queue_written_next_offset(Queue *q);
int queue_persist_next_offset(Queue *q);
/* Creates a new, empty active segment starting at the offset of the next record to be written. */
int queue_create_segment(Queue *q);
/* Closes the active segment and starts a new one (pending bytes, if any, go to the new one). */
int queue_roll(Queue *q);

/* queue-sync.c: makes the sealed segment (closed at a roll, not durable yet) durable on the caller's
 * thread. */
int queue_sync_sealed(Queue *q);
