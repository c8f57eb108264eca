/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>

/* Writes all of buf[0..n) to fd: short writes are continued, EINTR is retried, and on a
 * non-blocking fd EAGAIN waits until fd is writable again. Returns 0, or a negative errno (the
 * bytes before the failure may have been written). The one write-all loop of the tree: files,
 * pipes and blocking sockets. An event loop's non-blocking output uses buffer_write() instead. */
int loop_write(int fd, const void *buf, size_t n);
