/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The control server of a service daemon: dpiped (or any client of man:dpipe-connector(7) and
 * man:dpipe-sink(7)) connects to <runtime-dir>/<kind>-<type>.sock and exchanges FRAME_CONTROL JSON
 * objects: add/remove/pause/resume requests, the check of a request's options against the type's
 * table, list, ping/pong, and the state reports the daemon pushes. The requests are the class's to
 * carry out (ServiceClass); the framing, the replies and the dispatch are here. */

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "frame.h"
#include "json-util.h"
#include "log.h"
#include "service.h"
#include "util.h"

#define CONTROL_FRAME_MAX (16u * 1024u * 1024u)
#define CONTROL_OUT_MAX (64u * 1024u * 1024u)

ServiceControl *service_control_free(ServiceControl *c) {
        if (!c)
                return NULL;
        if (c->service) {
                LIST_REMOVE_TAIL(controls, c->service->controls_head, c->service->controls_tail, c);
                c->service->n_controls--;
        }
        frame_conn_done(&c->conn);
        return mfree(c);
}

static void service_control_close(ServiceControl *c) {
        Service *s = c->service;

        log_debug("Control connection closed");
        service_control_free(c);
        service_check_idle(s);
}

int service_control_send(ServiceControl *c, json_object *msg) {
        if (c->peer_gone)
                return 0; /* nobody to read it */
        if (buffer_size(&c->conn.out) > CONTROL_OUT_MAX)
                return -ENOBUFS; /* a peer that does not read; dropped at its next event */
        return frame_conn_send_json(&c->conn, msg);
}

/* {"op":OP,"id":ID} (no id if the request had none), with field (if non-NULL) set to value. */
static int control_send_op(ServiceControl *c, const char *op, json_object *id, const char *field, json_object *value) {
        _cleanup_json_ json_object *o = json_object_new_object();

        if (!o) {
                json_object_put(value);
                return -ENOMEM;
        }
        json_object_object_add(o, "op", json_object_new_string(op));
        if (id)
                json_object_object_add(o, "id", json_object_get(id));
        if (field)
                json_object_object_add(o, field, value);
        return service_control_send(c, o);
}

static int control_reply(ServiceControl *c, json_object *id, const char *error) {
        if (!error)
                return control_send_op(c, "ok", id, NULL, NULL);
        return control_send_op(c, "error", id, "message", json_object_new_string(error));
}

static int control_handle_add(ServiceControl *c, json_object *req, const char *name, json_object *id) {
        const ServiceClass *class = c->service->class;
        _cleanup_free_ char *message = NULL;
        json_object *options = NULL;
        bool paused = false;
        int r;

        (void) json_object_object_get_ex(req, "options", &options);
        (void) json_get_bool(req, "paused", &paused);
        r = class->add(c->service->userdata, service_find(c->service, name), name, options, paused, req, &message);
        if (r == -ENOMEM)
                return log_oom();
        if (r < 0) {
                log_source_full(LOG_WARNING, class->log_source_field ? name : NULL, "Refusing %s %s: %s",
                                class->instance, name, message ?: strerror(-r));
                return control_reply(c, id, message ?: strerror(-r));
        }
        service_check_idle(c->service);
        return control_reply(c, id, NULL);
}

/* dpiped asks before it accepts an instance: are these options right for this type? The answer
 * comes from the type's option table and validate(), the only schema there is; nothing is added. */
static int control_handle_check(ServiceControl *c, json_object *req, json_object *id) {
        json_object *typed = NULL;
        _cleanup_free_ char *message = NULL;
        int r;

        r = c->service->class->check(c->service->userdata, req, &typed, &message);
        if (r == -ENOMEM)
                return log_oom();
        if (r < 0) {
                log_debug("Check of options refused: %s", message ?: strerror(-r));
                return control_reply(c, id, message ?: strerror(-r));
        }
        r = control_send_op(c, "ok", id, "options", typed);
        return r == -ENOMEM ? log_oom() : r;
}

static int control_handle_list(ServiceControl *c, json_object *id) {
        Service *s = c->service;
        _cleanup_json_ json_object *a = json_object_new_array();
        struct lh_entry *e;

        if (!a)
                return -ENOMEM;
        service_foreach(s, e) {
                json_object *st = s->class->state(lh_entry_v(e));
                if (!st || json_object_array_add(a, st) < 0)
                        return -ENOMEM;
        }
        return control_send_op(c, s->class->instances, id, s->class->instances, TAKE_PTR(a));
}

static int control_handle(ServiceControl *c, json_object *req) {
        const ServiceClass *class = c->service->class;
        const char *op = json_get_string(req, "op"), *name;
        json_object *id = NULL;
        void *instance;

        (void) json_object_object_get_ex(req, "id", &id);
        if (!op)
                return control_reply(c, id, "missing op");

        if (streq(op, "ping"))
                return control_send_op(c, "pong", NULL, NULL, NULL);
        if (streq(op, "pong") || streq(op, "hello"))
                return 0;
        if (streq(op, "list"))
                return control_handle_list(c, id);
        if (streq(op, "check"))
                return control_handle_check(c, req, id);

        name = json_get_string(req, "name");
        if (!streq(op, "add") && !streq(op, "remove") && !streq(op, "pause") && !streq(op, "resume"))
                return control_reply(c, id, "unknown op");
        if (!source_name_is_valid(name) || strlen(name) > class->name_max)
                return control_reply(c, id, class->invalid_name);
        if (streq(op, "add"))
                return control_handle_add(c, req, name, id);

        instance = service_find(c->service, name);
        if (!instance) {
                _cleanup_free_ char *message = NULL;

                if (asprintf(&message, "no such %s", class->instance) < 0)
                        return -ENOMEM;
                return control_reply(c, id, message);
        }
        class->act(instance, streq(op, "remove") ? SERVICE_REMOVE : streq(op, "pause") ? SERVICE_PAUSE : SERVICE_RESUME);
        return control_reply(c, id, NULL);
}

static int control_frame(FrameConn *conn, const Frame *f) {
        ServiceControl *c = conn->userdata;
        _cleanup_json_ json_object *req = NULL;
        int r;

        if (f->type != FRAME_CONTROL || frame_parse_json(f, &req) < 0) {
                log_warning("Malformed control frame (type %u), ignoring.", f->type);
                return 0;
        }
        r = control_handle(c, req);
        if (r == -EPIPE || r == -ECONNRESET) {
                /* dpiped closes the connection once it has no instance of ours left, right after its
                 * last requests: a reply that meets the hang-up is expected, and the requests still
                 * in our input (the last remove) are carried out all the same; only their replies
                 * have nobody to go to. The end of the input closes the connection. */
                log_debug_errno(r, "Control peer hung up, reading its last requests: %m");
                c->peer_gone = true;
                buffer_clear(&c->conn.out);
                return 0;
        }
        if (r < 0 && r != -ENOBUFS)
                return log_warning_errno(r, "Failed to handle control request, closing: %m");
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
        service_control_close(conn->userdata);
}

static const FrameConnOps control_ops = {
        .frame = control_frame,
        .closed = control_closed,
};

int service_control_new(Service *s, int fd) {
        _cleanup_json_ json_object *hello = json_object_new_object();
        ServiceControl *c;
        struct lh_entry *e;
        int r;

        c = calloc(1, sizeof(ServiceControl));
        if (!c || !hello) {
                free(c);
                safe_close(fd);
                return -ENOMEM;
        }
        frame_conn_init(&c->conn, s->event,
                        &(FrameConnConfig) { .frame_max = CONTROL_FRAME_MAX, .read_min = 64 * 1024 },
                        &control_ops, c);
        r = frame_conn_adopt(&c->conn, fd);
        if (r < 0) {
                service_control_free(c);
                return r;
        }
        c->service = s;
        LIST_APPEND_TAIL(controls, s->controls_head, s->controls_tail, c);
        s->n_controls++;
        service_check_idle(s);

        json_object_object_add(hello, "op", json_object_new_string("hello"));
        json_object_object_add(hello, "type", json_object_new_string(s->type.name));
        json_object_object_add(hello, "version", json_object_new_int(1));
        r = service_control_send(c, hello);
        /* The current state of every instance, so that a reconnecting dpiped is up to date at once. */
        service_foreach(s, e) {
                _cleanup_json_ json_object *st = s->class->state(lh_entry_v(e));
                if (r >= 0 && st)
                        r = service_control_send(c, st);
        }
        if (r < 0) {
                service_control_free(c);
                return r;
        }
        log_debug("Control connection accepted");
        return 0;
}
