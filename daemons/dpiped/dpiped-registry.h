/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The persisted source registry: one file per source, <state-dir>/sources/<name>.source, written
 * atomically (temp file, fsync, rename), so that a crash at any point leaves either the old or the
 * new definition, never a torn one. */

#include "dpiped-source.h"

/* Loads every entry of dir into *ret (a NULL-terminated array, in name order). Broken entries are
 * skipped with a warning. A missing dir is an empty registry. */
int registry_load(const char *dir, Source ***ret, size_t *ret_n);
int registry_save(const char *dir, const Source *s);
int registry_remove(const char *dir, const char *name);
