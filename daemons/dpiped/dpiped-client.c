/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The client server's connections: accepting, the read loop and the partial-line buffer under
 * --max-client-memory, writing and closing, timeouts and the heartbeat. What a line asks for is in
 * dpiped-client-ops.c; records streamed to subscribers in dpiped-client-stream.c. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "dpiped-client.h"
#include "dpiped-client-ops.h"
#include "dpiped-client-stream.h"
#include "dpiped-listen.h"
#include "dpiped-tokens.h"
#include "json-util.h"
#include "line.h"
#include "log.h"
#include "socket-util.h"
#include "util.h"

/* ---- replies ---------------------------------------------------------------------------------- */

int client_send_json(Client *c, struct json_object *id, struct json_object *o) {
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

int client_send_op(Client *c, struct json_object *id, const char *op) {
        _cleanup_json_ struct json_object *o = json_object_new_object();

        if (!o || json_object_object_add(o, "op", json_object_new_string(op)) < 0)
                return -ENOMEM;
        return client_send_json(c, id, o);
}

int client_send_error(Client *c, struct json_object *id, const char *code, const char *message) {
        _cleanup_json_ struct json_object *o = json_object_new_object();

        if (!o)
                return -ENOMEM;
        json_object_object_add(o, "op", json_object_new_string("error"));
        json_object_object_add(o, "code", json_object_new_string(code));
        json_object_object_add(o, "message", json_object_new_string(message));
        return client_send_json(c, id, o);
}

/* ---- connection ------------------------------------------------------------------------------- */

/* The events to wait for: input unless closing or too much output is pending, output while some is
 * pending, and what TLS needs to get on. */
static int client_update_events(Client *c) {
        uint32_t events = transport_events(&c->transport);

        if (!c->ready || c->shut_down)
                return sd_event_source_set_io_events(c->io_event_source, events ?: EPOLLIN);
        if (!c->closing && !c->option_check && buffer_size(&c->out) < CLIENT_OUT_MAX)
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
int client_flush(Client *c) {
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
        /* An idle client holds no output memory between replies and pings: thousands of them
         * would otherwise keep 4 KiB each once the first ping went out. A subscriber keeps its
         * buffer, records pass through it all the time. */
        if (buffer_size(&c->out) == 0 && !c->subscription)
                buffer_done(&c->out);
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
        while (!c->closing && !c->option_check) {
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

int client_resume_input(Client *c) {
        int r;

        if (buffer_size(&c->in) > 0) {
                r = client_process_lines(c, &c->in);
                if (r < 0)
                        return r;
        }
        return client_flush(c);
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
        LIST_REMOVE(clients, m->clients, c);
        m->n_clients--;

        sd_event_source_disable_unref(c->io_event_source);
        sd_event_source_disable_unref(c->timeout_timer);
        transport_done(&c->transport);
        safe_close(c->transport.fd);
        client_in_drop(c);
        buffer_done(&c->out);
        client_stream_stop(c);
        free(c->stream_seqs);
        subscription_free(c->subscription);
        option_check_free(c->option_check);
        json_object_put(c->pending_request);
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

/* dpiped(8), ACCESS: on client.sock, root, dpiped's own user and the members of the admin group may change the
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
                /* With --tokens, a token first; without, anyone on the port may read (dpiped(8), ACCESS). */
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

        LIST_PREPEND(clients, m->clients, c);
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

        LIST_FOREACH_SAFE(clients, c, next, m->clients) {
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
