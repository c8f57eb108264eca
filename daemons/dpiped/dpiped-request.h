/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "utf8.h"

/* The inline form of the client protocol (dpiped(8), CLIENT PROTOCOL): one command per line, words split by
 * line_tokenize() (double quotes group, nothing is expanded), mapped 1:1 to the JSON request it
 * stands for, so that both forms go through the same code afterwards. */

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

#define REQUEST_WORDS_MAX 128

/* Returns 0 and the request in *ret; -EINVAL for a malformed command (bad quoting, missing or
 * malformed arguments), -EOPNOTSUPP for an unknown command. *ret_error explains either. The line
 * is modified in place. */
int request_from_inline(char *line, struct json_object **ret, const char **ret_error);

/* One line as the client sent it (the framing of line.h took its newline away, len bytes, NUL at
 * line[len]) to the request it stands for: leading blanks are skipped; a blank line gives 0 and
 * *ret NULL (a keep-alive); a line that is not UTF-8, malformed JSON, not a JSON object, or a
 * malformed inline command gives a negative errno (-EINVAL, -EOPNOTSUPP for an unknown command, or
 * -ENOMEM) and, except for -ENOMEM, the error code and message for the client in *ret_code and
 * *ret_error. The line is modified in place. */
int request_parse_line(char *line, size_t len, struct json_object **ret, const char **ret_code, const char **ret_error);

/* The protocol is UTF-8 text: lines that are not (overlong forms, surrogates and code points above
 * U+10FFFF included) are refused before anything else looks at them: utf8_is_valid_n() of utf8.h. */

/* The commands listed by "help". */
extern const char *const request_inline_help[];
