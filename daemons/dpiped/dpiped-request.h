/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "utf8.h"

/* The inline form of the client protocol (interfaces.md §4): one command per line, words split by
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

/* The protocol is UTF-8 text: lines that are not (overlong forms, surrogates and code points above
 * U+10FFFF included) are refused before anything else looks at them: utf8_is_valid_n() of utf8.h. */

/* The commands listed by "help". */
extern const char *const request_inline_help[];
