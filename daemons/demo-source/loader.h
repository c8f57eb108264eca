/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A data file and the rows loaded from it. The file is read in fixed-size chunks and fed to the
 * CSV or JSON reader, so loading is one linear pass. With --follow the file stays open and what is
 * appended later is read from where the last read stopped. */

#include <stdbool.h>
#include <stdint.h>

#include "csv-dataset.h"
#include "dataset.h"
#include "json-load.h"
#include "load-error.h"

typedef enum DataFormat {
        DATA_FORMAT_AUTO,
        DATA_FORMAT_CSV,
        DATA_FORMAT_JSON,
} DataFormat;

typedef struct LoaderOptions {
        DataFormat format;
        bool infer_types;
        const char *records_pointer;
        bool follow;
} LoaderOptions;

typedef struct Loader {
        char *path;
        LoaderOptions options; /* records_pointer borrowed from the caller */
        DataFormat format;
        int fd;
        uint64_t offset; /* bytes of the file consumed */
        Dataset *dataset;
        CsvParser *csv;
        JsonLoader *json;
        bool can_follow;
} Loader;

Loader *loader_free(Loader *l);
DEFINE_TRIVIAL_CLEANUP_FUNC(Loader *, loader_free);

DataFormat data_format_from_path(const char *path);
int data_format_from_string(const char *s, DataFormat *ret);

/* Opens and loads the whole file. On a malformed file returns -EBADMSG and *err says where; other
 * errors (missing file, ...) are negative errno. */
int loader_load(const char *path, const LoaderOptions *options, LoadError *err, Loader **ret);

/* Reads what was appended since the last read. Returns the number of new rows, -ESTALE when the
 * file was truncated or replaced (reload it), -EBADMSG with *err on malformed data. */
int loader_read_more(Loader *l, LoadError *err);

/* "path:line:column: message" (or "path: message" when there is no position). */
void loader_format_error(const char *path, const LoadError *err, char *buf, size_t size);
