/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* One source: its state machine (connecting -> active -> backoff -> connecting ..., paused, failed),
 * counters, the open batch, the backoff timer and the persisted cursor. */

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "connector-format.h"
#include "connector-internal.h"
#include "frame.h"
#include "io-util.h"
#include "json-scan.h"
#include "json-util.h"
#include "log.h"

_Static_assert((int) SOURCE_CONNECTING == SERVICE_CONNECTING && (int) SOURCE_ACTIVE == SERVICE_ACTIVE &&
                       (int) SOURCE_BACKOFF == SERVICE_BACKOFF && (int) SOURCE_PAUSED == SERVICE_PAUSED &&
                       (int) SOURCE_FAILED == SERVICE_FAILED,
               "a source's states are the service library's");

const char *source_state_to_string(SourceState s) {
        return service_state_to_string(s);
}

const char *source_name(Source *s) {
        return s->name;
}
void *source_config(Source *s) {
        return s->config;
}
const SourceCommonConfig *source_common_config(Source *s) {
        return &s->common;
}
void *source_data(Source *s) {
        return s->data;
}
void *source_type_userdata(Source *s) {
        return s->manager->service.type_userdata;
}
sd_event *source_get_event(Source *s) {
        return s->manager->event;
}
SourceState source_get_state(Source *s) {
        return s->core.state;
}
uint64_t source_next_seq(Source *s) {
        return s->next_seq;
}
const char *source_position(Source *s) {
        return s->position;
}
bool source_is_throttled(Source *s) {
        return s->throttled;
}

json_object *source_state_json(Source *s) {
        json_object *o = json_object_new_object();

        if (!o)
                return NULL;
        json_object_object_add(o, "op", json_object_new_string("state"));
        json_object_object_add(o, "name", json_object_new_string(s->name));
        json_object_object_add(o, "state", json_object_new_string(source_state_to_string(s->core.state)));
        json_object_object_add(o, "records", json_object_new_uint64(s->records));
        json_object_object_add(o, "bytes", json_object_new_uint64(s->bytes));
        json_object_object_add(o, "skipped", json_object_new_uint64(s->skipped));
        json_object_object_add(o, "filtered", json_object_new_uint64(s->filtered));
        json_object_object_add(o, "skip_reason", json_object_new_string(s->skip_reason));
        json_object_object_add(o, "last_record_us", json_object_new_uint64(s->last_record_us));
        json_object_object_add(o, "last_heartbeat_us", json_object_new_uint64(s->last_heartbeat_us));
        json_object_object_add(o, "reconnects", json_object_new_uint64(s->core.reconnects));
        json_object_object_add(o, "next_seq", json_object_new_uint64(s->next_seq));
        json_object_object_add(o, "error", json_object_new_string(s->core.error ?: ""));
        return o;
}

int source_report(Source *s) {
        return service_instance_report(&s->core);
}

static void source_set_state(Source *s, SourceState state) {
        service_instance_set_state(&s->core, state);
}

static void source_do_start(Source *s) {
        if (s->started || s->removed || s->manager->service.exiting)
                return;
        s->started = true;
        s->manager->type->start(s);
}

static void source_do_stop(Source *s) {
        s->core.backoff_timer = sd_event_source_disable_unref(s->core.backoff_timer);
        if (!s->started)
                return;
        s->started = false;
        s->manager->type->stop(s);
        source_flush(s);
        if (!s->removed && s->cursor_dirty) {
                s->cursor_save_due = true;
                manager_schedule_cursor_save(s->manager);
        }
}

/* Enters connecting; the type's start() runs once the writer told us where to resume. */
static void source_begin(Source *s) {
        source_set_state(s, SOURCE_CONNECTING);
        if (!s->resume_known) {
                if (!s->hello_pending)
                        (void) writer_client_hello(&s->manager->writer, s);
                return;
        }
        source_do_start(s);
}

/* The connector's stop() and begin() for the service library's life cycle (ServiceClass). */
void source_class_stop(void *instance) {
        source_do_stop(instance);
}

void source_class_begin(void *instance) {
        source_begin(instance);
}

void source_resume_known(Source *s, bool have_last_seq, uint64_t last_seq) {
        uint64_t from_writer = have_last_seq ? last_seq + 1 : 0;

        s->hello_pending = false;
        if (s->resume_known)
                return;
        if (have_last_seq && last_seq == SOURCE_SEQ_INVALID) {
                /* Stored by an older version: last_seq + 1 would wrap to 0 and every record would be
                 * a duplicate. Say so instead of resuming at 0. */
                (void) source_fail_permanently(
                        s, 0,
                        "the queue holds seq %" PRIu64 " for this source, which no record can follow; "
                        "add the source again under a new name",
                        last_seq);
                return;
        }
        s->resume_known = true;
        /* With a position, the cursor's seq belongs to it: re-reading from there gives the same seqs,
         * which the writer drops as duplicates. Without, continue after whatever is later. */
        if (s->position)
                s->next_seq = s->cursor_seq;
        else
                s->next_seq = MAX(s->cursor_seq, from_writer);
        log_debug("Source %s: resuming at seq %" PRIu64 " (writer %s%" PRIu64 ", cursor %" PRIu64 ")", s->name,
                  s->next_seq, have_last_seq ? "" : "empty, ", last_seq, s->cursor_seq);
        if (s->core.state == SOURCE_CONNECTING)
                source_do_start(s);
}

static char *source_cursor_path(Source *s) {
        char *p = NULL;

        if (asprintf(&p, "%s/%s.cursor", s->manager->cursor_dir, s->name) < 0)
                return NULL;
        return p;
}

static int source_load_cursor(Source *s) {
        _cleanup_free_ char *path = NULL, *text = NULL;
        _cleanup_json_ json_object *o = NULL;
        json_object *pos;
        size_t size;
        uint64_t seq;
        int r;

        path = source_cursor_path(s);
        if (!path)
                return -ENOMEM;
        r = read_file(path, 1024 * 1024, &text, &size);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return log_source_warning_errno(s->name, r, "Source %s: failed to read cursor %s, ignoring: %m", s->name, path);
        r = json_parse_n(text, size, &o, NULL);
        if (r < 0 || !json_object_is_type(o, json_type_object) || !json_get_uint64(o, "next_seq", &seq))
                return log_source_warning_errno(s->name, r < 0 ? r : -EBADMSG, "Source %s: malformed cursor %s, ignoring.", s->name,
                                         path);
        s->cursor_seq = seq;
        if (json_object_object_get_ex(o, "position", &pos) && pos) {
                s->position = strdup(json_object_to_json_string_ext(pos, JSON_C_TO_STRING_PLAIN));
                if (!s->position)
                        return -ENOMEM;
        }
        log_debug("Source %s: cursor at seq %" PRIu64 ", position %s", s->name, seq, s->position ?: "none");
        return 0;
}

static int source_cursor_text(Source *s, Buffer *b) {
        return buffer_printf(b, "{\"next_seq\":%" PRIu64 ",\"position\":%s}\n", s->cursor_seq, s->position ?: "null");
}

int source_save_cursor(Source *s) {
        _cleanup_free_ char *path = NULL;
        _cleanup_(buffer_done) Buffer b = {};
        int r;

        if (!s->cursor_dirty)
                return 0;
        path = source_cursor_path(s);
        if (!path)
                return -ENOMEM;
        r = source_cursor_text(s, &b);
        if (r < 0)
                return r;
        r = mkdir_p(s->manager->cursor_dir, 0755);
        if (r < 0)
                return log_warning_errno(r, "Failed to create %s: %m", s->manager->cursor_dir);
        r = write_file_atomic(path, buffer_begin(&b), buffer_size(&b));
        if (r < 0)
                return log_source_warning_errno(s->name, r, "Source %s: failed to write cursor %s: %m", s->name, path);
        s->cursor_dirty = false;
        return 0;
}

/* Writes <name>.cursor.tmp.<pid> in the cursor directory, without fsync. */
static int source_write_cursor_tmp(Source *s, int dfd, Buffer *b) {
        _cleanup_free_ char *tmp = NULL;
        _cleanup_close_ int fd = -EBADF;
        int r;

        buffer_clear(b);
        r = source_cursor_text(s, b);
        if (r < 0)
                return r;
        if (asprintf(&tmp, "%s.cursor.tmp.%ld", s->name, (long) getpid()) < 0)
                return -ENOMEM;
        fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0)
                return -errno;
        r = loop_write(fd, buffer_begin(b), buffer_size(b));
        if (r < 0) {
                (void) unlinkat(dfd, tmp, 0);
                return r;
        }
        return 0;
}

static bool cursor_selected(const Source *s, CursorSelection which) {
        if (!s->cursor_dirty)
                return false;
        switch (which) {
        case CURSORS_ALL:
                return true;
        case CURSORS_WITH_POSITION:
                return s->position || s->cursor_save_due;
        case CURSORS_DUE:
                return s->cursor_save_due;
        }
        return false;
}

int source_save_cursors(Manager *m, CursorSelection which) {
        _cleanup_free_ Source **written = NULL;
        _cleanup_(buffer_done) Buffer b = {};
        _cleanup_close_ int dfd = -EBADF;
        struct lh_entry *e;
        size_t n = 0, n_dirty = 0;
        Source *one = NULL;
        int r;

        service_foreach(&m->service, e) {
                Source *s = (Source *) lh_entry_v(e);
                if (cursor_selected(s, which)) {
                        n_dirty++;
                        one = s;
                }
        }
        if (n_dirty <= 1) {
                if (!one)
                        return 0;
                one->cursor_save_due = false; /* written once; should that fail, the exit writes it */
                return source_save_cursor(one);
        }

        /* Many cursors (e.g. at exit with a thousand sources): the same atomic replacement as
         * write_file_atomic(), but with one syncfs() for all the new files and one fsync() of the
         * directory for all the renames, instead of two fsync()s per file. A cursor only ever says
         * what the writer acked, so writing it late is safe; a crash leaves each cursor old or new. */
        r = mkdir_p(m->cursor_dir, 0755);
        if (r < 0)
                return log_warning_errno(r, "Failed to create %s: %m", m->cursor_dir);
        dfd = open(m->cursor_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return log_warning_errno(errno, "Failed to open %s: %m", m->cursor_dir);
        written = calloc(n_dirty, sizeof(Source *));
        if (!written)
                return log_oom();
        service_foreach(&m->service, e) {
                Source *s = (Source *) lh_entry_v(e);
                if (!cursor_selected(s, which) || n >= n_dirty)
                        continue;
                s->cursor_save_due = false; /* a failure is not retried before the exit */
                r = source_write_cursor_tmp(s, dfd, &b);
                if (r < 0) {
                        log_source_warning_errno(s->name, r, "Source %s: failed to write cursor: %m", s->name);
                        continue;
                }
                written[n++] = s;
        }
        if (syncfs(dfd) < 0) {
                r = log_warning_errno(errno, "Failed to sync the cursors in %s: %m", m->cursor_dir);
                for (size_t i = 0; i < n; i++) {
                        _cleanup_free_ char *tmp = NULL;
                        if (asprintf(&tmp, "%s.cursor.tmp.%ld", written[i]->name, (long) getpid()) >= 0)
                                (void) unlinkat(dfd, tmp, 0);
                }
                return r;
        }
        for (size_t i = 0; i < n; i++) {
                _cleanup_free_ char *tmp = NULL, *name = NULL;
                Source *s = written[i];

                if (asprintf(&tmp, "%s.cursor.tmp.%ld", s->name, (long) getpid()) < 0 ||
                    asprintf(&name, "%s.cursor", s->name) < 0)
                        return log_oom();
                if (renameat(dfd, tmp, dfd, name) < 0) {
                        log_source_warning_errno(s->name, errno, "Source %s: failed to write cursor %s: %m", s->name, name);
                        (void) unlinkat(dfd, tmp, 0);
                        continue;
                }
                s->cursor_dirty = false;
        }
        if (fsync(dfd) < 0)
                return log_warning_errno(errno, "Failed to sync %s: %m", m->cursor_dir);
        return 0;
}

const ConnectorOption connector_common_options[] = {
        CONNECTOR_OPTION_STRING("transform", SourceCommonConfig, transform, NULL, false,
                                "steps applied to each record, see dpipe-connector(7)"),
        {}
};

/* A transform program compiled, or the reason why not in *ret_message. */
static int transform_check(const char *program, Transform **ret, char **ret_message) {
        _cleanup_free_ char *error = NULL;
        int r;

        r = transform_compile(program, ret, &error);
        if (r == -EINVAL && asprintf(ret_message, "invalid transform: %s", error) < 0)
                *ret_message = NULL;
        return r;
}

/* Parses options with the common table and the type's, into common and config. Strict: an unknown
 * name is refused; else it is logged and ignored, so that a source saved before an option went
 * away keeps running (dpiped checked it strictly when it was added). */
static int options_configure(const ConnectorType *t, const char *name, json_object *options, bool strict,
                             SourceCommonConfig *common, void *config, char **ret_message) {
        const ConnectorOption *tables[2] = { connector_common_options, t->options };
        void *configs[2] = { common, config };
        _cleanup_free_ char *unknown = NULL;
        int r;

        r = config_tables_parse(tables, configs, ELEMENTSOF(tables), options, strict ? CONFIG_PARSE_STRICT : 0,
                                &unknown, ret_message);
        if (r < 0)
                return r;
        if (unknown)
                /* (Only when not strict, with a name; gcc -O3 can not see that and refused a NULL %s.) */
                log_source_warning(name, "Source %s: unknown option%s %s, ignoring (see --list-options).", name ?: "?",
                                   strchr(unknown, ',') ? "s" : "", unknown);
        if (t->validate) {
                r = t->validate(config, ret_message);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* The given options with the values of the table's types: what dpiped stores and shows. */
static int options_typed(const ConnectorType *t, json_object *options, SourceCommonConfig *common, void *config,
                         json_object **ret) {
        const ConnectorOption *tables[2] = { connector_common_options, t->options };
        void *configs[2] = { common, config };

        return config_tables_typed(tables, configs, ELEMENTSOF(tables), options, ret);
}

int connector_check_options(const ConnectorType *t, json_object *options, json_object **ret_typed, char **ret_message) {
        SourceCommonConfig common = {};
        void *config;
        int r;

        *ret_message = NULL;
        config = calloc(1, MAX(t->config_size, (size_t) 1));
        if (!config)
                return -ENOMEM;
        r = options_configure(t, NULL, options, true, &common, config, ret_message);
        if (r >= 0 && !isempty(common.transform)) {
                _cleanup_(transform_freep) Transform *tr = NULL;

                r = transform_check(common.transform, &tr, ret_message);
        }
        if (r >= 0 && ret_typed)
                r = options_typed(t, options, &common, config, ret_typed);
        config_table_free(t->options, config);
        config_table_free(connector_common_options, &common);
        free(config);
        if (r < 0 && r != -ENOMEM && !*ret_message && asprintf(ret_message, "invalid options: %s", strerror(-r)) < 0)
                *ret_message = NULL;
        return r;
}

/* The option every type has (connector_common_options): transform, compiled once here. */
static int source_configure_transform(Source *s, char **ret_message) {
        int r;

        if (isempty(s->common.transform))
                return 0; /* no transform */
        r = transform_check(s->common.transform, &s->transform, ret_message);
        if (r < 0)
                return r;
        if (gethostname(s->host, sizeof(s->host) - 1) < 0)
                s->host[0] = 0;
        return 0;
}

static int source_configure(Source *s, json_object *options, char **ret_message) {
        const ConnectorType *t = s->manager->type;
        int r;

        s->config = calloc(1, MAX(t->config_size, (size_t) 1));
        if (!s->config)
                return -ENOMEM;
        r = options_configure(t, s->name, options, false, &s->common, s->config, ret_message);
        if (r < 0)
                return r;
        r = source_configure_transform(s, ret_message);
        if (r < 0)
                return r;
        s->data = calloc(1, MAX(t->data_size, (size_t) 1));
        if (!s->data)
                return -ENOMEM;
        if (t->init) {
                r = t->init(s);
                if (r < 0) {
                        if (!*ret_message && asprintf(ret_message, "failed to set up source: %s", strerror(-r)) < 0)
                                *ret_message = NULL;
                        return r;
                }
        }
        return 0;
}

static void source_unconfigure(Source *s) {
        const ConnectorType *t = s->manager->type;

        if (s->data && t->done)
                t->done(s);
        s->data = mfree(s->data);
        config_table_free(t->options, s->config);
        config_table_free(connector_common_options, &s->common);
        s->config = mfree(s->config);
        s->transform = transform_free(s->transform);
        json_scan_members_done(&s->members);
}

int source_new(Manager *m, const char *name, json_object *options, bool paused, char **ret_message, Source **ret) {
        _cleanup_(source_freep) Source *s = NULL;
        int r;

        s = calloc(1, sizeof(Source));
        if (!s)
                return -ENOMEM;
        s->manager = m;
        s->name = strdup(name);
        if (!s->name)
                return -ENOMEM;
        service_instance_init(&s->core, &m->service, s, s->name,
                              BACKOFF_INIT(BACKOFF_MIN_USEC, BACKOFF_MAX_USEC, true));
        r = source_configure(s, options, ret_message);
        if (r < 0)
                return r;
        s->options = options ? json_object_get(options) : NULL;
        r = source_load_cursor(s);
        if (r == -ENOMEM)
                return r;
        r = service_insert(&m->service, s->name, s);
        if (r < 0)
                return r;
        s->core.paused = paused;
        log_source_info(s->name, "Source %s: added%s", s->name, paused ? " (paused)" : "");
        if (paused) {
                s->core.state = SOURCE_PAUSED;
                (void) source_report(s);
        } else {
                (void) source_report(s);
                source_begin(s);
        }
        *ret = TAKE_PTR(s);
        return 0;
}

Source *source_free(Source *s) {
        if (!s)
                return NULL;
        if (s->started) {
                s->started = false;
                s->manager->type->stop(s);
        }
        if (s->open_batch) {
                s->manager->open_bytes -= MIN(s->manager->open_bytes, batch_size(&s->builder));
                writer_client_recycle_batch(&s->manager->writer, s->open_batch);
                s->open_batch = NULL;
        }
        if (s->in_flush_list)
                LIST_REMOVE_TAIL(flush, s->manager->flush_head, s->manager->flush_tail, s);
        service_instance_done(&s->core);
        source_unconfigure(s);
        if (s->options)
                json_object_put(s->options);
        free(s->position);
        free(s->pending_position);
        free(s->name);
        return mfree(s);
}

int source_update(Source *s, json_object *options, bool paused, char **ret_message) {
        _cleanup_free_ void *old_config = NULL, *old_data = NULL;
        int r;

        if (options && s->options && json_object_equal(options, s->options)) {
                /* Same definition (dpiped re-sends every source when it reconnects): keep running. */
                if (paused != s->core.paused) {
                        if (paused)
                                source_pause(s);
                        else
                                source_resume(s);
                }
                return 0;
        }

        log_source_info(s->name, "Source %s: options changed, restarting", s->name);
        source_do_stop(s);
        source_unconfigure(s);
        r = source_configure(s, options, ret_message);
        if (r < 0) {
                source_unconfigure(s);
                /* Keep the object (dpiped may fix the definition), but it cannot run like this. */
                if (s->options)
                        json_object_put(s->options);
                s->options = NULL;
                free(s->core.error);
                s->core.error = *ret_message ? strdup(*ret_message) : NULL;
                source_set_state(s, SOURCE_FAILED);
                return r;
        }
        if (s->options)
                json_object_put(s->options);
        s->options = options ? json_object_get(options) : NULL;
        s->core.paused = paused;
        backoff_reset(&s->core.backoff);
        if (paused)
                source_set_state(s, SOURCE_PAUSED);
        else
                source_begin(s);
        return 0;
}

void source_remove(Source *s) {
        Manager *m = s->manager;
        _cleanup_free_ char *path = NULL;

        log_source_info(s->name, "Source %s: removed", s->name);
        s->removed = true;
        source_do_stop(s);
        /* Batches already handed to the writer client stay there until acked: records read stay. */
        path = source_cursor_path(s);
        if (path)
                (void) unlink(path);
        service_delete(&m->service, s->name);
        source_free(s);
        service_check_idle(&m->service);
}

void source_pause(Source *s) {
        service_instance_pause(&s->core);
}

void source_resume(Source *s) {
        service_instance_resume(&s->core, s->config);
}

int source_fail(Source *s, int error, const char *fmt, ...) {
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = service_instance_fail(&s->core, error, fmt, ap);
        va_end(ap);
        return r;
}

int source_fail_permanently(Source *s, int error, const char *fmt, ...) {
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = service_instance_fail_permanently(&s->core, error, fmt, ap);
        va_end(ap);
        return r;
}

void source_connecting(Source *s) {
        source_set_state(s, SOURCE_CONNECTING);
}

void source_active(Source *s) {
        source_set_state(s, SOURCE_ACTIVE);
}

void source_backoff_reset(Source *s) {
        backoff_reset(&s->core.backoff);
}

void source_heartbeat(Source *s) {
        s->last_heartbeat_us = manager_now(s->manager);
        s->core.state_dirty = true;
}

static void source_skip_records(Source *s, uint64_t n, const char *position, const char *fmt, va_list ap)
        _printf_(4, 0);
static void source_skip_records(Source *s, uint64_t n, const char *position, const char *fmt, va_list ap) {
        char msg[200];
        int k;

        (void) vsnprintf(msg, sizeof(msg), fmt, ap);
        s->skipped += n;
        s->core.state_dirty = true;
        /* No allocation: a stream of bad records must not cost more than a stream of good ones. */
        k = snprintf(s->skip_reason, sizeof(s->skip_reason), "%s%s%s", position ?: "", position ? ": " : "", msg);
        if (k < 0)
                s->skip_reason[0] = 0;
        if (s->skips_logged < SKIPS_LOGGED_PER_SEC) {
                s->skips_logged++;
                log_source_warning(s->name, "Source %s: skipping %s%s: %s", s->name, n == 1 ? "record at " : "records of ",
                                   position ?: "?", msg);
        } else
                s->skips_unlogged += n;
}

void source_skip_record(Source *s, const char *position, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        source_skip_records(s, 1, position, fmt, ap);
        va_end(ap);
}

void source_log_skips(Source *s) {
        if (s->skips_unlogged > 0)
                log_source_warning(s->name, "Source %s: skipped %" PRIu64 " more records (last: %s)", s->name,
                                   s->skips_unlogged, s->skip_reason);
        s->skips_unlogged = 0;
        s->skips_logged = 0;
}

/* Makes room for a record of about len bytes in the open batch, opening one if needed. */
static int source_batch_prepare(Source *s, uint64_t seq, size_t len) {
        WriterClient *w = &s->manager->writer;
        int r;

        /* Flush before the record would take the batch over its size: its buffer then stays at
         * BATCH_FLUSH_BYTES instead of doubling for the last record (the memory budget counts
         * allocations). A record bigger than that gets a batch of its own. */
        if (s->open_batch && s->open_batch->count > 0 &&
            batch_size(&s->builder) + len + BATCH_RECORD_HEADER_SIZE > BATCH_FLUSH_BYTES)
                source_flush(s);
        if (!s->open_batch) {
                Batch *b = writer_client_new_batch(w);
                if (!b)
                        return -ENOMEM;
                b->id = w->next_batch_id++;
                r = batch_begin(&s->builder, &b->frame, b->id, s->name, strlen(s->name));
                if (r < 0) {
                        writer_client_recycle_batch(w, b);
                        return r;
                }
                strcpy(b->source, s->name);
                b->first_seq = seq;
                s->open_batch = b;
                s->manager->open_bytes += batch_size(&s->builder);
                manager_schedule_flush(s->manager, s);
        }
        return 0;
}

/* Counts a record just added to the open batch, and flushes what is due. */
static void source_batch_added(Source *s, uint64_t seq, size_t len, uint64_t now) {
        s->manager->open_bytes += BATCH_RECORD_HEADER_SIZE + len;
        if (s->open_batch->count == 0)
                s->open_batch->first_seq = seq; /* (a transform may have dropped the one it was opened for) */
        s->open_batch->last_seq = seq;
        s->open_batch->count++;
        s->next_seq = seq + 1;
        s->records++;
        s->bytes += len;
        s->last_record_us = now;
        s->core.state_dirty = true;

        if (batch_size(&s->builder) >= BATCH_FLUSH_BYTES || s->builder.count >= BATCH_FLUSH_RECORDS)
                source_flush(s);
        /* Over the budget of all open batches: the oldest go first (a source read long ago has
         * nothing more coming in this iteration; the one being read keeps growing its batch). */
        while (s->manager->open_bytes > BATCH_OPEN_BUDGET && s->manager->flush_head)
                source_flush(s->manager->flush_head);
}

static int source_emit_raw(Source *s, uint64_t seq, const char *data, size_t len) {
        uint64_t now;
        int r;

        if (seq == SOURCE_SEQ_INVALID)
                return -ERANGE;
        if (seq < s->next_seq)
                return 0;
        if (len > FRAME_SIZE_MAX / 2)
                return -EMSGSIZE;
        r = source_batch_prepare(s, seq, len);
        if (r < 0)
                return r;
        now = manager_now(s->manager);
        r = batch_add(&s->builder, seq, now, data, (uint32_t) len);
        if (r < 0)
                return r;
        source_batch_added(s, seq, len, now);
        return 1;
}

/* Runs the source's transform on a record and queues what it makes of it: the output is written
 * straight into the open batch (no copy), and taken back out if the record is not emitted. With
 * mt, the record's members were listed by the pass that validated it (source_emit_listed()); else
 * the transform's scan is that pass. "<what> <n>" names the record in a skip message. */
static int source_emit_transformed(Source *s, uint64_t seq, const char *data, size_t len, const JsonScanMembers *mt,
                                   ssize_t root, const char *what, uint64_t n) {
        uint64_t now = manager_now(s->manager);
        TransformEnv env = {
                .source = s->name,
                .host = s->host,
                .ts_us = now,
        };
        TransformResult res;
        uint32_t out_len;
        size_t at;
        char pos[48];
        int r;

        if (seq == SOURCE_SEQ_INVALID)
                return -ERANGE;
        if (seq < s->next_seq)
                return 0;
        if (len > FRAME_SIZE_MAX / 2)
                return -EMSGSIZE;
        r = source_batch_prepare(s, seq, len);
        if (r < 0)
                return r;
        r = batch_add_open(&s->builder, seq, now, &at);
        if (r < 0)
                return r;
        if (mt)
                r = transform_run_listed(s->transform, data, len, mt->members, mt->n, root, &env, s->builder.buffer, &res);
        else
                r = transform_run(s->transform, data, len, &env, s->builder.buffer, &res);
        if (r < 0) {
                batch_add_abort(&s->builder, at);
                return r;
        }
        if (res.verdict == TRANSFORM_EMIT) {
                r = batch_add_close(&s->builder, at, &out_len);
                if (r >= 0 && out_len > FRAME_SIZE_MAX / 2) {
                        /* (set values made it this big: a batch could not hold it) */
                        s->builder.count--;
                        batch_add_abort(&s->builder, at);
                        r = -EMSGSIZE;
                }
                if (r < 0)
                        return r;
                source_batch_added(s, seq, out_len, now);
                return 1;
        }
        batch_add_abort(&s->builder, at);
        switch (res.verdict) {
        case TRANSFORM_FILTERED:
                /* Not an error and not queued: no offset, one counter. Its seq is used up, so
                 * that a sequenced peer is asked for what follows it and no gap is reported. */
                s->filtered++;
                s->core.state_dirty = true;
                break;
        case TRANSFORM_SKIP:
                (void) snprintf(pos, sizeof(pos), "%s %" PRIu64, what, n);
                source_skip_record(s, pos, "transform: %s", res.reason);
                break;
        case TRANSFORM_INVALID:
        default:
                (void) snprintf(pos, sizeof(pos), "%s %" PRIu64, what, n);
                source_skip_record(s, pos, "not valid JSON: %s at byte %zu",
                                   json_scan_error_reason(data, len, res.error_offset), res.error_offset + 1);
                break;
        }
        s->next_seq = seq + 1;
        return 0;
}

int source_emit_seq(Source *s, uint64_t seq, const char *data, size_t len) {
        if (s->transform)
                return source_emit_transformed(s, seq, data, len, NULL, -1, "seq", seq);
        return source_emit_raw(s, seq, data, len);
}

JsonScanMembers *source_members(Source *s, unsigned extra_depth) {
        if (!s->transform)
                return NULL;
        s->members.max_depth = transform_depth(s->transform) + extra_depth;
        return &s->members;
}

int source_emit_listed(Source *s, uint64_t seq, const char *data, size_t len, const JsonScanMembers *mt, ssize_t root,
                       const char *what, uint64_t n) {
        assert(s->transform);
        assert(mt);
        return source_emit_transformed(s, seq, data, len, mt, root, what, n);
}

int source_emit(Source *s, const char *data, size_t len) {
        return source_emit_seq(s, s->next_seq, data, len);
}

int source_emit_unchecked(Source *s, const char *data, size_t len, const char *what, uint64_t n) {
        char reason[128], pos[48];

        if (s->transform)
                /* The transform's scan validates the record: one pass for both. */
                return source_emit_transformed(s, s->next_seq, data, len, NULL, -1, what, n);
        if (record_check_json(data, len, reason, sizeof(reason)) < 0) {
                (void) snprintf(pos, sizeof(pos), "%s %" PRIu64, what, n);
                source_skip_record(s, pos, "%s", reason);
                return 0;
        }
        return source_emit_raw(s, s->next_seq, data, len);
}

static void source_adopt_position(Source *s, char *position, uint64_t seq) {
        free(s->position);
        s->position = position;
        s->cursor_seq = seq;
        s->cursor_dirty = true;
}

int source_set_position(Source *s, const char *position_json) {
        char *copy = strdup(position_json);

        if (!copy)
                return -ENOMEM;
        if (s->open_batch) {
                free(s->open_batch->position);
                s->open_batch->position = copy;
                s->open_batch->position_seq = s->next_seq;
        } else if (s->unacked_batches == 0)
                source_adopt_position(s, copy, s->next_seq);
        else {
                /* Valid once everything handed over so far is acked. */
                free(s->pending_position);
                s->pending_position = copy;
                s->pending_position_seq = s->next_seq;
                s->pending_after_batch = s->last_batch_id;
        }
        return 0;
}

void source_flush(Source *s) {
        Manager *m = s->manager;
        Batch *b = s->open_batch;
        int r;

        if (s->in_flush_list) {
                LIST_REMOVE_TAIL(flush, m->flush_head, m->flush_tail, s);
                s->in_flush_list = false;
        }
        if (!b)
                return;
        s->open_batch = NULL;
        m->open_bytes -= MIN(m->open_bytes, batch_size(&s->builder));
        if (b->count == 0 && !b->position) {
                /* Opened for records a transform then dropped: nothing to send. */
                writer_client_recycle_batch(&m->writer, b);
                return;
        }
        r = batch_end(&s->builder);
        if (r < 0) {
                log_source_error_errno(s->name, r, "Source %s: failed to finish batch, dropping %u records: %m", s->name, b->count);
                writer_client_recycle_batch(&m->writer, b);
                return;
        }
        s->unacked_batches++;
        s->unacked_bytes += batch_memory(b);
        s->last_batch_id = b->id;
        (void) writer_client_submit(&m->writer, b);
        if (s->unacked_bytes > SOURCE_UNACKED_MAX)
                source_set_throttled(s, true);
        manager_update_throttle(m);
}

void source_batch_acked(Source *s, Batch *b) {
        if (s->unacked_batches > 0)
                s->unacked_batches--;
        s->unacked_bytes -= MIN(s->unacked_bytes, batch_memory(b));
        if (b->position) {
                source_adopt_position(s, TAKE_PTR(b->position), b->position_seq);
        } else if (!s->position && b->count > 0) {
                s->cursor_seq = b->last_seq + 1;
                s->cursor_dirty = true;
        }
        if (s->pending_position && b->id >= s->pending_after_batch) {
                source_adopt_position(s, TAKE_PTR(s->pending_position), s->pending_position_seq);
        }
        if (s->throttled && s->unacked_bytes <= SOURCE_UNACKED_MAX / 2 && !s->manager->throttled_all)
                source_set_throttled(s, false);
}

static void source_skip_batch(Source *s, uint64_t n, const char *position, const char *fmt, ...) _printf_(4, 5);
static void source_skip_batch(Source *s, uint64_t n, const char *position, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        source_skip_records(s, n, position, fmt, ap);
        va_end(ap);
}

void source_batch_refused(Source *s, Batch *b, const char *reason) {
        char pos[48];

        /* Sending it again can not help: its records are skipped (counted, with the writer's reason),
         * and the stream goes on; the position moves past them as for an ack. */
        (void) snprintf(pos, sizeof(pos), "batch %" PRIu64, b->id);
        source_skip_batch(s, b->count, pos, "seqs %" PRIu64 "-%" PRIu64 " refused by the writer: %s", b->first_seq,
                          b->last_seq, reason);
        b->count = 0;
        source_batch_acked(s, b);
}

void source_set_throttled(Source *s, bool throttled) {
        if (s->throttled == throttled)
                return;
        s->throttled = throttled;
        log_debug("Source %s: %s", s->name, throttled ? "throttled, waiting for the writer" : "unthrottled");
        if (s->started && s->manager->type->throttle)
                s->manager->type->throttle(s, throttled);
}
