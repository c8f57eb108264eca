/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The message queue: an offset-addressed, append-only log in segment files under
 * <state-dir>/queue/. dpipe-writer is its only writer; dpiped (and tools) read it with QueueReader.
 * The on-disk format is documented in docs/queue-format.md; which file does what behind this header,
 * in docs/ARCHITECTURE.md ("The queue").
 *
 * Offsets are dense (+1 per record across the whole queue) and never reused: neither a restart nor
 * retention resets them. The only holes are records lost to damage; readers report them
 * (QUEUE_READER_LOST). */

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "macro.h"

typedef struct Queue Queue;
typedef struct QueueReader QueueReader;

typedef enum QueueSync {
        QUEUE_SYNC_BATCH,    /* fsync before every ack */
        QUEUE_SYNC_INTERVAL, /* fsync at most every sync_interval_usec; ack before */
        QUEUE_SYNC_NONE,     /* leave it to the kernel */
} QueueSync;

/* What queue_open() and retention did to the files, reported so that the caller can log it (the
 * library itself never logs above debug). */
typedef enum QueueEvent {
        QUEUE_EVENT_TRUNCATED,   /* a torn record at the tail of the last segment was cut off */
        QUEUE_EVENT_QUARANTINED, /* a corrupt segment was moved to queue/corrupt/ */
        QUEUE_EVENT_REMOVED,     /* retention removed a whole segment */
        QUEUE_EVENT_CREATED,     /* a new queue was created */
        QUEUE_EVENT_PROGRESS,    /* queue_open() is verifying segment i of n (for a long start-up) */
        QUEUE_EVENT_SALVAGED,    /* damaged records of a closed segment were dropped, the rest kept */
} QueueEvent;

typedef void (*QueueEventFunc)(QueueEvent event, const char *message, void *userdata);

typedef struct QueueOptions {
        uint64_t segment_size;      /* roll to a new segment after this many bytes */
        uint64_t retention_bytes;   /* 0 = unlimited: drop oldest whole segments above this total */
        uint64_t retention_usec;    /* 0 = unlimited: drop whole segments older than this */
        uint64_t max_bytes;         /* hard limit: appends fail with -ENOSPC above it (0 = none) */
        QueueEventFunc on_event;    /* optional */
        void *userdata;
        /* A full active segment rolls at once, without an fdatasync() of its own: it becomes the
         * "sealed" segment, which the next sync (queue_sync_begin(), queue_sync()) makes durable
         * before the new active one. At most one is sealed at a time (a second roll syncs the
         * first on the caller's thread). Recovery cuts a torn tail of the second-to-last segment
         * and quarantines the last one (docs/queue-format.md). For a caller that syncs in another
         * thread with queue_sync_begin(). */
        bool roll_when_synced;
} QueueOptions;

#define QUEUE_SEGMENT_SIZE_DEFAULT (UINT64_C(64) * 1024 * 1024)
#define QUEUE_SEGMENT_HEADER_SIZE 32u
#define QUEUE_RECORD_HEADER_SIZE 40u
#define QUEUE_INDEX_INTERVAL (64u * 1024u)
#define QUEUE_DATA_MAX (64u * 1024u * 1024u)

/* One record as stored. source and data point into the reader's (or writer's) memory and stay
 * valid until the next call on the same object. */
typedef struct QueueRecord {
        uint64_t offset;
        uint64_t ts_us;
        uint64_t seq;        /* source-side sequence number */
        const char *source;  /* not NUL-terminated */
        uint16_t source_len;
        const char *data;    /* one JSON value, not NUL-terminated */
        uint32_t data_len;
} QueueRecord;

/* Offsets a reader passed that have no record: lost to damage, whether the reader found the damaged
 * bytes itself (damaged) or recovery had removed them before. Offsets that retention removed are
 * never reported. */
typedef struct QueueLoss {
        uint64_t first, last; /* the offsets, inclusive */
        char segment[32];     /* the segment file (name in the queue directory) where they belong */
        bool damaged;         /* the reader skipped damaged bytes there, starting at position */
        uint64_t position;
} QueueLoss;

/* Writer side (dpipe-writer). queue_open() creates the directory, recovers the tail (truncating a
 * torn record, quarantining a corrupt segment), and rebuilds the last stored seq of every source. */
int queue_open(const char *dir, const QueueOptions *opts, Queue **ret);
Queue *queue_free(Queue *q);
DEFINE_TRIVIAL_CLEANUP_FUNC(Queue *, queue_free);

/* Appends records (not yet durable). Returns the offset of the first one in *ret_first_offset.
 * -ENOSPC when the disk or max_bytes is full: nothing of the call is stored. */
typedef struct QueueAppend {
        uint64_t seq;
        uint64_t ts_us;
        const char *data;
        uint32_t data_len;
} QueueAppend;
int queue_append(Queue *q, const char *source, size_t source_len, const QueueAppend *records, size_t n,
                 uint64_t *ret_first_offset);
/* Makes everything appended so far durable (fdatasync of a sealed segment, of the active segment
 * and, after a roll, the directory). */
int queue_sync(Queue *q);
/* The same in two steps, so that the fdatasync()/fsync() can run in another thread while the caller
 * goes on appending (dpipe-writer's sync thread):
 *
 * queue_sync_begin() writes what was appended (like queue_flush()) and, when something is not durable
 * yet, returns 1 with duplicates of the fds to sync, in this order, each -EBADF when it needs none:
 * ret_fds[0] the segment closed at the last roll and not durable yet (only with roll_when_synced),
 * to fdatasync() first; ret_fds[1] the active segment, to fdatasync(); ret_fds[2] the directory, to
 * fsync() last. The caller owns and closes them. Everything written before the call is durable once
 * all of them succeeded. Returns 0 when everything written is durable already, -EBUSY while a sync
 * is in flight, or the error of the write (see queue_flush()).
 *
 * queue_sync_end() reports the result (0 or negative errno) of that sync; on failure the next sync
 * covers those bytes again. Until then a segment roll (and queue_sync()) syncs them itself: a segment
 * is durable before the next one is created (with roll_when_synced: before the one after it).
 * Only the thread that owns the Queue calls these. */
int queue_sync_begin(Queue *q, int ret_fds[static 3]);
void queue_sync_end(Queue *q, int error);
bool queue_sync_in_flight(Queue *q);
/* Writes what was appended to the segment file (visible to readers, not yet durable). queue_sync()
 * does this first. On -ENOSPC the file is cut back and everything stays pending: call again later. */
int queue_flush(Queue *q);
/* The next segment's file ahead of time, so that a roll neither creates a file nor waits for the
 * block allocator (on ext4 reserving space can wait for block bitmaps to be read from disk): once
 * the active segment is half full, returns 1 with a duplicate fd of a new, empty file
 * (queue/spare-segment, the caller owns and closes the fd) and the size to reserve in it, for
 * fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, size) on another thread. Report the result with
 * queue_spare_end(): after success the next roll renames that file to the new segment's name. 0 when
 * there is nothing to do (a spare exists, the segment is less than half full, no fallocate(), a
 * reservation failed for this segment already), negative
 * errno if the file could not be created. queue_open() and queue_free() remove a spare. */
int queue_spare_begin(Queue *q, int *ret_fd, uint64_t *ret_size);
void queue_spare_end(Queue *q, int error);
/* What to write back early, so that a later sync has little left to do: returns 1 with a duplicate
 * of the active segment's fd (the caller owns and closes it) and the range written since the last
 * call, in whole aligned MiB and never the partly filled end, for sync_file_range(
 * SYNC_FILE_RANGE_WRITE) — on another thread: on ext4 starting writeback can wait for the block
 * allocator. 0 when there is no whole MiB yet, negative errno if the fd could not be duplicated.
 * Best effort: nothing depends on it for durability. */
int queue_writeback_begin(Queue *q, int *ret_fd, uint64_t *ret_offset, uint64_t *ret_length);
/* Bytes appended but not yet written by queue_flush(). */
size_t queue_pending_bytes(Queue *q);
/* Last stored seq for a source; false if the queue holds nothing from it. */
bool queue_last_seq(Queue *q, const char *source, size_t source_len, uint64_t *ret);
uint64_t queue_first_offset(Queue *q);
uint64_t queue_next_offset(Queue *q);
uint64_t queue_disk_bytes(Queue *q);
size_t queue_n_segments(Queue *q); /* segment files, the active one included */
/* Applies retention now; returns the number of segments removed. */
int queue_apply_retention(Queue *q);

/* Reader side. Opens at offset (clamped up to the first offset still stored) using the sparse
 * index, without scanning from the start. */
int queue_reader_open(const char *dir, uint64_t offset, QueueReader **ret);
QueueReader *queue_reader_free(QueueReader *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(QueueReader *, queue_reader_free);
enum {
        QUEUE_READER_END = 0,    /* at the end of what is written: call again after a notification */
        QUEUE_READER_RECORD = 1, /* *ret is the next record */
        QUEUE_READER_LOST = 2,   /* offsets were lost before the next record: queue_reader_loss() */
};
/* Returns QUEUE_READER_RECORD with *ret filled, QUEUE_READER_LOST when the next offsets have no
 * record (damage: the reader resyncs itself to the next valid record), QUEUE_READER_END, or a negative
 * errno on error. Skips over segments removed by retention without a word. */
int queue_reader_next(QueueReader *r, QueueRecord *ret);
/* What the last QUEUE_READER_LOST was about. */
const QueueLoss *queue_reader_loss(QueueReader *r);
int queue_reader_seek(QueueReader *r, uint64_t offset);
uint64_t queue_reader_offset(QueueReader *r); /* offset of the record next() would return */

/* Current bounds, read from the directory without a Queue (for dpiped's properties). */
int queue_bounds(const char *dir, uint64_t *ret_first, uint64_t *ret_next);

/* Notification that new records landed: an inotify fd on the queue directory that becomes readable
 * when the writer appends or rolls a segment. Add it to sd-event; call queue_watch_drain() in the
 * callback, then read on with queue_reader_next() until it returns QUEUE_READER_END. */
int queue_watch_open(const char *dir, int *ret_fd);
void queue_watch_drain(int fd);
