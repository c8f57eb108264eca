/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "macro.h"

#define USEC_PER_SEC UINT64_C(1000000)
#define USEC_PER_MSEC UINT64_C(1000)
#define NSEC_PER_USEC UINT64_C(1000)

#define SOURCE_NAME_MAX 64

uint64_t now_usec(clockid_t clock);

/* Source names: 1-64 characters of [A-Za-z0-9_.-] (org.dpipe.Pipeline1(5)). */
bool source_name_is_valid_n(const char *s, size_t n);
static inline bool source_name_is_valid(const char *s) {
        return s && source_name_is_valid_n(s, strlen(s));
}

/* Strict decimal parsers: whole string, no sign, no overflow; -EINVAL/-ERANGE. */
int safe_atou64(const char *s, uint64_t *ret);
int safe_atou32(const char *s, uint32_t *ret);
/* A size in bytes: a decimal number, optionally followed by K, M, G or T (powers of 1024, like
 * systemd's MemoryMax=; lower case too). -EINVAL/-ERANGE. */
int parse_size(const char *s, uint64_t *ret);
/* Writes the decimal digits of v at p (at most 20, no NUL) and returns how many: for the data path,
 * which formats numbers into a buffer it reserved, without printf. */
size_t format_u64(char *p, uint64_t v);

/* "/run/dpipe" unless $RUNTIME_DIRECTORY is set (first entry of systemd's colon-separated list);
 * likewise "/var/lib/dpipe" and $STATE_DIRECTORY. Returned strings are static or from environ. */
const char *default_runtime_dir(void);
const char *default_state_dir(void);

/* malloc'ed "a/b". */
char *path_join(const char *a, const char *b);
/* mkdir -p with the given mode for the directories it creates. */
int mkdir_p(const char *path, mode_t mode);

/* Writes data to path atomically: temp file in the same directory, fsync, rename, fsync dir. */
int write_file_atomic(const char *path, const void *data, size_t size);
/* Reads a whole (small) file; *ret is NUL-terminated. */
int read_file(const char *path, size_t max_size, char **ret, size_t *ret_size);

/* "a:b::c" split at sep into a NULL-terminated array of its non-empty parts ("" gives an empty
 * array); strv_free() frees one. */
int strv_split(const char *s, char sep, char ***ret);
char **strv_free(char **l);

const char *dpipe_version(void);
