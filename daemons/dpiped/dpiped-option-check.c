/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The check of a source's (or sink's) options by its connector (or sink daemon), on a connection of
 * its own: one FrameConn (common/frame-conn.h) that sends {"op":"check","id":1,...} and waits for
 * the reply to id 1. */

#include <errno.h>
#include <stdlib.h>

#include "dpiped-connector.h"
#include "dpiped-option-check.h"
#include "frame-conn.h"
#include "json-util.h"
#include "log.h"
#include "socket-util.h"
#include "util.h"

#define OPTION_CHECK_FRAME_MAX (1024u * 1024u)

struct OptionCheck {
        Manager *manager;
        OptionCheck *next, *prev;
        const ConnectorKind *kind;
        char *type;
        FrameConn conn;
        sd_event_source *timer;
        /* The reply, once frame() read it; the check finishes when the loop's turn is over. */
        bool answered;
        OptionCheckResult result;
        char *message;
        json_object *options;
        option_check_handler_t handler;
        void (*destroy)(void *userdata);
        void *userdata;
};

void option_check_set_destroy(OptionCheck *q, void (*destroy)(void *userdata)) {
        q->destroy = destroy;
}

OptionCheck *option_check_free(OptionCheck *q) {
        if (!q)
                return NULL;
        if (q->manager) {
                if (q->prev)
                        q->prev->next = q->next;
                else if (q->manager->option_checks == q)
                        q->manager->option_checks = q->next;
                if (q->next)
                        q->next->prev = q->prev;
        }
        frame_conn_done(&q->conn);
        sd_event_source_disable_unref(q->timer);
        free(q->type);
        free(q->message);
        json_object_put(q->options);
        if (q->destroy)
                q->destroy(q->userdata);
        free(q);
        return NULL;
}

void manager_option_checks_free(Manager *m) {
        while (m->option_checks)
                option_check_free(m->option_checks);
}

static void option_check_finish(OptionCheck *q, OptionCheckResult result, const char *message,
                                struct json_object *options) {
        option_check_handler_t handler = q->handler;
        void *userdata = q->userdata;
        OptionCheckAnswer answer = {
                .result = result,
                .message = result == OPTION_CHECK_REFUSED ? message : NULL,
                .options = result == OPTION_CHECK_ACCEPTED && json_object_is_type(options, json_type_object) ? options
                                                                                                           : NULL,
        };

        if (result == OPTION_CHECK_UNCHECKED)
                log_notice("%s %s did not answer the check of a %s's options (%s); it checks them when it gets "
                           "the %s.", q->kind->title, q->type, q->kind->object, message ?: "no answer", q->kind->object);
        /* Freed first: the handler may start another check, or free what owns the userdata. */
        q->destroy = NULL;
        option_check_free(q);
        handler(&answer, userdata);
}

/* The reply to our request (id 1) is kept; hello and state reports of the connector are passed over. */
static int option_check_frame(FrameConn *conn, const Frame *f) {
        OptionCheck *q = conn->userdata;
        _cleanup_json_ struct json_object *o = NULL;
        const char *op;
        uint64_t id;

        if (q->answered || f->type != FRAME_CONTROL || frame_parse_json(f, &o) < 0)
                return 0;
        op = json_get_string(o, "op");
        if (!json_get_uint64(o, "id", &id) || id != 1)
                return 0;
        if (streq_ptr(op, "ok")) {
                struct json_object *options = NULL;

                (void) json_object_object_get_ex(o, "options", &options);
                q->result = OPTION_CHECK_ACCEPTED;
                q->options = json_object_get(options);
        } else if (streq_ptr(op, "error")) {
                const char *message = json_get_string(o, "message") ?: "refused by the connector";

                /* A connector from before the check knows no such op: it checks when it gets the
                 * source. */
                q->result = streq(message, "unknown op") ? OPTION_CHECK_UNCHECKED : OPTION_CHECK_REFUSED;
                q->message = strdup(message);
                if (!q->message)
                        return -ENOMEM;
        } else
                return 0;
        q->answered = true;
        return 0;
}

/* The reply kept by option_check_frame(): what it holds must outlive q for the handler. */
static void option_check_finish_answered(OptionCheck *q) {
        _cleanup_free_ char *message = TAKE_PTR(q->message);
        _cleanup_json_ struct json_object *options = TAKE_PTR(q->options);

        option_check_finish(q, q->result, message, options);
}

static void option_check_dispatched(FrameConn *conn) {
        OptionCheck *q = conn->userdata;

        if (q->answered)
                option_check_finish_answered(q);
}

static int option_check_connected(FrameConn *conn) {
        return frame_conn_flush(conn);
}

static void option_check_closed(FrameConn *conn, int reason) {
        OptionCheck *q = conn->userdata;

        if (q->answered)
                option_check_finish_answered(q);
        else
                option_check_finish(q, OPTION_CHECK_UNCHECKED,
                                    reason == -EMSGSIZE || reason == -EBADMSG ? "malformed reply"
                                    : q->conn.connected || reason == 0 ? "connection lost"
                                                                        : "connect failed",
                                    NULL);
}

static const FrameConnOps option_check_ops = {
        .connected = option_check_connected,
        .frame = option_check_frame,
        .closed = option_check_closed,
        .dispatched = option_check_dispatched,
};

static int option_check_timeout(sd_event_source *es, uint64_t usec, void *userdata) {
        option_check_finish(userdata, OPTION_CHECK_UNCHECKED, "timed out", NULL);
        return 0;
}

int option_check_start(Manager *m, const ConnectorKind *kind, const char *type, json_object *options,
                       option_check_handler_t handler, void *userdata, OptionCheck **ret,
                       OptionCheckResult *ret_result) {
        _cleanup_(option_check_freep) OptionCheck *q = NULL;
        _cleanup_json_ struct json_object *req = NULL;
        _cleanup_free_ char *path = NULL;
        int r;

        path = connector_kind_socket_path(kind, m->runtime_dir, type);
        if (!path)
                return -ENOMEM;
        q = calloc(1, sizeof(OptionCheck));
        if (!q)
                return -ENOMEM;
        frame_conn_init(&q->conn, m->event, &(FrameConnConfig) { .frame_max = OPTION_CHECK_FRAME_MAX, .read_min = 16384 },
                        &option_check_ops, q);
        req = json_object_new_object();
        if (!req)
                return -ENOMEM;
        r = frame_conn_connect(&q->conn, path);
        if (r == -ENOENT) {
                *ret_result = OPTION_CHECK_NO_TYPE;
                return 0;
        }
        if (r < 0) {
                log_notice_errno(r, "%s %s cannot check a %s's options (%s: %m); it checks them when it gets "
                                 "the %s.", kind->title, type, kind->object, path, kind->object);
                *ret_result = OPTION_CHECK_UNCHECKED;
                return 0;
        }
        q->kind = kind;
        q->type = strdup(type);
        if (!q->type)
                return -ENOMEM;
        json_object_object_add(req, "op", json_object_new_string("check"));
        json_object_object_add(req, "id", json_object_new_int(1));
        if (options)
                json_object_object_add(req, "options", json_object_get(options));
        /* Sent once the connect completed (option_check_connected()). */
        r = frame_append_json(&q->conn.out, req);
        if (r < 0)
                return r;
        r = sd_event_add_time_relative(m->event, &q->timer, CLOCK_MONOTONIC, OPTION_CHECK_TIMEOUT_USEC, 0,
                                       option_check_timeout, q);
        if (r < 0)
                return r;
        q->handler = handler;
        q->userdata = userdata;
        q->manager = m;
        q->next = m->option_checks;
        if (m->option_checks)
                m->option_checks->prev = q;
        m->option_checks = q;
        *ret = TAKE_PTR(q);
        return 1;
}
