/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Where a file written by dpipe-sink-file stands: the offset of its last whole record line, and
 * where the valid lines end (anything after is a torn line from a crash, to be cut off). Lines are
 * the sink's own: {"offset":N,"source":...,"ts_us":...,"data":...}\n; a line counts when it starts
 * with {"offset":<digits>, and ends with } before its newline. The file is read backwards in
 * chunks, so a big file costs what its tail costs. */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* Returns 1 with the last record's offset in *ret_offset, 0 when the file holds no whole record
 * line; in both cases *ret_valid_end is the size the file should have (after the last whole line,
 * or 0). Negative errno on read errors. */
int file_tail_find(int fd, uint64_t *ret_offset, uint64_t *ret_valid_end);

/* Returns 1 with the first line's offset in *ret_offset, 0 when the file has no whole first line
 * with an offset. */
int file_head_offset(int fd, uint64_t *ret_offset);

/* Parses the offset at the start of a line; false when the line does not start like a record. */
bool file_line_offset(const char *p, size_t n, uint64_t *ret_offset);
