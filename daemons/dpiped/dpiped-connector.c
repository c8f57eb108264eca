/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>

#include "dpiped-connector.h"
#include "frame.h"
#include "json-util.h"
#include "log.h"
#include "util.h"

#define CONNECTOR_BACKOFF_MIN_USEC (200 * USEC_PER_MSEC)
#define CONNECTOR_BACKOFF_MAX_USEC (10 * USEC_PER_SEC)
#define CONNECTOR_FRAME_MAX (1024u * 1024u)

static int connector_connect(Connector *c);

char *connector_kind_socket_path(const ConnectorKind *kind, const char *runtime_dir, const char *type) {
        char *p;

        if (asprintf(&p, "%s/%s-%s.sock", runtime_dir, kind->prefix, type) < 0)
                return NULL;
        return p;
}

char *connector_socket_path(const char *runtime_dir, const char *type) {
        return connector_kind_socket_path(&connector_kind_source, runtime_dir, type);
}

Connector *connector_free(Connector *c) {
        if (!c)
                return NULL;
        frame_conn_done(&c->conn);
        for (size_t i = 0; i < c->n_pending_removals; i++)
                free(c->pending_removals[i]);
        free(c->pending_removals);
        free(c->type);
        free(c->socket_path);
        free(c);
        return NULL;
}

void manager_connectors_free(Manager *m) {
        while (m->connectors) {
                Connector *c = m->connectors;
                m->connectors = c->next;
                connector_free(c);
        }
}

/* A connector is kept (connected, or reconnecting) only while it has sources or removals to
 * deliver: a socket-activated connector with neither exits when idle, and must not be woken up
 * again by us. */
static bool connector_is_needed(Connector *c) {
        return c->n_pending_removals > 0 || c->kind->has_objects(c);
}

/* Frees c if it is not needed and has nothing left to send. Returns true if it did. */
bool connector_release_if_unneeded(Connector *c) {
        Manager *m = c->manager;

        if (connector_is_needed(c) || (connector_is_connected(c) && buffer_size(&c->conn.out) > 0))
                return false;
        for (Connector **i = &m->connectors; *i; i = &(*i)->next)
                if (*i == c) {
                        *i = c->next;
                        break;
                }
        log_debug("Nothing of type %s left, closing the connection to its %s.", c->type, c->kind->what);
        connector_free(c);
        return true;
}

static void connector_schedule_retry(Connector *c, const char *reason) {
        if (!connector_is_needed(c))
                return; /* released by the caller's connector_release_if_unneeded() */
        (void) frame_conn_schedule_retry(&c->conn);
        c->kind->set_connecting(c, reason);
}

static int connector_send_json(Connector *c, struct json_object *o) {
        int r;

        if (!connector_is_connected(c))
                return 0;
        r = frame_append_json(&c->conn.out, o);
        if (r < 0)
                return r;
        r = frame_conn_flush(&c->conn);
        if (r < 0) {
                log_warning_errno(r, "Lost the connection to %s %s: %m", c->kind->what, c->type);
                frame_conn_disconnect(&c->conn);
                connector_schedule_retry(c, c->kind->lost);
        }
        return 0;
}

int connector_send_add(Connector *c, Source *s) {
        _cleanup_json_ struct json_object *o = NULL;

        if (!connector_is_connected(c))
                return 0;
        o = json_object_new_object();
        if (!o)
                return -ENOMEM;
        s->pending_request_id = ++c->next_id;
        json_object_object_add(o, "op", json_object_new_string("add"));
        json_object_object_add(o, "id", json_object_new_int64((int64_t) s->pending_request_id));
        json_object_object_add(o, "name", json_object_new_string(s->name));
        json_object_object_add(o, "options", json_object_get(s->options));
        json_object_object_add(o, "paused", json_object_new_boolean(s->paused));
        return connector_send_json(c, o);
}

int connector_send_request(Connector *c, struct json_object *o, uint64_t *ret_id) {
        uint64_t id;

        if (!connector_is_connected(c))
                return 0;
        id = ++c->next_id;
        json_object_object_add(o, "id", json_object_new_int64((int64_t) id));
        if (ret_id)
                *ret_id = id;
        return connector_send_json(c, o);
}

int connector_send_op(Connector *c, const char *op, const char *name) {
        _cleanup_json_ struct json_object *o = NULL;

        if (!connector_is_connected(c))
                return 0;
        o = json_object_new_object();
        if (!o)
                return -ENOMEM;
        json_object_object_add(o, "op", json_object_new_string(op));
        json_object_object_add(o, "id", json_object_new_int64((int64_t) ++c->next_id));
        json_object_object_add(o, "name", json_object_new_string(name));
        return connector_send_json(c, o);
}

int connector_remove_source(Connector *c, const char *name) {
        char **l;

        if (connector_is_connected(c))
                return connector_send_op(c, "remove", name);
        l = realloc(c->pending_removals, (c->n_pending_removals + 1) * sizeof(char *));
        if (!l)
                return -ENOMEM;
        c->pending_removals = l;
        l[c->n_pending_removals] = strdup(name);
        if (!l[c->n_pending_removals])
                return -ENOMEM;
        c->n_pending_removals++;
        return 0;
}

static int connector_on_connected(FrameConn *conn) {
        Connector *c = conn->userdata;
        int r;

        c->was_connected = true;
        log_info("Connected to %s %s at %s.", c->kind->what, c->type, c->socket_path);
        while (c->n_pending_removals > 0) {
                _cleanup_free_ char *name = c->pending_removals[--c->n_pending_removals];

                /* Unless it was added again in the meantime: then the add below replaces it. */
                if (c->kind->exists(c, name))
                        continue;
                r = connector_send_op(c, "remove", name);
                if (r < 0)
                        return r;
                if (!connector_is_connected(c))
                        return 0;
        }
        /* The daemon keeps nothing dpiped cannot resend: tell it every object of its type. */
        return c->kind->send_all(c);
}

static int source_link_send_all(Connector *c) {
        LIST_FOREACH(sources, s, c->manager->sources) {
                int r;

                if (!streq(s->type, c->type))
                        continue;
                r = connector_send_add(c, s);
                if (r < 0)
                        return r;
                if (!connector_is_connected(c))
                        return 0;
        }
        return 0;
}

static bool source_link_has_objects(Connector *c) {
        LIST_FOREACH(sources, s, c->manager->sources)
                if (streq(s->type, c->type))
                        return true;
        return false;
}

static bool source_link_exists(Connector *c, const char *name) {
        return manager_find_source(c->manager, name);
}

static void source_link_set_connecting(Connector *c, const char *reason) {
        LIST_FOREACH(sources, s, c->manager->sources) {
                if (!streq(s->type, c->type) || s->paused)
                        continue;
                if (source_set_state(s, SOURCE_CONNECTING, reason, now_usec(CLOCK_REALTIME)))
                        source_emit_state_changed(s);
        }
}

static void source_link_handle_state(Connector *c, struct json_object *o) {
        const char *name = json_get_string(o, "name"), *st = json_get_string(o, "state");
        const char *error = json_get_string(o, "error");
        SourceState state;
        Source *s;
        uint64_t u, now;
        bool changed;

        s = name ? manager_find_source(c->manager, name) : NULL;
        if (!s || !streq(s->type, c->type))
                return;
        now = now_usec(CLOCK_REALTIME);
        state = source_state_from_string(st);
        if (state == SOURCE_DEGRADED)
                state = SOURCE_ACTIVE; /* dpiped decides that, from the skip counter below */
        if (state < 0)
                state = s->state == SOURCE_DEGRADED ? SOURCE_ACTIVE : s->state;
        /* A late report from before a pause must not make a paused source look running. */
        if (s->paused)
                state = SOURCE_PAUSED;

        if (json_get_uint64(o, "records", &u))
                s->records_received = u;
        if (json_get_uint64(o, "bytes", &u))
                s->bytes_received = u;
        if (json_get_uint64(o, "last_record_us", &u))
                s->last_record_usec = u;
        if (json_get_uint64(o, "last_heartbeat_us", &u))
                s->last_heartbeat_usec = u;
        /* The counter is the connector's own since its start: a smaller one is a restarted
         * connector, not a skip. */
        if (json_get_uint64(o, "skipped", &u)) {
                if (u > s->records_skipped)
                        s->last_skip_usec = now;
                s->records_skipped = u;
        }
        if (json_get_uint64(o, "filtered", &u))
                s->records_filtered = u;
        const char *skip_reason = json_get_string(o, "skip_reason");
        if (skip_reason && !streq(skip_reason, s->last_skip_reason)) {
                char *copy = strdup(skip_reason);
                if (copy) {
                        free(s->last_skip_reason);
                        s->last_skip_reason = copy;
                }
        }
        changed = false;
        if (json_get_uint64(o, "reconnects", &u) && (uint32_t) u != s->reconnects) {
                s->reconnects = (uint32_t) u;
                changed = true;
        }
        state = source_effective_state(state, s->last_skip_usec, c->manager->degraded_usec, now);
        if (source_set_state(s, state, error, now))
                changed = true;
        if (changed) {
                log_source_info(s->name, "Source %s is %s%s%s.", s->name, source_state_to_string(s->state),
                         isempty(s->last_error) ? "" : ": ", s->last_error);
                source_emit_state_changed(s);
        }
}

static bool source_link_handle_error(Connector *c, uint64_t id, const char *message) {
        LIST_FOREACH(sources, s, c->manager->sources)
                if (streq(s->type, c->type) && s->pending_request_id == id) {
                        log_source_warning(s->name, "Connector %s refused source %s: %s", c->type, s->name, message);
                        if (source_set_state(s, SOURCE_FAILED, message, now_usec(CLOCK_REALTIME)))
                                source_emit_state_changed(s);
                        return true;
                }
        return false;
}

const ConnectorKind connector_kind_source = {
        .prefix = "connector",
        .what = "connector",
        .title = "Connector",
        .object = "source",
        .lost = "connection to the connector lost",
        .unreachable = "connector not reachable",
        .has_objects = source_link_has_objects,
        .exists = source_link_exists,
        .send_all = source_link_send_all,
        .set_connecting = source_link_set_connecting,
        .handle_state = source_link_handle_state,
        .handle_error = source_link_handle_error,
};

static void connector_handle_error(Connector *c, struct json_object *o) {
        const char *message = json_get_string(o, "message") ?: "the request was refused";
        uint64_t id;

        if (!json_get_uint64(o, "id", &id))
                return;
        if (!c->kind->handle_error(c, id, message))
                log_warning("%s %s reported an error for request %" PRIu64 ": %s", c->kind->title, c->type, id, message);
}

static int connector_handle_message(Connector *c, struct json_object *o) {
        const char *op = json_get_string(o, "op");

        if (!op)
                return 0;
        if (streq(op, "state"))
                c->kind->handle_state(c, o);
        else if (streq(op, "error"))
                connector_handle_error(c, o);
        else if (streq(op, "ping")) {
                _cleanup_json_ struct json_object *pong = json_object_new_object();
                if (!pong)
                        return -ENOMEM;
                json_object_object_add(pong, "op", json_object_new_string("pong"));
                return connector_send_json(c, pong);
        } else if (streq(op, "hello")) {
                const char *type = json_get_string(o, "type");
                if (type && !streq(type, c->type))
                        log_warning("The %s at %s says it is of type %s, not %s.", c->kind->what, c->socket_path, type,
                                    c->type);
        }
        /* "ok", "pong" and unknown ops need nothing. */
        return 0;
}

static int connector_on_frame(FrameConn *conn, const Frame *f) {
        _cleanup_json_ struct json_object *o = NULL;
        Connector *c = conn->userdata;
        int r;

        if (f->type != FRAME_CONTROL)
                return 0;
        r = frame_parse_json(f, &o);
        if (r < 0) {
                log_warning_errno(r, "%s %s sent a malformed control message, ignoring: %m", c->kind->title, c->type);
                return 0;
        }
        r = connector_handle_message(c, o);
        if (r < 0) {
                log_warning_errno(r, "Bad data from %s %s: %m", c->kind->what, c->type);
                c->bad_data = "malformed data on the control connection";
        }
        return r;
}

static void connector_on_closed(FrameConn *conn, int reason) {
        Connector *c = conn->userdata;
        const char *why = c->bad_data ?: c->kind->lost;

        if (reason == -EMSGSIZE) {
                log_warning_errno(reason, "Bad data from %s %s: %m", c->kind->what, c->type);
                why = "malformed data on the control connection";
        } else if (!c->was_connected)
                log_debug_errno(reason, "Failed to connect to %s %s: %m", c->kind->what, c->type);
        else if (reason == 0)
                log_warning("%s %s closed the control connection.", c->kind->title, c->type);
        else if (!c->bad_data)
                log_warning_errno(reason, "Failed to read from %s %s: %m", c->kind->what, c->type);
        c->was_connected = false;
        c->bad_data = NULL;
        connector_schedule_retry(c, why);
        (void) connector_release_if_unneeded(c);
}

static void connector_on_retry(FrameConn *conn) {
        (void) connector_connect(conn->userdata);
}

/* A removal may have been the last thing to send. */
static void connector_on_dispatched(FrameConn *conn) {
        (void) connector_release_if_unneeded(conn->userdata);
}

static const FrameConnOps connector_ops = {
        .connected = connector_on_connected,
        .frame = connector_on_frame,
        .closed = connector_on_closed,
        .retry = connector_on_retry,
        .dispatched = connector_on_dispatched,
};

static int connector_connect(Connector *c) {
        int r;

        if (frame_conn_is_open(&c->conn))
                return 0;
        c->was_connected = false;
        r = frame_conn_connect(&c->conn, c->socket_path);
        if (r < 0) {
                if (c->conn.backoff.attempt == 0)
                        log_notice_errno(r, "%s %s is not reachable at %s, will retry: %m", c->kind->title, c->type,
                                         c->socket_path);
                connector_schedule_retry(c, c->kind->unreachable);
        }
        return 0;
}

Connector *manager_find_link(Manager *m, const ConnectorKind *kind, const char *type) {
        for (Connector *i = m->connectors; i; i = i->next)
                if (i->kind == kind && streq(i->type, type))
                        return i;
        return NULL;
}

int manager_get_link(Manager *m, const ConnectorKind *kind, const char *type, Connector **ret) {
        _cleanup_(connector_freep) Connector *c = NULL;
        Connector *found;
        int r;

        found = manager_find_link(m, kind, type);
        if (found) {
                if (ret)
                        *ret = found;
                return 0;
        }

        c = calloc(1, sizeof(Connector));
        if (!c)
                return -ENOMEM;
        c->manager = m;
        c->kind = kind;
        frame_conn_init(&c->conn, m->event,
                        &(FrameConnConfig) {
                                .frame_max = CONNECTOR_FRAME_MAX,
                                .read_min = 16384,
                                .backoff = BACKOFF_INIT(CONNECTOR_BACKOFF_MIN_USEC, CONNECTOR_BACKOFF_MAX_USEC, false),
                        },
                        &connector_ops, c);
        c->type = strdup(type);
        c->socket_path = connector_kind_socket_path(kind, m->runtime_dir, type);
        if (!c->type || !c->socket_path)
                return -ENOMEM;
        r = connector_connect(c);
        if (r < 0)
                return r;
        c->next = m->connectors;
        m->connectors = c;
        if (ret)
                *ret = c;
        TAKE_PTR(c);
        return 0;
}
