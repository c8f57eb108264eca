/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* One connection to dpiped's client port (dpiped(8), CLIENT PROTOCOL), driven by sd-event. Shared by
 * dpipe-client and `dpipectl tail`.
 *
 * It connects, says hello, learns the server's heartbeat interval from the reply, answers the
 * server's pings by itself, and declares the server dead when nothing at all arrives for
 * DEAD_SERVER_HEARTBEATS heartbeat intervals. Pushed records are recognised (cheaply, see
 * record_line_fast_offset()) and handed to the owner; at the end of every read batch the owner
 * flushes its output and only then are the records acked, in one ack for the whole batch, so that
 * "acked" always means "printed" and --reconnect can resume exactly after it.
 *
 * A data_lost error (records the server could not read from its queue) goes to on_lost; everything
 * else the server sends (replies) goes to on_reply as the line and its parsed JSON. */

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "buffer.h"
#include "macro.h"
#include "socket-util.h"
#include "tls.h"

#define DEAD_SERVER_HEARTBEATS 3
#define HELLO_TIMEOUT_USEC (10 * USEC_PER_SEC)

typedef struct ClientConn ClientConn;

/* How to reach the server and prove who we are (dpiped(8), ACCESS). The address is HOST:PORT for
 * TCP, or the path of a Unix socket (anything that starts with '/', e.g. client.sock). */
typedef struct ClientConnOptions {
        char *token;        /* sent in hello on TCP; NULL for none */
        bool tls;           /* TCP only */
        const char *tls_ca; /* NULL: the system's store */
        const char *tls_cert, *tls_key;
} ClientConnOptions;

/* The command-line options of a connection, the same in dpipe-client and dpipectl: --token-file=,
 * --tls, --tls-ca=, --tls-cert=, --tls-key=. Their getopt values, and their long options (put
 * CLIENT_CONN_LONG_OPTIONS into the program's table). */
enum {
        ARG_CONN_TOKEN_FILE = 0x4000,
        ARG_CONN_TLS,
        ARG_CONN_TLS_CA,
        ARG_CONN_TLS_CERT,
        ARG_CONN_TLS_KEY,
};
#define CLIENT_CONN_LONG_OPTIONS                                                                        \
        { "token-file", required_argument, NULL, ARG_CONN_TOKEN_FILE },                                 \
        { "tls", no_argument, NULL, ARG_CONN_TLS },                                                     \
        { "tls-ca", required_argument, NULL, ARG_CONN_TLS_CA },                                         \
        { "tls-cert", required_argument, NULL, ARG_CONN_TLS_CERT },                                     \
        { "tls-key", required_argument, NULL, ARG_CONN_TLS_KEY }
/* Takes getopt's c and optarg: 1 if c was one of them (stored in o, or *token_file), else 0. */
int client_conn_options_parse(ClientConnOptions *o, const char **token_file, int c, const char *arg);
/* Whether any of them was given. */
bool client_conn_options_given(const ClientConnOptions *o, const char *token_file);
/* Once all are parsed: --tls-ca=/--tls-cert=/--tls-key= need --tls, and --tls a TCP address.
 * -EINVAL with the reason logged. */
int client_conn_options_verify(const ClientConnOptions *o, const char *address);

/* --token-file=PATH (its first line), else $DPIPE_TOKEN, into o->token. Errors are logged. */
int client_conn_options_load_token(ClientConnOptions *o, const char *token_file);
void client_conn_options_done(ClientConnOptions *o);
/* True when address names a Unix socket. */
bool client_address_is_unix(const char *address);

typedef struct ClientConnCallbacks {
        /* Connected and hello sent: queue requests here (resubscribe after a reconnect). */
        int (*on_connected)(ClientConn *c, void *userdata);
        /* One pushed record: line (not NUL-terminated beyond len is guaranteed: line[len] == 0). */
        int (*on_record)(ClientConn *c, const char *line, size_t len, uint64_t offset, void *userdata);
        /* Any other message; msg is the parsed object (never NULL). */
        int (*on_reply)(ClientConn *c, const char *line, size_t len, struct json_object *msg, void *userdata);
        /* The server's {"op":"error","code":"data_lost","first":N,"last":M,...}: the records at offsets
         * first..last were lost to damage in the queue and the stream goes on after them. They count
         * as handled: the next ack and a resubscribe after a reconnect go past them. Without this
         * callback the line goes to on_reply. */
        int (*on_lost)(ClientConn *c, uint64_t first, uint64_t last, const char *message, void *userdata);
        /* End of a read batch: write out everything printed so far. Returns 0 when it is all out (the
         * records are acked now), 1 when some is still pending (the owner calls client_conn_ack()
         * once it is out), negative to stop acking. */
        int (*on_flush)(ClientConn *c, void *userdata);
        /* The connection is gone: error < 0 with a human-readable reason, or 0 for an orderly EOF.
         * -EACCES (the server refused our token) and -EKEYREJECTED (its TLS certificate did not
         * verify) will not get better by trying again. */
        void (*on_disconnected)(ClientConn *c, int error, const char *reason, void *userdata);
} ClientConnCallbacks;

/* -EINVAL for a malformed address; with TLS, a context that cannot be set up gives -EINVAL too and
 * its reason is logged. */
int client_conn_new(sd_event *e, const char *address, const ClientConnOptions *options, const ClientConnCallbacks *cb,
                    void *userdata, ClientConn **ret);
ClientConn *client_conn_free(ClientConn *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(ClientConn *, client_conn_free);

/* Starts connecting (again). Errors that happen later are reported through on_disconnected. */
int client_conn_connect(ClientConn *c);
void client_conn_disconnect(ClientConn *c);
bool client_conn_is_connected(const ClientConn *c);

/* Queues one line (the newline is added) / a JSON object as one line. */
int client_conn_send_line(ClientConn *c, const char *line, size_t len);
int client_conn_send_json(ClientConn *c, struct json_object *o);

/* Acks every record handed to on_record so far (no-op when they are acked already). */
int client_conn_ack(ClientConn *c);

/* Records: the offset of the last record handed to on_record (and, after the next flush, acked). */
bool client_conn_last_offset(const ClientConn *c, uint64_t *ret);
/* Drop records at or below this offset (after a reconnect the server may resend what we already
 * have, e.g. when the owner asked for "earliest" again). */
void client_conn_set_skip_through(ClientConn *c, uint64_t offset);

uint64_t client_conn_heartbeat_usec(const ClientConn *c);
const char *client_conn_address(const ClientConn *c);
