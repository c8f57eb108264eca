/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <systemd/sd-login.h>

#include "dpiped-client.h"
#include "dpiped-listen.h"
#include "dpiped-request.h"
#include "dpiped-source.h"
#include "dpiped-tokens.h"
#include "json-util.h"
#include "line.h"
#include "log.h"
#include "socket-util.h"
#include "util.h"

static int client_flush(Client *c);

/* ---- replies ---------------------------------------------------------------------------------- */

static int client_send_json(Client *c, struct json_object *id, struct json_object *o) {
        const char *text;
        size_t len;
        int r;

        if (id && json_object_object_add(o, "id", json_object_get(id)) < 0)
                return -ENOMEM;
        text = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
        if (!text)
                return -ENOMEM;
        r = buffer_append(&c->out, text, len);
        if (r < 0)
                return r;
        return buffer_append(&c->out, "\n", 1);
}

static int client_send_op(Client *c, struct json_object *id, const char *op) {
        _cleanup_json_ struct json_object *o = json_object_new_object();

        if (!o || json_object_object_add(o, "op", json_object_new_string(op)) < 0)
                return -ENOMEM;
        return client_send_json(c, id, o);
}

static int client_send_error(Client *c, struct json_object *id, const char *code, const char *message) {
        _cleanup_json_ struct json_object *o = json_object_new_object();

        if (!o)
                return -ENOMEM;
        json_object_object_add(o, "op", json_object_new_string("error"));
        json_object_object_add(o, "code", json_object_new_string(code));
        json_object_object_add(o, "message", json_object_new_string(message));
        return client_send_json(c, id, o);
}

static const char *error_code_from_bus_error(const sd_bus_error *e) {
        if (sd_bus_error_has_name(e, BUS_ERROR_SOURCE_EXISTS))
                return "source_exists";
        if (sd_bus_error_has_name(e, BUS_ERROR_NO_SUCH_SOURCE))
                return "no_such_source";
        if (sd_bus_error_has_name(e, BUS_ERROR_UNKNOWN_TYPE))
                return "unknown_type";
        if (sd_bus_error_has_name(e, SD_BUS_ERROR_INVALID_ARGS))
                return "invalid_argument";
        if (sd_bus_error_has_name(e, SD_BUS_ERROR_ACCESS_DENIED))
                return "denied";
        return "internal";
}

static int client_send_bus_error(Client *c, struct json_object *id, const sd_bus_error *e, int r) {
        return client_send_error(c, id, error_code_from_bus_error(e),
                                 e->message ?: (e->name ?: strerror(r < 0 ? -r : r)));
}

/* ---- who may do what (interfaces.md §8) --------------------------------------------------------- */

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

static void client_update_access(Client *c) {
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

/* hello may carry a token (§8): a valid one gives its role for the rest of the connection, an
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

static int op_add_source(Client *c, struct json_object *req, struct json_object *id) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        const char *name = json_get_string(req, "name"), *type = json_get_string(req, "type");
        struct json_object *options = NULL;
        Actor actor;
        int r;

        if (!name || !type)
                return client_send_error(c, id, "bad_request", "add_source needs \"name\" and \"type\" strings");
        if (json_object_object_get_ex(req, "options", &options) && !json_object_is_type(options, json_type_object))
                return client_send_error(c, id, "bad_request", "\"options\" must be an object");
        client_actor(c, &actor);
        r = manager_add_source(c->manager, name, type, options, &actor, NULL, &error);
        if (r < 0)
                return client_send_bus_error(c, id, &error, r);
        return client_send_op(c, id, "ok");
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

static int op_list_sources(Client *c, struct json_object *req, struct json_object *id) {
        _cleanup_json_ struct json_object *o = json_object_new_object(), *a = json_object_new_array();

        if (!o || !a)
                return -ENOMEM;
        for (Source *s = c->manager->sources; s; s = s->next) {
                struct json_object *e = json_object_new_object();
                if (!e || json_object_array_add(a, e) < 0) {
                        json_object_put(e);
                        return -ENOMEM;
                }
                json_object_object_add(e, "name", json_object_new_string(s->name));
                json_object_object_add(e, "type", json_object_new_string(s->type));
                json_object_object_add(e, "state", json_object_new_string(source_state_to_string(s->state)));
                json_object_object_add(e, "address", json_object_new_string(source_address(s)));
                json_object_object_add(e, "records", json_object_new_int64((int64_t) s->records_received));
                json_object_object_add(e, "bytes", json_object_new_int64((int64_t) s->bytes_received));
                json_object_object_add(e, "reconnects", json_object_new_int64(s->reconnects));
                json_object_object_add(e, "last_error", json_object_new_string(s->last_error));
        }
        json_object_object_add(o, "op", json_object_new_string("sources"));
        json_object_object_add(o, "sources", TAKE_PTR(a));
        return client_send_json(c, id, o);
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

static void client_commit(Client *c) {
        Subscription *s = c->subscription;
        int r;

        if (!s || !s->name || !s->commit_dirty)
                return;
        r = subscription_save_committed(c->manager->subscriptions_dir, s->name, s->committed);
        if (r < 0)
                log_warning_errno(r, "Failed to store the offset of subscription %s, ignoring: %m", s->name);
        else
                s->commit_dirty = false;
}

static void manager_schedule_commit(Manager *m) {
        int enabled = SD_EVENT_OFF;

        if (!m->commit_timer)
                return;
        (void) sd_event_source_get_enabled(m->commit_timer, &enabled);
        if (enabled != SD_EVENT_OFF)
                return; /* already due */
        (void) sd_event_source_set_time_relative(m->commit_timer, USEC_PER_SEC);
        (void) sd_event_source_set_enabled(m->commit_timer, SD_EVENT_ONESHOT);
}

static void manager_schedule_pump(Manager *m) {
        if (m->pump_event)
                (void) sd_event_source_set_enabled(m->pump_event, SD_EVENT_ONESHOT);
}

static int op_subscribe(Client *c, struct json_object *req, struct json_object *id) {
        _cleanup_(subscription_freep) Subscription *s = NULL;
        _cleanup_json_ struct json_object *reply = NULL;
        struct json_object *from = NULL, *v;
        const char *name = json_get_string(req, "name");
        uint64_t window = SUBSCRIPTION_WINDOW_DEFAULT, start = 0, committed = 0, first;
        bool have_committed = false;
        int r;

        if (json_object_object_get_ex(req, "name", &v) && (!name || !source_name_is_valid(name)))
                return client_send_error(c, id, "invalid_argument",
                                         "a subscription name is 1-64 characters of [A-Za-z0-9_.-]");
        if (json_object_object_get_ex(req, "window", &v)) {
                if (!json_get_uint64(req, "window", &window) || window < 1 || window > SUBSCRIPTION_WINDOW_MAX)
                        return client_send_error(c, id, "invalid_argument", "\"window\" must be a number of 1-1000000");
        }
        if (name) {
                r = subscription_load_committed(c->manager->subscriptions_dir, name, &committed);
                if (r >= 0)
                        have_committed = true;
                else if (r != -ENOENT)
                        log_warning_errno(r, "Failed to read the offset of subscription %s, starting over: %m", name);
        }

        (void) json_object_object_get_ex(req, "from", &from);
        if (!from) {
                /* Default: a named subscription resumes, an anonymous one follows new records. */
                if (name)
                        start = committed;
                else
                        manager_queue_bounds(c->manager, NULL, &start);
        } else if (json_object_is_type(from, json_type_int)) {
                if (json_object_get_int64(from) < 0)
                        return client_send_error(c, id, "invalid_argument", "\"from\" must not be negative");
                start = (uint64_t) json_object_get_int64(from);
        } else if (json_object_is_type(from, json_type_string)) {
                const char *f = json_object_get_string(from);

                if (streq(f, "earliest"))
                        start = 0;
                else if (streq(f, "latest"))
                        manager_queue_bounds(c->manager, NULL, &start);
                else if (streq(f, "committed")) {
                        if (!name)
                                return client_send_error(c, id, "invalid_argument",
                                                         "\"from\":\"committed\" needs a subscription \"name\"");
                        start = committed;
                } else if (safe_atou64(f, &start) < 0)
                        return client_send_error(c, id, "invalid_argument",
                                                 "\"from\" must be earliest, latest, committed or an offset");
        } else
                return client_send_error(c, id, "invalid_argument",
                                         "\"from\" must be earliest, latest, committed or an offset");

        /* Records before the first one still stored are gone (retention): say where it really starts. */
        manager_queue_bounds(c->manager, &first, NULL);
        if (start < first)
                start = first;

        r = subscription_new(start, (uint32_t) window, &s);
        if (r < 0)
                return r;
        if (json_object_object_get_ex(req, "sources", &v)) {
                if (!json_object_is_type(v, json_type_array))
                        return client_send_error(c, id, "invalid_argument", "\"sources\" must be an array of source names");
                for (size_t i = 0; i < json_object_array_length(v); i++) {
                        struct json_object *e = json_object_array_get_idx(v, i);

                        if (!json_object_is_type(e, json_type_string))
                                return client_send_error(c, id, "invalid_argument", "\"sources\" must be an array of source names");
                        r = subscription_add_source(s, json_object_get_string(e));
                        if (r == -ENOMEM)
                                return r;
                        if (r < 0)
                                return client_send_error(c, id, "invalid_argument",
                                                         r == -E2BIG ? "too many sources" : "invalid source name in \"sources\"");
                }
        }
        if (name) {
                s->name = strdup(name);
                if (!s->name)
                        return -ENOMEM;
                s->committed = have_committed ? committed : start;
        }

        /* A new subscribe replaces the previous one of this connection. */
        client_commit(c);
        subscription_free(c->subscription);
        c->subscription = TAKE_PTR(s);
        log_debug("Client %s subscribed from %" PRIu64 " (window %u%s%s).", c->peer, start, c->subscription->window,
                  name ? ", name " : "", name ?: "");

        reply = json_object_new_object();
        if (!reply)
                return -ENOMEM;
        json_object_object_add(reply, "op", json_object_new_string("ok"));
        json_object_object_add(reply, "offset", json_object_new_int64((int64_t) start));
        r = client_send_json(c, id, reply);
        if (r < 0)
                return r;
        c->pump_pending = true;
        manager_schedule_pump(c->manager);
        return 0;
}

static int op_ack(Client *c, struct json_object *req, struct json_object *id) {
        uint64_t offset;

        if (!json_get_uint64(req, "offset", &offset))
                return client_send_error(c, id, "bad_request", "ack needs an \"offset\" number");
        if (!c->subscription)
                return client_send_error(c, id, "bad_request", "not subscribed");
        if (subscription_ack(c->subscription, offset) > 0) {
                c->pump_pending = true;
                manager_schedule_pump(c->manager);
        }
        if (c->subscription->commit_dirty)
                manager_schedule_commit(c->manager);
        return 0;
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
        { "list_sources", op_list_sources, 0 },
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

static int client_process_line(Client *c, char *line, size_t len) {
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

/* ---- streaming -------------------------------------------------------------------------------- */

#define APPEND_LITERAL(o, s) (memcpy((o), (s), sizeof(s) - 1), (o) += sizeof(s) - 1)

/* The hot path: one reserve, then memcpy() and hand-formatted numbers, no printf and no parse;
 * the data goes out as the bytes the writer stored. */
static int client_append_record(Client *c, const QueueRecord *rec) {
        static const char p_offset[] = "{\"op\":\"record\",\"offset\":", p_source[] = ",\"source\":",
                          p_ts[] = ",\"ts_us\":", p_data[] = ",\"data\":";
        Buffer *b = &c->out;
        char *o;
        int r;

        r = buffer_reserve(b, sizeof(p_offset) + sizeof(p_source) + sizeof(p_ts) + sizeof(p_data) + 2 * 20 +
                                      (size_t) rec->source_len * 6 + 2 + (size_t) rec->data_len + 4 + 2);
        if (r < 0)
                return r;
        o = buffer_tail(b);
        APPEND_LITERAL(o, p_offset);
        o += format_u64(o, rec->offset);
        APPEND_LITERAL(o, p_source);
        buffer_advance(b, (size_t) (o - buffer_tail(b)));
        /* Fits in what was reserved above; o is taken afresh from the tail afterwards anyway. */
        r = buffer_append_json_string(b, rec->source, rec->source_len);
        if (r < 0)
                return r;
        o = buffer_tail(b);
        APPEND_LITERAL(o, p_ts);
        o += format_u64(o, rec->ts_us);
        APPEND_LITERAL(o, p_data);
        if (rec->data_len > 0) {
                memcpy(o, rec->data, rec->data_len);
                o += rec->data_len;
        } else
                APPEND_LITERAL(o, "null");
        APPEND_LITERAL(o, "}\n");
        buffer_advance(b, (size_t) (o - buffer_tail(b)));
        return 0;
}

/* Offsets the client's reader passed without records: lost to damage in the queue. The client gets
 * an error line that names them, and the stream goes on after them; the journal hears about each
 * loss once, however many clients pass it. */
static int client_report_loss(Client *c, const QueueLoss *l) {
        _cleanup_json_ struct json_object *o = NULL;
        Subscription *s = c->subscription;
        Manager *m = c->manager;
        char message[256];
        bool logged = false;

        s->next_offset = l->last + 1;
        subscription_lost(s, l->last);
        if (s->commit_dirty)
                manager_schedule_commit(m);

        for (unsigned i = 0; i < MIN(m->n_losses_logged, ELEMENTSOF(m->losses_logged)); i++)
                logged = logged || (m->losses_logged[i].first == l->first && m->losses_logged[i].last == l->last);
        if (!logged) {
                m->losses_logged[m->n_losses_logged++ % ELEMENTSOF(m->losses_logged)] = *l;
                if (l->damaged)
                        log_warning("Queue segment %s/%s is damaged at byte %" PRIu64 ": the records at offsets %" PRIu64
                                    "..%" PRIu64 " are lost; telling client %s and going on after them.",
                                    m->queue_dir, l->segment, l->position, l->first, l->last, c->peer);
                else
                        log_warning("Queue segment %s/%s: the records at offsets %" PRIu64 "..%" PRIu64
                                    " were lost to damage (dpipe-writer's recovery logged it); telling client %s.",
                                    m->queue_dir, l->segment, l->first, l->last, c->peer);
        }

        if (l->damaged)
                (void) snprintf(message, sizeof(message),
                                "records %" PRIu64 "..%" PRIu64 " are damaged in the queue and cannot be read", l->first,
                                l->last);
        else
                (void) snprintf(message, sizeof(message), "records %" PRIu64 "..%" PRIu64 " were lost to damage in the queue",
                                l->first, l->last);
        o = json_object_new_object();
        if (!o)
                return -ENOMEM;
        json_object_object_add(o, "op", json_object_new_string("error"));
        json_object_object_add(o, "code", json_object_new_string("data_lost"));
        json_object_object_add(o, "first", json_object_new_uint64(l->first));
        json_object_object_add(o, "last", json_object_new_uint64(l->last));
        json_object_object_add(o, "message", json_object_new_string(message));
        return client_send_json(c, NULL, o);
}

/* Returns < 0 when the client must be dropped. */
static int client_pump(Client *c) {
        Subscription *s = c->subscription;
        unsigned n = 0;
        int r;

        c->pump_pending = false;
        if (!s || c->closing)
                return 0;
        if (!s->reader) {
                r = queue_reader_open(c->manager->queue_dir, s->next_offset, &s->reader);
                if (r < 0) {
                        if (r != -ENOENT)
                                log_debug_errno(r, "Failed to open the queue for client %s, will retry: %m", c->peer);
                        return 0;
                }
        }
        while (!subscription_window_full(s) && buffer_size(&c->out) < CLIENT_OUT_HIGH) {
                QueueRecord rec;

                if (n++ >= CLIENT_PUMP_BATCH) {
                        /* Let the others have their turn; continue on the next iteration. */
                        c->pump_pending = true;
                        manager_schedule_pump(c->manager);
                        break;
                }
                r = queue_reader_next(s->reader, &rec);
                if (r < 0) {
                        log_error_errno(r, "Failed to read the queue at offset %" PRIu64 " for client %s: %m",
                                        s->next_offset, c->peer);
                        (void) client_send_error(c, NULL, "internal", "failed to read the queue");
                        c->closing = true;
                        break;
                }
                if (r == QUEUE_READER_END)
                        break;
                if (r == QUEUE_READER_LOST) {
                        r = client_report_loss(c, queue_reader_loss(s->reader));
                        if (r < 0)
                                return r;
                        continue;
                }
                s->next_offset = rec.offset + 1;
                if (!subscription_wants(s, rec.source, rec.source_len))
                        continue;
                r = client_append_record(c, &rec);
                if (r < 0)
                        return r;
                r = subscription_sent(s, rec.offset);
                if (r < 0)
                        return r;
        }
        return client_flush(c);
}

void manager_pump_clients(Manager *m) {
        Client *c, *next;

        for (c = m->clients; c; c = next) {
                next = c->next;
                if (c->subscription && client_pump(c) < 0)
                        client_free(c);
        }
}

static int pump_handler(sd_event_source *es, void *userdata) {
        Manager *m = userdata;
        Client *c, *next;

        for (c = m->clients; c; c = next) {
                next = c->next;
                if (c->pump_pending && client_pump(c) < 0)
                        client_free(c);
        }
        return 0;
}

void manager_commit_subscriptions(Manager *m) {
        for (Client *c = m->clients; c; c = c->next)
                client_commit(c);
}

static int commit_handler(sd_event_source *es, uint64_t usec, void *userdata) {
        Manager *m = userdata;

        /* Armed by the next ack again: at most one write per second and subscription bounds both the
         * fsyncs and what a crash replays. */
        manager_commit_subscriptions(m);
        return 0;
}

/* ---- connection ------------------------------------------------------------------------------- */

/* The events to wait for: input unless closing or too much output is pending, output while some is
 * pending, and what TLS needs to get on. */
static int client_update_events(Client *c) {
        uint32_t events = transport_events(&c->transport);

        if (!c->ready || c->shut_down)
                return sd_event_source_set_io_events(c->io_event_source, events ?: EPOLLIN);
        if (!c->closing && buffer_size(&c->out) < CLIENT_OUT_MAX)
                events |= EPOLLIN;
        if (buffer_size(&c->out) > 0)
                events |= EPOLLOUT;
        return sd_event_source_set_io_events(c->io_event_source, events);
}

/* The last words are out: end our side of the stream, and read (and drop) what the client still
 * sends until it ends its side, or the timeout. Closing a socket with unread input makes the
 * kernel send a reset, which may destroy the error line the client has not read yet (too_long,
 * overloaded: clients that are still sending). */
static int client_shut_down(Client *c) {
        transport_done(&c->transport); /* TLS: close_notify */
        if (shutdown(c->transport.fd, SHUT_WR) < 0)
                return -errno;
        c->shut_down = true;
        return client_update_events(c);
}

/* Returns < 0 when the client is done: it ended its side too, or failed. */
static int client_drain(Client *c) {
        for (int i = 0; i < 16; i++) {
                ssize_t n = read(c->transport.fd, c->manager->read_buffer, CLIENT_READ_SIZE);

                if (n < 0)
                        return errno == EAGAIN || errno == EINTR ? 0 : -errno;
                if (n == 0)
                        return -ESHUTDOWN;
        }
        return 0;
}

/* Writes what is buffered and sets the events to wait for. Returns < 0 when the client is done
 * (an error, or closing and everything sent). */
static int client_flush(Client *c) {
        ssize_t n;
        bool was_high = buffer_size(&c->out) >= CLIENT_OUT_HIGH;

        if (!c->ready || c->shut_down)
                return client_update_events(c);
        n = transport_write(&c->transport, &c->out);
        if (n < 0) {
                if (c->transport.tls)
                        log_debug("Failed to write to client %s: %s", c->peer, transport_error(&c->transport));
                else
                        log_debug_errno((int) n, "Failed to write to client %s: %m", c->peer);
                return (int) n;
        }
        if (c->closing && buffer_size(&c->out) == 0)
                return client_shut_down(c);
        if (was_high && buffer_size(&c->out) < CLIENT_OUT_HIGH && c->subscription) {
                c->pump_pending = true;
                manager_schedule_pump(c->manager);
        }
        return client_update_events(c);
}

/* The partial line's memory, in CLIENT_IN_STEP steps, as counted in manager->client_memory. */
static int client_in_resize(Client *c, size_t allocated) {
        Manager *m = c->manager;
        size_t old = c->in.allocated;
        int r;

        if (allocated > old && m->client_memory - old + allocated > m->max_client_memory)
                return -ENOBUFS;
        r = buffer_resize(&c->in, allocated);
        if (r < 0)
                return r;
        m->client_memory = m->client_memory - old + allocated;
        return 0;
}

/* Forgets the partial line and gives its memory back. */
static void client_in_drop(Client *c) {
        c->manager->client_memory -= c->in.allocated;
        buffer_done(&c->in);
}

static size_t round_up(size_t n, size_t step) {
        return (n + step - 1) / step * step;
}

/* Keeps p[0..n) at the end of the partial line. -ENOBUFS when all clients' partial lines together
 * would pass --max-client-memory. */
static int client_in_keep(Client *c, const char *p, size_t n) {
        size_t need = buffer_size(&c->in) + n, want = round_up(need, CLIENT_IN_STEP);
        int r;

        /* Grow by half at least, so that a long line arriving in pieces is not copied over and over
         * (the slack goes again once the line is complete); never beyond what the longest line and
         * one read need. */
        if (want > c->in.allocated)
                want = MIN(MAX(want, round_up(c->in.allocated + c->in.allocated / 2, CLIENT_IN_STEP)),
                           MAX(want, round_up(LINE_MAX_DEFAULT + CLIENT_READ_SIZE, CLIENT_IN_STEP)));
        if (want > c->in.allocated || c->in.head > 0) {
                r = client_in_resize(c, MAX(want, c->in.allocated));
                if (r < 0)
                        return r;
        }
        return buffer_append(&c->in, p, n);
}

/* After lines were taken off the partial-line buffer: nothing left, nothing kept; a short rest in a
 * big buffer moves to a small one. */
static void client_in_trim(Client *c) {
        size_t size = buffer_size(&c->in), want = round_up(size, CLIENT_IN_STEP);

        if (size == 0)
                client_in_drop(c);
        else if (c->in.allocated > 2 * want && c->in.allocated - want >= 4096)
                (void) client_in_resize(c, want);
}

/* The complete lines in b. Returns < 0 when the client must be dropped. */
static int client_process_lines(Client *c, Buffer *b) {
        while (!c->closing) {
                char *line;
                size_t len;
                int r;

                r = line_next(b, LINE_MAX_DEFAULT, &line, &len);
                if (r == -E2BIG) {
                        log_notice("Client %s sent a line longer than %u bytes, closing.", c->peer, LINE_MAX_DEFAULT);
                        r = client_send_error(c, NULL, "too_long", "line longer than 1 MiB, closing");
                        if (r < 0)
                                return r;
                        c->closing = true;
                        buffer_clear(b);
                        break;
                }
                if (r < 0)
                        return r;
                if (r == 0)
                        break;
                /* A whole line is a sign of life; bytes that never make one are not (slowloris). */
                c->last_rx_usec = now_usec(CLOCK_MONOTONIC);
                r = client_process_line(c, line, len);
                if (r < 0) {
                        log_error_errno(r, "Failed to process a request of client %s: %m", c->peer);
                        return r;
                }
        }
        return 0;
}

static int client_overloaded(Client *c) {
        Manager *m = c->manager;
        uint64_t now = now_usec(CLOCK_MONOTONIC);

        /* Many clients at once may be the cause: one warning per 10 s, with a count. */
        m->n_clients_overloaded++;
        if (m->last_overload_log_usec == 0 || now - m->last_overload_log_usec >= 10 * USEC_PER_SEC) {
                log_warning("Client %s: the input buffered for all clients would pass --max-client-memory=%" PRIu64
                            " bytes, closing this client (%u closed so far).", c->peer, m->max_client_memory,
                            m->n_clients_overloaded);
                m->last_overload_log_usec = now;
        } else
                log_debug("Client %s: input over --max-client-memory, closing it.", c->peer);
        client_in_drop(c);
        c->closing = true;
        return client_send_error(c, NULL, "overloaded",
                                 "the server holds too much input of its clients, closing; try again later");
}

/* One read, then every whole line in it. Returns < 0 when the client must be dropped. */
static int client_read(Client *c) {
        Manager *m = c->manager;
        Buffer *b;
        ssize_t n;
        int r;

        n = transport_read(&c->transport, m->read_buffer, CLIENT_READ_SIZE);
        if (n == -EAGAIN)
                return 0;
        if (n == 0)
                return -ECONNRESET;
        if (n < 0) {
                if (c->transport.tls)
                        log_debug("Failed to read from client %s: %s", c->peer, transport_error(&c->transport));
                else
                        log_debug_errno((int) n, "Failed to read from client %s: %m", c->peer);
                return (int) n;
        }

        if (buffer_size(&c->in) == 0) {
                /* The common case: whole lines, handled where they were read. */
                Buffer scratch = { .data = m->read_buffer, .tail = (size_t) n, .allocated = CLIENT_READ_SIZE };

                r = client_process_lines(c, &scratch);
                if (r < 0)
                        return r;
                if (c->closing || buffer_size(&scratch) == 0)
                        return 0;
                b = &scratch;
                r = client_in_keep(c, buffer_begin(b), buffer_size(b));
                if (r == -ENOBUFS)
                        return client_overloaded(c);
                return r;
        }
        r = client_in_keep(c, m->read_buffer, (size_t) n);
        if (r == -ENOBUFS)
                return client_overloaded(c);
        if (r < 0)
                return r;
        r = client_process_lines(c, &c->in);
        if (c->closing)
                client_in_drop(c);
        else
                client_in_trim(c);
        return r;
}

static void client_ready(Client *c) {
        c->ready = true;
        if (c->transport.tls)
                log_debug("Client %s: %s%s%s.", c->peer, tls_conn_version(c->transport.tls),
                          tls_conn_peer_cn(c->transport.tls) ? ", certificate CN " : "",
                          tls_conn_peer_cn(c->transport.tls) ?: "");
        /* The client timeout counts from here. */
        c->last_rx_usec = now_usec(CLOCK_MONOTONIC);
        (void) sd_event_source_set_time(c->timeout_timer, c->last_rx_usec + c->manager->client_timeout_usec);
}

static int client_io_handler(sd_event_source *es, int fd, uint32_t revents, void *userdata) {
        Client *c = userdata;
        int r;

        if (!c->ready) {
                r = transport_handshake(&c->transport);
                if (r < 0) {
                        log_info("TLS handshake with client %s failed: %s", c->peer, transport_error(&c->transport));
                        goto drop;
                }
                if (r == 0) {
                        if (client_update_events(c) < 0)
                                goto drop;
                        return 0;
                }
                client_ready(c);
                revents |= EPOLLIN; /* the client may have sent a request with its last handshake bytes */
        }

        if (c->shut_down) {
                if (client_drain(c) < 0)
                        goto drop;
                return 0;
        }
        if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR) && !c->closing) {
                r = client_read(c);
                if (r < 0)
                        goto drop;
        } else if ((revents & (EPOLLHUP | EPOLLERR)) && !(revents & EPOLLOUT))
                goto drop;

        r = client_flush(c);
        if (r < 0)
                goto drop;
        return 0;
drop:
        client_free(c);
        return 0;
}

static int client_timeout_handler(sd_event_source *es, uint64_t usec, void *userdata) {
        Client *c = userdata;
        Manager *m = c->manager;
        uint64_t deadline;

        if (!c->ready) {
                deadline = c->accepted_usec + MIN(CLIENT_HANDSHAKE_USEC, m->client_timeout_usec);
                if (usec < deadline) {
                        (void) sd_event_source_set_time(es, deadline);
                        (void) sd_event_source_set_enabled(es, SD_EVENT_ONESHOT);
                        return 0;
                }
                log_info("Client %s did not finish its TLS handshake within %" PRIu64 " ms, closing.", c->peer,
                         MIN(CLIENT_HANDSHAKE_USEC, m->client_timeout_usec) / USEC_PER_MSEC);
                client_free(c);
                return 0;
        }

        deadline = c->last_rx_usec + m->client_timeout_usec;
        if (usec < deadline && !c->closing) {
                (void) sd_event_source_set_time(es, deadline);
                (void) sd_event_source_set_enabled(es, SD_EVENT_ONESHOT);
                return 0;
        }
        if (c->closing) {
                /* It did not take its last words within a timeout either. */
                client_free(c);
                return 0;
        }
        log_info("Client %s sent no whole line for %" PRIu64 " ms%s, closing.", c->peer,
                 m->client_timeout_usec / USEC_PER_MSEC, buffer_size(&c->in) > 0 ? " (only part of one)" : "");
        client_in_drop(c);
        if (client_send_error(c, NULL, "timeout", "no message from the client within the timeout, closing") < 0) {
                client_free(c);
                return 0;
        }
        c->closing = true;
        if (client_flush(c) < 0) {
                client_free(c);
                return 0;
        }
        (void) sd_event_source_set_time_relative(es, m->client_timeout_usec);
        (void) sd_event_source_set_enabled(es, SD_EVENT_ONESHOT);
        return 0;
}

Client *client_free(Client *c) {
        Manager *m;

        if (!c)
                return NULL;
        m = c->manager;
        client_commit(c);
        if (c->prev)
                c->prev->next = c->next;
        else if (m->clients == c)
                m->clients = c->next;
        if (c->next)
                c->next->prev = c->prev;
        m->n_clients--;

        sd_event_source_disable_unref(c->io_event_source);
        sd_event_source_disable_unref(c->timeout_timer);
        transport_done(&c->transport);
        safe_close(c->transport.fd);
        client_in_drop(c);
        buffer_done(&c->out);
        subscription_free(c->subscription);
        log_debug("Client %s disconnected (%u left).", c->peer, m->n_clients);
        free(c->unit);
        free(c);

        manager_emit_clients_changed(m);
        manager_update_status(m);
        return NULL;
}

void manager_clients_free(Manager *m) {
        while (m->clients)
                client_free(m->clients);
}

/* §8: on client.sock, root, dpiped's own user and the members of the admin group may change the
 * pipeline; everyone else may read. */
static bool unix_peer_may_change(Manager *m, uid_t uid, gid_t gid, const gid_t *groups, size_t n_groups) {
        if (uid == 0 || uid == geteuid())
                return true;
        if (!m->have_admin_gid)
                return false;
        if (gid == m->admin_gid)
                return true;
        for (size_t i = 0; i < n_groups; i++)
                if (groups[i] == m->admin_gid)
                        return true;
        return false;
}

static int client_identify(Client *c, int family) {
        Manager *m = c->manager;

        c->uid = UID_INVALID;
        if (family == AF_UNIX) {
                _cleanup_free_ gid_t *groups = NULL;
                size_t n_groups = 0;
                gid_t gid;
                int r;

                c->actor_transport = ACTOR_UNIX;
                r = socket_peer_credentials(c->transport.fd, &c->pid, &c->uid, &gid, &groups, &n_groups);
                if (r < 0)
                        return r;
                snprintf(c->peer, sizeof(c->peer), "uid %u (pid %d)", (unsigned) c->uid, (int) c->pid);
                c->access_base = unix_peer_may_change(m, c->uid, gid, groups, n_groups) ? CLIENT_ACCESS_CHANGE
                                                                                        : CLIENT_ACCESS_READ;
        } else {
                SocketAddress a = { .len = sizeof(a.sa) };

                c->actor_transport = c->transport.tls ? ACTOR_TLS : ACTOR_TCP;
                if (getpeername(c->transport.fd, (struct sockaddr *) &a.sa, &a.len) < 0 ||
                    !socket_address_format(&a, c->peer, sizeof(c->peer)))
                        snprintf(c->peer, sizeof(c->peer), "fd %d", c->transport.fd);
                /* With --tokens, a token first; without, anyone on the port may read (§8). */
                c->access_base = m->tokens ? CLIENT_ACCESS_NONE : CLIENT_ACCESS_READ;
        }
        client_update_access(c);
        return 0;
}

int client_new(Manager *m, int fd, int family, bool tls) {
        Client *c;
        int r;

        c = calloc(1, sizeof(Client));
        if (!c) {
                safe_close(fd);
                return -ENOMEM;
        }
        c->manager = m;
        c->transport.fd = fd;
        c->accepted_usec = c->last_rx_usec = now_usec(CLOCK_MONOTONIC);

        c->next = m->clients;
        if (m->clients)
                m->clients->prev = c;
        m->clients = c;
        m->n_clients++;

        if (tls) {
                r = tls_conn_new(m->tls, fd, NULL, &c->transport.tls);
                if (r < 0)
                        goto fail;
        } else
                c->ready = true;
        r = client_identify(c, family);
        if (r < 0)
                goto fail;
        /* Record lines go out in batches: the tail of one must not wait for an ACK. */
        if (family != AF_UNIX)
                (void) socket_set_nodelay(fd);

        r = sd_event_add_io(m->event, &c->io_event_source, fd, EPOLLIN, client_io_handler, c);
        if (r < 0)
                goto fail;
        r = sd_event_add_time(m->event, &c->timeout_timer, CLOCK_MONOTONIC,
                              c->accepted_usec + (c->ready ? m->client_timeout_usec
                                                           : MIN(CLIENT_HANDSHAKE_USEC, m->client_timeout_usec)),
                              m->client_timeout_usec / 20, client_timeout_handler, c);
        if (r < 0)
                goto fail;
        log_debug("Client %s connected%s (%u clients).", c->peer, tls ? " (TLS)" : "", m->n_clients);
        manager_emit_clients_changed(m);
        manager_update_status(m);
        return 0;
fail:
        client_free(c);
        return r;
}

static int heartbeat_handler(sd_event_source *es, uint64_t usec, void *userdata) {
        Manager *m = userdata;
        Client *c, *next;

        for (c = m->clients; c; c = next) {
                next = c->next;
                if (c->closing || !c->ready)
                        continue;
                if (buffer_append_str(&c->out, "{\"op\":\"ping\"}\n") < 0 || client_flush(c) < 0)
                        client_free(c);
        }
        (void) sd_event_source_set_time(es, usec + m->heartbeat_usec);
        return 0;
}

int manager_client_server_start(Manager *m) {
        int r;

        m->read_buffer = malloc(CLIENT_READ_SIZE);
        if (!m->read_buffer)
                return log_oom();
        r = manager_listen(m);
        if (r < 0)
                return r;

        r = sd_event_add_time_relative(m->event, &m->heartbeat_timer, CLOCK_MONOTONIC, m->heartbeat_usec,
                                       m->heartbeat_usec / 20, heartbeat_handler, m);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the heartbeat timer: %m");
        r = sd_event_source_set_enabled(m->heartbeat_timer, SD_EVENT_ON);
        if (r < 0)
                return log_error_errno(r, "Failed to enable the heartbeat timer: %m");
        r = sd_event_add_defer(m->event, &m->pump_event, pump_handler, m);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the pump: %m");
        (void) sd_event_source_set_enabled(m->pump_event, SD_EVENT_OFF);
        r = sd_event_add_time_relative(m->event, &m->commit_timer, CLOCK_MONOTONIC, USEC_PER_SEC, USEC_PER_SEC / 10,
                                       commit_handler, m);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the commit timer: %m");
        (void) sd_event_source_set_enabled(m->commit_timer, SD_EVENT_OFF);
        return 0;
}
