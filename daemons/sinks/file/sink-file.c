/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* dpipe-sink-file: the queue as JSON lines, {"offset":N,"source":S,"ts_us":T,"data":D}, appended to
 * a file, fdatasync()ed per batch, rotated by size (man:dpipe-sink-file(8)).
 *
 * Exactly once: a record is confirmed (and acked to dpiped) only after the fdatasync() that covers
 * it, and on every open the file's tail says where it stands: the last whole line's offset is the
 * resume point, and a torn line after it (a crash in the middle of a write) is cut off first. The
 * rotated files (<address>.<first offset, 20 digits>) are complete when renamed, so when the current
 * file is empty or missing the newest of them tells.
 *
 * Per batch the loop formats the lines into one buffer (no allocation per record), writes it with
 * one write() and hands the sync to the sync thread (file-sync.c); records that arrive meanwhile are
 * collected and go out with the next write, so the sync rate sets the batch size, not the record
 * rate. */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buffer.h"
#include "io-util.h"
#include "list.h"
#include "file-sync.h"
#include "file-tail.h"
#include "log.h"
#include "sink.h"
#include "util.h"

/* Formatted lines wait here while a sync runs; above this deliver() takes no more. */
#define FILE_OUT_MAX (8u * 1024u * 1024u)
#define ROTATED_DIGITS 20

typedef struct FileConfig {
        char *address;
        uint64_t max_bytes;
        uint32_t max_files;
} FileConfig;

static const SinkOption file_options[] = {
        SINK_OPTION_STRING("address", FileConfig, address, NULL, true, "the file to append to (an absolute path)"),
        SINK_OPTION_U64("max_bytes", FileConfig, max_bytes, "0",
                        "rotate the file once it holds this many bytes (0: never)"),
        SINK_OPTION_U32("max_files", FileConfig, max_files, "0", "rotated files to keep (0: all)"),
        {}
};

typedef struct FileTypeData FileTypeData;

typedef struct FileSink {
        Sink *sink;
        FileTypeData *type_data;
        LIST_FIELDS(struct FileSink, sinks);
        char *dir, *base;

        int fd;
        bool need_dir_sync; /* the file was created or renamed since the last sync */
        uint64_t size;
        bool have_first;
        uint64_t first_offset; /* of the current file, for its rotated name */

        Buffer out;           /* lines formatted, not yet written */
        bool have_out;
        uint64_t out_first;   /* offset of the first line in out */
        uint64_t out_last;    /* offset of the last line in out */
        bool have_written;
        uint64_t written_last; /* offset of the last line written, not yet synced */
        bool sync_in_flight;
        uint64_t sync_token, sync_last;
        bool blocked;         /* deliver() refused records: sink_ready() once out drained */
} FileSink;

struct FileTypeData {
        FileSync *sync;
        FileSink *sinks; /* open or not, to find a job's sink by token */
        uint64_t next_token;
};

static int file_validate(const void *config, char **ret_message) {
        const FileConfig *c = config;

        if (c->address[0] != '/') {
                *ret_message = strdup("address must be an absolute path");
                return -EINVAL;
        }
        if (c->address[strlen(c->address) - 1] == '/') {
                *ret_message = strdup("address must name a file, not a directory");
                return -EINVAL;
        }
        return 0;
}

static void file_sync_done(uint64_t token, int error, void *userdata);

static int file_setup(sd_event *e, void **ret_userdata) {
        FileTypeData *t = calloc(1, sizeof(FileTypeData));
        int r;

        if (!t)
                return -ENOMEM;
        r = file_sync_new(e, file_sync_done, t, &t->sync);
        if (r < 0) {
                free(t);
                return r;
        }
        *ret_userdata = t;
        return 0;
}

static void file_teardown(void *userdata) {
        FileTypeData *t = userdata;

        file_sync_free(t->sync);
        free(t);
}

static int file_init(Sink *s) {
        FileSink *f = sink_data(s);
        FileConfig *c = sink_config(s);
        _cleanup_free_ char *a = strdup(c->address), *b = strdup(c->address);

        if (!a || !b)
                return -ENOMEM;
        f->sink = s;
        f->fd = -EBADF;
        f->type_data = sink_type_userdata(s);
        f->dir = strdup(dirname(a));
        f->base = strdup(basename(b));
        if (!f->dir || !f->base)
                return -ENOMEM;
        LIST_PREPEND(sinks, f->type_data->sinks, f);
        return 0;
}

static void file_done(Sink *s) {
        FileSink *f = sink_data(s);

        /* Linked only once set up: one that failed before is on no list. */
        if (f->type_data && (f->sinks_prev || f->type_data->sinks == f))
                LIST_REMOVE(sinks, f->type_data->sinks, f);
        safe_close(f->fd);
        buffer_done(&f->out);
        free(f->dir);
        free(f->base);
}

static char *rotated_path(FileSink *f, uint64_t first) {
        char *p;

        if (asprintf(&p, "%s/%s.%0*" PRIu64, f->dir, f->base, ROTATED_DIGITS, first) < 0)
                return NULL;
        return p;
}

/* The rotated files' first offsets, ascending. */
static int list_rotated(FileSink *f, uint64_t **ret, size_t *ret_n) {
        _cleanup_free_ uint64_t *list = NULL;
        size_t n = 0, allocated = 0, blen = strlen(f->base);
        DIR *d;
        struct dirent *de;

        d = opendir(f->dir);
        if (!d)
                return -errno;
        while ((de = readdir(d))) {
                const char *suffix;
                uint64_t v;

                if (strncmp(de->d_name, f->base, blen) != 0 || de->d_name[blen] != '.')
                        continue;
                suffix = de->d_name + blen + 1;
                if (strlen(suffix) != ROTATED_DIGITS || safe_atou64(suffix, &v) < 0)
                        continue;
                if (n == allocated) {
                        uint64_t *l = reallocarray(list, allocated ? allocated * 2 : 16, sizeof(uint64_t));
                        if (!l) {
                                closedir(d);
                                return -ENOMEM;
                        }
                        list = l;
                        allocated = allocated ? allocated * 2 : 16;
                }
                list[n++] = v;
        }
        closedir(d);
        /* Few files: insertion sort. */
        for (size_t i = 1; i < n; i++)
                for (size_t j = i; j > 0 && list[j - 1] > list[j]; j--) {
                        uint64_t x = list[j];
                        list[j] = list[j - 1];
                        list[j - 1] = x;
                }
        *ret = TAKE_PTR(list);
        *ret_n = n;
        return 0;
}

/* Where the newest rotated file ends: 1 with its last offset, 0 when there is none. */
static int file_rotated_tail(FileSink *f, uint64_t *ret_last) {
        _cleanup_free_ uint64_t *list = NULL;
        size_t n = 0;
        int r;

        r = list_rotated(f, &list, &n);
        if (r < 0)
                return r;
        while (n > 0) {
                _cleanup_free_ char *p = rotated_path(f, list[--n]);
                _cleanup_close_ int fd = -EBADF;
                uint64_t end;

                if (!p)
                        return -ENOMEM;
                fd = open(p, O_RDONLY | O_CLOEXEC);
                if (fd < 0)
                        return -errno;
                r = file_tail_find(fd, ret_last, &end);
                if (r != 0)
                        return r;
        }
        return 0;
}

static void file_open(Sink *s) {
        FileSink *f = sink_data(s);
        FileConfig *c = sink_config(s);
        _cleanup_close_ int fd = -EBADF;
        uint64_t last = 0, end = 0;
        struct stat st;
        bool created = false;
        int r;

        fd = open(c->address, O_RDWR | O_CLOEXEC | O_NOCTTY);
        if (fd < 0 && errno == ENOENT) {
                fd = open(c->address, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, 0640);
                created = fd >= 0;
        }
        if (fd < 0) {
                (void) sink_fail(s, -errno, "cannot open %s", c->address);
                return;
        }
        if (fstat(fd, &st) < 0) {
                (void) sink_fail(s, -errno, "cannot stat %s", c->address);
                return;
        }
        if (!S_ISREG(st.st_mode)) {
                (void) sink_fail_permanently(s, 0, "%s is not a regular file", c->address);
                return;
        }

        r = file_tail_find(fd, &last, &end);
        if (r < 0) {
                (void) sink_fail(s, r, "cannot read %s", c->address);
                return;
        }
        if ((uint64_t) st.st_size > end) {
                /* A crash in the middle of a write: the torn line goes, its record comes again. */
                log_warning("Sink %s: cutting %" PRIu64 " bytes of a torn last line off %s", sink_name(s),
                            (uint64_t) st.st_size - end, c->address);
                if (ftruncate(fd, (off_t) end) < 0 || fsync(fd) < 0) {
                        (void) sink_fail(s, -errno, "cannot cut the torn line off %s", c->address);
                        return;
                }
        }
        f->size = end;
        f->have_first = file_head_offset(fd, &f->first_offset) > 0;
        if (r == 0) {
                /* Empty (just rotated, or new): the newest rotated file has the answer. */
                r = file_rotated_tail(f, &last);
                if (r < 0) {
                        (void) sink_fail(s, r, "cannot read the rotated files of %s", c->address);
                        return;
                }
        }
        if (lseek(fd, (off_t) end, SEEK_SET) < 0) {
                (void) sink_fail(s, -errno, "cannot seek in %s", c->address);
                return;
        }
        f->fd = TAKE_FD(fd);
        f->need_dir_sync = created;
        f->have_out = f->have_written = false;
        buffer_clear(&f->out);
        sink_opened(s, r > 0, last);
}

static void file_close(Sink *s) {
        FileSink *f = sink_data(s);

        /* A sync in flight finishes with a token nobody waits for. */
        f->sync_in_flight = false;
        f->blocked = false;
        f->fd = safe_close(f->fd);
        buffer_clear(&f->out);
        f->have_out = f->have_written = false;
}

#define APPEND_LITERAL(o, s) (memcpy((o), (s), sizeof(s) - 1), (o) += sizeof(s) - 1)

static int file_deliver(Sink *s, const SinkRecord *rec, size_t n) {
        static const char p_offset[] = "{\"offset\":", p_source[] = ",\"source\":", p_ts[] = ",\"ts_us\":",
                          p_data[] = ",\"data\":";
        FileSink *f = sink_data(s);
        size_t i;

        for (i = 0; i < n; i++) {
                const SinkRecord *r = &rec[i];
                char *o;
                int k;

                if (buffer_size(&f->out) >= FILE_OUT_MAX) {
                        f->blocked = true;
                        break;
                }
                k = buffer_reserve(&f->out, sizeof(p_offset) + sizeof(p_source) + sizeof(p_ts) + sizeof(p_data) +
                                                    2 * 20 + r->source_len * 6 + 2 + r->data_len + 2);
                if (k < 0)
                        return sink_fail(s, k, "out of memory");
                o = buffer_tail(&f->out);
                APPEND_LITERAL(o, p_offset);
                o += format_u64(o, r->offset);
                APPEND_LITERAL(o, p_source);
                buffer_advance(&f->out, (size_t) (o - buffer_tail(&f->out)));
                k = buffer_append_json_string(&f->out, r->source, r->source_len);
                if (k < 0)
                        return sink_fail(s, k, "out of memory");
                o = buffer_tail(&f->out);
                APPEND_LITERAL(o, p_ts);
                o += format_u64(o, r->ts_us);
                APPEND_LITERAL(o, p_data);
                memcpy(o, r->data, r->data_len);
                o += r->data_len;
                APPEND_LITERAL(o, "}\n");
                buffer_advance(&f->out, (size_t) (o - buffer_tail(&f->out)));
                if (!f->have_out)
                        f->out_first = r->offset;
                f->have_out = true;
                f->out_last = r->offset;
        }
        return (int) i;
}

/* How much of out goes into the current file: all of it, or with max_bytes, the lines up to the
 * one that fills the file (at least one line, so that a line bigger than max_bytes goes too). Sets
 * the offset of the last line that goes, and of the first one that stays. */
static size_t file_out_cut(FileSink *f, uint64_t max_bytes, uint64_t *ret_last, uint64_t *ret_next_first) {
        const char *p = buffer_begin(&f->out), *nl, *line;
        size_t len = buffer_size(&f->out), room, cut;

        *ret_last = f->out_last;
        if (max_bytes == 0 || f->size + len <= max_bytes)
                return len;
        room = f->size < max_bytes ? (size_t) (max_bytes - f->size) : 0;
        /* The line that crosses the limit ends at the first newline at or after room - 1. */
        nl = memchr(p + (room > 0 ? room - 1 : 0), '\n', len - (room > 0 ? room - 1 : 0));
        if (!nl || (size_t) (nl + 1 - p) == len)
                return len;
        cut = (size_t) (nl + 1 - p);
        /* The offsets of the lines on both sides of the cut: our own lines, {"offset":N,... */
        line = memrchr(p, '\n', cut - 1);
        line = line ? line + 1 : p;
        if (!file_line_offset(line, (size_t) (nl - line), ret_last) ||
            !file_line_offset(nl + 1, len - cut, ret_next_first)) {
                *ret_last = f->out_last;
                return len;
        }
        return cut;
}

/* Write what deliver() collected and start its sync, unless one runs: then it goes with the next. */
static void file_flush(Sink *s) {
        FileSink *f = sink_data(s);
        FileConfig *c = sink_config(s);
        _cleanup_close_ int dup_fd = -EBADF, dir_fd = -EBADF;
        uint64_t last, next_first;
        size_t n;
        int r;

        if (f->sync_in_flight || !f->have_out || f->fd < 0)
                return;
        if (f->size == 0 && !f->have_first) {
                f->have_first = true;
                f->first_offset = f->out_first;
        }
        n = file_out_cut(f, c->max_bytes, &last, &next_first);
        r = loop_write(f->fd, buffer_begin(&f->out), n);
        if (r < 0) {
                /* What got out is a torn tail: the next open cuts it. */
                (void) sink_fail(s, r, "cannot write to %s", c->address);
                return;
        }
        f->size += n;
        f->have_written = true;
        f->written_last = last;
        if (n == buffer_size(&f->out)) {
                buffer_clear(&f->out);
                f->have_out = false;
        } else {
                /* The rest goes into the next file, after this one is synced and rotated. */
                buffer_consume(&f->out, n);
                f->out_first = next_first;
        }

        dup_fd = fcntl(f->fd, F_DUPFD_CLOEXEC, 3);
        if (dup_fd < 0) {
                (void) sink_fail(s, -errno, "cannot sync %s", c->address);
                return;
        }
        if (f->need_dir_sync) {
                dir_fd = open(f->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (dir_fd < 0) {
                        (void) sink_fail(s, -errno, "cannot open the directory %s", f->dir);
                        return;
                }
                f->need_dir_sync = false;
        }
        f->sync_token = ++f->type_data->next_token;
        f->sync_last = f->written_last;
        r = file_sync_submit(f->type_data->sync, f->sync_token, TAKE_FD(dup_fd), TAKE_FD(dir_fd));
        if (r < 0) {
                (void) sink_fail(s, r, "cannot sync %s", c->address);
                return;
        }
        f->sync_in_flight = true;
}

static void file_prune(FileSink *f, uint32_t keep) {
        _cleanup_free_ uint64_t *list = NULL;
        size_t n = 0;
        int r;

        r = list_rotated(f, &list, &n);
        if (r < 0) {
                log_warning_errno(r, "Sink %s: cannot list the rotated files in %s, ignoring: %m", sink_name(f->sink),
                                  f->dir);
                return;
        }
        for (size_t i = 0; i + keep < n; i++) {
                _cleanup_free_ char *p = rotated_path(f, list[i]);

                if (p && unlink(p) < 0 && errno != ENOENT)
                        log_warning_errno(errno, "Sink %s: cannot remove %s, ignoring: %m", sink_name(f->sink), p);
                else if (p)
                        log_info("Sink %s: removed %s (max_files=%" PRIu32 ")", sink_name(f->sink), p, keep);
        }
}

/* The current file is full and synced: rename it after its first offset and start a new one. */
static int file_rotate(FileSink *f) {
        FileConfig *c = sink_config(f->sink);
        _cleanup_free_ char *p = NULL;
        int fd;

        p = rotated_path(f, f->have_first ? f->first_offset : f->written_last);
        if (!p)
                return -ENOMEM;
        if (rename(c->address, p) < 0)
                return log_warning_errno(errno, "Sink %s: cannot rename %s to %s: %m", sink_name(f->sink), c->address, p);
        fd = open(c->address, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, 0640);
        if (fd < 0)
                return log_warning_errno(errno, "Sink %s: cannot create %s: %m", sink_name(f->sink), c->address);
        log_info("Sink %s: rotated %s to %s", sink_name(f->sink), c->address, p);
        safe_close(f->fd);
        f->fd = fd;
        f->size = 0;
        f->have_first = false;
        /* The rename and the new file become durable with the next sync, before anything in the new
         * file is confirmed. Lost in a power cut, the rename is undone, which resumes the same. */
        f->need_dir_sync = true;
        if (c->max_files > 0)
                file_prune(f, c->max_files);
        return 0;
}

static void file_sync_done(uint64_t token, int error, void *userdata) {
        FileTypeData *t = userdata;
        FileSink *f = NULL;
        FileConfig *c;

        LIST_FOREACH(sinks, i, t->sinks)
                if (i->sync_in_flight && i->sync_token == token) {
                        f = i;
                        break;
                }
        if (!f)
                return; /* its sink closed meanwhile */
        c = sink_config(f->sink);
        f->sync_in_flight = false;
        if (error < 0) {
                (void) sink_fail(f->sink, error, "cannot sync %s", c->address);
                return;
        }
        if (f->written_last == f->sync_last)
                f->have_written = false;
        sink_confirm(f->sink, f->sync_last);
        if (c->max_bytes > 0 && f->size >= c->max_bytes && file_rotate(f) < 0) {
                (void) sink_fail(f->sink, -EIO, "cannot rotate %s", c->address);
                return;
        }
        if (f->blocked) {
                f->blocked = false;
                sink_ready(f->sink);
        }
        /* What arrived during the sync goes out now. */
        file_flush(f->sink);
}

static const SinkType file_sink = {
        .name = "file",
        .description = "Delivers the queue as JSON lines into a local file, exactly once.",
        .config_size = sizeof(FileConfig),
        .options = file_options,
        .data_size = sizeof(FileSink),
        .setup = file_setup,
        .teardown = file_teardown,
        .validate = file_validate,
        .init = file_init,
        .done = file_done,
        .open = file_open,
        .deliver = file_deliver,
        .flush = file_flush,
        .close = file_close,
};

SINK_DEFINE_MAIN(file_sink);
