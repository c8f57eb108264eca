/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client-proto.h"
#include "client-util.h"
#include "frame.h"
#include "json-util.h"
#include "line.h"
#include "log.h"
#include "transport.h"
#include "util.h"

/* Records may be large: accept what the queue accepts, plus the envelope. */
#define SERVER_LINE_MAX (FRAME_SIZE_MAX + 4096u)
#define READ_ROOM (256u * 1024u)
#define READS_PER_WAKEUP 16
/* dpiped(8), CLIENT PROTOCOL: dpiped's default, used until the hello reply says otherwise. */
#define DEFAULT_HEARTBEAT_USEC (5 * USEC_PER_SEC)

typedef enum ConnState {
        CONN_DISCONNECTED,
        CONN_CONNECTING,
        CONN_HANDSHAKE, /* TLS */
        CONN_CONNECTED,
} ConnState;

struct ClientConn {
        sd_event *event;
        char *address;
        char *host;    /* of a TCP address: what the server's certificate must name */
        bool unix_socket;
        char *token;
        TlsContext *tls;
        ClientConnCallbacks cb;
        void *userdata;

        ConnState state;
        Transport transport;
        sd_event_source *io;
        sd_event_source *watchdog;
        Buffer in, out;

        bool hello_pending;   /* our own hello's reply is not in yet */
        uint64_t heartbeat_usec;
        uint64_t last_rx_usec;

        bool have_offset;
        uint64_t last_offset;
        bool have_acked;
        uint64_t acked_offset;
        bool have_skip;
        uint64_t skip_through;
};

static void conn_fail(ClientConn *c, int error, const char *fmt, ...) _printf_(3, 4);

static uint64_t conn_deadline_usec(const ClientConn *c) {
        if (c->state != CONN_CONNECTED || c->hello_pending || c->heartbeat_usec == 0)
                return HELLO_TIMEOUT_USEC;
        return DEAD_SERVER_HEARTBEATS * c->heartbeat_usec;
}

static int conn_update_io(ClientConn *c) {
        uint32_t events;

        if (!c->io)
                return 0;
        if (c->state == CONN_CONNECTING)
                events = EPOLLOUT;
        else if (c->state == CONN_HANDSHAKE)
                events = transport_events(&c->transport) ?: EPOLLIN;
        else
                events = EPOLLIN | (buffer_size(&c->out) > 0 ? EPOLLOUT : 0) | transport_events(&c->transport);
        return sd_event_source_set_io_events(c->io, events);
}

static int conn_flush_out(ClientConn *c) {
        ssize_t n;

        if (c->state != CONN_CONNECTED)
                return 0;
        while (buffer_size(&c->out) > 0) {
                n = transport_write(&c->transport, &c->out);
                if (n < 0)
                        return (int) n;
                if (n == 0)
                        break;
        }
        return conn_update_io(c);
}

void client_conn_disconnect(ClientConn *c) {
        c->io = sd_event_source_disable_unref(c->io);
        transport_done(&c->transport);
        c->transport.fd = safe_close(c->transport.fd);
        buffer_clear(&c->in);
        buffer_clear(&c->out);
        c->state = CONN_DISCONNECTED;
        c->hello_pending = false;
        if (c->watchdog)
                (void) sd_event_source_set_enabled(c->watchdog, SD_EVENT_OFF);
}

static void conn_fail(ClientConn *c, int error, const char *fmt, ...) {
        _cleanup_free_ char *reason = NULL;
        va_list ap;
        int r;

        va_start(ap, fmt);
        errno = error < 0 ? -error : error;
        r = vasprintf(&reason, fmt, ap);
        va_end(ap);
        client_conn_disconnect(c);
        if (c->cb.on_disconnected)
                c->cb.on_disconnected(c, error, r < 0 ? "Connection lost" : reason, c->userdata);
}

int client_conn_send_line(ClientConn *c, const char *line, size_t len) {
        int r;

        if (c->state == CONN_DISCONNECTED)
                return -ENOTCONN;
        r = buffer_append(&c->out, line, len);
        if (r < 0)
                return r;
        r = buffer_append(&c->out, "\n", 1);
        if (r < 0)
                return r;
        if (c->state == CONN_CONNECTING)
                return 0;
        return conn_flush_out(c);
}

int client_conn_send_json(ClientConn *c, struct json_object *o) {
        size_t len;
        const char *s = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN, &len);

        if (!s)
                return -ENOMEM;
        return client_conn_send_line(c, s, len);
}

int client_conn_ack(ClientConn *c) {
        char buf[64];
        int n;

        if (c->state != CONN_CONNECTED || !c->have_offset || (c->have_acked && c->acked_offset == c->last_offset))
                return 0;
        n = snprintf(buf, sizeof(buf), "{\"op\":\"ack\",\"offset\":%" PRIu64 "}", c->last_offset);
        c->have_acked = true;
        c->acked_offset = c->last_offset;
        return client_conn_send_line(c, buf, (size_t) n);
}

static int conn_handle_record(ClientConn *c, const char *line, size_t len, uint64_t offset) {
        if (c->have_skip && offset <= c->skip_through)
                return 0;
        c->have_offset = true;
        c->last_offset = offset;
        if (!c->cb.on_record)
                return 0;
        return c->cb.on_record(c, line, len, offset, c->userdata);
}

static int conn_handle_line(ClientConn *c, const char *line, size_t len) {
        _cleanup_json_ struct json_object *msg = NULL;
        const char *op;
        uint64_t offset, hb;
        int r;

        if (record_line_fast_offset(line, len, &offset))
                return conn_handle_record(c, line, len, offset);
        if (len == 0)
                return 0;

        r = json_parse_n(line, len, &msg, NULL);
        if (r < 0 || !json_object_is_type(msg, json_type_object)) {
                log_debug("Ignoring a line from the server that is not a JSON object: %.*s", (int) MIN(len, 200u), line);
                return 0;
        }
        op = json_get_string(msg, "op");
        if (streq_ptr(op, "ping"))
                return client_conn_send_line(c, "{\"op\":\"pong\"}", strlen("{\"op\":\"pong\"}"));
        if (streq_ptr(op, "record")) {
                if (!json_get_uint64(msg, "offset", &offset)) {
                        log_debug("Ignoring a record without an offset.");
                        return 0;
                }
                return conn_handle_record(c, line, len, offset);
        }
        if (streq_ptr(op, "error") && c->hello_pending) {
                /* Refused before we even started: "denied" is about our token, which trying again
                 * will not fix; "overloaded" (too many clients) may pass. */
                bool denied = streq_ptr(json_get_string(msg, "code"), "denied");

                conn_fail(c, denied ? -EACCES : -ECONNREFUSED, "Server %s refused %s: %s", c->address,
                          denied ? "our token" : "the connection", json_get_string(msg, "message") ?: "no reason given");
                return 0;
        }
        if (streq_ptr(op, "hello") && c->hello_pending) {
                c->hello_pending = false;
                if (json_get_uint64(msg, "heartbeat_ms", &hb) && hb > 0 && hb < UINT64_MAX / USEC_PER_MSEC / 4)
                        c->heartbeat_usec = hb * USEC_PER_MSEC;
                log_debug("Connected to %s (%s), heartbeat %" PRIu64 " ms.", c->address,
                          json_get_string(msg, "server") ?: "unknown server", c->heartbeat_usec / USEC_PER_MSEC);
                /* From now on the server's own heartbeat tells us it is alive. */
                return sd_event_source_set_time(c->watchdog, c->last_rx_usec + conn_deadline_usec(c));
        }
        if (streq_ptr(op, "error") && streq_ptr(json_get_string(msg, "code"), "data_lost") && c->cb.on_lost) {
                uint64_t first, last;

                if (json_get_uint64(msg, "first", &first) && json_get_uint64(msg, "last", &last) && first <= last) {
                        if (!c->have_offset || last > c->last_offset) {
                                c->have_offset = true;
                                c->last_offset = last;
                        }
                        return c->cb.on_lost(c, first, last, json_get_string(msg, "message") ?: "", c->userdata);
                }
        }
        if (!c->cb.on_reply)
                return 0;
        return c->cb.on_reply(c, line, len, msg, c->userdata);
}

/* Returns 1 when the connection was closed (the owner has been told). */
static int conn_process_input(ClientConn *c) {
        for (;;) {
                char *line;
                size_t len;
                int r;

                r = line_next(&c->in, SERVER_LINE_MAX, &line, &len);
                if (r == -E2BIG) {
                        conn_fail(c, -E2BIG, "Line from server %s too long, disconnecting.", c->address);
                        return 1;
                }
                if (r <= 0)
                        return 0;
                r = conn_handle_line(c, line, len);
                if (r < 0) {
                        conn_fail(c, r, "Failed to handle a message from %s: %m", c->address);
                        return 1;
                }
                if (c->state != CONN_CONNECTED)
                        return 1; /* the owner closed it */
        }
}

static int conn_end_batch(ClientConn *c) {
        int r;

        if (c->cb.on_flush) {
                r = c->cb.on_flush(c, c->userdata);
                if (r != 0)
                        return r < 0 ? r : 0;
        }
        return client_conn_ack(c);
}

static int conn_send_hello(ClientConn *c) {
        _cleanup_json_ struct json_object *o = json_object_new_object();

        if (!o || json_object_object_add(o, "op", json_object_new_string("hello")) < 0 ||
            json_object_object_add(o, "version", json_object_new_int(1)) < 0)
                return -ENOMEM;
        /* The token is for TCP; on client.sock our credentials speak for us. */
        if (c->token && !c->unix_socket && json_object_object_add(o, "token", json_object_new_string(c->token)) < 0)
                return -ENOMEM;
        return client_conn_send_json(c, o);
}

static int conn_on_connected(ClientConn *c) {
        int r;

        c->state = CONN_CONNECTED;
        c->hello_pending = true;
        c->last_rx_usec = now_usec(CLOCK_MONOTONIC);
        r = conn_send_hello(c);
        if (r < 0)
                return r;
        if (c->cb.on_connected) {
                r = c->cb.on_connected(c, c->userdata);
                if (r < 0)
                        return r;
        }
        r = sd_event_source_set_time(c->watchdog, c->last_rx_usec + conn_deadline_usec(c));
        if (r < 0)
                return r;
        r = sd_event_source_set_enabled(c->watchdog, SD_EVENT_ON);
        if (r < 0)
                return r;
        return conn_update_io(c);
}

/* A plain connection that ends before the server said hello: most likely a TLS port. */
static const char *conn_hint(const ClientConn *c) {
        if (c->hello_pending && !c->tls && !c->unix_socket)
                return " (if the server speaks TLS, add --tls)";
        return "";
}

/* A failed exchange with the server, in one line: TLS says why itself. A TLS server that refuses
 * us (no client certificate, say) tells so in an alert, which a failed write does not show: read it
 * first. */
static void conn_fail_io(ClientConn *c, int error, const char *what) {
        if (c->transport.tls) {
                char buf[TLS_READ_MIN];

                if (error == -EPIPE || error == -ECONNRESET)
                        (void) tls_conn_read(c->transport.tls, buf, sizeof(buf));
                conn_fail(c, error, "%s %s: %s", what, c->address, transport_error(&c->transport));
        } else
                conn_fail(c, error, "%s %s: %m%s", what, c->address, conn_hint(c));
}

static int conn_handshake(ClientConn *c) {
        int r = transport_handshake(&c->transport);

        if (r < 0) {
                conn_fail(c, r == -EKEYREJECTED ? r : -EPROTO, "TLS with %s failed: %s", c->address,
                          transport_error(&c->transport));
                return r;
        }
        if (r == 0)
                return conn_update_io(c);
        log_debug("TLS with %s: %s.", c->address, tls_conn_version(c->transport.tls));
        r = conn_on_connected(c);
        if (r < 0)
                conn_fail_io(c, r, "Failed to talk to");
        return r;
}

static int conn_io_handler(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        ClientConn *c = userdata;
        bool eof = false;
        int r;

        if (c->state == CONN_CONNECTING) {
                r = socket_finish_connect(fd);
                if (r < 0) {
                        conn_fail(c, r, "Failed to connect to %s: %m", c->address);
                        return 0;
                }
                if (c->tls) {
                        r = tls_conn_new(c->tls, fd, c->host, &c->transport.tls);
                        if (r < 0) {
                                conn_fail(c, r, "Failed to set up TLS with %s: %m", c->address);
                                return 0;
                        }
                        c->state = CONN_HANDSHAKE;
                        (void) conn_handshake(c);
                        return 0;
                }
                r = conn_on_connected(c);
                if (r < 0)
                        conn_fail_io(c, r, "Failed to talk to");
                return 0;
        }
        if (c->state == CONN_HANDSHAKE) {
                (void) conn_handshake(c);
                return 0;
        }

        if (revents & (EPOLLOUT | EPOLLIN)) {
                r = conn_flush_out(c);
                if (r < 0) {
                        conn_fail_io(c, r, "Failed to send to");
                        return 0;
                }
        }

        if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                for (int i = 0; i < READS_PER_WAKEUP; i++) {
                        ssize_t n;

                        r = buffer_reserve(&c->in, READ_ROOM);
                        if (r < 0) {
                                conn_fail(c, r, "Failed to read from %s: %m", c->address);
                                return 0;
                        }
                        n = transport_read(&c->transport, buffer_tail(&c->in), c->in.allocated - c->in.tail);
                        if (n == -EAGAIN)
                                break;
                        if (n < 0) {
                                conn_fail_io(c, (int) n, "Failed to read from");
                                return 0;
                        }
                        if (n > 0)
                                buffer_advance(&c->in, (size_t) n);
                        if (n == 0) {
                                eof = true;
                                break;
                        }
                        c->last_rx_usec = now_usec(CLOCK_MONOTONIC);
                        if (conn_process_input(c) > 0)
                                return 0;
                }
                r = conn_end_batch(c);
                if (r < 0) {
                        conn_fail(c, r, "Failed to pass on records from %s: %m", c->address);
                        return 0;
                }
                if (eof) {
                        conn_fail(c, *conn_hint(c) ? -ECONNRESET : 0, "Connection closed by %s%s.", c->address,
                                  conn_hint(c));
                        return 0;
                }
        }
        return 0;
}

static int conn_watchdog_handler(sd_event_source *s, uint64_t usec, void *userdata) {
        ClientConn *c = userdata;
        uint64_t deadline = c->last_rx_usec + conn_deadline_usec(c);

        if (usec < deadline)
                return sd_event_source_set_time(s, deadline) < 0 ? 0 : sd_event_source_set_enabled(s, SD_EVENT_ON);

        if (c->state == CONN_CONNECTED && !c->hello_pending)
                conn_fail(c, -ETIMEDOUT,
                          "Server %s is not responding: nothing received for %" PRIu64 " ms (%d heartbeats of %" PRIu64 " ms).",
                          c->address, (usec - c->last_rx_usec) / USEC_PER_MSEC, DEAD_SERVER_HEARTBEATS,
                          c->heartbeat_usec / USEC_PER_MSEC);
        else
                conn_fail(c, -ETIMEDOUT, "Server %s did not answer within %" PRIu64 " s.", c->address,
                          HELLO_TIMEOUT_USEC / USEC_PER_SEC);
        return 0;
}

int client_conn_connect(ClientConn *c) {
        int r;

        client_conn_disconnect(c);
        if (c->unix_socket)
                c->transport.fd = socket_connect_unix(c->address, true);
        else {
                SocketAddress a;

                r = socket_address_parse(c->address, &a);
                if (r < 0)
                        return r;
                c->transport.fd = socket_connect_tcp(&a);
        }
        if (c->transport.fd < 0)
                return c->transport.fd;
        socket_set_buffers(c->transport.fd, 4 * 1024 * 1024);
        r = sd_event_add_io(c->event, &c->io, c->transport.fd, EPOLLOUT, conn_io_handler, c);
        if (r < 0)
                return r;
        c->state = CONN_CONNECTING;
        c->last_rx_usec = now_usec(CLOCK_MONOTONIC);
        r = sd_event_source_set_time(c->watchdog, c->last_rx_usec + HELLO_TIMEOUT_USEC);
        if (r < 0)
                return r;
        return sd_event_source_set_enabled(c->watchdog, SD_EVENT_ON);
}

bool client_address_is_unix(const char *address) {
        return address && address[0] == '/';
}

int client_conn_options_parse(ClientConnOptions *o, const char **token_file, int c, const char *arg) {
        switch (c) {
        case ARG_CONN_TOKEN_FILE:
                *token_file = arg;
                return 1;
        case ARG_CONN_TLS:
                o->tls = true;
                return 1;
        case ARG_CONN_TLS_CA:
                o->tls_ca = arg;
                return 1;
        case ARG_CONN_TLS_CERT:
                o->tls_cert = arg;
                return 1;
        case ARG_CONN_TLS_KEY:
                o->tls_key = arg;
                return 1;
        default:
                return 0;
        }
}

bool client_conn_options_given(const ClientConnOptions *o, const char *token_file) {
        return token_file || o->tls || o->tls_ca || o->tls_cert || o->tls_key;
}

int client_conn_options_verify(const ClientConnOptions *o, const char *address) {
        if ((o->tls_ca || o->tls_cert || o->tls_key) && !o->tls) {
                log_error("--tls-ca=, --tls-cert= and --tls-key= go with --tls.");
                return -EINVAL;
        }
        if (o->tls && client_address_is_unix(address)) {
                log_error("--tls needs --connect=HOST:PORT: client.sock is local and speaks plain text.");
                return -EINVAL;
        }
        return 0;
}

/* "host" of "host:port" or "[v6]:port". */
static char *address_host(const char *address) {
        const char *colon;

        if (address[0] == '[') {
                const char *end = strchr(address, ']');
                return end ? strndup(address + 1, (size_t) (end - address - 1)) : NULL;
        }
        colon = strrchr(address, ':');
        return colon ? strndup(address, (size_t) (colon - address)) : NULL;
}

int client_conn_new(sd_event *e, const char *address, const ClientConnOptions *options, const ClientConnCallbacks *cb,
                    void *userdata, ClientConn **ret) {
        _cleanup_(client_conn_freep) ClientConn *c = NULL;
        SocketAddress a;
        int r;

        if (!client_address_is_unix(address)) {
                r = socket_address_parse(address, &a);
                if (r < 0)
                        return r;
        }
        c = calloc(1, sizeof(ClientConn));
        if (!c)
                return -ENOMEM;
        c->transport.fd = -EBADF;
        c->unix_socket = client_address_is_unix(address);
        if (options && options->token) {
                c->token = strdup(options->token);
                if (!c->token)
                        return -ENOMEM;
        }
        if (options && options->tls) {
                char error[512];

                if (c->unix_socket) {
                        log_error("TLS is for TCP addresses; %s is a Unix socket.", address);
                        return -EINVAL;
                }
                c->host = address_host(address);
                if (!c->host)
                        return -ENOMEM;
                r = tls_context_new_client(options->tls_ca, options->tls_cert, options->tls_key, &c->tls, error,
                                           sizeof(error));
                if (r == -ENOMEM)
                        return r;
                if (r < 0) {
                        log_error("TLS: %s", error);
                        return -EINVAL;
                }
        }
        c->heartbeat_usec = DEFAULT_HEARTBEAT_USEC;
        c->event = sd_event_ref(e);
        c->cb = *cb;
        c->userdata = userdata;
        c->address = strdup(address);
        if (!c->address)
                return -ENOMEM;
        r = sd_event_add_time(e, &c->watchdog, CLOCK_MONOTONIC, UINT64_MAX, 0, conn_watchdog_handler, c);
        if (r < 0)
                return r;
        (void) sd_event_source_set_enabled(c->watchdog, SD_EVENT_OFF);
        *ret = TAKE_PTR(c);
        return 0;
}

ClientConn *client_conn_free(ClientConn *c) {
        if (!c)
                return NULL;
        client_conn_disconnect(c);
        sd_event_source_disable_unref(c->watchdog);
        buffer_done(&c->in);
        buffer_done(&c->out);
        sd_event_unref(c->event);
        free(c->address);
        free(c->host);
        if (c->token)
                explicit_bzero(c->token, strlen(c->token));
        free(c->token);
        tls_context_free(c->tls);
        free(c);
        return NULL;
}

int client_conn_options_load_token(ClientConnOptions *o, const char *token_file) {
        _cleanup_free_ char *text = NULL;
        const char *env;
        size_t size = 0, n;
        int r;

        if (!token_file) {
                env = getenv("DPIPE_TOKEN");
                if (isempty(env))
                        return 0;
                o->token = strdup(env);
                return o->token ? 0 : log_oom();
        }
        r = read_file(token_file, 64 * 1024, &text, &size);
        if (r < 0)
                return log_error_errno(r, "Failed to read the token file %s: %m", token_file);
        /* The first line, without its line break and trailing blanks. */
        n = strcspn(text, "\r\n");
        while (n > 0 && (text[n - 1] == ' ' || text[n - 1] == '\t'))
                n--;
        if (n == 0) {
                explicit_bzero(text, size);
                log_error("The token file %s is empty: its first line must be the secret.", token_file);
                return -EINVAL;
        }
        o->token = strndup(text, n);
        explicit_bzero(text, size);
        return o->token ? 0 : log_oom();
}

void client_conn_options_done(ClientConnOptions *o) {
        if (o->token)
                explicit_bzero(o->token, strlen(o->token));
        free(o->token);
        o->token = NULL;
}

bool client_conn_is_connected(const ClientConn *c) {
        return c->state == CONN_CONNECTED;
}

bool client_conn_last_offset(const ClientConn *c, uint64_t *ret) {
        if (!c->have_offset)
                return false;
        *ret = c->last_offset;
        return true;
}

void client_conn_set_skip_through(ClientConn *c, uint64_t offset) {
        c->have_skip = true;
        c->skip_through = offset;
}

uint64_t client_conn_heartbeat_usec(const ClientConn *c) {
        return c->heartbeat_usec;
}

const char *client_conn_address(const ClientConn *c) {
        return c->address;
}
