/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Sinks in dpiped: the Sink object, its registry entry, the link to its sink daemon, and the manager's
 * operations behind both AddSink/RemoveSink/ListSinks and the client protocol's add_sink/remove_sink/
 * list_sinks. Nothing here knows a sink type: a new type is a new daemon and socket. */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "dpiped-audit.h"
#include "dpiped-manager.h"
#include "dpiped-sink.h"
#include "json-util.h"
#include "log.h"
#include "utf8.h"
#include "util.h"

#define SINK_REGISTRY_SUFFIX ".sink"
#define SINK_REGISTRY_ENTRY_MAX (1024 * 1024)
#define SINK_ADDRESS_MAX 4096

static const char *const sink_state_table[_SINK_STATE_MAX] = {
        [SINK_CONNECTING] = "connecting",
        [SINK_ACTIVE] = "active",
        [SINK_BACKOFF] = "backoff",
        [SINK_PAUSED] = "paused",
        [SINK_FAILED] = "failed",
};

const char *sink_state_to_string(SinkState s) {
        if (s < 0 || s >= _SINK_STATE_MAX)
                return NULL;
        return sink_state_table[s];
}

SinkState sink_state_from_string(const char *s) {
        if (!s)
                return _SINK_STATE_INVALID;
        for (int i = 0; i < _SINK_STATE_MAX; i++)
                if (streq(sink_state_table[i], s))
                        return (SinkState) i;
        return _SINK_STATE_INVALID;
}

bool sink_name_is_valid(const char *name) {
        return source_name_is_valid(name) && strlen(name) <= SINK_NAME_MAX;
}

int sink_new(const char *name, const char *type, struct json_object *options, Sink **ret) {
        _cleanup_(sink_freep) Sink *s = NULL;

        s = calloc(1, sizeof(Sink));
        if (!s)
                return -ENOMEM;
        s->name = strdup(name);
        s->type = strdup(type);
        s->last_error = strdup("");
        if (!s->name || !s->type || !s->last_error)
                return -ENOMEM;
        s->options = options ? json_object_get(options) : json_object_new_object();
        if (!s->options)
                return -ENOMEM;
        s->state = SINK_CONNECTING;
        *ret = TAKE_PTR(s);
        return 0;
}

Sink *sink_free(Sink *s) {
        if (!s)
                return NULL;
        free(s->name);
        free(s->type);
        free(s->object_path);
        free(s->last_error);
        json_object_put(s->options);
        free(s);
        return NULL;
}

const char *sink_address(const Sink *s) {
        return json_get_string(s->options, "address") ?: "";
}

static bool sink_set_state(Sink *s, SinkState state, const char *error) {
        bool changed = false;

        if (s->state != state) {
                s->state = state;
                changed = true;
        }
        if (error && !streq(error, s->last_error)) {
                char *e = strdup(error);
                if (e) {
                        free(s->last_error);
                        s->last_error = e;
                        changed = true;
                }
        }
        return changed;
}

static bool option_key_is_valid(const char *key) {
        size_t n = strlen(key);

        if (n == 0 || n > 64)
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = key[i];
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                      c == '-' || c == '.'))
                        return false;
        }
        return true;
}

int sink_options_normalize(struct json_object *options, struct json_object **ret, char *reason, size_t reason_size) {
        _cleanup_json_ struct json_object *out = NULL;
        const char *address;

        if (options && !json_object_is_type(options, json_type_object)) {
                snprintf(reason, reason_size, "options must be an object");
                return -EINVAL;
        }
        out = json_object_new_object();
        if (!out)
                return -ENOMEM;
        if (options) {
                json_object_object_foreach(options, key, value) {
                        if (!option_key_is_valid(key)) {
                                snprintf(reason, reason_size, "invalid option name \"%.64s\"", key);
                                return -EINVAL;
                        }
                        if (!value || json_object_is_type(value, json_type_object) ||
                            json_object_is_type(value, json_type_array)) {
                                snprintf(reason, reason_size, "option \"%.64s\" must be a string, number or boolean", key);
                                return -EINVAL;
                        }
                        if (json_object_is_type(value, json_type_double) && !isfinite(json_object_get_double(value))) {
                                snprintf(reason, reason_size, "option \"%.64s\" must be a finite number", key);
                                return -EINVAL;
                        }
                        if (json_object_is_type(value, json_type_string) &&
                            !utf8_is_valid_n(json_object_get_string(value), (size_t) json_object_get_string_len(value))) {
                                snprintf(reason, reason_size, "option \"%.64s\" is not UTF-8", key);
                                return -EINVAL;
                        }
                        if (json_object_object_add(out, key, json_object_get(value)) < 0)
                                return -ENOMEM;
                }
        }

        address = json_get_string(out, "address");
        if (isempty(address)) {
                snprintf(reason, reason_size, "the option \"address\" (a string) is required");
                return -EINVAL;
        }
        if (strlen(address) > SINK_ADDRESS_MAX) {
                snprintf(reason, reason_size, "the address is too long");
                return -EINVAL;
        }
        for (const char *p = address; *p; p++)
                if ((unsigned char) *p < ' ' || *p == 0x7f) {
                        snprintf(reason, reason_size, "the address contains control characters");
                        return -EINVAL;
                }
        *ret = TAKE_PTR(out);
        return 0;
}

/* ---- registry ----------------------------------------------------------------------------------- */

static char *sink_registry_path(const char *dir, const char *name) {
        char *p;

        if (asprintf(&p, "%s/%s" SINK_REGISTRY_SUFFIX, dir, name) < 0)
                return NULL;
        return p;
}

int sink_registry_save(const char *dir, const Sink *s) {
        _cleanup_json_ struct json_object *o = json_object_new_object();
        _cleanup_free_ char *path = NULL, *text = NULL;
        int r;

        if (!o || json_object_object_add(o, "name", json_object_new_string(s->name)) < 0 ||
            json_object_object_add(o, "type", json_object_new_string(s->type)) < 0 ||
            json_object_object_add(o, "options", json_object_get(s->options)) < 0)
                return -ENOMEM;
        r = mkdir_p(dir, 0755);
        if (r < 0)
                return r;
        path = sink_registry_path(dir, s->name);
        if (!path || asprintf(&text, "%s\n",
                              json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE)) < 0)
                return -ENOMEM;
        return write_file_atomic(path, text, strlen(text));
}

int sink_registry_remove(const char *dir, const char *name) {
        _cleanup_free_ char *path = sink_registry_path(dir, name);
        _cleanup_close_ int dfd = -EBADF;

        if (!path)
                return -ENOMEM;
        if (unlink(path) < 0 && errno != ENOENT)
                return -errno;
        /* Durable too: a removed sink must not come back after a crash. */
        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0)
                (void) fsync(dfd);
        return 0;
}

static int sink_registry_parse(const char *text, size_t size, Sink **ret) {
        _cleanup_json_ struct json_object *o = NULL, *options = NULL;
        struct json_object *opts = NULL;
        const char *name, *type;
        char reason[256];
        int r;

        r = json_parse_n(text, size, &o, NULL);
        if (r < 0)
                return r;
        if (!json_object_is_type(o, json_type_object))
                return -EBADMSG;
        name = json_get_string(o, "name");
        type = json_get_string(o, "type");
        if (!sink_name_is_valid(name) || !source_type_is_valid(type))
                return -EBADMSG;
        (void) json_object_object_get_ex(o, "options", &opts);
        r = sink_options_normalize(opts, &options, reason, sizeof(reason));
        if (r < 0)
                return r == -ENOMEM ? r : -EBADMSG;
        return sink_new(name, type, options, ret);
}

static int sink_name_cmp(const void *a, const void *b) {
        return strcmp((*(Sink *const *) a)->name, (*(Sink *const *) b)->name);
}

static void closedirp_(DIR **d) {
        if (*d)
                (void) closedir(*d);
}

int sink_registry_load(const char *dir, Sink ***ret, size_t *ret_n) {
        _cleanup_(closedirp_) DIR *d = NULL;
        _cleanup_free_ Sink **list = NULL;
        size_t n = 0;
        struct dirent *de;
        int r = 0;

        list = calloc(1, sizeof(Sink *));
        if (!list)
                return -ENOMEM;
        d = opendir(dir);
        if (!d && errno != ENOENT)
                return -errno;
        while (d && (errno = 0, de = readdir(d))) {
                _cleanup_free_ char *path = NULL, *text = NULL;
                size_t len = strlen(de->d_name), size;
                Sink *s, **l;

                if (len <= strlen(SINK_REGISTRY_SUFFIX) ||
                    !streq(de->d_name + len - strlen(SINK_REGISTRY_SUFFIX), SINK_REGISTRY_SUFFIX))
                        continue; /* temp files of an interrupted write */
                path = path_join(dir, de->d_name);
                if (!path) {
                        r = -ENOMEM;
                        break;
                }
                r = read_file(path, SINK_REGISTRY_ENTRY_MAX, &text, &size);
                if (r < 0) {
                        log_warning_errno(r, "Failed to read sink registry entry %s, ignoring: %m", path);
                        r = 0;
                        continue;
                }
                r = sink_registry_parse(text, size, &s);
                if (r == -ENOMEM)
                        break;
                if (r < 0) {
                        log_warning_errno(r, "Sink registry entry %s is malformed, ignoring: %m", path);
                        r = 0;
                        continue;
                }
                if (strlen(s->name) != len - strlen(SINK_REGISTRY_SUFFIX) ||
                    strncmp(s->name, de->d_name, strlen(s->name)) != 0) {
                        log_warning("Sink registry entry %s names sink \"%s\", not its file name, ignoring.", path,
                                    s->name);
                        sink_free(s);
                        continue;
                }
                l = realloc(list, (n + 2) * sizeof(Sink *));
                if (!l) {
                        sink_free(s);
                        r = -ENOMEM;
                        break;
                }
                list = l;
                list[n++] = s;
                list[n] = NULL;
        }
        if (r >= 0 && d && errno != 0)
                r = -errno;
        if (r < 0) {
                for (size_t i = 0; i < n; i++)
                        sink_free(list[i]);
                return r;
        }
        qsort(list, n, sizeof(Sink *), sink_name_cmp);
        *ret = TAKE_PTR(list);
        *ret_n = n;
        return 0;
}

/* ---- the link to the sink daemon ------------------------------------------------------------------ */

int sink_send_add(Connector *c, Sink *s) {
        _cleanup_json_ struct json_object *o = NULL;
        Manager *m = c->manager;

        if (!connector_is_connected(c))
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

int manager_add_sink(Manager *m, const char *name, const char *type, struct json_object *options, const Actor *actor,
                     Sink **ret, sd_bus_error *error) {
        _cleanup_json_ struct json_object *normalized = NULL;
        _cleanup_(sink_freep) Sink *s = NULL;
        char reason[256];
        Connector *c;
        Sink *added;
        int r;

        if (!sink_name_is_valid(name))
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "Invalid sink name \"%.80s\": use 1-%d characters of [A-Za-z0-9_.-].", name,
                                         SINK_NAME_MAX);
        if (!source_type_is_valid(type))
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Invalid sink type \"%.80s\".", type);
        if (m->stream)
                return manager_refuse_stream_change(m, error);
        if (manager_find_sink(m, name))
                return sd_bus_error_setf(error, BUS_ERROR_SINK_EXISTS, "A sink named \"%s\" exists already.", name);
        if (!manager_sink_type_is_known(m, type))
                return sd_bus_error_setf(error, BUS_ERROR_UNKNOWN_TYPE,
                                         "Unknown sink type \"%s\": no sink daemon at %s/sink-%s.sock.", type,
                                         m->runtime_dir, type);
        r = sink_options_normalize(options, &normalized, reason, sizeof(reason));
        if (r == -ENOMEM)
                return sd_bus_error_set_errno(error, r);
        if (r < 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Invalid options for sink \"%s\": %s.", name,
                                         reason);
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
        r = manager_link_sink(m, s);
        if (r < 0) {
                (void) sink_registry_remove(m->sinks_dir, name);
                return sd_bus_error_set_errno(error, r);
        }
        added = TAKE_PTR(s);
        audit_log(LOG_INFO, actor, "add_sink", added->name, false, "Sink %s added (type %s, address %s)", added->name,
                  added->type, sink_address(added));

        r = manager_get_link(m, &connector_kind_sink, type, &c);
        if (r < 0)
                log_warning_errno(r, "Failed to set up sink daemon %s, the sink stays registered: %m", type);
        else
                (void) sink_send_add(c, added);

        manager_emit_sink_added(m, added);
        if (ret)
                *ret = added;
        return 0;
}

int manager_remove_sink(Manager *m, const char *name, const Actor *actor, sd_bus_error *error) {
        Connector *c;
        Sink *s;
        int r;

        if (m->stream)
                return manager_refuse_stream_change(m, error);
        s = manager_find_sink(m, name);
        if (!s)
                return sd_bus_error_setf(error, BUS_ERROR_NO_SUCH_SINK, "No sink named \"%.80s\".", name);
        r = sink_registry_remove(m->sinks_dir, name);
        if (r < 0) {
                log_error_errno(r, "Failed to remove sink %s from the registry: %m", name);
                return sd_bus_error_setf(error, SD_BUS_ERROR_FAILED, "Failed to remove sink \"%s\" from the registry: %s",
                                         name, strerror(-r));
        }
        manager_unlink_sink(m, s);
        c = manager_find_link(m, &connector_kind_sink, s->type);
        if (c) {
                if (connector_remove_source(c, s->name) < 0)
                        log_warning("Failed to tell sink daemon %s to forget sink %s, ignoring.", c->type, s->name);
                (void) connector_release_if_unneeded(c);
        }
        audit_log(LOG_INFO, actor, "remove_sink", s->name, false, "Sink %s removed", s->name);
        manager_emit_sink_removed(m, s->name, s->object_path);
        sink_free(s);
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
