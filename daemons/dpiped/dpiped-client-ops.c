/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The client protocol's ops: one handler per op, the table of who may run which, and the dispatch
 * of one request line. Subscribe and ack are in dpiped-client-stream.c. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <systemd/sd-login.h>

#include "dpiped-client.h"
#include "dpiped-client-ops.h"
#include "dpiped-client-stream.h"
#include "dpiped-request.h"
#include "dpiped-sink.h"
#include "dpiped-source.h"
#include "dpiped-tokens.h"
#include "json-util.h"
#include "log.h"
#include "util.h"

/* ---- replies ---------------------------------------------------------------------------------- */

/* The client protocol's error code of each named D-Bus error (dpiped(8), CLIENT PROTOCOL). */
static const struct {
        const char *bus_error, *code;
} error_codes[] = {
        { BUS_ERROR_SOURCE_EXISTS, "source_exists" },
        { BUS_ERROR_NO_SUCH_SOURCE, "no_such_source" },
        { BUS_ERROR_UNKNOWN_TYPE, "unknown_type" },
        { BUS_ERROR_SOURCE_DEFINED_BY_FILE, "source_defined_by_file" },
        { BUS_ERROR_SINK_EXISTS, "sink_exists" },
        { BUS_ERROR_NO_SUCH_SINK, "no_such_sink" },
        { BUS_ERROR_SINK_DEFINED_BY_FILE, "sink_defined_by_file" },
        { SD_BUS_ERROR_NOT_SUPPORTED, "not_supported" },
        { SD_BUS_ERROR_INVALID_ARGS, "invalid_argument" },
        { SD_BUS_ERROR_ACCESS_DENIED, "denied" },
};

static const char *error_code_from_bus_error(const sd_bus_error *e) {
        for (size_t i = 0; i < ELEMENTSOF(error_codes); i++)
                if (sd_bus_error_has_name(e, error_codes[i].bus_error))
                        return error_codes[i].code;
        return "internal";
}

static int client_send_bus_error(Client *c, struct json_object *id, const sd_bus_error *e, int r) {
        return client_send_error(c, id, error_code_from_bus_error(e),
                                 e->message ?: (e->name ?: strerror(r < 0 ? -r : r)));
}

/* ---- who may do what (dpiped(8), ACCESS) --------------------------------------------------------- */

static const char *client_unit(Client *c) {
        if (!c->unit_looked_up && c->pid > 0) {
                c->unit_looked_up = true;
                if (sd_pid_get_unit(c->pid, &c->unit) < 0)
                        c->unit = NULL;
        }
        return c->unit;
}

static void client_actor(Client *c, Actor *ret) {
        *ret = (Actor) {
                .transport = c->actor_transport,
                .uid = c->uid,
                .pid = c->pid,
                .unit = c->actor_transport == ACTOR_UNIX ? client_unit(c) : NULL,
                .token = c->token ? c->token->name : NULL,
                .tls_cn = c->transport.tls ? tls_conn_peer_cn(c->transport.tls) : NULL,
                .peer = c->actor_transport == ACTOR_UNIX ? NULL : c->peer,
        };
}

void client_update_access(Client *c) {
        ClientAccess a = c->access_base;

        if (c->token)
                a = MAX(a, c->token->role == TOKEN_ROLE_ADMIN ? CLIENT_ACCESS_CHANGE : CLIENT_ACCESS_READ);
        /* --read-only-clients: the client protocol never changes the pipeline, whoever asks. */
        if (c->manager->read_only_clients)
                a = MIN(a, CLIENT_ACCESS_READ);
        c->access = a;
}

/* Why an op is refused, in words the user can act on. */
static const char *client_denied_reason(Client *c, bool mutating, char *buf, size_t size) {
        Manager *m = c->manager;

        if (!mutating)
                return "send a valid token first: {\"op\":\"hello\",\"version\":1,\"token\":SECRET}";
        if (m->read_only_clients)
                return "this server does not let clients change the pipeline";
        if (c->actor_transport == ACTOR_UNIX) {
                snprintf(buf, size, "changing the pipeline needs root or membership in group %s", m->admin_group);
                return buf;
        }
        if (c->token)
                return "this token may only read; changing the pipeline needs an admin token";
        if (!m->tokens)
                return "changing the pipeline over TCP needs an admin token, and this server has none "
                       "(dpiped --tokens); use client.sock or D-Bus";
        return "changing the pipeline over TCP needs an admin token in hello";
}

/* A refused attempt: the denied error to the client, and an audit line (at notice for the first of
 * the connection, later ones at debug, so that a client cannot flood the journal). */
static int client_deny(Client *c, struct json_object *req, struct json_object *id, const char *op, bool mutating,
                       const char *reason) {
        const char *name = json_get_string(req, "name");
        Actor actor;

        client_actor(c, &actor);
        audit_log(c->n_denied++ == 0 ? LOG_NOTICE : LOG_DEBUG, &actor, op, mutating ? name : NULL, true,
                  "Refused %s%s%s (%s)", op, mutating && name ? " of source " : "", mutating && name ? name : "", reason);
        return client_send_error(c, id, "denied", reason);
}

/* ---- ops -------------------------------------------------------------------------------------- */

/* hello may carry a token (dpiped(8), ACCESS): a valid one gives its role for the rest of the connection, an
 * invalid one takes away what an earlier one gave. Returns 1 when it replied (an error) itself. */
static int client_take_token(Client *c, struct json_object *req, struct json_object *id) {
        struct json_object *v;
        const Token *t;
        int r;

        if (!json_object_object_get_ex(req, "token", &v))
                return 0;
        if (!json_object_is_type(v, json_type_string))
                r = client_send_error(c, id, "bad_request", "\"token\" must be a string");
        else {
                t = token_set_find(c->manager->tokens, json_object_get_string(v), (size_t) json_object_get_string_len(v));
                c->token = t;
                client_update_access(c);
                if (t) {
                        log_info("Client %s presented token %s (%s).", c->peer, t->name, token_role_to_string(t->role));
                        return 0;
                }
                r = client_deny(c, req, id, "hello", false,
                                c->manager->tokens ? "invalid token" : "this server accepts no tokens (dpiped --tokens)");
        }
        return r < 0 ? r : 1;
}

static int op_hello(Client *c, struct json_object *req, struct json_object *id) {
        _cleanup_json_ struct json_object *o = NULL;
        struct json_object *v;
        char server[64];
        int r;

        if (json_object_object_get_ex(req, "version", &v) &&
            (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 1))
                return client_send_error(c, id, "bad_request", "\"version\" must be a protocol version >= 1");
        r = client_take_token(c, req, id);
        if (r != 0)
                return r < 0 ? r : 0;

        o = json_object_new_object();
        if (!o)
                return -ENOMEM;
        snprintf(server, sizeof(server), "dpiped %s", dpipe_version());
        json_object_object_add(o, "op", json_object_new_string("hello"));
        json_object_object_add(o, "version", json_object_new_int(1));
        json_object_object_add(o, "server", json_object_new_string(server));
        json_object_object_add(o, "heartbeat_ms", json_object_new_int64((int64_t) (c->manager->heartbeat_usec / USEC_PER_MSEC)));
        if (c->token)
                json_object_object_add(o, "role", json_object_new_string(token_role_to_string(c->token->role)));
        return client_send_json(c, id, o);
}

static int op_ping(Client *c, struct json_object *req, struct json_object *id) {
        return client_send_op(c, id, "pong");
}

static int op_pong(Client *c, struct json_object *req, struct json_object *id) {
        return 0; /* receiving anything already counts as a sign of life */
}

/* add_source and add_sink: the type's daemon checks the options first, then the add is done. */
static int add_finish(Client *c, struct json_object *req, const OptionCheckAnswer *check) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        const char *name = json_get_string(req, "name"), *type = json_get_string(req, "type");
        struct json_object *options = NULL, *id = NULL;
        Actor actor;
        int r;

        (void) json_object_object_get_ex(req, "id", &id);
        (void) json_object_object_get_ex(req, "options", &options);
        client_actor(c, &actor);
        if (streq_ptr(json_get_string(req, "op"), "add_sink"))
                r = manager_add_sink(c->manager, name, type, options, check, &actor, NULL, &error);
        else
                r = manager_add_source(c->manager, name, type, options, check, &actor, NULL, &error);
        if (r < 0)
                return client_send_bus_error(c, id, &error, r);
        return client_send_op(c, id, "ok");
}

/* The daemon answered (or could not): the add is done, then the requests that waited. */
static void add_checked(const OptionCheckAnswer *answer, void *userdata) {
        _cleanup_json_ struct json_object *req = NULL;
        Client *c = userdata;
        int r;

        c->option_check = NULL;
        req = TAKE_PTR(c->pending_request);
        r = add_finish(c, req, answer);
        if (r >= 0)
                r = client_resume_input(c);
        if (r < 0)
                client_free(c);
}

static int op_add(Client *c, struct json_object *req, struct json_object *id, bool sink) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        const char *name = json_get_string(req, "name"), *type = json_get_string(req, "type");
        struct json_object *options = NULL;
        OptionCheckResult check;
        int r;

        if (!name || !type)
                return client_send_error(c, id, "bad_request",
                                         sink ? "add_sink needs \"name\" and \"type\" strings"
                                              : "add_source needs \"name\" and \"type\" strings");
        if (json_object_object_get_ex(req, "options", &options) && !json_object_is_type(options, json_type_object))
                return client_send_error(c, id, "bad_request", "\"options\" must be an object");
        /* The type's daemon checks the options; this client's next requests wait for it. */
        r = (sink ? manager_add_sink_check : manager_add_source_check)(c->manager, name, type, options, add_checked, c,
                                                                       &c->option_check, &check, &error);
        if (r < 0)
                return client_send_bus_error(c, id, &error, r);
        if (r > 0) {
                c->pending_request = json_object_get(req);
                return 0;
        }
        return add_finish(c, req, &(OptionCheckAnswer) { .result = check });
}

static int op_add_source(Client *c, struct json_object *req, struct json_object *id) {
        return op_add(c, req, id, false);
}

static int op_named(Client *c, struct json_object *req, struct json_object *id, const char *op) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        const char *name = json_get_string(req, "name");
        char message[64];
        Actor actor;
        int r;

        if (!name) {
                snprintf(message, sizeof(message), "%s needs a \"name\" string", op);
                return client_send_error(c, id, "bad_request", message);
        }
        client_actor(c, &actor);
        if (streq(op, "remove_source"))
                r = manager_remove_source(c->manager, name, &actor, &error);
        else if (streq(op, "remove_sink"))
                r = manager_remove_sink(c->manager, name, &actor, &error);
        else
                r = manager_pause_source(c->manager, name, streq(op, "pause_source"), &actor, &error);
        if (r < 0)
                return client_send_bus_error(c, id, &error, r);
        return client_send_op(c, id, "ok");
}

static int op_remove_source(Client *c, struct json_object *req, struct json_object *id) {
        return op_named(c, req, id, "remove_source");
}
static int op_pause_source(Client *c, struct json_object *req, struct json_object *id) {
        return op_named(c, req, id, "pause_source");
}
static int op_resume_source(Client *c, struct json_object *req, struct json_object *id) {
        return op_named(c, req, id, "resume_source");
}
static int op_remove_sink(Client *c, struct json_object *req, struct json_object *id) {
        return op_named(c, req, id, "remove_sink");
}

static int op_reload(Client *c, struct json_object *req, struct json_object *id) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        Actor actor;
        int r;

        client_actor(c, &actor);
        r = manager_reload(c->manager, &actor, &error);
        if (r < 0)
                return client_send_bus_error(c, id, &error, r);
        return client_send_op(c, id, "ok");
}

/* A new object appended to the array a of a list reply; NULL when out of memory. */
static struct json_object *list_entry_new(struct json_object *a, const char *name, const char *type, const char *state,
                                          const char *address) {
        struct json_object *e = json_object_new_object();

        if (!e || json_object_array_add(a, e) < 0) {
                json_object_put(e);
                return NULL;
        }
        json_object_object_add(e, "name", json_object_new_string(name));
        json_object_object_add(e, "type", json_object_new_string(type));
        json_object_object_add(e, "state", json_object_new_string(state));
        json_object_object_add(e, "address", json_object_new_string(address));
        return e;
}

/* The last fields of an entry, after the kind's counters. */
static void list_entry_end(struct json_object *e, const char *last_error, const DefFiles *files) {
        json_object_object_add(e, "last_error", json_object_new_string(last_error));
        if (def_files_defined(files))
                json_object_object_add(e, "fragment_path", json_object_new_string(files->fragment_path));
}

/* {"op":OP,OP:[...]}, the reply of list_sources ("sources") and list_sinks ("sinks"). */
static int list_reply_send(Client *c, struct json_object *id, const char *op, struct json_object *a) {
        _cleanup_json_ struct json_object *o = json_object_new_object();

        if (!o)
                return -ENOMEM;
        json_object_object_add(o, "op", json_object_new_string(op));
        json_object_object_add(o, op, json_object_get(a));
        return client_send_json(c, id, o);
}

static int op_list_sources(Client *c, struct json_object *req, struct json_object *id) {
        _cleanup_json_ struct json_object *a = json_object_new_array();

        if (!a)
                return -ENOMEM;
        LIST_FOREACH(sources, s, c->manager->sources) {
                struct json_object *e = list_entry_new(a, s->name, s->type, source_state_to_string(s->state),
                                                       source_address(s));
                if (!e)
                        return -ENOMEM;
                json_object_object_add(e, "records", json_object_new_int64((int64_t) s->records_received));
                json_object_object_add(e, "filtered", json_object_new_int64((int64_t) s->records_filtered));
                json_object_object_add(e, "bytes", json_object_new_int64((int64_t) s->bytes_received));
                json_object_object_add(e, "reconnects", json_object_new_int64(s->reconnects));
                list_entry_end(e, s->last_error, &s->files);
        }
        return list_reply_send(c, id, "sources", a);
}

static int op_add_sink(Client *c, struct json_object *req, struct json_object *id) {
        return op_add(c, req, id, true);
}

static int op_list_sinks(Client *c, struct json_object *req, struct json_object *id) {
        _cleanup_json_ struct json_object *a = json_object_new_array();

        if (!a)
                return -ENOMEM;
        for (Sink *s = c->manager->sinks; s; s = s->next) {
                struct json_object *e = list_entry_new(a, s->name, s->type, sink_state_to_string(s->state),
                                                       sink_address(s));
                if (!e)
                        return -ENOMEM;
                json_object_object_add(e, "records_sent", json_object_new_uint64(s->records_sent));
                json_object_object_add(e, "lag", json_object_new_uint64(s->lag));
                list_entry_end(e, s->last_error, &s->files);
        }
        return list_reply_send(c, id, "sinks", a);
}

static int op_status(Client *c, struct json_object *req, struct json_object *id) {
        _cleanup_json_ struct json_object *o = json_object_new_object();
        Manager *m = c->manager;
        uint64_t first, next;

        if (!o)
                return -ENOMEM;
        manager_queue_bounds(m, &first, &next);
        json_object_object_add(o, "op", json_object_new_string("status"));
        json_object_object_add(o, "version", json_object_new_string(dpipe_version()));
        json_object_object_add(o, "queue_first_offset", json_object_new_int64((int64_t) first));
        json_object_object_add(o, "queue_next_offset", json_object_new_int64((int64_t) next));
        json_object_object_add(o, "records_written", json_object_new_int64((int64_t) next));
        json_object_object_add(o, "clients", json_object_new_int64(m->n_clients));
        json_object_object_add(o, "sources", json_object_new_int64(m->n_sources));
        json_object_object_add(o, "uptime_us", json_object_new_int64((int64_t) (now_usec(CLOCK_MONOTONIC) - m->start_usec)));
        json_object_object_add(o, "heartbeat_ms", json_object_new_int64((int64_t) (m->heartbeat_usec / USEC_PER_MSEC)));
        if (c->subscription) {
                Subscription *s = c->subscription;
                struct json_object *sub = json_object_new_object();

                if (!sub)
                        return -ENOMEM;
                json_object_object_add(o, "subscription", sub);
                json_object_object_add(sub, "next_offset", json_object_new_int64((int64_t) s->next_offset));
                json_object_object_add(sub, "window", json_object_new_int64(s->window));
                json_object_object_add(sub, "in_flight", json_object_new_int64((int64_t) s->n_in_flight));
                if (s->name) {
                        json_object_object_add(sub, "name", json_object_new_string(s->name));
                        json_object_object_add(sub, "committed", json_object_new_int64((int64_t) s->committed));
                }
        }
        return client_send_json(c, id, o);
}

static int op_quit(Client *c, struct json_object *req, struct json_object *id) {
        c->closing = true;
        return client_send_op(c, id, "bye");
}

static int op_help(Client *c, struct json_object *req, struct json_object *id) {
        _cleanup_json_ struct json_object *o = json_object_new_object();
        struct json_object *a = json_object_new_array();

        if (!o || !a || json_object_object_add(o, "op", json_object_new_string("help")) < 0 ||
            json_object_object_add(o, "commands", a) < 0) {
                json_object_put(a);
                return -ENOMEM;
        }
        for (size_t i = 0; request_inline_help[i]; i++)
                json_object_array_add(a, json_object_new_string(request_inline_help[i]));
        return client_send_json(c, id, o);
}

typedef enum ClientOpFlags {
        OP_ANYONE = 1 << 0,   /* also before a token, on TCP with --tokens */
        OP_MUTATING = 1 << 1, /* changes the pipeline: needs CLIENT_ACCESS_CHANGE (and is audited) */
} ClientOpFlags;

/* Every op, and who may run it: a new op that changes the pipeline only needs OP_MUTATING here. */
static const struct {
        const char *op;
        int (*handler)(Client *c, struct json_object *req, struct json_object *id);
        ClientOpFlags flags;
} client_ops[] = {
        { "hello", op_hello, OP_ANYONE },
        { "ping", op_ping, OP_ANYONE },
        { "pong", op_pong, OP_ANYONE },
        { "help", op_help, OP_ANYONE },
        { "quit", op_quit, OP_ANYONE },
        { "add_source", op_add_source, OP_MUTATING },
        { "remove_source", op_remove_source, OP_MUTATING },
        { "pause_source", op_pause_source, OP_MUTATING },
        { "resume_source", op_resume_source, OP_MUTATING },
        { "reload", op_reload, OP_MUTATING },
        { "list_sources", op_list_sources, 0 },
        { "add_sink", op_add_sink, OP_MUTATING },
        { "remove_sink", op_remove_sink, OP_MUTATING },
        { "list_sinks", op_list_sinks, 0 },
        { "status", op_status, 0 },
        { "subscribe", op_subscribe, 0 },
        { "ack", op_ack, 0 },
};

static int client_dispatch(Client *c, struct json_object *req) {
        struct json_object *id = NULL;
        const char *op;

        (void) json_object_object_get_ex(req, "id", &id);
        op = json_get_string(req, "op");
        if (!op)
                return client_send_error(c, id, "bad_request", "a request needs an \"op\" string");
        for (size_t i = 0; i < ELEMENTSOF(client_ops); i++) {
                bool mutating = client_ops[i].flags & OP_MUTATING;

                if (!streq(client_ops[i].op, op))
                        continue;
                if ((mutating && c->access < CLIENT_ACCESS_CHANGE) ||
                    (!(client_ops[i].flags & OP_ANYONE) && c->access < CLIENT_ACCESS_READ)) {
                        char buf[160];

                        return client_deny(c, req, id, op, mutating,
                                           client_denied_reason(c, mutating && c->access >= CLIENT_ACCESS_READ, buf,
                                                                sizeof(buf)));
                }
                return client_ops[i].handler(c, req, id);
        }
        return client_send_error(c, id, "unknown_op", "unknown op, try \"help\"");
}

int client_process_line(Client *c, char *line, size_t len) {
        _cleanup_json_ struct json_object *req = NULL;
        const char *code = NULL, *why = NULL;
        int r;

        r = request_parse_line(line, len, &req, &code, &why);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return client_send_error(c, NULL, code, why);
        if (!req)
                return 0; /* a blank line: a keep-alive */
        return client_dispatch(c, req);
}
