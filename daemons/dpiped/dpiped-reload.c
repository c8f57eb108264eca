/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Declarative sources (dpipe.source(5)): loaded at start, and again on reload (SIGHUP, `systemctl
 * reload dpiped`, Reload() on the bus, the client op "reload"), applying only the difference:
 *
 *   file added                → source added
 *   type or options changed   → that source restarted (removed and added; a pause is kept)
 *   only its paths changed    → FragmentPath/DropInPaths updated, the source untouched
 *   file removed or masked    → source removed (records already queued stay)
 *   file now broken           → the running definition is kept, the problem logged
 *   nothing changed           → nothing done: the connection is not touched
 *
 * A file wins over a source of the same name defined through the API: that source is stopped
 * (not forgotten: its registry entry stays), and comes back when the file goes away. */

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "dpiped-audit.h"
#include "dpiped-manager.h"
#include "dpiped-registry.h"
#include "dpiped-source-file.h"
#include "dpiped-source.h"
#include "json-util.h"
#include "log.h"
#include "util.h"

static void log_problem(const char *path, const char *reason, void *userdata) {
        unsigned *failed = userdata;

        log_error("%s: %s.", path, reason);
        (*failed)++;
}

static bool strv_equal(char *const *a, char *const *b) {
        size_t i;

        for (i = 0; a && b && a[i] && b[i]; i++)
                if (!streq(a[i], b[i]))
                        return false;
        return (!a || !a[i]) && (!b || !b[i]);
}

static int source_from_file(const SourceFile *f, bool paused, Source **ret) {
        _cleanup_(source_freep) Source *s = NULL;
        int r;

        r = source_new(f->name, f->type, f->options, &s);
        if (r < 0)
                return r;
        r = source_set_files(s, f->path, f->dropins);
        if (r < 0)
                return r;
        s->paused = paused;
        s->state = paused ? SOURCE_PAUSED : SOURCE_CONNECTING;
        *ret = TAKE_PTR(s);
        return 0;
}

static const char *describe_files(const Source *s, char *buf, size_t size) {
        size_t n = 0;

        while (s->dropin_paths && s->dropin_paths[n])
                n++;
        if (n == 0)
                snprintf(buf, size, "%s", s->fragment_path);
        else
                snprintf(buf, size, "%s and %zu drop-in%s", s->fragment_path, n, n == 1 ? "" : "s");
        return buf;
}

static int start_from_file(Manager *m, const SourceFile *f, bool paused, const Actor *actor, const char *verb) {
        Source *s;
        char files[PATH_MAX + 64];
        int r;

        r = source_from_file(f, paused, &s);
        if (r < 0)
                return r;
        r = manager_source_start(m, s);
        if (r < 0)
                return r;
        audit_log(LOG_INFO, actor, "add_source", s->name, false, "Source %s %s from %s (type %s, address %s)", s->name,
                  verb, describe_files(s, files, sizeof(files)), s->type, source_address(s));
        return 0;
}

/* The API's definition of name, if the registry has one (a source the file took over). */
static void restore_from_registry(Manager *m, const char *name, const Actor *actor) {
        _cleanup_free_ Source **list = NULL;
        size_t n = 0;
        int r;

        r = registry_load(m->sources_dir, &list, &n);
        if (r < 0) {
                log_warning_errno(r, "Failed to read the source registry, ignoring: %m");
                return;
        }
        for (size_t i = 0; i < n; i++) {
                if (!streq(list[i]->name, name) || manager_find_source(m, name)) {
                        source_free(list[i]);
                        continue;
                }
                Source *s = list[i];
                r = manager_source_start(m, s);
                if (r < 0)
                        log_warning_errno(r, "Failed to start source %s of the registry, ignoring: %m", name);
                else
                        audit_log(LOG_INFO, actor, "add_source", name, false,
                                  "Source %s restored from the registry (no file defines it any more)", name);
        }
}

int manager_load_source_files(Manager *m, const Actor *actor, ReloadStats *ret) {
        SourceFileEntry *entries = NULL;
        SourceFile **files = NULL;
        bool *broken = NULL;
        ReloadStats stats = {};
        size_t n = 0;
        int r;

        r = source_files_enumerate(m->source_dirs, log_problem, &stats.failed, &entries, &n);
        if (r < 0)
                return log_error_errno(r, "Failed to list the source files: %m");
        files = calloc(n + 1, sizeof(SourceFile *));
        broken = calloc(n + 1, sizeof(bool));
        if (!files || !broken) {
                r = log_oom();
                goto finish;
        }
        for (size_t i = 0; i < n; i++) {
                char error[SOURCE_FILE_ERROR_MAX];

                r = source_file_load(&entries[i], &files[i], error, sizeof(error));
                if (r == -ENOMEM) {
                        r = log_oom();
                        goto finish;
                }
                if (r < 0) {
                        Source *s = manager_find_source(m, entries[i].name);

                        if (s && source_is_from_file(s))
                                log_error("%s; keeping the running definition of source %s.", error, s->name);
                        else
                                log_error("%s; source %s not loaded.", error, entries[i].name);
                        broken[i] = true;
                        stats.failed++;
                }
        }

        /* Sources whose file went away (removed, masked, or its directory gone). */
        for (Source *s = m->sources, *next; s; s = next) {
                bool found = false;
                char name[SOURCE_NAME_MAX + 1];

                next = s->sources_next;
                if (!source_is_from_file(s))
                        continue;
                for (size_t i = 0; i < n && !found; i++)
                        found = streq(entries[i].name, s->name);
                if (found)
                        continue;
                snprintf(name, sizeof(name), "%s", s->name);
                audit_log(LOG_INFO, actor, "remove_source", name, false, "Source %s removed: %s is gone", name,
                          s->fragment_path);
                manager_source_stop(m, s);
                stats.removed++;
                /* Only s went away (a restored source joins at the end, and is not from a file):
                 * next is still valid. */
                restore_from_registry(m, name, actor);
        }

        for (size_t i = 0; i < n; i++) {
                const SourceFile *f = files[i];
                Source *s;

                if (broken[i])
                        continue;
                s = manager_find_source(m, f->name);
                if (!s) {
                        r = start_from_file(m, f, false, actor, "added");
                        if (r < 0)
                                goto fail;
                        stats.added++;
                        continue;
                }
                if (!source_is_from_file(s)) {
                        log_warning("Source %s is defined by %s and through the API: the file wins. The API's "
                                    "definition stays in the registry, stopped, and comes back when the file goes away.",
                                    f->name, f->path);
                        manager_source_stop(m, s);
                        r = start_from_file(m, f, false, actor, "taken over");
                        if (r < 0)
                                goto fail;
                        stats.added++;
                        continue;
                }
                if (streq(s->type, f->type) && json_object_equal(s->options, f->options)) {
                        if (!streq(s->fragment_path, f->path) || !strv_equal(s->dropin_paths, f->dropins)) {
                                r = source_set_files(s, f->path, f->dropins);
                                if (r < 0)
                                        goto fail;
                                source_emit_files_changed(s);
                        }
                        stats.unchanged++;
                        continue;
                }
                bool paused = s->paused;
                manager_source_stop(m, s);
                r = start_from_file(m, f, paused, actor, "restarted, its definition changed,");
                if (r < 0)
                        goto fail;
                stats.changed++;
        }

        if (ret)
                *ret = stats;
        r = 0;
        goto finish;
fail:
        log_error_errno(r, "Failed to apply the source files: %m");
finish:
        for (size_t i = 0; files && i < n; i++)
                source_file_free(files[i]);
        free(files);
        free(broken);
        source_file_entries_free(entries, n);
        return r;
}

int manager_reload(Manager *m, const Actor *actor, sd_bus_error *error) {
        ReloadStats st;
        int r;

        if (m->stream) {
                /* No sources here (--stream=): nothing to reload. */
                log_info("Serving a stream: no source files to reload.");
                return error ? manager_refuse_stream_change(m, error) : 0;
        }
        audit_log(LOG_INFO, actor, "reload", NULL, false, "Reloading the source files");
        r = manager_load_source_files(m, actor, &st);
        if (r < 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_FAILED, "Failed to reload the source files: %s",
                                         strerror(-r));
        log_info("Reloaded the source files: %u added, %u changed, %u removed, %u unchanged, %u with errors.",
                 st.added, st.changed, st.removed, st.unchanged, st.failed);
        return 0;
}
