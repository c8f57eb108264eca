/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The control server: dpiped (or any client of man:dpipe-sink(7)) connects to
 * <runtime-dir>/sink-<type>.sock and exchanges FRAME_CONTROL JSON objects: add/remove/pause/resume
 * requests, the check of a request's options against the type's table, ping/pong, and the state reports the sink daemon pushes. The same protocol as the
 * connectors' (docs/ARCHITECTURE.md, "dpiped <-> connector"), for sinks. */

#include <errno.h>
#include <string.h>

#include "sink-internal.h"
#include "frame.h"
#include "json-util.h"
#include "log.h"

_Static_assert(SINK_NAME_MAX == 59, "the error message names the limit");

#define CONTROL_FRAME_MAX (16u * 1024u * 1024u)
#define CONTROL_OUT_MAX (64u * 1024u * 1024u)

ControlConnection *control_connection_free(ControlConnection *c) {
        if (!c)
                return NULL;
        if (c->manager) {
                LIST_REMOVE_TAIL(controls, c->manager->controls_head, c->manager->controls_tail, c);
                c->manager->n_controls--;
        }
        frame_conn_done(&c->conn);
        return sink_mfree(c);
}

static void control_connection_close(ControlConnection *c) {
        Manager *m = c->manager;

        log_debug("Control connection closed");
        control_connection_free(c);
        manager_check_idle(m);
}

int control_send(ControlConnection *c, json_object *msg) {
        if (buffer_size(&c->conn.out) > CONTROL_OUT_MAX)
                return -ENOBUFS; /* a peer that does not read; dropped at its next event */
        return frame_conn_send_json(&c->conn, msg);
}

static int control_reply(ControlConnection *c, json_object *id, const char *error) {
        _cleanup_json_ json_object *o = json_object_new_object();

        if (!o)
                return -ENOMEM;
        json_object_object_add(o, "op", json_object_new_string(error ? "error" : "ok"));
        if (id)
                json_object_object_add(o, "id", json_object_get(id));
        if (error)
                json_object_object_add(o, "message", json_object_new_string(error));
        return control_send(c, o);
}

static int control_handle_add(ControlConnection *c, json_object *req, const char *name, json_object *id) {
        _cleanup_free_ char *message = NULL;
        json_object *options = NULL, *v;
        const char *pipeline_id = json_get_string(req, "pipeline_id");
        bool paused = false;
        Sink *s;
        int r;

        if (json_object_object_get_ex(req, "pipeline_id", &v) && !pipeline_id_is_valid(pipeline_id))
                return control_reply(c, id, "invalid pipeline id (1-64 characters of [A-Za-z0-9_-])");
        (void) json_object_object_get_ex(req, "options", &options);
        (void) json_get_bool(req, "paused", &paused);
        s = manager_find_sink(c->manager, name);
        if (s)
                r = sink_update(s, options, pipeline_id, paused, &message);
        else
                r = sink_new(c->manager, name, options, pipeline_id, paused, &message, &s);
        if (r == -ENOMEM)
                return log_oom();
        if (r < 0) {
                log_warning("Refusing sink %s: %s", name, message ?: strerror(-r));
                return control_reply(c, id, message ?: strerror(-r));
        }
        manager_check_idle(c->manager);
        return control_reply(c, id, NULL);
}

/* dpiped asks before it accepts a sink: are these options right for this type? The answer comes
 * from the type's option table and validate(), the only schema there is; nothing is added. */
static int control_handle_check(ControlConnection *c, json_object *req, json_object *id) {
        _cleanup_json_ json_object *typed = NULL, *o = NULL;
        _cleanup_free_ char *message = NULL;
        json_object *options = NULL, *v;
        int r;

        if (json_object_object_get_ex(req, "pipeline_id", &v) && !pipeline_id_is_valid(json_get_string(req, "pipeline_id")))
                return control_reply(c, id, "invalid pipeline id (1-64 characters of [A-Za-z0-9_-])");
        (void) json_object_object_get_ex(req, "options", &options);
        r = sink_check_options(c->manager->type, options, &typed, &message);
        if (r == -ENOMEM)
                return log_oom();
        if (r < 0) {
                log_debug("Check of options refused: %s", message ?: strerror(-r));
                return control_reply(c, id, message ?: strerror(-r));
        }
        o = json_object_new_object();
        if (!o)
                return log_oom();
        json_object_object_add(o, "op", json_object_new_string("ok"));
        if (id)
                json_object_object_add(o, "id", json_object_get(id));
        json_object_object_add(o, "options", TAKE_PTR(typed));
        return control_send(c, o);
}

static int control_handle_list(ControlConnection *c, json_object *id) {
        _cleanup_json_ json_object *o = json_object_new_object(), *a = json_object_new_array();
        struct lh_entry *e;

        if (!o || !a)
                return -ENOMEM;
        lh_foreach(c->manager->sinks, e) {
                json_object *st = sink_state_json((Sink *) lh_entry_v(e));
                if (!st || json_object_array_add(a, st) < 0)
                        return -ENOMEM;
        }
        json_object_object_add(o, "op", json_object_new_string("sinks"));
        if (id)
                json_object_object_add(o, "id", json_object_get(id));
        json_object_object_add(o, "sinks", TAKE_PTR(a));
        return control_send(c, o);
}

static int control_handle(ControlConnection *c, json_object *req) {
        const char *op = json_get_string(req, "op"), *name;
        json_object *id = NULL;
        Sink *s;

        (void) json_object_object_get_ex(req, "id", &id);
        if (!op)
                return control_reply(c, id, "missing op");

        if (streq(op, "ping")) {
                _cleanup_json_ json_object *o = json_object_new_object();
                if (!o)
                        return -ENOMEM;
                json_object_object_add(o, "op", json_object_new_string("pong"));
                return control_send(c, o);
        }
        if (streq(op, "pong") || streq(op, "hello"))
                return 0;
        if (streq(op, "list"))
                return control_handle_list(c, id);
        if (streq(op, "check"))
                return control_handle_check(c, req, id);

        name = json_get_string(req, "name");
        if (!streq(op, "add") && !streq(op, "remove") && !streq(op, "pause") && !streq(op, "resume"))
                return control_reply(c, id, "unknown op");
        if (!source_name_is_valid(name) || strlen(name) > SINK_NAME_MAX)
                return control_reply(c, id, "invalid sink name (1-59 characters of [A-Za-z0-9_.-])");
        if (streq(op, "add"))
                return control_handle_add(c, req, name, id);

        s = manager_find_sink(c->manager, name);
        if (!s)
                return control_reply(c, id, "no such sink");
        if (streq(op, "remove"))
                sink_remove(s);
        else if (streq(op, "pause"))
                sink_pause(s);
        else
                sink_resume(s);
        return control_reply(c, id, NULL);
}

static int control_frame(FrameConn *conn, const Frame *f) {
        ControlConnection *c = conn->userdata;
        _cleanup_json_ json_object *req = NULL;
        int r;

        if (f->type != FRAME_CONTROL || frame_parse_json(f, &req) < 0) {
                log_warning("Malformed control frame (type %u), ignoring.", f->type);
                return 0;
        }
        r = control_handle(c, req);
        if (r < 0 && r != -ENOBUFS)
                /* dpiped closes the connection once it has no source (or sink) of ours left, right
                 * after its last request: a reply that meets the hang-up is expected, not a problem. */
                return log_full_errno(r == -EPIPE || r == -ECONNRESET ? LOG_DEBUG : LOG_WARNING, r,
                                      "Failed to handle control request, closing: %m");
        if (buffer_size(&c->conn.out) > CONTROL_OUT_MAX) {
                log_warning("Control peer does not read its replies, closing");
                return -ENOBUFS;
        }
        return 0;
}

static void control_closed(FrameConn *conn, int reason) {
        if (reason == -EMSGSIZE || reason == -EBADMSG)
                log_warning_errno(reason, "Bad control frame, closing: %m");
        else if (reason < 0 && reason != -ENOBUFS)
                log_debug_errno(reason, "Failed to read control connection: %m");
        control_connection_close(conn->userdata);
}

static const FrameConnOps control_ops = {
        .frame = control_frame,
        .closed = control_closed,
};

int control_connection_new(Manager *m, int fd) {
        _cleanup_json_ json_object *hello = json_object_new_object();
        ControlConnection *c;
        struct lh_entry *e;
        int r;

        c = calloc(1, sizeof(ControlConnection));
        if (!c || !hello) {
                free(c);
                safe_close(fd);
                return -ENOMEM;
        }
        frame_conn_init(&c->conn, m->event,
                        &(FrameConnConfig) { .frame_max = CONTROL_FRAME_MAX, .read_min = 64 * 1024 },
                        &control_ops, c);
        r = frame_conn_adopt(&c->conn, fd);
        if (r < 0) {
                control_connection_free(c);
                return r;
        }
        c->manager = m;
        LIST_APPEND_TAIL(controls, m->controls_head, m->controls_tail, c);
        m->n_controls++;
        manager_check_idle(m);

        json_object_object_add(hello, "op", json_object_new_string("hello"));
        json_object_object_add(hello, "type", json_object_new_string(m->type->name));
        json_object_object_add(hello, "version", json_object_new_int(1));
        r = control_send(c, hello);
        /* The current state of every sink, so that a reconnecting dpiped is up to date at once. */
        lh_foreach(m->sinks, e) {
                _cleanup_json_ json_object *st = sink_state_json((Sink *) lh_entry_v(e));
                if (r >= 0 && st)
                        r = control_send(c, st);
        }
        if (r < 0) {
                control_connection_free(c);
                return r;
        }
        log_debug("Control connection accepted");
        return 0;
}
