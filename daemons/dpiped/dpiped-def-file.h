/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Declarative definitions: NAME.source files (dpipe.source(5)) and NAME.sink files (dpipe.sink(5)),
 * in a list of directories, highest precedence first (/etc, /run, /usr/lib), read the way systemd
 * reads unit files. One reader for both kinds; a DefFileKind says which (its suffix, section, name
 * rule and option check):
 *
 *  - the first directory holding NAME.<kind> wins; a winner that is empty or a symlink to
 *    /dev/null masks the name in all lower directories;
 *  - drop-ins NAME.<kind>.d/ *.conf from every directory, a file name in a higher directory
 *    hiding the same file name in lower ones (and masking it the same way), applied after the
 *    fragment in file-name order;
 *  - INI syntax: [Source] (or [Sink]) with Type=, Address=, Option=KEY=VALUE (repeatable; empty
 *    resets the list), '#' and ';' comments, a trailing backslash continues the line.
 *
 * Pure logic, no logging: problems come back as "PATH:LINE: reason" texts, for dpiped to log. */

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

#include "macro.h"

typedef struct DefFileKind {
        const char *what;      /* "source": the file suffix is "." what, the drop-in directory's "." what ".d" */
        const char *section;   /* "Source": the section of the file */
        const char *man;       /* "dpipe.source(5)" */
        const char *type_hint; /* what Type= names, for the refusal of an invalid one */
        const char *name_rule; /* the names allowed, in words */
        bool (*name_is_valid)(const char *name);
        bool (*type_is_valid)(const char *type);
        /* Checks the options like the API's Add call does before the daemon's check. */
        int (*normalize)(const char *type, struct json_object *options, struct json_object **ret, char *reason,
                         size_t reason_size);
} DefFileKind;

/* The files of one definition: the fragment and its drop-ins (NULL-terminated, maybe empty). Both
 * NULL for a definition of the API (the registry). */
typedef struct DefFiles {
        char *fragment_path;
        char **dropin_paths;
} DefFiles;

static inline bool def_files_defined(const DefFiles *d) {
        return d->fragment_path;
}
/* Replaces the paths with copies of fragment and dropins (NULL-terminated, or NULL). */
int def_files_set(DefFiles *d, const char *fragment, char *const *dropins);
void def_files_done(DefFiles *d);
bool def_files_equal(const DefFiles *d, const char *fragment, char *const *dropins);
/* "PATH" or "PATH and N drop-ins", into buf. */
const char *def_files_describe(const DefFiles *d, char *buf, size_t size);

#define DEF_FILE_SIZE_MAX (1024 * 1024)
#define DEF_FILE_ERROR_MAX 512

/* What the directories say about one name, before its files are read. */
typedef struct DefFileEntry {
        char *name;
        char *path;     /* the fragment NAME.source that won */
        char **dropins; /* NULL-terminated, in the order they apply */
        size_t n_dropins;
} DefFileEntry;

/* A problem met while listing the directories (an entry that cannot be a source): path and why.
 * The listing goes on. */
typedef void (*DefFileProblem)(const char *path, const char *reason, void *userdata);

/* Lists the definitions of kind in dirs (NULL-terminated, highest precedence first; missing
 * directories are empty). Masked names are left out. The result is sorted by name. */
int def_files_enumerate(const DefFileKind *kind, char *const *dirs, DefFileProblem problem, void *userdata, DefFileEntry **ret,
                           size_t *ret_n);
void def_file_entries_free(DefFileEntry *l, size_t n);

/* The definition the files of one entry give. */
typedef struct DefFile {
        const DefFileKind *kind;
        char *name;
        char *path;
        char **dropins;
        char *type;
        struct json_object *options; /* Option= and Address= ("address"); normalised once loaded */

        /* Where each setting was made last, "PATH:LINE", to name it when its value is refused. */
        char *type_location;
        struct json_object *locations; /* option key -> "PATH:LINE" */
} DefFile;

DefFile *def_file_free(DefFile *f);
DEFINE_TRIVIAL_CLEANUP_FUNC(DefFile *, def_file_free);

/* Parses the text of one file (the fragment or a drop-in) of f->kind into f (Type=, Address=, Option= on top
 * of what f holds already). path names the file in errors. Returns 0, or -EINVAL/-EBADMSG with
 * "PATH:LINE: reason" in error (or -ENOMEM). */
int def_file_parse(DefFile *f, const char *path, const char *text, size_t size, char *error,
                      size_t error_size);

/* Reads and parses the fragment and drop-ins of e, checks that Type= and Address= are set and
 * normalises the options like the API's Add call does (kind->normalize). Returns 0 and the
 * definition, or a negative errno with "PATH[:LINE]: reason" in error. */
int def_file_load(const DefFileKind *kind, const DefFileEntry *e, DefFile **ret, char *error, size_t error_size);
