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

/* dpiped's client.sock (interfaces.md §8): where the tools connect unless told --connect=. */
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

/* The D-Bus type an AddSource option is sent as: 'u' for the numeric ones of interfaces.md §3
 * (interval_ms, heartbeat_ms, timeout_ms), 's' for everything else. */
char source_option_type(const char *key);

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

/* Width in terminal cells of UTF-8 text, skipping ANSI escape sequences (ESC [ ... letter). */
size_t text_width(const char *s);
