/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "filter.h"
#include "json-util.h"
#include "line.h"
#include "list.h"
#include "log.h"
#include "demo-tcp.h"
#include "util.h"

/* Rows are copied into a client's buffer while it holds less than this. */
#define CLIENT_LOW_WATER (64u * 1024u)
/* Bytes written to one client per wakeup before others get their turn. */
#define CLIENT_WRITE_BUDGET (1024u * 1024u)
/* Rows a query scans per step (between writes). */
#define QUERY_SCAN_STEP 4096u
#define RATE_TICK_MIN_USEC (10 * USEC_PER_MSEC)
#define LISTEN_BACKLOG 4096
#define MAX_WORDS 64

typedef struct Client Client;

struct Client {
        TcpServer *server;
        LIST_FIELDS(Client, clients);

        int fd;
        sd_event_source *io;
        sd_event_source *timer; /* rate pacing; the close deadline once closing */
        Buffer in, out;
        char peer[64];
        uint64_t last_rx_usec;
        uint64_t last_ping_usec;
        bool read_eof;
        bool closing;

        bool subscribed;
        uint64_t cursor;          /* seq of the next row to stream */
        uint64_t rate_start_usec; /* pacing: rows due = rate × time since start */
        uint64_t rate_sent;
        bool rate_idle;           /* caught up with the data: the pacing timer is off */

        Filter *query;
        uint64_t query_pos;
        uint64_t query_left;
        uint64_t query_count;
        char *query_id; /* JSON text of the request's "id", echoed in the "end" line */
};

struct TcpServer {
        Manager *manager;
        int fd;
        sd_event_source *listen_source;
        sd_event_source *heartbeat_timer;
        Client *clients;
        size_t n_clients;
        bool warned_fd_limit;
};

static int client_io(sd_event_source *s, int fd, uint32_t revents, void *userdata);
static void client_pump(Client *c);
static void client_process_lines(Client *c);

static const Dataset *client_dataset(Client *c) {
        return manager_dataset(c->server->manager);
}

static Client *client_free(Client *c) {
        if (!c)
                return NULL;
        if (c->server) {
                LIST_REMOVE(clients, c->server->clients, c);
                c->server->n_clients--;
                if (c->server->warned_fd_limit) {
                        c->server->warned_fd_limit = false;
                        (void) sd_event_source_set_enabled(c->server->listen_source, SD_EVENT_ON);
                }
                manager_update_status(c->server->manager);
        }
        sd_event_source_disable_unref(c->io);
        sd_event_source_disable_unref(c->timer);
        safe_close(c->fd);
        buffer_done(&c->in);
        buffer_done(&c->out);
        filter_free(c->query);
        free(c->query_id);
        free(c);
        return NULL;
}

static void client_close(Client *c, const char *why) {
        log_debug("TCP client %s: closed (%s).", c->peer, why);
        client_free(c);
}

static int client_append_record(Client *c, uint64_t seq, const char *row, size_t len) {
        static const char prefix[] = "{\"op\":\"record\",\"seq\":";
        static const char middle[] = ",\"data\":";
        char n[20];
        size_t nl = format_u64(n, seq);
        char *o;
        int r;

        r = buffer_reserve(&c->out, sizeof(prefix) + nl + sizeof(middle) + len + 2);
        if (r < 0)
                return r;
        o = buffer_tail(&c->out);
        memcpy(o, prefix, sizeof(prefix) - 1), o += sizeof(prefix) - 1;
        memcpy(o, n, nl), o += nl;
        memcpy(o, middle, sizeof(middle) - 1), o += sizeof(middle) - 1;
        memcpy(o, row, len), o += len;
        *o++ = '}';
        *o++ = '\n';
        buffer_advance(&c->out, (size_t) (o - buffer_tail(&c->out)));
        return 0;
}

/* Appends {"op":OP<members>[,"id":ID]}\n, members being pre-formatted JSON (",\"k\":v" or ""). */
static int client_send(Client *c, const char *op, const char *members, const char *id) {
        return buffer_printf(&c->out, "{\"op\":\"%s\"%s%s%s}\n", op, members ?: "", id ? ",\"id\":" : "",
                             id ?: "");
}

static int client_send_error(Client *c, const char *id, const char *code, const char *message) {
        int r;

        r = buffer_printf(&c->out, "{\"op\":\"error\",\"code\":\"%s\",\"message\":", code);
        if (r < 0)
                return r;
        r = buffer_append_json_string(&c->out, message, strlen(message));
        if (r < 0)
                return r;
        if (id) {
                r = buffer_printf(&c->out, ",\"id\":%s", id);
                if (r < 0)
                        return r;
        }
        return buffer_append(&c->out, "}\n", 2);
}

static void client_update_events(Client *c) {
        uint32_t events = 0;

        if (!c->read_eof && !c->closing)
                events |= EPOLLIN;
        if (buffer_size(&c->out) > 0)
                events |= EPOLLOUT;
        (void) sd_event_source_set_io_events(c->io, events);
}

static int client_close_deadline(sd_event_source *s, uint64_t usec, void *userdata) {
        Client *c = userdata;

        client_close(c, "output not taken before the deadline");
        return 0;
}

/* Stops taking input and closes once the output is written, or when the deadline passes. */
static void client_begin_close(Client *c) {
        Manager *m = c->server->manager;
        int r;

        c->closing = true;
        c->subscribed = false;
        c->query = filter_free(c->query);
        (void) shutdown(c->fd, SHUT_RD);

        c->timer = sd_event_source_disable_unref(c->timer);
        r = sd_event_add_time_relative(m->event, &c->timer, CLOCK_MONOTONIC, m->timeout_usec, 0,
                                       client_close_deadline, c);
        if (r < 0)
                log_warning_errno(r, "TCP client %s: failed to add close deadline, ignoring: %m", c->peer);
}

/* Sends a last error line and closes once it is written (or a deadline passes). Unsent rows are
 * dropped, except the rest of a line already partly sent, so the error is the next whole line. */
static void client_fail(Client *c, const char *code, const char *message) {
        char *nl;

        if (c->closing)
                return;
        nl = buffer_size(&c->out) > 0 ? memchr(buffer_begin(&c->out), '\n', buffer_size(&c->out)) : NULL;
        if (nl)
                c->out.tail = (size_t) (nl + 1 - c->out.data);
        (void) client_send_error(c, NULL, code, message);
        client_begin_close(c);
        /* The caller pumps: c stays valid until then. */
}

/* The row streamed as seq, if there is one yet. */
static bool client_row(Client *c, uint64_t seq, const char **ret_row, size_t *ret_len) {
        const Dataset *d = client_dataset(c);

        if (d->n_rows == 0)
                return false;
        if (seq < d->n_rows) {
                *ret_row = dataset_row(d, (size_t) seq, ret_len);
                return true;
        }
        if (!c->server->manager->loop)
                return false;
        *ret_row = dataset_row(d, (size_t) (seq % d->n_rows), ret_len);
        return true;
}

static int client_query_end(Client *c) {
        char members[64];
        int r;

        snprintf(members, sizeof(members), ",\"count\":%" PRIu64, c->query_count);
        r = client_send(c, "end", members, c->query_id);
        c->query = filter_free(c->query);
        free(c->query_id);
        c->query_id = NULL;
        return r;
}

/* One step of a running query: scans some rows, appends the matches. */
static int client_query_step(Client *c) {
        const Dataset *d = client_dataset(c);
        uint64_t end = MIN((uint64_t) d->n_rows, c->query_pos + QUERY_SCAN_STEP);
        int r;

        for (; c->query_pos < end && c->query_left > 0 && buffer_size(&c->out) < CLIENT_LOW_WATER;
             c->query_pos++) {
                size_t len;
                const char *row = dataset_row(d, (size_t) c->query_pos, &len);

                r = filter_match(c->query, row, len);
                if (r < 0)
                        return r;
                if (r == 0)
                        continue;
                r = client_append_record(c, c->query_pos, row, len);
                if (r < 0)
                        return r;
                c->query_left--;
                c->query_count++;
        }
        if (c->query_left == 0 || c->query_pos >= d->n_rows)
                return client_query_end(c);
        return 0;
}

/* Fills the output buffer up to the low-water mark. Returns > 0 if more could be filled later
 * (the socket just needs to drain), 0 when there is nothing more to send for now. */
static int client_fill(Client *c) {
        Manager *m = c->server->manager;
        int r;

        while (buffer_size(&c->out) < CLIENT_LOW_WATER) {
                const char *row;
                size_t len;

                if (c->query) {
                        r = client_query_step(c);
                        if (r < 0)
                                return r;
                        continue;
                }
                if (!c->subscribed || m->rate > 0 || !client_row(c, c->cursor, &row, &len))
                        return 0;
                r = client_append_record(c, c->cursor, row, len);
                if (r < 0)
                        return r;
                c->cursor++;
        }
        return 1;
}

static void client_pump(Client *c) {
        size_t written = 0;
        int r;

        for (;;) {
                ssize_t n;

                if (!c->closing) {
                        r = client_fill(c);
                        if (r < 0) {
                                client_close(c, "out of memory");
                                return;
                        }
                        /* A query finished: requests that waited behind it are next. */
                        if (!c->query && buffer_size(&c->in) > 0 && buffer_size(&c->out) < CLIENT_LOW_WATER) {
                                size_t before = buffer_size(&c->in);
                                client_process_lines(c);
                                if (buffer_size(&c->in) != before && !c->closing)
                                        continue;
                        }
                }
                if (buffer_size(&c->out) == 0)
                        break;
                n = buffer_write_fd(&c->out, c->fd);
                if (n < 0) {
                        client_close(c, n == -EPIPE || n == -ECONNRESET ? "peer went away" : "write error");
                        return;
                }
                written += (size_t) n;
                if (n == 0 || buffer_size(&c->out) > 0 || written >= CLIENT_WRITE_BUDGET)
                        break;
        }

        if (c->closing && buffer_size(&c->out) == 0) {
                client_close(c, "closing");
                return;
        }
        /* More to fill but out of budget: stay writable-interested so that we come back. */
        if (buffer_size(&c->out) == 0 && !c->closing && written >= CLIENT_WRITE_BUDGET) {
                (void) sd_event_source_set_io_events(c->io, EPOLLOUT | (c->read_eof ? 0 : EPOLLIN));
                return;
        }
        client_update_events(c);
}

/* --rate: rows fall due on the clock; those due are appended whatever the socket does. */
static int client_rate_tick(sd_event_source *s, uint64_t usec, void *userdata) {
        Client *c = userdata;
        Manager *m = c->server->manager;
        unsigned __int128 due128;
        uint64_t now = now_usec(CLOCK_MONOTONIC), due, interval;
        int r;

        due128 = (unsigned __int128) (now - c->rate_start_usec) * m->rate / USEC_PER_SEC;
        due = due128 > UINT64_MAX ? UINT64_MAX : (uint64_t) due128;

        while (c->rate_sent < due && c->subscribed) {
                const char *row;
                size_t len;

                if (!client_row(c, c->cursor, &row, &len)) {
                        /* Caught up: wait for data (--follow) with the clock off. */
                        c->rate_idle = true;
                        (void) sd_event_source_set_enabled(s, SD_EVENT_OFF);
                        break;
                }
                r = client_append_record(c, c->cursor, row, len);
                if (r < 0) {
                        client_close(c, "out of memory");
                        return 0;
                }
                c->cursor++;
                c->rate_sent++;
                if (buffer_size(&c->out) >= CLIENT_LOW_WATER) {
                        (void) buffer_write_fd(&c->out, c->fd);
                        if (buffer_size(&c->out) > m->client_buffer_max) {
                                log_info("TCP client %s: output buffer full (%zu bytes), disconnecting.", c->peer,
                                         buffer_size(&c->out));
                                client_fail(c, "overflow",
                                            "client too slow: output buffer limit reached, disconnecting");
                                client_pump(c);
                                return 0;
                        }
                }
        }

        if (!c->rate_idle && c->subscribed) {
                interval = MAX(USEC_PER_SEC / m->rate, RATE_TICK_MIN_USEC);
                (void) sd_event_source_set_time(s, now + interval);
                (void) sd_event_source_set_enabled(s, SD_EVENT_ON);
        }
        client_pump(c);
        return 0;
}

static void client_rate_start(Client *c) {
        Manager *m = c->server->manager;
        int r;

        c->rate_start_usec = now_usec(CLOCK_MONOTONIC);
        c->rate_sent = 0;
        c->rate_idle = false;
        if (!c->timer) {
                r = sd_event_add_time(m->event, &c->timer, CLOCK_MONOTONIC, c->rate_start_usec, 0,
                                      client_rate_tick, c);
                if (r < 0) {
                        log_warning_errno(r, "TCP client %s: failed to add rate timer: %m", c->peer);
                        return;
                }
        } else {
                (void) sd_event_source_set_time(c->timer, c->rate_start_usec);
                (void) sd_event_source_set_enabled(c->timer, SD_EVENT_ON);
        }
}

static int parse_from(Client *c, struct json_object *v, const char *word, uint64_t *ret) {
        const Dataset *d = client_dataset(c);
        const char *s = word;

        if (v) {
                if (json_object_is_type(v, json_type_int)) {
                        if (json_object_get_int64(v) < 0)
                                return -EINVAL;
                        *ret = json_object_get_uint64(v);
                        return 0;
                }
                if (!json_object_is_type(v, json_type_string))
                        return -EINVAL;
                s = json_object_get_string(v);
        }
        if (!s || streq(s, "earliest")) {
                *ret = 0;
                return 0;
        }
        if (streq(s, "latest")) {
                *ret = d->n_rows;
                return 0;
        }
        return safe_atou64(s, ret);
}

static void client_subscribe(Client *c, uint64_t from, const char *id) {
        Manager *m = c->server->manager;
        char members[64];

        c->subscribed = true;
        c->cursor = from;
        snprintf(members, sizeof(members), ",\"from\":%" PRIu64, from);
        (void) client_send(c, "ok", members, id);
        log_debug("TCP client %s: subscribed from %" PRIu64 ".", c->peer, from);
        if (m->rate > 0)
                client_rate_start(c);
}

static void client_unsubscribe(Client *c) {
        c->subscribed = false;
        if (c->timer)
                (void) sd_event_source_set_enabled(c->timer, SD_EVENT_OFF);
}

static void client_query(Client *c, struct json_object *where, uint64_t limit, const char *id) {
        Manager *m = c->server->manager;
        int r;

        if (c->query) {
                (void) client_send_error(c, id, "bad_request", "a query is already running on this connection");
                return;
        }
        r = filter_new(where, &c->query);
        if (r < 0) {
                (void) client_send_error(c, id, r == -EINVAL ? "bad_request" : "internal",
                                         r == -EINVAL ? "\"where\" must be an object" : "out of memory");
                return;
        }
        c->query_pos = 0;
        c->query_count = 0;
        c->query_left = MIN(limit, (uint64_t) m->query_max_limit);
        c->query_id = id ? strdup(id) : NULL;
        if (c->query_left == 0)
                (void) client_query_end(c);
}

static void client_send_status(Client *c, const char *id) {
        Manager *m = c->server->manager;
        char members[256];

        snprintf(members, sizeof(members),
                 ",\"rows\":%zu,\"clients\":%zu,\"generation\":%" PRIu64 ",\"subscribed\":%s,\"cursor\":%" PRIu64,
                 client_dataset(c)->n_rows, c->server->n_clients, m->generation, c->subscribed ? "true" : "false",
                 c->cursor);
        (void) client_send(c, "status", members, id);
}

static void client_send_hello(Client *c, const char *id) {
        Manager *m = c->server->manager;
        char members[256];

        snprintf(members, sizeof(members), ",\"version\":1,\"server\":\"dpipe-source %s\",\"heartbeat_ms\":%" PRIu64 ",\"rows\":%zu",
                 dpipe_version(), m->heartbeat_usec / USEC_PER_MSEC, client_dataset(c)->n_rows);
        (void) client_send(c, "hello", members, id);
}

static const char help_members[] =
        ",\"commands\":[\"hello\",\"ping\",\"pong\",\"subscribe [earliest|latest|N]\",\"unsubscribe\","
        "\"query [--limit=N] [FIELD=VALUE...]\",\"status\",\"quit\",\"help\"]";

static void client_handle_json(Client *c, char *line, size_t len) {
        _cleanup_json_ struct json_object *o = NULL;
        struct json_object *v = NULL, *idv = NULL;
        const char *op, *id = NULL;
        uint64_t u;

        if (json_parse_n(line, len, &o, NULL) < 0 || !json_object_is_type(o, json_type_object)) {
                (void) client_send_error(c, NULL, "bad_request", "not a JSON object");
                return;
        }
        if (json_object_object_get_ex(o, "id", &idv))
                id = json_object_to_json_string_ext(idv, JSON_C_TO_STRING_PLAIN);
        op = json_get_string(o, "op");
        if (!op) {
                (void) client_send_error(c, id, "bad_request", "missing \"op\"");
                return;
        }

        if (streq(op, "ping"))
                (void) client_send(c, "pong", NULL, id);
        else if (streq(op, "pong"))
                ;
        else if (streq(op, "hello"))
                client_send_hello(c, id);
        else if (streq(op, "subscribe")) {
                (void) json_object_object_get_ex(o, "from", &v);
                if (parse_from(c, v, NULL, &u) < 0)
                        (void) client_send_error(c, id, "invalid_argument",
                                                 "\"from\" must be a row number, \"earliest\" or \"latest\"");
                else
                        client_subscribe(c, u, id);
        } else if (streq(op, "unsubscribe")) {
                client_unsubscribe(c);
                (void) client_send(c, "ok", NULL, id);
        } else if (streq(op, "query")) {
                struct json_object *where = NULL;
                uint64_t limit = c->server->manager->query_max_limit;

                (void) json_object_object_get_ex(o, "where", &where);
                if (json_object_object_get_ex(o, "limit", &v) && !json_get_uint64(o, "limit", &limit))
                        (void) client_send_error(c, id, "invalid_argument", "\"limit\" must be a non-negative integer");
                else if (where && !json_object_is_type(where, json_type_object))
                        (void) client_send_error(c, id, "invalid_argument", "\"where\" must be an object");
                else
                        client_query(c, where, limit, id);
        } else if (streq(op, "status"))
                client_send_status(c, id);
        else if (streq(op, "help"))
                (void) client_send(c, "help", help_members, id);
        else if (streq(op, "quit")) {
                (void) client_send(c, "bye", NULL, id);
                client_begin_close(c);
        } else
                (void) client_send_error(c, id, "unknown_op", "unknown op");
}

static void client_handle_inline(Client *c, char *line) {
        char *words[MAX_WORDS];
        uint64_t u;
        int n;

        n = line_tokenize(line, words, ELEMENTSOF(words));
        if (n == -E2BIG) {
                (void) client_send_error(c, NULL, "bad_request", "too many words");
                return;
        }
        if (n < 0) {
                (void) client_send_error(c, NULL, "bad_request", "unterminated quote");
                return;
        }
        if (n == 0)
                return;

        if (streq(words[0], "ping"))
                (void) client_send(c, "pong", NULL, NULL);
        else if (streq(words[0], "pong"))
                ;
        else if (streq(words[0], "hello"))
                client_send_hello(c, NULL);
        else if (streq(words[0], "subscribe")) {
                if (n > 2 || parse_from(c, NULL, n > 1 ? words[1] : NULL, &u) < 0)
                        (void) client_send_error(c, NULL, "invalid_argument", "usage: subscribe [earliest|latest|N]");
                else
                        client_subscribe(c, u, NULL);
        } else if (streq(words[0], "unsubscribe")) {
                client_unsubscribe(c);
                (void) client_send(c, "ok", NULL, NULL);
        } else if (streq(words[0], "query")) {
                _cleanup_json_ struct json_object *where = json_object_new_object();
                uint64_t limit = c->server->manager->query_max_limit;

                if (!where) {
                        (void) client_send_error(c, NULL, "internal", "out of memory");
                        return;
                }
                for (int i = 1; i < n; i++) {
                        char *k, *v;
                        if (strncmp(words[i], "--limit=", 8) == 0) {
                                if (safe_atou64(words[i] + 8, &limit) < 0) {
                                        (void) client_send_error(c, NULL, "invalid_argument", "bad --limit=");
                                        return;
                                }
                                continue;
                        }
                        if (word_split_key_value(words[i], &k, &v) < 0) {
                                (void) client_send_error(c, NULL, "invalid_argument", "usage: query [--limit=N] [FIELD=VALUE...]");
                                return;
                        }
                        json_object_object_add(where, k, json_object_new_string(v));
                }
                client_query(c, where, limit, NULL);
        } else if (streq(words[0], "status"))
                client_send_status(c, NULL);
        else if (streq(words[0], "help"))
                (void) client_send(c, "help", help_members, NULL);
        else if (streq(words[0], "quit")) {
                (void) client_send(c, "bye", NULL, NULL);
                client_begin_close(c);
        } else
                (void) client_send_error(c, NULL, "unknown_op", "unknown command (try \"help\")");
}

/* Handles the complete lines received. While a query runs, further requests wait in the input
 * buffer: replies come in request order. */
static void client_process_lines(Client *c) {
        char *line;
        size_t len;
        int r;

        while (!c->closing && !c->query) {
                r = line_next(&c->in, LINE_MAX_DEFAULT, &line, &len);
                if (r == -E2BIG) {
                        log_info("TCP client %s: line too long, disconnecting.", c->peer);
                        buffer_clear(&c->in);
                        client_fail(c, "too_long", "line longer than 1 MiB");
                        return;
                }
                if (r <= 0)
                        return;
                if (line[0] == '{')
                        client_handle_json(c, line, len);
                else
                        client_handle_inline(c, line);
        }
}

static void client_read(Client *c) {
        ssize_t n;

        n = buffer_read_fd(&c->in, c->fd, 4096);
        if (n == -EAGAIN)
                return;
        if (n < 0) {
                client_close(c, "read error");
                return;
        }
        if (n == 0) {
                /* Half-closed: a peer may send its commands and only listen from then on. */
                c->read_eof = true;
                if (!c->subscribed && !c->query && buffer_size(&c->out) == 0 && !memchr(buffer_begin(&c->in), '\n', buffer_size(&c->in))) {
                        client_close(c, "peer closed");
                        return;
                }
        } else
                c->last_rx_usec = now_usec(CLOCK_MONOTONIC);

        client_process_lines(c);
        client_pump(c); /* may free c */
}

static int client_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Client *c = userdata;

        if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR) && !c->read_eof && !c->closing) {
                client_read(c); /* may free c */
                return 0;
        }
        if (revents & (EPOLLHUP | EPOLLERR) && !(revents & EPOLLOUT)) {
                client_close(c, "hangup");
                return 0;
        }
        client_pump(c);
        return 0;
}

static void server_reject(TcpServer *s, int fd) {
        static const char msg[] =
                "{\"op\":\"error\",\"code\":\"internal\",\"message\":\"too many clients\"}\n";

        (void) !write(fd, msg, sizeof(msg) - 1);
        safe_close(fd);
}

static int server_accept(sd_event_source *es, int lfd, uint32_t revents, void *userdata) {
        TcpServer *s = userdata;
        Manager *m = s->manager;

        for (unsigned i = 0; i < 256; i++) {
                _cleanup_close_ int fd = -EBADF;
                struct sockaddr_storage sa;
                socklen_t salen = sizeof(sa);
                SocketAddress a;
                Client *c;
                int r;

                fd = accept4(lfd, (struct sockaddr *) &sa, &salen, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (fd < 0) {
                        if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED)
                                return 0;
                        if (errno == EMFILE || errno == ENFILE) {
                                /* The listening socket stays readable: stop watching it until a
                                 * client goes away, rather than spinning. */
                                if (!s->warned_fd_limit)
                                        log_warning_errno(errno, "Failed to accept TCP connection, pausing accept until a client leaves: %m");
                                s->warned_fd_limit = true;
                                (void) sd_event_source_set_enabled(s->listen_source, SD_EVENT_OFF);
                                return 0;
                        }
                        log_debug_errno(errno, "Failed to accept TCP connection, ignoring: %m");
                        return 0;
                }
                if (s->n_clients >= m->max_clients) {
                        log_warning("Refusing TCP connection: %zu clients already connected.", s->n_clients);
                        server_reject(s, TAKE_FD(fd));
                        continue;
                }

                c = calloc(1, sizeof(Client));
                if (!c)
                        return log_oom();
                c->fd = TAKE_FD(fd);
                /* Records go out in batches: the tail of one must not wait for an ACK. */
                (void) socket_set_nodelay(c->fd);
                memcpy(&a.sa, &sa, salen);
                a.len = salen;
                socket_address_format(&a, c->peer, sizeof(c->peer));
                c->last_rx_usec = c->last_ping_usec = now_usec(CLOCK_MONOTONIC);

                r = sd_event_add_io(m->event, &c->io, c->fd, EPOLLIN, client_io, c);
                if (r < 0) {
                        client_free(c);
                        return log_error_errno(r, "Failed to watch TCP client: %m");
                }
                c->server = s;
                LIST_PREPEND(clients, s->clients, c);
                s->n_clients++;
                log_debug("TCP client %s: connected (%zu clients).", c->peer, s->n_clients);
                manager_update_status(m);
        }
        return 0;
}

/* Pings every client each heartbeat and drops those silent for the timeout. */
static int server_heartbeat(sd_event_source *es, uint64_t usec, void *userdata) {
        TcpServer *s = userdata;
        Manager *m = s->manager;
        uint64_t now = now_usec(CLOCK_MONOTONIC);

        LIST_FOREACH_SAFE(clients, c, next, s->clients) {
                if (c->closing)
                        continue;
                if (now - c->last_rx_usec >= m->timeout_usec) {
                        log_info("TCP client %s: silent for %" PRIu64 " ms, disconnecting.", c->peer,
                                 (now - c->last_rx_usec) / USEC_PER_MSEC);
                        client_fail(c, "timeout", "no message from the peer within the timeout");
                        client_pump(c);
                        continue;
                }
                if (now - c->last_ping_usec >= m->heartbeat_usec) {
                        c->last_ping_usec = now;
                        (void) client_send(c, "ping", NULL, NULL);
                        client_pump(c);
                }
        }
        (void) sd_event_source_set_time(es, now + MAX(m->heartbeat_usec / 4, (uint64_t) USEC_PER_MSEC));
        return 0;
}

void tcp_server_data_changed(TcpServer *s) {
        if (!s)
                return;
        LIST_FOREACH_SAFE(clients, c, next, s->clients) {
                if (c->closing || !c->subscribed)
                        continue;
                if (s->manager->rate > 0) {
                        if (c->rate_idle)
                                client_rate_start(c);
                } else
                        client_pump(c);
        }
}

size_t tcp_server_n_clients(const TcpServer *s) {
        return s ? s->n_clients : 0;
}

TcpServer *tcp_server_free(TcpServer *s) {
        if (!s)
                return NULL;
        while (s->clients)
                client_free(s->clients);
        sd_event_source_disable_unref(s->listen_source);
        sd_event_source_disable_unref(s->heartbeat_timer);
        safe_close(s->fd);
        free(s);
        return NULL;
}

int tcp_server_new(Manager *m, const char *listen, TcpServer **ret) {
        _cleanup_(tcp_server_freep) TcpServer *s = NULL;
        SocketAddress a;
        int r;

        s = calloc(1, sizeof(TcpServer));
        if (!s)
                return log_oom();
        s->manager = m;
        s->fd = -EBADF;

        /* A socket from systemd named "tcp" (FileDescriptorName=tcp) wins over binding our own. */
        r = listen_fd_take("tcp", AF_UNSPEC);
        if (r >= 0)
                s->fd = r;
        else {
                r = socket_address_parse(listen, &a);
                if (r < 0)
                        return log_error_errno(r, "Invalid --tcp= address '%s': %m", listen);
                r = socket_listen_tcp(&a, LISTEN_BACKLOG);
                if (r < 0)
                        return log_error_errno(r, "Failed to listen on TCP %s: %m", listen);
                s->fd = r;
        }

        r = sd_event_add_io(m->event, &s->listen_source, s->fd, EPOLLIN, server_accept, s);
        if (r < 0)
                return log_error_errno(r, "Failed to watch TCP listening socket: %m");
        r = sd_event_add_time_relative(m->event, &s->heartbeat_timer, CLOCK_MONOTONIC,
                                       MAX(m->heartbeat_usec / 4, (uint64_t) USEC_PER_MSEC), 0, server_heartbeat, s);
        if (r < 0)
                return log_error_errno(r, "Failed to add heartbeat timer: %m");
        r = sd_event_source_set_enabled(s->heartbeat_timer, SD_EVENT_ON);
        if (r < 0)
                return log_error_errno(r, "Failed to enable heartbeat timer: %m");

        *ret = TAKE_PTR(s);
        return 0;
}
