/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>

#include "dpiped-registry.h"
#include "log.h"
#include "util.h"

#define REGISTRY_SUFFIX ".source"
#define REGISTRY_ENTRY_MAX (1024 * 1024)

static void closedirp_(DIR **d) {
        if (*d)
                (void) closedir(*d);
}

static char *registry_path(const char *dir, const char *name) {
        char *p;

        if (asprintf(&p, "%s/%s" REGISTRY_SUFFIX, dir, name) < 0)
                return NULL;
        return p;
}

static int name_cmp(const void *a, const void *b) {
        const Source *const *x = a, *const *y = b;
        return strcmp((*x)->name, (*y)->name);
}

static void sources_free(Source **l, size_t n) {
        for (size_t i = 0; i < n; i++)
                source_free(l[i]);
        free(l);
}

int registry_load(const char *dir, Source ***ret, size_t *ret_n) {
        _cleanup_(closedirp_) DIR *d = NULL;
        Source **list = NULL;
        size_t n = 0;
        struct dirent *de;

        d = opendir(dir);
        if (!d) {
                if (errno != ENOENT)
                        return -errno;
                *ret = calloc(1, sizeof(Source *));
                if (!*ret)
                        return -ENOMEM;
                *ret_n = 0;
                return 0;
        }
        while ((errno = 0, de = readdir(d))) {
                _cleanup_free_ char *path = NULL, *text = NULL;
                size_t len = strlen(de->d_name), size;
                Source *s, **l;
                int r;

                if (len <= strlen(REGISTRY_SUFFIX) ||
                    !streq(de->d_name + len - strlen(REGISTRY_SUFFIX), REGISTRY_SUFFIX))
                        continue; /* temp files of an interrupted write, others' files */
                path = path_join(dir, de->d_name);
                if (!path)
                        goto oom;
                r = read_file(path, REGISTRY_ENTRY_MAX, &text, &size);
                if (r < 0) {
                        log_warning_errno(r, "Failed to read registry entry %s, ignoring: %m", path);
                        continue;
                }
                r = source_registry_parse(text, size, &s);
                if (r == -ENOMEM)
                        goto oom;
                if (r < 0) {
                        log_warning_errno(r, "Registry entry %s is malformed, ignoring: %m", path);
                        continue;
                }
                if (strlen(s->name) != len - strlen(REGISTRY_SUFFIX) ||
                    strncmp(s->name, de->d_name, len - strlen(REGISTRY_SUFFIX)) != 0) {
                        log_warning("Registry entry %s names source \"%s\", not its file name, ignoring.", path,
                                    s->name);
                        source_free(s);
                        continue;
                }
                l = realloc(list, (n + 2) * sizeof(Source *));
                if (!l) {
                        source_free(s);
                        goto oom;
                }
                list = l;
                list[n++] = s;
                list[n] = NULL;
        }
        if (errno != 0) {
                int r = -errno;
                sources_free(list, n);
                return r;
        }
        if (!list) {
                list = calloc(1, sizeof(Source *));
                if (!list)
                        return -ENOMEM;
        }
        qsort(list, n, sizeof(Source *), name_cmp);
        *ret = list;
        *ret_n = n;
        return 0;
oom:
        sources_free(list, n);
        return -ENOMEM;
}

int registry_save(const char *dir, const Source *s) {
        _cleanup_free_ char *path = NULL, *text = NULL;
        int r;

        r = mkdir_p(dir, 0755);
        if (r < 0)
                return r;
        path = registry_path(dir, s->name);
        text = source_registry_format(s);
        if (!path || !text)
                return -ENOMEM;
        return write_file_atomic(path, text, strlen(text));
}

int registry_remove(const char *dir, const char *name) {
        _cleanup_free_ char *path = registry_path(dir, name);
        _cleanup_close_ int dfd = -EBADF;

        if (!path)
                return -ENOMEM;
        if (unlink(path) < 0 && errno != ENOENT)
                return -errno;
        /* Make the removal durable too: a forgotten source must not come back after a crash. */
        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0)
                (void) fsync(dfd);
        return 0;
}
