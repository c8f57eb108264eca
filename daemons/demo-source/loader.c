/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "loader.h"

#define LOADER_CHUNK (1024u * 1024u)

Loader *loader_free(Loader *l) {
        if (!l)
                return NULL;
        safe_close(l->fd);
        dataset_free(l->dataset);
        csv_parser_free(l->csv);
        json_loader_free(l->json);
        free(l->path);
        free(l);
        return NULL;
}

static bool endswith(const char *s, const char *suffix) {
        size_t a = strlen(s), b = strlen(suffix);
        return a >= b && strcasecmp(s + a - b, suffix) == 0;
}

DataFormat data_format_from_path(const char *path) {
        if (endswith(path, ".csv"))
                return DATA_FORMAT_CSV;
        if (endswith(path, ".json") || endswith(path, ".jsonl") || endswith(path, ".ndjson"))
                return DATA_FORMAT_JSON;
        return DATA_FORMAT_AUTO;
}

int data_format_from_string(const char *s, DataFormat *ret) {
        if (streq(s, "csv"))
                *ret = DATA_FORMAT_CSV;
        else if (streq(s, "json") || streq(s, "jsonl"))
                *ret = DATA_FORMAT_JSON;
        else if (streq(s, "auto"))
                *ret = DATA_FORMAT_AUTO;
        else
                return -EINVAL;
        return 0;
}

static int loader_feed(Loader *l, const char *data, size_t n, LoadError *err) {
        if (l->csv)
                return csv_parser_feed(l->csv, data, n, err);
        return json_loader_feed(l->json, data, n, err);
}

/* Feeds everything from the current position to the end of the file. */
static int loader_read_to_end(Loader *l, LoadError *err) {
        _cleanup_free_ char *buf = NULL;
        int r;

        buf = malloc(LOADER_CHUNK);
        if (!buf)
                return -ENOMEM;
        for (;;) {
                ssize_t n = read(l->fd, buf, LOADER_CHUNK);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        return 0;
                r = loader_feed(l, buf, (size_t) n, err);
                if (r < 0)
                        return r;
                l->offset += (uint64_t) n;
        }
}

int loader_load(const char *path, const LoaderOptions *options, LoadError *err, Loader **ret) {
        _cleanup_(loader_freep) Loader *l = NULL;
        int r;

        l = calloc(1, sizeof(Loader));
        if (!l)
                return -ENOMEM;
        l->fd = -EBADF;
        l->options = *options;
        l->path = strdup(path);
        l->dataset = dataset_new();
        if (!l->path || !l->dataset)
                return -ENOMEM;

        l->format = options->format != DATA_FORMAT_AUTO ? options->format : data_format_from_path(path);
        if (l->format == DATA_FORMAT_AUTO)
                return -EPROTONOSUPPORT;
        if (l->format == DATA_FORMAT_CSV) {
                l->csv = csv_parser_new(l->dataset, options->infer_types);
                if (!l->csv)
                        return -ENOMEM;
        } else {
                l->json = json_loader_new(l->dataset, options->records_pointer);
                if (!l->json)
                        return -ENOMEM;
        }

        l->fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (l->fd < 0)
                return -errno;
        (void) posix_fadvise(l->fd, 0, 0, POSIX_FADV_SEQUENTIAL);

        r = loader_read_to_end(l, err);
        if (r < 0)
                return r;

        /* The file as it is now must be complete and clean, also under --follow: a reload replaces
         * the data only with a file that loads cleanly. Appends are read from here on. */
        if (l->csv) {
                r = csv_parser_finish(l->csv, err);
                if (r < 0)
                        return r;
                l->can_follow = true;
        } else {
                r = json_loader_finish(l->json, false, err);
                if (r < 0)
                        return r;
                l->can_follow = json_loader_can_follow(l->json);
        }
        if (!options->follow)
                l->fd = safe_close(l->fd);

        *ret = TAKE_PTR(l);
        return 0;
}

int loader_read_more(Loader *l, LoadError *err) {
        size_t before = l->dataset->n_rows;
        struct stat st;
        int r;

        if (l->fd < 0 || !l->can_follow)
                return 0;

        /* Truncated (or rewritten shorter) or replaced by another file: start over. */
        if (fstat(l->fd, &st) < 0)
                return -errno;
        if ((uint64_t) st.st_size < l->offset || st.st_nlink == 0)
                return -ESTALE;

        r = loader_read_to_end(l, err);
        if (r < 0)
                return r;
        if (l->json) {
                r = json_loader_finish(l->json, true, err);
                if (r < 0)
                        return r;
        }
        return (int) MIN(l->dataset->n_rows - before, (size_t) INT32_MAX);
}

void loader_format_error(const char *path, const LoadError *err, char *buf, size_t size) {
        if (err->line > 0)
                snprintf(buf, size, "%s:%lu:%lu: %s", path, err->line, err->column, err->message);
        else
                snprintf(buf, size, "%s: %s", path, err->message);
}
