/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Sinks in the manager: the link to each sink daemon, and the operations behind both AddSink/
 * RemoveSink and the client protocol's add_sink/remove_sink. Nothing here knows a sink type: a new
 * type is a new daemon and socket. The Sink object and its registry are dpiped-sink.c. */

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "dpiped-audit.h"
#include "dpiped-manager.h"
#include "dpiped-sink.h"
#include "json-util.h"
#include "log.h"
#include "util.h"

/* ---- the link to the sink daemon ------------------------------------------------------------------ */

int sink_send_add(Connector *c, Sink *s) {
        _cleanup_json_ struct json_object *o = NULL;
        Manager *m = c->manager;

        if (!connector_is_connected(c) || s->option_check)
                return 0;
        o = json_object_new_object();
        if (!o)
                return -ENOMEM;
        json_object_object_add(o, "op", json_object_new_string("add"));
        json_object_object_add(o, "name", json_object_new_string(s->name));
        json_object_object_add(o, "options", json_object_get(s->options));
        json_object_object_add(o, "paused", json_object_new_boolean(false));
        if (m->pipeline_id)
                json_object_object_add(o, "pipeline_id", json_object_new_string(m->pipeline_id));
        return connector_send_request(c, o, &s->pending_request_id);
}

static bool sink_link_has_objects(Connector *c) {
        for (Sink *s = c->manager->sinks; s; s = s->next)
                if (streq(s->type, c->type))
                        return true;
        return false;
}

static bool sink_link_exists(Connector *c, const char *name) {
        return manager_find_sink(c->manager, name);
}

static int sink_link_send_all(Connector *c) {
        for (Sink *s = c->manager->sinks; s; s = s->next) {
                int r;

                if (!streq(s->type, c->type))
                        continue;
                r = sink_send_add(c, s);
                if (r < 0)
                        return r;
                if (!connector_is_connected(c))
                        return 0;
        }
        return 0;
}

static void sink_link_set_connecting(Connector *c, const char *reason) {
        for (Sink *s = c->manager->sinks; s; s = s->next)
                if (streq(s->type, c->type) && sink_set_state(s, SINK_CONNECTING, reason))
                        sink_emit_state_changed(s);
}

static void sink_link_handle_state(Connector *c, struct json_object *o) {
        const char *name = json_get_string(o, "name"), *error = json_get_string(o, "error");
        SinkState state;
        Sink *s;
        uint64_t u;

        s = name ? manager_find_sink(c->manager, name) : NULL;
        if (!s || !streq(s->type, c->type))
                return;
        state = sink_state_from_string(json_get_string(o, "state"));
        if (state < 0)
                state = s->state;
        if (json_get_uint64(o, "records_sent", &u))
                s->records_sent = u;
        if (json_get_uint64(o, "lag", &u))
                s->lag = u;
        if (sink_set_state(s, state, error ?: (state == SINK_ACTIVE ? "" : NULL))) {
                log_info("Sink %s is %s%s%s.", s->name, sink_state_to_string(s->state), isempty(s->last_error) ? "" : ": ",
                         s->last_error);
                sink_emit_state_changed(s);
        }
}

static bool sink_link_handle_error(Connector *c, uint64_t id, const char *message) {
        for (Sink *s = c->manager->sinks; s; s = s->next)
                if (streq(s->type, c->type) && s->pending_request_id == id) {
                        log_warning("Sink daemon %s refused sink %s: %s", c->type, s->name, message);
                        if (sink_set_state(s, SINK_FAILED, message))
                                sink_emit_state_changed(s);
                        return true;
                }
        return false;
}

const ConnectorKind connector_kind_sink = {
        .prefix = "sink",
        .what = "sink daemon",
        .title = "Sink daemon",
        .object = "sink",
        .lost = "connection to the sink daemon lost",
        .unreachable = "sink daemon not reachable",
        .has_objects = sink_link_has_objects,
        .exists = sink_link_exists,
        .send_all = sink_link_send_all,
        .set_connecting = sink_link_set_connecting,
        .handle_state = sink_link_handle_state,
        .handle_error = sink_link_handle_error,
};

/* ---- the manager's operations ---------------------------------------------------------------------- */

static void manager_unlink_sink(Manager *m, Sink *s) {
        s->option_check = option_check_free(s->option_check);
        if (s->prev)
                s->prev->next = s->next;
        else
                m->sinks = s->next;
        if (s->next)
                s->next->prev = s->prev;
        else
                m->sinks_tail = s->prev;
        s->next = s->prev = NULL;
        m->n_sinks--;
}

static int manager_link_sink(Manager *m, Sink *s) {
        int r;

        r = sd_bus_path_encode(DPIPED_BUS_SINK_PREFIX, s->name, &s->object_path);
        if (r < 0)
                return r;
        s->manager = m;
        s->prev = m->sinks_tail;
        if (m->sinks_tail)
                m->sinks_tail->next = s;
        else
                m->sinks = s;
        m->sinks_tail = s;
        m->n_sinks++;
        return 0;
}

void manager_sinks_free(Manager *m) {
        while (m->sinks) {
                Sink *s = m->sinks;
                manager_unlink_sink(m, s);
                sink_free(s);
        }
}

Sink *manager_find_sink(Manager *m, const char *name) {
        for (Sink *s = m->sinks; s; s = s->next)
                if (streq(s->name, name))
                        return s;
        return NULL;
}

bool manager_sink_type_is_known(Manager *m, const char *type) {
        _cleanup_free_ char *path = connector_kind_socket_path(&connector_kind_sink, m->runtime_dir, type);
        struct stat st;

        /* A type is known once its daemon's socket is installed (or held by systemd). */
        return path && stat(path, &st) >= 0 && S_ISSOCK(st.st_mode);
}

int manager_sink_start(Manager *m, Sink *s) {
        Connector *c;
        int r;

        r = manager_link_sink(m, s);
        if (r < 0) {
                s->option_check = option_check_free(s->option_check);
                sink_free(s);
                return r;
        }
        r = manager_get_link(m, &connector_kind_sink, s->type, &c);
        if (r < 0)
                log_warning_errno(r, "Failed to set up sink daemon %s, the sink stays registered: %m", s->type);
        else
                (void) sink_send_add(c, s);
        manager_emit_sink_added(m, s);
        return 0;
}

void manager_sink_stop(Manager *m, Sink *s) {
        Connector *c;

        manager_unlink_sink(m, s);
        c = manager_find_link(m, &connector_kind_sink, s->type);
        if (c) {
                if (connector_remove_source(c, s->name) < 0)
                        log_warning("Failed to tell sink daemon %s to forget sink %s, ignoring.", c->type, s->name);
                (void) connector_release_if_unneeded(c);
        }
        manager_emit_sink_removed(m, s->name, s->object_path);
        sink_free(s);
}

static int manager_add_sink_validate(Manager *m, const char *name, const char *type, struct json_object *options,
                                     struct json_object **ret_normalized, sd_bus_error *error) {
        char reason[256];
        Sink *existing;
        int r;

        if (!sink_name_is_valid(name))
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "Invalid sink name \"%.80s\": use 1-%d characters of [A-Za-z0-9_.-].", name,
                                         SINK_NAME_MAX);
        if (!source_type_is_valid(type))
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Invalid sink type \"%.80s\".", type);
        if (m->stream)
                return manager_refuse_stream_change(m, error);
        existing = manager_find_sink(m, name);
        if (existing && sink_is_from_file(existing))
                return sd_bus_error_setf(error, BUS_ERROR_SINK_EXISTS, "A sink named \"%s\" exists already, defined by %s.",
                                         name, existing->files.fragment_path);
        if (existing)
                return sd_bus_error_setf(error, BUS_ERROR_SINK_EXISTS, "A sink named \"%s\" exists already.", name);
        if (!manager_sink_type_is_known(m, type))
                return sd_bus_error_setf(error, BUS_ERROR_UNKNOWN_TYPE,
                                         "Unknown sink type \"%s\": no sink daemon at %s/sink-%s.sock.", type,
                                         m->runtime_dir, type);
        r = sink_options_normalize(options, ret_normalized, reason, sizeof(reason));
        if (r == -ENOMEM)
                return sd_bus_error_set_errno(error, r);
        if (r < 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Invalid options for sink \"%s\": %s.", name,
                                         reason);
        return 0;
}

int manager_add_sink_check(Manager *m, const char *name, const char *type, struct json_object *options,
                           option_check_handler_t handler, void *userdata, OptionCheck **ret_check,
                           OptionCheckResult *ret_result, sd_bus_error *error) {
        _cleanup_json_ struct json_object *normalized = NULL;
        int r;

        /* What dpiped can tell alone first: a request that fails here never wakes up a sink daemon. */
        r = manager_add_sink_validate(m, name, type, options, &normalized, error);
        if (r < 0)
                return r;
        r = option_check_start(m, &connector_kind_sink, type, normalized, handler, userdata, ret_check, ret_result);
        if (r < 0)
                return sd_bus_error_set_errno(error, r);
        return r;
}

int manager_add_sink(Manager *m, const char *name, const char *type, struct json_object *options,
                     const OptionCheckAnswer *check, const Actor *actor, Sink **ret, sd_bus_error *error) {
        _cleanup_json_ struct json_object *normalized = NULL;
        _cleanup_(sink_freep) Sink *s = NULL;
        Sink *added;
        int r;

        /* Again: the pipeline may have changed while the sink daemon checked the options. */
        r = manager_add_sink_validate(m, name, type, check->options ?: options, &normalized, error);
        if (r < 0)
                return r;
        if (check->result == OPTION_CHECK_REFUSED)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Invalid options for sink \"%s\": %s.", name,
                                         check->message ?: "refused by the sink daemon");
        if (check->result == OPTION_CHECK_NO_TYPE)
                return sd_bus_error_setf(error, BUS_ERROR_UNKNOWN_TYPE,
                                         "Unknown sink type \"%s\": no sink daemon at %s/sink-%s.sock.", type,
                                         m->runtime_dir, type);
        r = sink_new(name, type, normalized, &s);
        if (r < 0)
                return sd_bus_error_set_errno(error, r);

        /* Persist first: a sink that was acknowledged must come back after a crash. */
        r = sink_registry_save(m->sinks_dir, s);
        if (r < 0) {
                log_error_errno(r, "Failed to persist sink %s: %m", name);
                return sd_bus_error_setf(error, SD_BUS_ERROR_FAILED, "Failed to persist sink \"%s\": %s", name,
                                         strerror(-r));
        }
        added = TAKE_PTR(s);
        r = manager_sink_start(m, added);
        if (r < 0) {
                (void) sink_registry_remove(m->sinks_dir, name);
                return sd_bus_error_set_errno(error, r);
        }
        audit_log(LOG_INFO, actor, "add_sink", added->name, false, "Sink %s added (type %s, address %s)", added->name,
                  added->type, sink_address(added));
        if (ret)
                *ret = added;
        return 0;
}

int manager_remove_sink(Manager *m, const char *name, const Actor *actor, sd_bus_error *error) {
        Sink *s;
        int r;

        if (m->stream)
                return manager_refuse_stream_change(m, error);
        s = manager_find_sink(m, name);
        if (!s)
                return sd_bus_error_setf(error, BUS_ERROR_NO_SUCH_SINK, "No sink named \"%.80s\".", name);
        if (sink_is_from_file(s))
                return sd_bus_error_setf(error, BUS_ERROR_SINK_DEFINED_BY_FILE,
                                         "Sink \"%s\" is defined by %s: remove or mask that file, then reload "
                                         "(dpipectl reload).",
                                         s->name, s->files.fragment_path);
        r = sink_registry_remove(m->sinks_dir, name);
        if (r < 0) {
                log_error_errno(r, "Failed to remove sink %s from the registry: %m", name);
                return sd_bus_error_setf(error, SD_BUS_ERROR_FAILED, "Failed to remove sink \"%s\" from the registry: %s",
                                         name, strerror(-r));
        }
        audit_log(LOG_INFO, actor, "remove_sink", s->name, false, "Sink %s removed", s->name);
        manager_sink_stop(m, s);
        return 0;
}

int manager_load_sinks(Manager *m) {
        _cleanup_free_ Sink **list = NULL;
        size_t n = 0;
        int r;

        r = sink_registry_load(m->sinks_dir, &list, &n);
        if (r < 0)
                return log_error_errno(r, "Failed to load the sink registry from %s: %m", m->sinks_dir);
        for (size_t i = 0; i < n; i++) {
                r = manager_link_sink(m, list[i]);
                if (r < 0) {
                        for (size_t j = i; j < n; j++)
                                sink_free(list[j]);
                        return log_oom();
                }
        }
        for (Sink *s = m->sinks; s; s = s->next) {
                r = manager_get_link(m, &connector_kind_sink, s->type, NULL);
                if (r < 0)
                        return log_error_errno(r, "Failed to set up sink daemon %s: %m", s->type);
        }
        if (n > 0)
                log_info("Loaded %zu sink%s from the registry.", n, n == 1 ? "" : "s");
        return 0;
}

/* ---- dpipe.sink(5): what the reload needs (dpiped-reload.c) ---------------------------------------- */

static char **sink_dirs(Manager *m) {
        return m->sink_dirs;
}

static void *sink_first(Manager *m) {
        return m->sinks;
}

static void *sink_next(void *o) {
        return ((Sink *) o)->next;
}

static void *sink_find(Manager *m, const char *name) {
        return manager_find_sink(m, name);
}

static const char *sink_name(void *o) {
        return ((Sink *) o)->name;
}

static const char *sink_type(void *o) {
        return ((Sink *) o)->type;
}

static const char *sink_state(void *o) {
        return sink_state_to_string(((Sink *) o)->state);
}

static const char *sink_object_path(void *o) {
        return ((Sink *) o)->object_path;
}

static struct json_object *sink_options(void *o) {
        return ((Sink *) o)->options;
}

static DefFiles *sink_files(void *o) {
        return &((Sink *) o)->files;
}

/* The sink daemon answered the check of a file's options: send the sink, or drop it with the
 * daemon's reason (which names the option) and the file. */
static void sink_file_checked(const OptionCheckAnswer *answer, void *userdata) {
        Sink *s = userdata;
        Manager *m = s->manager;
        Connector *c;

        s->option_check = NULL; /* freed already */
        if (answer->result == OPTION_CHECK_REFUSED) {
                log_error("%s: %s; sink %s not loaded.", s->files.fragment_path, answer->message ?: "refused", s->name);
                manager_sink_stop(m, s);
                return;
        }
        c = manager_find_link(m, &connector_kind_sink, s->type);
        if (c)
                (void) sink_send_add(c, s);
}

/* The check went away unanswered (dpiped exits): nothing waits for it any more. */
static void sink_file_check_cancelled(void *userdata) {
        Sink *s = userdata;

        s->option_check = NULL;
}

static int sink_start_file(Manager *m, const DefFile *f, bool paused) {
        _cleanup_(sink_freep) Sink *s = NULL;
        OptionCheckResult result;
        OptionCheck *q = NULL;
        int r;

        r = sink_new(f->name, f->type, f->options, &s);
        if (r < 0)
                return r;
        r = def_files_set(&s->files, f->path, f->dropins);
        if (r < 0)
                return r;
        /* Checked like AddSink's options; the sink waits (connecting) for the answer. No answer
         * (no daemon yet, or it hangs): the daemon judges the add itself. */
        r = option_check_start(m, &connector_kind_sink, f->type, f->options, sink_file_checked, s, &q, &result);
        if (r < 0)
                return r;
        if (q)
                option_check_set_destroy(q, sink_file_check_cancelled);
        s->option_check = q;
        return manager_sink_start(m, TAKE_PTR(s));
}

static void sink_stop(Manager *m, void *o) {
        manager_sink_stop(m, o);
}

static void sink_files_changed(void *o) {
        sink_emit_files_changed(o);
}

/* The API's definition of name, if the registry has one (a sink the file took over). */
static int sink_restore(Manager *m, const char *name) {
        _cleanup_free_ Sink **list = NULL;
        size_t n = 0;
        int r, restored = 0;

        r = sink_registry_load(m->sinks_dir, &list, &n);
        if (r < 0)
                return log_warning_errno(r, "Failed to read the sink registry, ignoring: %m");
        for (size_t i = 0; i < n; i++) {
                if (!streq(list[i]->name, name) || manager_find_sink(m, name)) {
                        sink_free(list[i]);
                        continue;
                }
                r = manager_sink_start(m, list[i]);
                if (r < 0)
                        log_warning_errno(r, "Failed to start sink %s of the registry, ignoring: %m", name);
                else
                        restored = 1;
        }
        return restored;
}

const DefOps def_ops_sink = {
        .file_kind = &def_file_kind_sink,
        .dirs = sink_dirs,
        .first = sink_first,
        .next = sink_next,
        .find = sink_find,
        .name = sink_name,
        .type = sink_type,
        .state = sink_state,
        .object_path = sink_object_path,
        .options = sink_options,
        .files = sink_files,
        .start = sink_start_file,
        .stop = sink_stop,
        .emit_files_changed = sink_files_changed,
        .restore = sink_restore,
};
