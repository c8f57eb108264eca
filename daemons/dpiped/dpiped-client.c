/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "dpiped-client.h"
#include "dpiped-request.h"
#include "dpiped-source.h"
#include "json-util.h"
#include "line.h"
#include "log.h"
#include "socket-util.h"
#include "util.h"

#define CLIENT_READ_ROOM 4096u

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

/* ---- ops -------------------------------------------------------------------------------------- */

static int op_hello(Client *c, struct json_object *req, struct json_object *id) {
        _cleanup_json_ struct json_object *o = NULL;
        struct json_object *v;
        char server[64];

        if (json_object_object_get_ex(req, "version", &v) &&
            (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 1))
                return client_send_error(c, id, "bad_request", "\"version\" must be a protocol version >= 1");

        o = json_object_new_object();
        if (!o)
                return -ENOMEM;
        snprintf(server, sizeof(server), "dpiped %s", dpipe_version());
        json_object_object_add(o, "op", json_object_new_string("hello"));
        json_object_object_add(o, "version", json_object_new_int(1));
        json_object_object_add(o, "server", json_object_new_string(server));
        json_object_object_add(o, "heartbeat_ms", json_object_new_int64((int64_t) (c->manager->heartbeat_usec / USEC_PER_MSEC)));
        return client_send_json(c, id, o);
}

static int op_ping(Client *c, struct json_object *req, struct json_object *id) {
        return client_send_op(c, id, "pong");
}

static int op_pong(Client *c, struct json_object *req, struct json_object *id) {
        return 0; /* receiving anything already counts as a sign of life */
}

static int check_may_change(Client *c, struct json_object *id) {
        if (!c->manager->read_only_clients)
                return 1;
        (void) client_send_error(c, id, "denied", "this server does not let clients change the pipeline");
        return 0;
}

static int op_add_source(Client *c, struct json_object *req, struct json_object *id) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        const char *name = json_get_string(req, "name"), *type = json_get_string(req, "type");
        struct json_object *options = NULL;
        int r;

        if (!name || !type)
                return client_send_error(c, id, "bad_request", "add_source needs \"name\" and \"type\" strings");
        if (json_object_object_get_ex(req, "options", &options) && !json_object_is_type(options, json_type_object))
                return client_send_error(c, id, "bad_request", "\"options\" must be an object");
        if (check_may_change(c, id) <= 0)
                return 0;
        r = manager_add_source(c->manager, name, type, options, NULL, &error);
        if (r < 0)
                return client_send_bus_error(c, id, &error, r);
        return client_send_op(c, id, "ok");
}

static int op_named(Client *c, struct json_object *req, struct json_object *id, const char *op) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        const char *name = json_get_string(req, "name");
        char message[64];
        int r;

        if (!name) {
                snprintf(message, sizeof(message), "%s needs a \"name\" string", op);
                return client_send_error(c, id, "bad_request", message);
        }
        if (check_may_change(c, id) <= 0)
                return 0;
        if (streq(op, "remove_source"))
                r = manager_remove_source(c->manager, name, &error);
        else
                r = manager_pause_source(c->manager, name, streq(op, "pause_source"), &error);
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

static const struct {
        const char *op;
        int (*handler)(Client *c, struct json_object *req, struct json_object *id);
} client_ops[] = {
        { "hello", op_hello },
        { "ping", op_ping },
        { "pong", op_pong },
        { "add_source", op_add_source },
        { "remove_source", op_remove_source },
        { "pause_source", op_pause_source },
        { "resume_source", op_resume_source },
        { "list_sources", op_list_sources },
        { "status", op_status },
        { "subscribe", op_subscribe },
        { "ack", op_ack },
        { "quit", op_quit },
        { "help", op_help },
};

static int client_dispatch(Client *c, struct json_object *req) {
        struct json_object *id = NULL;
        const char *op;

        (void) json_object_object_get_ex(req, "id", &id);
        op = json_get_string(req, "op");
        if (!op)
                return client_send_error(c, id, "bad_request", "a request needs an \"op\" string");
        for (size_t i = 0; i < ELEMENTSOF(client_ops); i++)
                if (streq(client_ops[i].op, op))
                        return client_ops[i].handler(c, req, id);
        return client_send_error(c, id, "unknown_op", "unknown op, try \"help\"");
}

static int client_process_line(Client *c, char *line, size_t len) {
        _cleanup_json_ struct json_object *req = NULL;
        const char *why = NULL;
        int r;

        /* Blank lines are keep-alives. */
        while (len > 0 && (line[0] == ' ' || line[0] == '\t'))
                line++, len--;
        if (len == 0)
                return 0;
        if (!utf8_is_valid_n(line, len))
                return client_send_error(c, NULL, "bad_request", "not UTF-8 text");

        if (line[0] == '{') {
                r = json_parse_n(line, len, &req, NULL);
                if (r == -ENOMEM)
                        return r;
                if (r < 0 || !json_object_is_type(req, json_type_object))
                        return client_send_error(c, NULL, "bad_request", "malformed JSON");
        } else {
                r = request_from_inline(line, &req, &why);
                if (r == -ENOMEM)
                        return r;
                if (r == -EOPNOTSUPP)
                        return client_send_error(c, NULL, "unknown_op", why);
                if (r < 0)
                        return client_send_error(c, NULL, "bad_request", why ?: "malformed command");
        }
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

/* Writes what is buffered and sets the events to wait for. Returns < 0 when the client is done
 * (an error, or closing and everything sent). */
static int client_flush(Client *c) {
        ssize_t n;
        uint32_t events = 0;
        bool was_high = buffer_size(&c->out) >= CLIENT_OUT_HIGH;

        n = buffer_write_fd(&c->out, c->fd);
        if (n < 0) {
                log_debug_errno((int) n, "Failed to write to client %s: %m", c->peer);
                return (int) n;
        }
        if (c->closing && buffer_size(&c->out) == 0)
                return -ESHUTDOWN;
        if (!c->closing && buffer_size(&c->out) < CLIENT_OUT_MAX)
                events |= EPOLLIN;
        if (buffer_size(&c->out) > 0)
                events |= EPOLLOUT;
        if (was_high && buffer_size(&c->out) < CLIENT_OUT_HIGH && c->subscription) {
                c->pump_pending = true;
                manager_schedule_pump(c->manager);
        }
        return sd_event_source_set_io_events(c->io_event_source, events);
}

static int client_io_handler(sd_event_source *es, int fd, uint32_t revents, void *userdata) {
        Client *c = userdata;
        int r;

        if (revents & EPOLLIN && !c->closing) {
                ssize_t n = buffer_read_fd(&c->in, fd, CLIENT_READ_ROOM);

                if (n == 0 || (n < 0 && n != -EAGAIN)) {
                        if (n < 0)
                                log_debug_errno((int) n, "Failed to read from client %s: %m", c->peer);
                        goto drop;
                }
                if (n > 0)
                        c->last_rx_usec = now_usec(CLOCK_MONOTONIC);
                while (!c->closing) {
                        char *line;
                        size_t len;

                        r = line_next(&c->in, LINE_MAX_DEFAULT, &line, &len);
                        if (r == -E2BIG) {
                                log_notice("Client %s sent a line longer than %u bytes, closing.", c->peer,
                                           LINE_MAX_DEFAULT);
                                r = client_send_error(c, NULL, "too_long", "line longer than 1 MiB, closing");
                                if (r < 0)
                                        goto drop;
                                c->closing = true;
                                buffer_clear(&c->in);
                                break;
                        }
                        if (r < 0)
                                goto drop;
                        if (r == 0)
                                break;
                        r = client_process_line(c, line, len);
                        if (r < 0) {
                                log_error_errno(r, "Failed to process a request of client %s: %m", c->peer);
                                goto drop;
                        }
                }
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
        uint64_t deadline = c->last_rx_usec + m->client_timeout_usec;

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
        log_info("Client %s sent nothing for %" PRIu64 " ms, closing.", c->peer, m->client_timeout_usec / USEC_PER_MSEC);
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
        safe_close(c->fd);
        buffer_done(&c->in);
        buffer_done(&c->out);
        subscription_free(c->subscription);
        log_debug("Client %s disconnected (%u left).", c->peer, m->n_clients);
        free(c);

        manager_emit_clients_changed(m);
        manager_update_status(m);
        return NULL;
}

void manager_clients_free(Manager *m) {
        while (m->clients)
                client_free(m->clients);
}

static void format_peer(int fd, char *buf, size_t size) {
        SocketAddress a = { .len = sizeof(a.sa) };

        if (getpeername(fd, (struct sockaddr *) &a.sa, &a.len) < 0 || !socket_address_format(&a, buf, size))
                snprintf(buf, size, "fd %d", fd);
}

static int client_new(Manager *m, int fd) {
        Client *c;
        int r;

        c = calloc(1, sizeof(Client));
        if (!c) {
                safe_close(fd);
                return -ENOMEM;
        }
        c->manager = m;
        c->fd = fd;
        c->last_rx_usec = now_usec(CLOCK_MONOTONIC);
        format_peer(fd, c->peer, sizeof(c->peer));

        c->next = m->clients;
        if (m->clients)
                m->clients->prev = c;
        m->clients = c;
        m->n_clients++;

        r = sd_event_add_io(m->event, &c->io_event_source, fd, EPOLLIN, client_io_handler, c);
        if (r < 0)
                goto fail;
        r = sd_event_add_time(m->event, &c->timeout_timer, CLOCK_MONOTONIC, c->last_rx_usec + m->client_timeout_usec,
                              m->client_timeout_usec / 20, client_timeout_handler, c);
        if (r < 0)
                goto fail;
        log_debug("Client %s connected (%u clients).", c->peer, m->n_clients);
        manager_emit_clients_changed(m);
        manager_update_status(m);
        return 0;
fail:
        client_free(c);
        return r;
}

static int accept_handler(sd_event_source *es, int fd, uint32_t revents, void *userdata) {
        Manager *m = userdata;

        for (int i = 0; i < 64; i++) {
                int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                int r;

                if (cfd < 0) {
                        if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED)
                                return 0;
                        /* Out of fds or memory: log, and give the loop a chance to free some. */
                        log_warning_errno(errno, "Failed to accept a client connection: %m");
                        return 0;
                }
                if (m->n_clients >= CLIENTS_MAX) {
                        log_warning("Too many clients (%u), refusing a new connection.", m->n_clients);
                        safe_close(cfd);
                        continue;
                }
                /* Record lines go out in batches: the tail of one must not wait for an ACK. */
                (void) socket_set_nodelay(cfd);
                r = client_new(m, cfd);
                if (r < 0)
                        log_warning_errno(r, "Failed to set up a client connection: %m");
        }
        return 0;
}

static int heartbeat_handler(sd_event_source *es, uint64_t usec, void *userdata) {
        Manager *m = userdata;
        Client *c, *next;

        for (c = m->clients; c; c = next) {
                next = c->next;
                if (c->closing)
                        continue;
                if (buffer_append_str(&c->out, "{\"op\":\"ping\"}\n") < 0 || client_flush(c) < 0)
                        client_free(c);
        }
        (void) sd_event_source_set_time(es, usec + m->heartbeat_usec);
        return 0;
}

int manager_client_server_start(Manager *m) {
        char buf[128];
        int fd, r;

        fd = listen_fd_take("client", AF_UNSPEC);
        if (fd < 0) {
                fd = socket_listen_tcp(&m->listen_address, SOMAXCONN);
                if (fd < 0)
                        return log_error_errno(fd, "Failed to listen on %s: %m",
                                               socket_address_format(&m->listen_address, buf, sizeof(buf)));
                log_info("Serving clients on %s.", socket_address_format(&m->listen_address, buf, sizeof(buf)));
        } else
                log_info("Serving clients on the socket passed by systemd.");
        m->listen_fd = fd;

        r = sd_event_add_io(m->event, &m->listen_event_source, fd, EPOLLIN, accept_handler, m);
        if (r < 0)
                return log_error_errno(r, "Failed to watch the client socket: %m");
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
