/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Streaming to subscribed clients: subscribe and ack, the window, the records pumped from the queue
 * into each client's output, losses reported, and the committed offsets of named subscriptions; and
 * the same from a JetStream stream for dpiped --stream= (dpiped-stream.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "dpiped-client.h"
#include "dpiped-client-stream.h"
#include "dpiped-source.h"
#include "dpiped-stream.h"
#include "json-util.h"
#include "log.h"
#include "util.h"

/* ---- subscribe and ack ------------------------------------------------------------------------ */

void client_commit(Client *c) {
        Subscription *s = c->subscription;
        int r;

        if (!s || !s->name || !s->commit_dirty)
                return;
        if (c->stream_reader) {
                /* Kept in the stream's cluster, by the reader's thread. */
                stream_reader_commit(c->stream_reader, s->committed);
                s->commit_dirty = false;
                return;
        }
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

void manager_schedule_pump(Manager *m) {
        if (m->pump_event)
                (void) sd_event_source_set_enabled(m->pump_event, SD_EVENT_ONESHOT);
}

/* ---- dpiped --stream= ------------------------------------------------------------------------- */

void client_stream_stop(Client *c) {
        stream_reader_release(c->stream_reader);
        c->stream_reader = NULL;
        json_object_put(c->stream_subscribe_id);
        c->stream_subscribe_id = NULL;
        c->stream_starting = false;
}

/* dpiped --stream=: the same request, read from the stream; the reply waits for the reader. */
static int op_subscribe_stream(Client *c, struct json_object *req, struct json_object *id) {
        _cleanup_(subscription_freep) Subscription *s = NULL;
        struct json_object *from = NULL, *v;
        const char *name = json_get_string(req, "name");
        uint64_t window = SUBSCRIPTION_WINDOW_DEFAULT, offset = 0;
        StreamFrom kind;
        StreamReader *reader;
        int r;

        if (json_object_object_get_ex(req, "name", &v) && (!name || !source_name_is_valid(name)))
                return client_send_error(c, id, "invalid_argument",
                                         "a subscription name is 1-64 characters of [A-Za-z0-9_.-]");
        if (json_object_object_get_ex(req, "window", &v) &&
            (!json_get_uint64(req, "window", &window) || window < 1 || window > SUBSCRIPTION_WINDOW_MAX))
                return client_send_error(c, id, "invalid_argument", "\"window\" must be a number of 1-1000000");
        (void) json_object_object_get_ex(req, "from", &from);
        if (!from)
                kind = name ? STREAM_FROM_COMMITTED : STREAM_FROM_LATEST;
        else if (json_object_is_type(from, json_type_int)) {
                if (json_object_get_int64(from) < 0)
                        return client_send_error(c, id, "invalid_argument", "\"from\" must not be negative");
                kind = STREAM_FROM_OFFSET;
                offset = (uint64_t) json_object_get_int64(from);
        } else if (json_object_is_type(from, json_type_string) && streq(json_object_get_string(from), "earliest"))
                kind = STREAM_FROM_EARLIEST;
        else if (json_object_is_type(from, json_type_string) && streq(json_object_get_string(from), "latest"))
                kind = STREAM_FROM_LATEST;
        else if (json_object_is_type(from, json_type_string) && streq(json_object_get_string(from), "committed")) {
                if (!name)
                        return client_send_error(c, id, "invalid_argument",
                                                 "\"from\":\"committed\" needs a subscription \"name\"");
                kind = STREAM_FROM_COMMITTED;
        } else if (json_object_is_type(from, json_type_string) && safe_atou64(json_object_get_string(from), &offset) >= 0)
                kind = STREAM_FROM_OFFSET;
        else
                return client_send_error(c, id, "invalid_argument",
                                         "\"from\" must be earliest, latest, committed or an offset");

        r = subscription_new(0, (uint32_t) window, &s);
        if (r < 0)
                return r;
        if (json_object_object_get_ex(req, "sources", &v)) {
                if (!json_object_is_type(v, json_type_array))
                        return client_send_error(c, id, "invalid_argument", "\"sources\" must be an array of source names");
                for (size_t i = 0; i < json_object_array_length(v); i++) {
                        struct json_object *e = json_object_array_get_idx(v, i);
                        const char *src = json_object_is_type(e, json_type_string) ? json_object_get_string(e) : NULL;
                        const char *slash = src ? strchr(src, '/') : NULL;

                        /* "<pipeline-id>/<source>" here: two names, each valid. */
                        if (!slash || slash == src || !source_name_is_valid(slash + 1) ||
                            !source_name_is_valid_n(src, (size_t) (slash - src)))
                                return client_send_error(c, id, "invalid_argument",
                                                         "\"sources\" must name PIPELINE-ID/SOURCE here (--stream)");
                        s->sources = realloc(s->sources, (s->n_sources + 1) * sizeof(char *));
                        if (!s->sources || !(s->sources[s->n_sources] = strdup(src)))
                                return -ENOMEM;
                        s->n_sources++;
                }
        }
        if (name) {
                s->name = strdup(name);
                if (!s->name)
                        return -ENOMEM;
        }
        r = stream_reader_new(c->manager->stream_link, name, kind, offset, s->sources, s->n_sources, &reader);
        if (r < 0)
                return r;

        client_commit(c);
        client_stream_stop(c);
        subscription_free(c->subscription);
        c->subscription = TAKE_PTR(s);
        c->stream_reader = reader;
        c->stream_subscribe_id = id ? json_object_get(id) : NULL;
        c->stream_starting = true;
        stream_reader_set_room(reader, c->subscription->window);
        log_debug("Client %s subscribes to the stream (window %u%s%s).", c->peer, c->subscription->window,
                  name ? ", name " : "", name ?: "");
        return 0;
}

static int client_stream_pump(Client *c) {
        Subscription *s = c->subscription;
        _cleanup_free_ char *problem = NULL, *error = NULL;
        uint64_t start;
        size_t n;
        int r;

        problem = stream_reader_take_problem(c->stream_reader);
        if (problem)
                log_warning("Reading the stream for client %s: %s", c->peer, problem);
        if (c->stream_starting) {
                _cleanup_json_ struct json_object *reply = NULL;
                _cleanup_json_ struct json_object *id = TAKE_PTR(c->stream_subscribe_id);

                if (!stream_reader_take_start(c->stream_reader, &start, &error)) {
                        c->stream_subscribe_id = TAKE_PTR(id);
                        return 0;
                }
                c->stream_starting = false;
                if (error) {
                        client_stream_stop(c);
                        c->subscription = subscription_free(c->subscription);
                        return client_send_error(c, id, "internal", error);
                }
                s->next_offset = start;
                if (s->name)
                        s->committed = start;
                reply = json_object_new_object();
                if (!reply)
                        return -ENOMEM;
                json_object_object_add(reply, "op", json_object_new_string("ok"));
                json_object_object_add(reply, "offset", json_object_new_int64((int64_t) start));
                r = client_send_json(c, id, reply);
                if (r < 0)
                        return r;
        }
        if (c->closing)
                return 0;
        r = stream_reader_take(c->stream_reader, &c->out, CLIENT_OUT_HIGH, &c->stream_seqs, &c->stream_seqs_allocated, &n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                r = subscription_sent(s, c->stream_seqs[i]);
                if (r < 0)
                        return r;
                s->next_offset = c->stream_seqs[i] + 1;
        }
        if (n > 0)
                stream_reader_set_room(c->stream_reader, s->window - s->n_in_flight);
        return client_flush(c);
}

void manager_stream_wake(Manager *m) {
        LIST_FOREACH_SAFE(clients, c, next, m->clients)
                if (c->stream_reader && client_stream_pump(c) < 0)
                        client_free(c);
}

/* ---- the local queue ------------------------------------------------------------------------- */

int op_subscribe(Client *c, struct json_object *req, struct json_object *id) {
        _cleanup_(subscription_freep) Subscription *s = NULL;
        _cleanup_json_ struct json_object *reply = NULL;
        struct json_object *from = NULL, *v;
        const char *name = json_get_string(req, "name");
        uint64_t window = SUBSCRIPTION_WINDOW_DEFAULT, start = 0, committed = 0, first;
        bool have_committed = false;
        int r;

        if (c->manager->stream_link)
                return op_subscribe_stream(c, req, id);

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
        s->serial = ++c->manager->subscription_serial;
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

int op_ack(Client *c, struct json_object *req, struct json_object *id) {
        uint64_t offset;

        if (!json_get_uint64(req, "offset", &offset))
                return client_send_error(c, id, "bad_request", "ack needs an \"offset\" number");
        if (!c->subscription)
                return client_send_error(c, id, "bad_request", "not subscribed");
        if (subscription_ack(c->subscription, offset) > 0) {
                if (c->stream_reader)
                        stream_reader_set_room(c->stream_reader, c->subscription->window - c->subscription->n_in_flight);
                c->pump_pending = true;
                manager_schedule_pump(c->manager);
        }
        if (c->subscription->commit_dirty)
                manager_schedule_commit(c->manager);
        return 0;
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
        if (c->stream_reader)
                return client_stream_pump(c);
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
        LIST_FOREACH_SAFE(clients, c, next, m->clients) {
                if (c->subscription && client_pump(c) < 0)
                        client_free(c);
        }
}

int pump_handler(sd_event_source *es, void *userdata) {
        Manager *m = userdata;

        LIST_FOREACH_SAFE(clients, c, next, m->clients) {
                if (c->pump_pending && client_pump(c) < 0)
                        client_free(c);
        }
        return 0;
}

void manager_commit_subscriptions(Manager *m) {
        LIST_FOREACH(clients, c, m->clients)
                client_commit(c);
}

int commit_handler(sd_event_source *es, uint64_t usec, void *userdata) {
        Manager *m = userdata;

        /* Armed by the next ack again: at most one write per second and subscription bounds both the
         * fsyncs and what a crash replays. */
        manager_commit_subscriptions(m);
        return 0;
}
