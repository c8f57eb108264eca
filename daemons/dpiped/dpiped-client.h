/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The client server: the line protocol of dpiped(8), CLIENT PROTOCOL, on TCP (plain or TLS) and on
 * <runtime-dir>/client.sock. Every connection is a Client on the manager's loop (dpiped-client.c);
 * its request lines run the ops (dpiped-client-ops.c); a subscribed client streams records from the
 * queue within its window (dpiped-client-stream.c). Who may do what is dpiped(8), ACCESS: see the op table in
 * dpiped-client-ops.c. */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

#include "buffer.h"
#include "dpiped-audit.h"
#include "dpiped-manager.h"
#include "dpiped-subscription.h"
#include "list.h"
#include "transport.h"

/* Above this much unsent output a client gets no more records until it drains. Its requests are
 * still read (a slow reader that answers pings is alive) up to CLIENT_OUT_MAX of replies, above
 * which nothing more is read from it: the bound on a slow client's memory. */
#define CLIENT_OUT_HIGH (256u * 1024u)
#define CLIENT_OUT_MAX (1024u * 1024u)
/* At most this many records are read from the queue for one client in one go (fairness). */
#define CLIENT_PUMP_BATCH 4096u

/* Input: one read of at most CLIENT_READ_SIZE per wakeup into the manager's read buffer, whose
 * whole lines are handled from there; only a partial line is kept in the client's own buffer, in
 * CLIENT_IN_STEP steps, and counted against --max-client-memory. A client between lines holds no
 * input memory at all, one with a few bytes of a line half a kilobyte. */
#define CLIENT_READ_SIZE (64u * 1024u)
#define CLIENT_IN_STEP 512u
#define CLIENT_MEMORY_DEFAULT (64u * 1024u * 1024u)
#define CLIENTS_MAX_DEFAULT 4096u
#define CLIENTS_MAX_LIMIT 1000000u
/* A TLS client has this long (or the client timeout, if shorter) to finish its handshake. */
#define CLIENT_HANDSHAKE_USEC (10 * USEC_PER_SEC)

typedef enum ClientAccess {
        CLIENT_ACCESS_NONE,   /* hello, ping, pong, help, quit only (TCP with --tokens, before a token) */
        CLIENT_ACCESS_READ,   /* and list, status, subscribe, ack */
        CLIENT_ACCESS_CHANGE, /* and every op that changes the pipeline */
} ClientAccess;

typedef struct Token Token;

struct Client {
        Manager *manager;
        LIST_FIELDS(Client, clients);

        Transport transport; /* the socket, and TLS on it for a TLS listener */
        sd_event_source *io_event_source;
        sd_event_source *timeout_timer;
        Buffer in;           /* a partial line, nothing else; counted in manager->client_memory */
        Buffer out;
        char peer[64];
        uint64_t accepted_usec;
        uint64_t last_rx_usec; /* the last whole line (a line that never ends does not count) */
        bool ready;            /* the TLS handshake is done (at once without TLS) */
        bool closing;          /* send what is buffered, then close */
        bool shut_down;        /* all sent and our side ended: wait for the client's end */
        bool pump_pending;

        /* Who it is: the peer's credentials on client.sock, a token on TCP. */
        ActorTransport actor_transport;
        uid_t uid;             /* UID_INVALID on TCP */
        pid_t pid;
        char *unit;            /* looked up when an audit line needs it */
        bool unit_looked_up;
        const Token *token;    /* from hello; points into manager->tokens */
        ClientAccess access_base; /* what the connection itself gives */
        ClientAccess access;      /* with the token, and --read-only-clients */
        unsigned n_denied;

        Subscription *subscription;

        /* An add_source waiting for the connector's check of its options: the client's next requests
         * wait behind it, so that replies keep their order. */
        OptionCheck *option_check;
        struct json_object *pending_request;

        /* dpiped --stream=: the subscription reads the stream through a reader (dpiped-stream.h); its
         * "ok" waits for the reader to know where it starts. */
        struct StreamReader *stream_reader;
        struct json_object *stream_subscribe_id; /* the subscribe's "id", while starting */
        bool stream_starting;
        uint64_t *stream_seqs;
        size_t stream_seqs_allocated;
};

Client *client_free(Client *c);
/* A connection accepted on a listener of this family (AF_UNIX: client.sock), with TLS or not. Takes
 * fd, also on failure. */
int client_new(Manager *m, int fd, int family, bool tls);

int manager_client_server_start(Manager *m);
void manager_clients_free(Manager *m);
/* New records in the queue (or a periodic poll): stream them to every subscribed client. */
void manager_pump_clients(Manager *m);
/* Writes the committed offsets of named subscriptions that changed. */
void manager_commit_subscriptions(Manager *m);

/* Within the client server (dpiped-client*.c): replies are queued in c->out, and client_flush()
 * writes them. client_flush() returns < 0 when the client is done and must be freed. */
struct json_object;
int client_send_json(Client *c, struct json_object *id, struct json_object *o);
int client_send_op(Client *c, struct json_object *id, const char *op);
int client_send_error(Client *c, struct json_object *id, const char *code, const char *message);
int client_flush(Client *c);
/* After a request that made the client wait (c->option_check): handles the requests that came
 * behind it, and writes. Returns < 0 when the client must be freed. */
int client_resume_input(Client *c);
