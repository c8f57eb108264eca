/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The writer's sync thread: runs fdatasync()/fsync() off the event loop, one job at a time, and
 * reports the result back to the loop through an eventfd watched by sd-event. The thread never
 * logs and touches nothing but the file descriptors handed to it; everything else stays on the
 * loop's thread. It also reserves the space of the next segment (fallocate()) and starts the early
 * writeback of what the loop wrote (sync_file_range()): both can wait for the disk. */

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "macro.h"

typedef struct SyncThread SyncThread;

/* Called on the loop when a job finished: error is 0 or the negative errno of the first failed
 * call. */
typedef void (*SyncDoneFunc)(SyncThread *t, int error, void *userdata);

/* done reports sync jobs, reserved reservations (sync_thread_reserve()). */
int sync_thread_new(sd_event *event, SyncDoneFunc done, SyncDoneFunc reserved, void *userdata, SyncThread **ret);
/* Waits for the job in flight (its result is dropped: call sync_thread_wait() first to get it),
 * stops and joins the thread. */
SyncThread *sync_thread_free(SyncThread *t);
DEFINE_TRIVIAL_CLEANUP_FUNC(SyncThread *, sync_thread_free);

/* Hands a job to the thread: fdatasync(sealed_fd) (the segment closed at a roll, see
 * queue_sync_begin()), fdatasync(data_fd), then fsync(dir_fd), each skipped when negative; it stops
 * at the first failure. Takes ownership of the fds, also on failure. -EBUSY while a job is in flight. */
int sync_thread_start(SyncThread *t, int sealed_fd, int data_fd, int dir_fd);
bool sync_thread_busy(SyncThread *t);
/* Hands a reservation to the thread: fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, size) after a sync job
 * in flight, reported to the reserved callback (the spare segment, see queue_spare_begin()). Takes
 * ownership of fd. -EBUSY while the previous one has not been reported. */
int sync_thread_reserve(SyncThread *t, int fd, uint64_t size);
/* Hands a writeback hint to the thread: sync_file_range(fd, offset, length, SYNC_FILE_RANGE_WRITE)
 * when no sync job is waiting, so that the loop never waits for the block allocator. No result.
 * Takes ownership of fd. A hint not taken yet is extended by the next range of the same file, or
 * else replaced (hints only make a later fdatasync() shorter). */
void sync_thread_writeback(SyncThread *t, int fd, uint64_t offset, uint64_t length);
/* Blocks until the job in flight is done and returns its result instead of calling done (0 when
 * there is none). For the exit path. */
int sync_thread_wait(SyncThread *t);
