/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* dpipe-connector-file: follows a local CSV, JSON Lines or text file like `tail -F`, with inotify on
 * its directory (plus a slow poll as a safety net).
 *
 * The cursor is {"dev","ino","offset"}: the end of the last record handed to the writer and acked.
 * A restart resumes there (same seqs, so the writer drops anything it already has). Rotation (the
 * file renamed away and a new one created, logrotate's default) is noticed by the inode changing:
 * the old file is read to its end first, then the new one from its start. Truncation in place
 * (copytruncate) is noticed by the size dropping below our offset: reading restarts at 0.
 *
 * This type was written against man:dpipe-connector(7) alone: it touches no file of dpiped or the
 * writer, only its own folder, its units line and its man page. */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/stat.h>

#include "connector-format.h"
#include "connector.h"
#include "json-util.h"
#include "log.h"
#include "util.h"

#define READ_CHUNK (256u * 1024u)
#define READ_PER_WAKEUP (8u * 1024u * 1024u)

typedef struct FileConfig {
        char *address; /* the path */
        char *format;
        char *csv_header;
        char *start;   /* "beginning" or "end": where a file without cursor is read from */
        uint32_t poll_ms;
        uint64_t max_record_bytes;
} FileConfig;

static const ConnectorOption file_options[] = {
        CONNECTOR_OPTION_STRING("address", FileConfig, address, NULL, true, "the file to follow, an absolute path"),
        CONNECTOR_OPTION_STRING("format", FileConfig, format, "auto", false,
                                "auto (by extension), jsonl, csv or lines"),
        CONNECTOR_OPTION_STRING("csv_header", FileConfig, csv_header, NULL, false,
                                "comma-separated field names for header-less CSV"),
        CONNECTOR_OPTION_STRING("start", FileConfig, start, "beginning", false,
                                "where to start in a file without cursor: beginning or end"),
        CONNECTOR_OPTION_U32("poll_ms", FileConfig, poll_ms, "1000", "safety-net poll period in ms"),
        CONNECTOR_OPTION_U64("max_record_bytes", FileConfig, max_record_bytes, "1048576",
                             "longer records are skipped"),
        {}
};

typedef struct FileSource {
        Source *source;
        FileConfig *config;
        RecordFormat format;
        char *dir, *base;

        int inotify_fd;
        sd_event_source *inotify_io, *poll_timer;
        int fd;
        dev_t dev;
        ino_t ino;
        uint64_t read_pos; /* bytes read from fd so far (offset of the buffer's tail) */
        bool missing_logged;
        bool opened_once; /* the cursor applies to the first open after start() only */
        Buffer in;
        RecordReader reader;
} FileSource;

static RecordFormat file_format(const FileConfig *c) {
        RecordFormat f = record_format_from_string(c->format);
        const char *dot;

        if (f != RECORD_FORMAT_AUTO)
                return f;
        dot = c->address ? strrchr(c->address, '.') : NULL;
        if (dot && strcasecmp(dot, ".csv") == 0)
                return RECORD_FORMAT_CSV;
        if (dot && (strcasecmp(dot, ".jsonl") == 0 || strcasecmp(dot, ".json") == 0 || strcasecmp(dot, ".ndjson") == 0))
                return RECORD_FORMAT_JSONL;
        return RECORD_FORMAT_LINES;
}

static int file_validate(const void *config, char **ret_message) {
        const FileConfig *c = config;
        RecordFormat f = file_format(c);

        if (f < 0 || f == RECORD_FORMAT_DPIPE || f == RECORD_FORMAT_JSON)
                return asprintf(ret_message, "unknown format '%s' (auto, jsonl, csv, lines)", c->format) < 0 ? -ENOMEM
                                                                                                          : -EINVAL;
        if (c->address[0] != '/')
                return asprintf(ret_message, "address must be an absolute path, not '%s'", c->address) < 0 ? -ENOMEM
                                                                                                          : -EINVAL;
        if (!streq(c->start, "beginning") && !streq(c->start, "end"))
                return (*ret_message = strdup("start must be 'beginning' or 'end'")) ? -EINVAL : -ENOMEM;
        if (c->poll_ms == 0)
                return (*ret_message = strdup("poll_ms must be positive")) ? -EINVAL : -ENOMEM;
        return 0;
}

static int file_init(Source *s) {
        FileSource *t = source_data(s);
        FileConfig *c = source_config(s);
        _cleanup_free_ char *d = NULL, *b = NULL;

        t->source = s;
        t->config = c;
        t->fd = t->inotify_fd = -EBADF;
        t->format = file_format(c);
        d = strdup(c->address);
        b = strdup(c->address);
        if (!d || !b)
                return -ENOMEM;
        t->dir = strdup(dirname(d));
        t->base = strdup(basename(b));
        if (!t->dir || !t->base)
                return -ENOMEM;
        return record_reader_init(&t->reader, t->format, (size_t) c->max_record_bytes, c->csv_header);
}

static void file_close(FileSource *t) {
        t->fd = safe_close(t->fd);
        buffer_clear(&t->in);
        t->read_pos = 0;
}

static void file_stop(Source *s) {
        FileSource *t = source_data(s);

        file_close(t);
        t->inotify_io = sd_event_source_disable_unref(t->inotify_io);
        t->poll_timer = sd_event_source_disable_unref(t->poll_timer);
        t->inotify_fd = safe_close(t->inotify_fd);
}

static void file_done(Source *s) {
        FileSource *t = source_data(s);

        file_stop(s);
        buffer_done(&t->in);
        record_reader_done(&t->reader);
        free(t->dir);
        free(t->base);
}

static int file_set_position(FileSource *t) {
        char pos[128];

        (void) snprintf(pos, sizeof(pos), "{\"dev\":%" PRIu64 ",\"ino\":%" PRIu64 ",\"offset\":%" PRIu64 "}",
                        (uint64_t) t->dev, (uint64_t) t->ino, t->reader.offset);
        return source_set_position(t->source, pos);
}

/* After resuming in the middle of a CSV file, its header line still names the fields. */
static int file_read_csv_header(FileSource *t) {
        _cleanup_(buffer_done) Buffer b = {};
        char *rec;
        size_t len;
        ssize_t n;
        int r;

        if (t->format != RECORD_FORMAT_CSV || t->reader.header)
                return 0;
        r = buffer_reserve(&b, MIN(t->reader.max_record + 1, (size_t) 1024 * 1024));
        if (r < 0)
                return r;
        n = pread(t->fd, buffer_tail(&b), b.allocated - b.tail, 0);
        if (n < 0)
                return -errno;
        buffer_advance(&b, (size_t) n);
        r = record_reader_next(&t->reader, &b, false, &rec, &len);
        if (r <= 0)
                return r;
        return record_reader_emit(&t->reader, t->source, rec, len) < 0 ? -ENOMEM : 0;
}

/* Opens the file; resumes at the cursor if it names this very file, else at the start (or end). */
static int file_open(FileSource *t, bool use_cursor) {
        Source *s = t->source;
        const char *pos = source_position(s);
        uint64_t offset = 0;
        struct stat st;
        int r;

        t->fd = open(t->config->address, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (t->fd < 0) {
                r = -errno;
                t->fd = -EBADF;
                return r;
        }
        if (fstat(t->fd, &st) < 0) {
                r = -errno;
                file_close(t);
                return r;
        }
        if (!S_ISREG(st.st_mode) && !S_ISFIFO(st.st_mode)) {
                file_close(t);
                return -EISDIR;
        }
        t->dev = st.st_dev;
        t->ino = st.st_ino;

        if (use_cursor && pos) {
                _cleanup_json_ json_object *o = json_tokener_parse(pos);
                uint64_t dev = 0, ino = 0;

                if (o && json_get_uint64(o, "dev", &dev) && json_get_uint64(o, "ino", &ino) && dev == (uint64_t) st.st_dev &&
                    ino == (uint64_t) st.st_ino && json_get_uint64(o, "offset", &offset)) {
                        if (offset > (uint64_t) st.st_size && S_ISREG(st.st_mode)) {
                                log_notice("Source %s: %s is shorter than the cursor (%" PRIu64 " < %" PRIu64
                                           "), truncated: reading from the start",
                                           source_name(s), t->config->address, (uint64_t) st.st_size, offset);
                                offset = 0;
                        }
                } else if (o)
                        log_notice("Source %s: %s is not the file of the cursor any more (rotated while we were "
                                   "away), reading it from the start", source_name(s), t->config->address);
        } else if (use_cursor && streq(t->config->start, "end") && S_ISREG(st.st_mode))
                offset = (uint64_t) st.st_size;

        if (offset > 0 && lseek(t->fd, (off_t) offset, SEEK_SET) < 0) {
                r = -errno;
                file_close(t);
                return r;
        }
        t->read_pos = offset;
        buffer_clear(&t->in);
        record_reader_reset(&t->reader, offset);
        if (offset > 0) {
                r = file_read_csv_header(t);
                if (r < 0)
                        log_warning_errno(r, "Source %s: failed to read the CSV header, ignoring: %m", source_name(s));
        }
        log_info("Source %s: following %s (inode %" PRIu64 ") from offset %" PRIu64, source_name(s),
                 t->config->address, (uint64_t) t->ino, offset);
        t->missing_logged = false;
        t->opened_once = true;
        source_active(s);
        return 0;
}

/* Reads what is there. Returns 1 if it stopped early (budget or throttle), 0 at the end, <0 failed. */
static int file_read(FileSource *t, bool final) {
        Source *s = t->source;
        size_t budget = 0;
        int r;

        for (;;) {
                ssize_t n;

                if (source_is_throttled(s))
                        return 1;
                if (budget >= READ_PER_WAKEUP)
                        return 1;
                n = buffer_read_fd(&t->in, t->fd, READ_CHUNK);
                if (n == -EAGAIN)
                        n = 0;
                if (n < 0)
                        return source_fail(s, (int) n, "read %s failed", t->config->address);
                t->read_pos += (uint64_t) n;
                budget += (size_t) n;
                r = record_reader_feed(&t->reader, s, &t->in, n == 0 && final);
                if (r < 0)
                        return source_fail(s, r, "failed to process %s", t->config->address);
                if (n == 0)
                        break;
        }
        return file_set_position(t);
}

static void file_schedule(FileSource *t, uint64_t delay) {
        (void) sd_event_source_set_time_relative(t->poll_timer, delay);
        (void) sd_event_source_set_enabled(t->poll_timer, SD_EVENT_ONESHOT);
}

static void file_check(FileSource *t) {
        Source *s = t->source;
        struct stat st, fst;
        int r;

        if (t->fd < 0) {
                r = file_open(t, !t->opened_once);
                if (r < 0) {
                        if (!t->missing_logged)
                                log_notice_errno(r, "Source %s: cannot open %s yet, waiting for it: %m", source_name(s),
                                                 t->config->address);
                        t->missing_logged = true;
                        return;
                }
        }

        r = file_read(t, false);
        if (r < 0 || t->fd < 0)
                return;
        if (r > 0) {
                file_schedule(t, source_is_throttled(s) ? 100 * USEC_PER_MSEC : 0);
                return;
        }

        /* Rotated away (renamed or deleted, maybe replaced)? Finish the old file first. */
        if (stat(t->config->address, &st) < 0 || st.st_ino != t->ino || st.st_dev != t->dev) {
                r = file_read(t, true);
                if (r < 0)
                        return;
                log_info("Source %s: %s was rotated, switching to the new file", source_name(s), t->config->address);
                file_close(t);
                r = file_open(t, false);
                if (r >= 0)
                        file_check(t);
                return;
        }
        /* Truncated in place (copytruncate)? */
        if (fstat(t->fd, &fst) >= 0 && S_ISREG(fst.st_mode) && (uint64_t) fst.st_size < t->read_pos) {
                log_notice("Source %s: %s was truncated (%" PRIu64 " < %" PRIu64 "), reading from the start",
                           source_name(s), t->config->address, (uint64_t) fst.st_size, t->read_pos);
                if (lseek(t->fd, 0, SEEK_SET) < 0) {
                        source_fail(s, errno, "seek %s failed", t->config->address);
                        return;
                }
                t->read_pos = 0;
                buffer_clear(&t->in);
                record_reader_reset(&t->reader, 0);
                file_check(t);
        }
}

static int file_inotify(sd_event_source *es, int fd, uint32_t revents, void *userdata) {
        FileSource *t = userdata;
        char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
        bool relevant = false;

        for (;;) {
                ssize_t n = read(fd, buf, sizeof(buf));
                if (n <= 0)
                        break;
                for (char *p = buf; p < buf + n;) {
                        struct inotify_event *e = (struct inotify_event *) p;
                        if (e->len == 0 || streq(e->name, t->base))
                                relevant = true;
                        if (e->mask & IN_Q_OVERFLOW)
                                relevant = true;
                        p += sizeof(struct inotify_event) + e->len;
                }
        }
        if (relevant)
                file_check(t);
        return 0;
}

static int file_poll(sd_event_source *es, uint64_t usec, void *userdata) {
        FileSource *t = userdata;

        file_schedule(t, (uint64_t) t->config->poll_ms * USEC_PER_MSEC);
        file_check(t);
        return 0;
}

static void file_start(Source *s) {
        FileSource *t = source_data(s);
        int r;

        t->opened_once = false;
        t->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (t->inotify_fd < 0) {
                source_fail(s, errno, "inotify_init1 failed");
                return;
        }
        if (inotify_add_watch(t->inotify_fd, t->dir,
                              IN_MODIFY | IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_CLOSE_WRITE |
                                      IN_ATTRIB) < 0) {
                source_fail(s, errno, "cannot watch directory %s", t->dir);
                return;
        }
        r = sd_event_add_io(source_get_event(s), &t->inotify_io, t->inotify_fd, EPOLLIN, file_inotify, t);
        if (r >= 0)
                r = sd_event_add_time_relative(source_get_event(s), &t->poll_timer, CLOCK_MONOTONIC,
                                               (uint64_t) t->config->poll_ms * USEC_PER_MSEC, 10 * USEC_PER_MSEC,
                                               file_poll, t);
        if (r < 0) {
                source_fail(s, r, "failed to set up event sources");
                return;
        }
        file_check(t);
}

static void file_throttle(Source *s, bool throttled) {
        FileSource *t = source_data(s);

        if (!throttled && t->poll_timer)
                file_schedule(t, 0);
}

static const ConnectorType file_connector = {
        .name = "file",
        .description = "dpipe connector that follows local CSV, JSON Lines or text files (inotify).",
        .config_size = sizeof(FileConfig),
        .options = file_options,
        .data_size = sizeof(FileSource),
        .validate = file_validate,
        .init = file_init,
        .done = file_done,
        .start = file_start,
        .stop = file_stop,
        .throttle = file_throttle,
};

CONNECTOR_DEFINE_MAIN(file_connector);
