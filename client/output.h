/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Standard output without blocking the event loop. Records are appended to a buffer and written
 * when a read batch ends; when the reader of a pipe is slow, the rest waits for EPOLLOUT while the
 * loop goes on answering the server's pings. The owner acks records only once the buffer is
 * drained, so that the server's window (not our memory) bounds what piles up here.
 *
 * Pipes and sockets are switched to O_NONBLOCK for our lifetime (and back at the end); terminals
 * and files are left alone — a terminal is shared with the shell, and files never block — and so
 * is a pipe that is our stderr too (2>&1), so that no message is lost to EAGAIN. */

#include <stdbool.h>
#include <systemd/sd-event.h>

#include "buffer.h"
#include "macro.h"

typedef struct Output Output;

/* Called once the buffer is empty after output_flush() returned 1 (error 0), or when writing
 * failed later (error < 0, -EPIPE when the reader went away). */
typedef void (*output_done_t)(Output *o, int error, void *userdata);

int output_new(sd_event *e, int fd, output_done_t done, void *userdata, Output **ret);
/* Restores the fd's blocking mode; what is still buffered is dropped (flush first). */
Output *output_free(Output *o);
DEFINE_TRIVIAL_CLEANUP_FUNC(Output *, output_free);

Buffer *output_buffer(Output *o);
/* 0: everything written; 1: the rest is pending (done is called later); negative errno. */
int output_flush(Output *o);
/* At exit: write everything, waiting at most timeout_ms (-1: forever) each time the reader stalls. */
int output_flush_blocking(Output *o, int timeout_ms);
bool output_pending(const Output *o);
