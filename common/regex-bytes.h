/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* POSIX extended regexes on UTF-8 text without glibc's per-call allocations. glibc's regexec()
 * runs a pattern compiled in a UTF-8 locale byte by byte, allocating nothing per call, only when
 * the pattern has no `.` and no bracket expression; otherwise it mallocs and frees a state log or
 * wide-character buffers on every call (4 to 6 allocations per record of a `where F ~ ...`).
 *
 * regex_bytes_translate() rewrites a pattern into one for the C locale that matches exactly the
 * same strings when the text is valid UTF-8 (what the transform matches always is): `.` becomes
 * "one ASCII byte but NUL, or a lead byte and its continuation bytes", a negated bracket of ASCII
 * characters the same with the bracket's bytes taken out of the ASCII part, a non-ASCII character
 * is put in parentheses (so that a `*` after it repeats the whole character). Patterns it can not
 * rewrite exactly (character classes, equivalence classes and collating elements, non-ASCII
 * characters in brackets, back-references and GNU escapes such as \w or \<) are left to the UTF-8
 * locale. */

#include <stddef.h>

/* Returns the rewritten pattern (malloc'ed, NUL-terminated), or NULL if the pattern can not be
 * rewritten exactly (errno EINVAL) or memory ran out (errno ENOMEM). pattern must be valid UTF-8
 * and a valid ERE (compile it first: the rewriting does not check the syntax). */
char *regex_bytes_translate(const char *pattern);

/* How many parts glibc's regcomp() makes of the pattern, roughly: repetitions copy what they
 * repeat (x{3} is xxx, x+ is xx*), so that stacked and nested ones multiply (x++++, ((x{9}){9}){9}),
 * and memory and time grow with it (20 stacked '+' take a GiB). Saturates at SIZE_MAX. For
 * refusing such a pattern before compiling it. */
size_t regex_expanded_size(const char *pattern);
