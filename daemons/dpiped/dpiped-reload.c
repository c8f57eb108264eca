/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Declarative definitions (dpipe.source(5), dpipe.sink(5)): loaded at start, and again on reload
 * (SIGHUP, `systemctl reload dpiped`, Reload() on the bus, the client op "reload"), applying only the
 * difference. One algorithm for both kinds; a DefOps says how to reach the manager's objects of one:
 *
 *   file added                → added
 *   type or options changed   → restarted (removed and added; a source's pause is kept)
 *   only its paths changed    → FragmentPath/DropInPaths updated, the object untouched
 *   file removed or masked    → removed (records already queued or delivered stay)
 *   file now broken           → the running definition is kept, the problem logged
 *   nothing changed           → nothing done: the daemon's link is not touched
 *
 * A file wins over a definition of the same name made through the API: that one is stopped (not
 * forgotten: its registry entry stays), and comes back when the file goes away. */

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "dpiped-audit.h"
#include "dpiped-manager.h"
#include "dpiped-registry.h"
#include "dpiped-def-file.h"
#include "dpiped-source.h"
#include "json-util.h"
#include "log.h"
#include "util.h"

static void log_problem(const char *path, const char *reason, void *userdata) {
        unsigned *failed = userdata;

        log_error("%s: %s.", path, reason);
        (*failed)++;
}

_printf_(5, 6) static void audit_change(const DefOps *ops, const Actor *actor, const char *op, const char *name,
                                        const char *format, ...) {
        char action[32], message[PATH_MAX + 512];
        va_list ap;

        snprintf(action, sizeof(action), "%s_%s", op, ops->file_kind->what);
        va_start(ap, format);
        vsnprintf(message, sizeof(message), format, ap);
        va_end(ap);
        audit_log(LOG_INFO, actor, action, name, false, "%s", message);
}

static int start_from_file(Manager *m, const DefOps *ops, const DefFile *f, bool paused, const Actor *actor,
                           const char *verb) {
        char files[PATH_MAX + 64];
        DefFiles d = { .fragment_path = f->path, .dropin_paths = f->dropins };
        int r;

        r = ops->start(m, f, paused);
        if (r < 0)
                return r;
        audit_change(ops, actor, "add", f->name, "%s %s %s from %s (type %s, address %s)", ops->file_kind->section,
                     f->name, verb,
                     def_files_describe(&d, files, sizeof(files)), f->type, json_get_string(f->options, "address") ?: "");
        return 0;
}

int manager_load_def_files(Manager *m, const DefOps *ops, const Actor *actor, ReloadStats *ret) {
        const DefFileKind *kind = ops->file_kind;
        DefFileEntry *entries = NULL;
        DefFile **files = NULL;
        bool *broken = NULL;
        ReloadStats stats = {};
        size_t n = 0;
        int r;

        r = def_files_enumerate(kind, ops->dirs(m), log_problem, &stats.failed, &entries, &n);
        if (r < 0)
                return log_error_errno(r, "Failed to list the %s files: %m", kind->what);
        files = calloc(n + 1, sizeof(DefFile *));
        broken = calloc(n + 1, sizeof(bool));
        if (!files || !broken) {
                r = log_oom();
                goto finish;
        }
        for (size_t i = 0; i < n; i++) {
                char error[DEF_FILE_ERROR_MAX];

                r = def_file_load(kind, &entries[i], &files[i], error, sizeof(error));
                if (r == -ENOMEM) {
                        r = log_oom();
                        goto finish;
                }
                if (r < 0) {
                        void *o = ops->find(m, entries[i].name);

                        if (o && def_files_defined(ops->files(o)))
                                log_error("%s; keeping the running definition of %s %s.", error, kind->what,
                                          entries[i].name);
                        else
                                log_error("%s; %s %s not loaded.", error, kind->what, entries[i].name);
                        broken[i] = true;
                        stats.failed++;
                }
        }

        /* Definitions whose file went away (removed, masked, or its directory gone). */
        for (void *o = ops->first(m), *next; o; o = next) {
                const DefFiles *d = ops->files(o);
                char name[NAME_MAX + 1], fragment[PATH_MAX];
                bool found = false;

                next = ops->next(o);
                if (!def_files_defined(d))
                        continue;
                snprintf(name, sizeof(name), "%s", ops->name(o));
                for (size_t i = 0; i < n && !found; i++)
                        found = streq(entries[i].name, name);
                if (found)
                        continue;
                snprintf(fragment, sizeof(fragment), "%s", d->fragment_path);
                audit_change(ops, actor, "remove", name, "%s %s removed: %s is gone", kind->section, name, fragment);
                ops->stop(m, o);
                stats.removed++;
                /* Only o went away (a restored one joins at the end, and is not from a file): next
                 * is still valid. */
                if (ops->restore(m, name) > 0)
                        audit_change(ops, actor, "add", name,
                                     "%s %s restored from the registry (no file defines it any more)", kind->section,
                                     name);
        }

        for (size_t i = 0; i < n; i++) {
                const DefFile *f = files[i];
                void *o;

                if (broken[i])
                        continue;
                o = ops->find(m, f->name);
                if (!o) {
                        r = start_from_file(m, ops, f, false, actor, "added");
                        if (r < 0)
                                goto fail;
                        stats.added++;
                        continue;
                }
                if (!def_files_defined(ops->files(o))) {
                        log_warning("%s %s is defined by %s and through the API: the file wins. The API's "
                                    "definition stays in the registry, stopped, and comes back when the file goes away.",
                                    kind->section, f->name, f->path);
                        ops->stop(m, o);
                        r = start_from_file(m, ops, f, false, actor, "taken over");
                        if (r < 0)
                                goto fail;
                        stats.added++;
                        continue;
                }
                if (streq(ops->type(o), f->type) && json_object_equal(ops->options(o), f->options)) {
                        if (!def_files_equal(ops->files(o), f->path, f->dropins)) {
                                r = def_files_set(ops->files(o), f->path, f->dropins);
                                if (r < 0)
                                        goto fail;
                                ops->emit_files_changed(o);
                        }
                        stats.unchanged++;
                        continue;
                }
                bool paused = ops->paused && ops->paused(o);
                ops->stop(m, o);
                r = start_from_file(m, ops, f, paused, actor, "restarted, its definition changed,");
                if (r < 0)
                        goto fail;
                stats.changed++;
        }

        if (ret)
                *ret = stats;
        r = 0;
        goto finish;
fail:
        log_error_errno(r, "Failed to apply the %s files: %m", kind->what);
finish:
        for (size_t i = 0; files && i < n; i++)
                def_file_free(files[i]);
        free(files);
        free(broken);
        def_file_entries_free(entries, n);
        return r;
}

int manager_reload(Manager *m, const Actor *actor, sd_bus_error *error) {
        int r;

        if (m->stream) {
                /* No sources nor sinks here (--stream=): nothing to reload. */
                log_info("Serving a stream: no source or sink files to reload.");
                return error ? manager_refuse_stream_change(m, error) : 0;
        }
        audit_log(LOG_INFO, actor, "reload", NULL, false, "Reloading the source and sink files");
        for (const DefOps *const *ops = def_ops_all; *ops; ops++) {
                const char *what = (*ops)->file_kind->what;
                ReloadStats st;

                r = manager_load_def_files(m, *ops, actor, &st);
                if (r < 0)
                        return sd_bus_error_setf(error, SD_BUS_ERROR_FAILED, "Failed to reload the %s files: %s", what,
                                                 strerror(-r));
                log_info("Reloaded the %s files: %u added, %u changed, %u removed, %u unchanged, %u with errors.", what,
                         st.added, st.changed, st.removed, st.unchanged, st.failed);
        }
        return 0;
}

/* ---- sources -------------------------------------------------------------------------------------- */

static char **source_dirs(Manager *m) {
        return m->source_dirs;
}

static void *source_first(Manager *m) {
        return m->sources;
}

static void *source_next(void *o) {
        return ((Source *) o)->sources_next;
}

static void *source_find(Manager *m, const char *name) {
        return manager_find_source(m, name);
}

static const char *source_name(void *o) {
        return ((Source *) o)->name;
}

static const char *source_type(void *o) {
        return ((Source *) o)->type;
}

static const char *source_state(void *o) {
        return source_state_to_string(((Source *) o)->state);
}

static const char *source_object_path(void *o) {
        return ((Source *) o)->object_path;
}

static struct json_object *source_options(void *o) {
        return ((Source *) o)->options;
}

static DefFiles *source_files(void *o) {
        return &((Source *) o)->files;
}

static bool source_paused(void *o) {
        return ((Source *) o)->paused;
}

static int source_start_file(Manager *m, const DefFile *f, bool paused) {
        _cleanup_(source_freep) Source *s = NULL;
        int r;

        r = source_new(f->name, f->type, f->options, &s);
        if (r < 0)
                return r;
        r = def_files_set(&s->files, f->path, f->dropins);
        if (r < 0)
                return r;
        s->paused = paused;
        s->state = paused ? SOURCE_PAUSED : SOURCE_CONNECTING;
        return manager_source_start(m, TAKE_PTR(s));
}

static void source_stop(Manager *m, void *o) {
        manager_source_stop(m, o);
}

static void source_files_changed(void *o) {
        source_emit_files_changed(o);
}

/* The API's definition of name, if the registry has one (a source the file took over). */
static int source_restore(Manager *m, const char *name) {
        _cleanup_free_ Source **list = NULL;
        size_t n = 0;
        int r, restored = 0;

        r = registry_load(m->sources_dir, &list, &n);
        if (r < 0)
                return log_warning_errno(r, "Failed to read the source registry, ignoring: %m");
        for (size_t i = 0; i < n; i++) {
                if (!streq(list[i]->name, name) || manager_find_source(m, name)) {
                        source_free(list[i]);
                        continue;
                }
                r = manager_source_start(m, list[i]);
                if (r < 0)
                        log_warning_errno(r, "Failed to start source %s of the registry, ignoring: %m", name);
                else
                        restored = 1;
        }
        return restored;
}

const DefOps *const def_ops_all[] = { &def_ops_source, &def_ops_sink, NULL };

const DefOps def_ops_source = {
        .file_kind = &def_file_kind_source,
        .dirs = source_dirs,
        .first = source_first,
        .next = source_next,
        .find = source_find,
        .name = source_name,
        .type = source_type,
        .state = source_state,
        .object_path = source_object_path,
        .options = source_options,
        .files = source_files,
        .paused = source_paused,
        .start = source_start_file,
        .stop = source_stop,
        .emit_files_changed = source_files_changed,
        .restore = source_restore,
};
