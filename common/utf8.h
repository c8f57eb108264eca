/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* Strict UTF-8 (RFC 3629): overlong forms, surrogates and code points above U+10FFFF are refused.
 * Returns the number of leading bytes of s[0..n) that form valid UTF-8 (n if all do). */
size_t utf8_valid_prefix(const char *s, size_t n);

static inline bool utf8_is_valid_n(const char *s, size_t n) {
        return utf8_valid_prefix(s, n) == n;
}
