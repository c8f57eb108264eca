/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Pure helpers shared by dpipectl and dpipe-client: argument parsing, quoting of inline commands,
 * human formatting of sizes and times, and the cheap look at a pushed record line. No I/O here, so
 * that tests/unit/test-client-util.c can cover all of it. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buffer.h"

#include "config.h"

/* dpiped's client.sock (dpiped(8), ACCESS): where the tools connect unless told --connect=. */
#define DEFAULT_CONNECT_ADDRESS DEFAULT_RUNTIME_DIR "/client.sock"

typedef enum SubscribeFromKind {
        SUBSCRIBE_FROM_EARLIEST,
        SUBSCRIBE_FROM_LATEST,
        SUBSCRIBE_FROM_OFFSET,
} SubscribeFromKind;

typedef struct SubscribeFrom {
        SubscribeFromKind kind;
        uint64_t offset;
} SubscribeFrom;

/* "earliest", "latest" or a decimal offset; -EINVAL otherwise. */
int subscribe_from_parse(const char *s, SubscribeFrom *ret);

/* Splits "KEY=VALUE" (KEY non-empty, made of [A-Za-z0-9_-]) without modifying s: *ret_key is malloc'ed,
 * *ret_value points into s. -EINVAL on malformed input. */
int option_assignment_split(const char *s, char **ret_key, const char **ret_value);

/* Appends words as one inline command line of the client protocol (no trailing newline): words
 * with blanks, quotes, backslashes or nothing at all are put in double quotes, with \" and \\
 * escaped, so that the server's tokenizer gives back exactly the same words. */
int inline_command_append(Buffer *b, char *const *words, size_t n);

/* A pushed record line looks like {"op":"record","offset":N,...} as dpiped writes it. Returns true
 * when line is a record in exactly that layout and sets *ret_offset, without a JSON parse; false
 * means "not recognised here" (the caller parses the line instead). */
bool record_line_fast_offset(const char *line, size_t len, uint64_t *ret_offset);

/* "1.5K", "12.0M", "512B". */
const char *format_bytes(char *buf, size_t size, uint64_t bytes);
/* "3s ago", "2min 5s ago", "1h 2min ago", "3 days ago"; "in the future" for times ahead of now. */
const char *format_timestamp_relative(char *buf, size_t size, uint64_t usec, uint64_t now_usec);
/* "Fri 2026-11-27 23:59:01 UTC" in local time; "n/a" for 0. */
const char *format_timestamp(char *buf, size_t size, uint64_t usec);

/* Appends s as one CSV field (RFC 4180: quoted when it holds a comma, quote, CR or LF). */
int csv_field_append(Buffer *b, const char *s);

/* Width in terminal cells of UTF-8 text (wcwidth(): CJK and emoji take two, combining marks none),
 * skipping ANSI escape sequences (ESC [ ... letter). Uses the locale's LC_CTYPE if it is UTF-8,
 * else C.UTF-8 (set on first use). */
size_t text_width(const char *s);
size_t text_width_n(const char *s, size_t len);
/* The number of bytes of s that fill at most width cells (never a part of a character); the cells
 * they fill in *ret_width. */
size_t text_prefix_for_width(const char *s, size_t width, size_t *ret_width);
/* Control characters made visible, so that one value stays on one line and cannot drive the
 * terminal: \n \r \t, other C0 and DEL as \xHH, C1 as \uHHHH, bytes that are not UTF-8 as \xHH. */
int text_escape_append(Buffer *b, const char *s);
char *text_escape(const char *s); /* malloc'ed; NULL on OOM */
/* "2026-11-27 23:59:01.123456" in local time (ISO 8601 without the T, like journalctl -o short-iso). */
const char *format_timestamp_local(char *buf, size_t size, uint64_t usec);

/* Colours on standard output: only on a terminal (not TERM=dumb) and never when $NO_COLOR is set
 * to anything but "" (no-color.org). The one I/O-looking helper here: it only asks. */
bool colors_enabled(void);

/* Exit codes shared by dpipectl and dpipe-client (their man pages, EXIT STATUS). Bad usage is 1,
 * as in systemctl; 4 is systemctl's "no such unit". */
#define EXIT_NOT_RUNNING 3       /* dpiped is not on the bus / nothing listens at the address */
#define EXIT_NO_SUCH_SOURCE 4
#define EXIT_DENIED 77           /* sysexits.h EX_NOPERM */
