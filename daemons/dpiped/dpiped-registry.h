/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The persisted registries of the definitions made through the API: one file per definition,
 * <state-dir>/sources/<name>.source and <state-dir>/sinks/<name>.sink, written atomically (temp
 * file, fsync, rename), so that a crash at any point leaves either the old or the new definition,
 * never a torn one. One implementation for both; a RegistryKind says how an entry reads and
 * writes. */

#include <stddef.h>

#include "dpiped-source.h"

typedef struct RegistryKind {
        const char *what; /* "source": entries are <name>.source */
        int (*parse)(const char *text, size_t size, void **ret);
        char *(*format)(const void *object);
        const char *(*name)(const void *object);
        void (*free)(void *object);
} RegistryKind;

extern const RegistryKind registry_kind_source;

/* Loads every entry of dir into *ret (a NULL-terminated array, in name order). Broken entries and
 * entries that name another than their file are skipped with a warning. A missing dir is an empty
 * registry. */
int registry_load_kind(const RegistryKind *k, const char *dir, void ***ret, size_t *ret_n);
int registry_save_kind(const RegistryKind *k, const char *dir, const void *object);
int registry_remove_kind(const RegistryKind *k, const char *dir, const char *name);

static inline int registry_load(const char *dir, Source ***ret, size_t *ret_n) {
        return registry_load_kind(&registry_kind_source, dir, (void ***) ret, ret_n);
}
static inline int registry_save(const char *dir, const Source *s) {
        return registry_save_kind(&registry_kind_source, dir, s);
}
static inline int registry_remove(const char *dir, const char *name) {
        return registry_remove_kind(&registry_kind_source, dir, name);
}
