/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <sys/epoll.h>

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

static void connector_disconnect(Connector *c) {
        c->io_event_source = sd_event_source_disable_unref(c->io_event_source);
        c->fd = safe_close(c->fd);
        c->connected = false;
        buffer_clear(&c->in);
        buffer_clear(&c->out);
}

Connector *connector_free(Connector *c) {
        if (!c)
                return NULL;
        connector_disconnect(c);
        sd_event_source_disable_unref(c->retry_timer);
        buffer_done(&c->in);
        buffer_done(&c->out);
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

        if (connector_is_needed(c) || (c->connected && buffer_size(&c->out) > 0))
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

static int retry_handler(sd_event_source *es, uint64_t usec, void *userdata) {
        Connector *c = userdata;

        (void) connector_connect(c);
        return 0;
}

static void connector_schedule_retry(Connector *c, const char *reason) {
        uint64_t now, delay;
        int r;

        if (!connector_is_needed(c))
                return; /* released by the caller's connector_release_if_unneeded() */

        delay = backoff_next(&c->backoff);
        (void) sd_event_now(c->manager->event, CLOCK_MONOTONIC, &now);
        if (c->retry_timer) {
                r = sd_event_source_set_time(c->retry_timer, now + delay);
                if (r >= 0)
                        r = sd_event_source_set_enabled(c->retry_timer, SD_EVENT_ONESHOT);
        } else
                r = sd_event_add_time(c->manager->event, &c->retry_timer, CLOCK_MONOTONIC, now + delay,
                                      0, retry_handler, c);
        if (r < 0)
                log_error_errno(r, "Failed to schedule reconnect to %s %s: %m", c->kind->what, c->type);
        c->kind->set_connecting(c, reason);
}

static int connector_flush(Connector *c) {
        ssize_t n;

        if (c->fd < 0 || !c->connected)
                return 0;
        n = buffer_write_fd(&c->out, c->fd);
        if (n < 0)
                return (int) n;
        return sd_event_source_set_io_events(c->io_event_source,
                                             EPOLLIN | (buffer_size(&c->out) > 0 ? EPOLLOUT : 0));
}

static int connector_send_json(Connector *c, struct json_object *o) {
        int r;

        if (!c->connected)
                return 0;
        r = frame_append_json(&c->out, o);
        if (r < 0)
                return r;
        r = connector_flush(c);
        if (r < 0) {
                log_warning_errno(r, "Lost the connection to %s %s: %m", c->kind->what, c->type);
                connector_disconnect(c);
                connector_schedule_retry(c, c->kind->lost);
        }
        return 0;
}

int connector_send_add(Connector *c, Source *s) {
        _cleanup_json_ struct json_object *o = NULL;

        if (!c->connected)
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

        if (!c->connected)
                return 0;
        id = ++c->next_id;
        json_object_object_add(o, "id", json_object_new_int64((int64_t) id));
        if (ret_id)
                *ret_id = id;
        return connector_send_json(c, o);
}

int connector_send_op(Connector *c, const char *op, const char *name) {
        _cleanup_json_ struct json_object *o = NULL;

        if (!c->connected)
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

        if (c->connected)
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

static int connector_on_connected(Connector *c) {
        int r;

        c->connected = true;
        backoff_reset(&c->backoff);
        log_info("Connected to %s %s at %s.", c->kind->what, c->type, c->socket_path);
        while (c->n_pending_removals > 0) {
                _cleanup_free_ char *name = c->pending_removals[--c->n_pending_removals];

                /* Unless it was added again in the meantime: then the add below replaces it. */
                if (c->kind->exists(c, name))
                        continue;
                r = connector_send_op(c, "remove", name);
                if (r < 0)
                        return r;
                if (!c->connected)
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
                if (!c->connected)
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

static int connector_process_input(Connector *c) {
        for (;;) {
                _cleanup_json_ struct json_object *o = NULL;
                Frame f;
                int r;

                r = frame_peek(&c->in, CONNECTOR_FRAME_MAX, &f);
                if (r <= 0)
                        return r;
                if (f.type == FRAME_CONTROL) {
                        r = frame_parse_json(&f, &o);
                        if (r < 0)
                                log_warning_errno(r, "%s %s sent a malformed control message, ignoring: %m",
                                                  c->kind->title, c->type);
                        else {
                                r = connector_handle_message(c, o);
                                if (r < 0)
                                        return r;
                        }
                }
                if (!c->connected)
                        return 0;
                buffer_consume(&c->in, FRAME_HEADER_SIZE + f.size);
        }
}

static int connector_io_handler(sd_event_source *es, int fd, uint32_t revents, void *userdata) {
        Connector *c = userdata;
        const char *reason = c->kind->lost;
        int r;

        if (!c->connected) {
                r = socket_finish_connect(fd);
                if (r < 0) {
                        log_debug_errno(r, "Failed to connect to %s %s: %m", c->kind->what, c->type);
                        goto fail;
                }
                r = connector_on_connected(c);
                if (r < 0)
                        goto fail;
                if (!c->connected)
                        return 0;
        }
        if (revents & EPOLLIN) {
                for (;;) {
                        ssize_t n = buffer_read_fd(&c->in, fd, 16384);
                        if (n == -EAGAIN)
                                break;
                        if (n <= 0) {
                                if (n < 0)
                                        log_warning_errno((int) n, "Failed to read from %s %s: %m", c->kind->what, c->type);
                                else
                                        log_warning("%s %s closed the control connection.", c->kind->title, c->type);
                                goto fail;
                        }
                        r = connector_process_input(c);
                        if (r < 0) {
                                log_warning_errno(r, "Bad data from %s %s: %m", c->kind->what, c->type);
                                reason = "malformed data on the control connection";
                                goto fail;
                        }
                        if (!c->connected)
                                return 0;
                }
        } else if (revents & (EPOLLHUP | EPOLLERR)) {
                log_warning("%s %s hung up.", c->kind->title, c->type);
                goto fail;
        }
        r = connector_flush(c);
        if (r < 0) {
                log_warning_errno(r, "Failed to write to %s %s: %m", c->kind->what, c->type);
                goto fail;
        }
        (void) connector_release_if_unneeded(c);
        return 0;
fail:
        connector_disconnect(c);
        connector_schedule_retry(c, reason);
        (void) connector_release_if_unneeded(c);
        return 0;
}

static int connector_connect(Connector *c) {
        _cleanup_close_ int fd = -EBADF;
        int r;

        if (c->fd >= 0)
                return 0;
        fd = socket_connect_unix(c->socket_path, true);
        if (fd < 0) {
                if (c->backoff.attempt == 0)
                        log_notice_errno(fd, "%s %s is not reachable at %s, will retry: %m", c->kind->title, c->type,
                                         c->socket_path);
                connector_schedule_retry(c, c->kind->unreachable);
                return 0;
        }
        r = sd_event_add_io(c->manager->event, &c->io_event_source, fd, EPOLLIN | EPOLLOUT, connector_io_handler, c);
        if (r < 0)
                return log_error_errno(r, "Failed to watch connector socket: %m");
        c->fd = TAKE_FD(fd);
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
        c->fd = -EBADF;
        c->backoff = BACKOFF_INIT(CONNECTOR_BACKOFF_MIN_USEC, CONNECTOR_BACKOFF_MAX_USEC, false);
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
