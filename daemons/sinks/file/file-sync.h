/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The file sink's sync thread: fdatasync() (and the directory's fsync()) take milliseconds, and the
 * loop must not wait for them (docs/ARCHITECTURE.md, the writer's sync thread, is the model). The loop
 * hands a job (dups of the file's and the directory's fds and a token), the thread syncs and wakes the
 * loop through an eventfd, and the loop gets (token, error) back. The thread touches nothing else and
 * never logs. */

#include <stdint.h>
#include <systemd/sd-event.h>

typedef struct FileSync FileSync;

/* Called on the loop for every finished job. */
typedef void (*file_sync_done_t)(uint64_t token, int error, void *userdata);

int file_sync_new(sd_event *e, file_sync_done_t done, void *userdata, FileSync **ret);
/* Stops the thread (after its current job) and frees everything; jobs not done are dropped. */
FileSync *file_sync_free(FileSync *f);
/* Queues fdatasync(fd), then fsync(dir_fd) if dir_fd >= 0. Takes ownership of both fds. */
int file_sync_submit(FileSync *f, uint64_t token, int fd, int dir_fd);
