/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Declarative sources (dpipe.source(5)): NAME.source files in a list of directories, highest
 * precedence first (/etc, /run, /usr/lib), read the way systemd reads unit files:
 *
 *  - the first directory holding NAME.source wins; a winner that is empty or a symlink to
 *    /dev/null masks the name in all lower directories;
 *  - drop-ins NAME.source.d/ *.conf from every directory, a file name in a higher directory
 *    hiding the same file name in lower ones (and masking it the same way), applied after the
 *    fragment in file-name order;
 *  - INI syntax: [Source] with Type=, Address=, Option=KEY=VALUE (repeatable; empty resets the
 *    list), '#' and ';' comments, a trailing backslash continues the line.
 *
 * Pure logic, no logging: problems come back as "PATH:LINE: reason" texts, for dpiped to log. */

#include <json-c/json.h>
#include <stddef.h>

#include "macro.h"

#define SOURCE_FILE_SUFFIX ".source"
#define SOURCE_FILE_SIZE_MAX (1024 * 1024)
#define SOURCE_FILE_ERROR_MAX 512

/* What the directories say about one name, before its files are read. */
typedef struct SourceFileEntry {
        char *name;
        char *path;     /* the fragment NAME.source that won */
        char **dropins; /* NULL-terminated, in the order they apply */
        size_t n_dropins;
} SourceFileEntry;

/* A problem met while listing the directories (an entry that cannot be a source): path and why.
 * The listing goes on. */
typedef void (*SourceFileProblem)(const char *path, const char *reason, void *userdata);

/* Lists the sources defined in dirs (NULL-terminated, highest precedence first; missing
 * directories are empty). Masked names are left out. The result is sorted by name. */
int source_files_enumerate(char *const *dirs, SourceFileProblem problem, void *userdata, SourceFileEntry **ret,
                           size_t *ret_n);
void source_file_entries_free(SourceFileEntry *l, size_t n);

/* The definition the files of one entry give. */
typedef struct SourceFile {
        char *name;
        char *path;
        char **dropins;
        char *type;
        struct json_object *options; /* Option= and Address= ("address"); normalised once loaded */

        /* Where each setting was made last, "PATH:LINE", to name it when its value is refused. */
        char *type_location;
        struct json_object *locations; /* option key -> "PATH:LINE" */
} SourceFile;

SourceFile *source_file_free(SourceFile *f);
DEFINE_TRIVIAL_CLEANUP_FUNC(SourceFile *, source_file_free);

/* Parses the text of one file (the fragment or a drop-in) into f (Type=, Address=, Option= on top
 * of what f holds already). path names the file in errors. Returns 0, or -EINVAL/-EBADMSG with
 * "PATH:LINE: reason" in error (or -ENOMEM). */
int source_file_parse(SourceFile *f, const char *path, const char *text, size_t size, char *error,
                      size_t error_size);

/* Reads and parses the fragment and drop-ins of e, checks that Type= and Address= are set and
 * normalises the options like AddSource does (source_options_normalize()). Returns 0 and the
 * definition, or a negative errno with "PATH[:LINE]: reason" in error. */
int source_file_load(const SourceFileEntry *e, SourceFile **ret, char *error, size_t error_size);
