/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

#include "macro.h"

static inline void json_object_putp(struct json_object **o) {
        if (*o)
                json_object_put(*o);
}
#define _cleanup_json_ _cleanup_(json_object_putp)

/* Typed getters: return NULL/false when the key is missing or has another type. */
const char *json_get_string(struct json_object *o, const char *key);
bool json_get_uint64(struct json_object *o, const char *key, uint64_t *ret);
bool json_get_bool(struct json_object *o, const char *key, bool *ret);

/* Parses exactly one JSON value from s[0..len); trailing blanks are allowed, anything else is not.
 * -EBADMSG on error; *ret_error_offset (may be NULL) gets the byte where parsing stopped. */
int json_parse_n(const char *s, size_t len, struct json_object **ret, size_t *ret_error_offset);
