/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The text framing of the client protocol and of dpipe-source (dpiped(8), CLIENT PROTOCOL): UTF-8, one
 * message per '\n'-terminated line, a trailing '\r' and stray NUL bytes ignored. A line that starts
 * with '{' is a JSON object; any other line is an inline command of words separated by blanks,
 * where double quotes group words (inside quotes, \" and \\ escape). Nothing is ever expanded. */

#include <stddef.h>

#include "buffer.h"

#define LINE_MAX_DEFAULT (1024u * 1024u)

/* Takes the next complete line off the head of b. Returns 1 with *ret_line (NUL-terminated, inside
 * b, valid until the next read into b) and *ret_len; 0 when no whole line is buffered yet; -E2BIG
 * when the line (complete or not) is longer than max bytes. */
int line_next(Buffer *b, size_t max, char **ret_line, size_t *ret_len);

/* Splits line in place into at most max_words words. Returns the number of words; -EINVAL for an
 * unterminated quote, -E2BIG for too many words. */
int line_tokenize(char *line, char **words, size_t max_words);

/* For inline "key=value" words: splits at the first '=', returns -EINVAL if there is none or the key
 * is empty. */
int word_split_key_value(char *word, char **ret_key, char **ret_value);
