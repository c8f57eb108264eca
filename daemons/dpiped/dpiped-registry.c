/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>

#include "dpiped-registry.h"
#include "log.h"
#include "util.h"

#define REGISTRY_ENTRY_MAX (1024 * 1024)

static void closedirp_(DIR **d) {
        if (*d)
                (void) closedir(*d);
}

static char *registry_path(const RegistryKind *k, const char *dir, const char *name) {
        char *p;

        if (asprintf(&p, "%s/%s.%s", dir, name, k->what) < 0)
                return NULL;
        return p;
}

static const RegistryKind *sort_kind; /* for name_cmp(): qsort() takes no userdata */

static int name_cmp(const void *a, const void *b) {
        return strcmp(sort_kind->name(*(void *const *) a), sort_kind->name(*(void *const *) b));
}

static void objects_free(const RegistryKind *k, void **l, size_t n) {
        for (size_t i = 0; i < n; i++)
                k->free(l[i]);
        free(l);
}

int registry_load_kind(const RegistryKind *k, const char *dir, void ***ret, size_t *ret_n) {
        _cleanup_(closedirp_) DIR *d = NULL;
        void **list = NULL;
        size_t n = 0, suffix_len = strlen(k->what) + 1;
        struct dirent *de;

        d = opendir(dir);
        if (!d && errno != ENOENT)
                return -errno;
        while (d && (errno = 0, de = readdir(d))) {
                _cleanup_free_ char *path = NULL, *text = NULL;
                size_t len = strlen(de->d_name), size;
                void *o, **l;
                int r;

                if (len <= suffix_len || de->d_name[len - suffix_len] != '.' ||
                    !streq(de->d_name + len - suffix_len + 1, k->what))
                        continue; /* temp files of an interrupted write, others' files */
                path = path_join(dir, de->d_name);
                if (!path)
                        goto oom;
                r = read_file(path, REGISTRY_ENTRY_MAX, &text, &size);
                if (r < 0) {
                        log_warning_errno(r, "Failed to read %s registry entry %s, ignoring: %m", k->what, path);
                        continue;
                }
                r = k->parse(text, size, &o);
                if (r == -ENOMEM)
                        goto oom;
                if (r < 0) {
                        log_warning_errno(r, "The %s registry entry %s is malformed, ignoring: %m", k->what, path);
                        continue;
                }
                if (strlen(k->name(o)) != len - suffix_len || strncmp(k->name(o), de->d_name, len - suffix_len) != 0) {
                        log_warning("The %s registry entry %s names %s \"%s\", not its file name, ignoring.", k->what,
                                    path, k->what, k->name(o));
                        k->free(o);
                        continue;
                }
                l = realloc(list, (n + 2) * sizeof(void *));
                if (!l) {
                        k->free(o);
                        goto oom;
                }
                list = l;
                list[n++] = o;
                list[n] = NULL;
        }
        if (d && errno != 0) {
                int r = -errno;
                objects_free(k, list, n);
                return r;
        }
        if (!list) {
                list = calloc(1, sizeof(void *));
                if (!list)
                        return -ENOMEM;
        }
        sort_kind = k;
        qsort(list, n, sizeof(void *), name_cmp);
        *ret = list;
        *ret_n = n;
        return 0;
oom:
        objects_free(k, list, n);
        return -ENOMEM;
}

int registry_save_kind(const RegistryKind *k, const char *dir, const void *object) {
        _cleanup_free_ char *path = NULL, *text = NULL;
        int r;

        r = mkdir_p(dir, 0755);
        if (r < 0)
                return r;
        path = registry_path(k, dir, k->name(object));
        text = k->format(object);
        if (!path || !text)
                return -ENOMEM;
        return write_file_atomic(path, text, strlen(text));
}

int registry_remove_kind(const RegistryKind *k, const char *dir, const char *name) {
        _cleanup_free_ char *path = registry_path(k, dir, name);
        _cleanup_close_ int dfd = -EBADF;

        if (!path)
                return -ENOMEM;
        if (unlink(path) < 0 && errno != ENOENT)
                return -errno;
        /* Make the removal durable too: a forgotten definition must not come back after a crash. */
        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0)
                (void) fsync(dfd);
        return 0;
}

static int source_entry_parse(const char *text, size_t size, void **ret) {
        Source *s;
        int r;

        r = source_registry_parse(text, size, &s);
        if (r >= 0)
                *ret = s;
        return r;
}

static char *source_entry_format(const void *object) {
        return source_registry_format(object);
}

static const char *source_entry_name(const void *object) {
        return ((const Source *) object)->name;
}

static void source_entry_free(void *object) {
        source_free(object);
}

const RegistryKind registry_kind_source = {
        .what = "source",
        .parse = source_entry_parse,
        .format = source_entry_format,
        .name = source_entry_name,
        .free = source_entry_free,
};
