/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The hand-off between cnats's threads and the sink's event loop. cnats runs threads of its own (the
 * connection's reader and flusher, the publish-ack subscription's delivery, its callbacks) and has no
 * sd-event adapter, and its set-up calls (connect, stream info, last message) block. So:
 *
 *  - every open of a sink runs one short-lived thread (nats_link_open_async()): it first tears down
 *    the connection of the previous open, waiting (bounded) for its publishes to settle so that the
 *    lookup sees what they stored, then connects, finds or creates the stream, and looks up the last
 *    message of this pipeline;
 *  - cnats calls the publish-ack handler and the closed-connection handler on its threads;
 *
 * and everything lands in a NatsLink, a mailbox that wakes the loop through its eventfd (as the
 * writer's sync thread does); the loop takes the results with one swap per wakeup.
 *
 * Publishing does not go through cnats's JetStream async publish: that keeps a hash of every message
 * in flight, a random reply token per message and a JSON parse (with allocations) per ack, about a
 * third of the sink's instructions per record. A JetStream publish is a core NATS publish with a
 * reply subject, the ack a message on it: the loop publishes each record with the reply subject
 * <inbox>.<offset> (nats_conn_publish()), one subscription on <inbox>.* takes the acks, reads the
 * offset off the subject and the ack with json_scan(). The in-flight bound and the ack timeout are
 * the sink's own (sink-nats.c) as before.
 *
 * cnats may still call a handler after the connection was destroyed, so its closure is not a pointer
 * but the link's id, looked up under one process-wide mutex: a link that is gone no longer gets
 * anything. The connection (NatsConn) is owned by one party at a time: the open thread, then the
 * loop, then the next open thread or a retire thread, which destroys it; it holds a reference on its
 * link, which counts the publishes not yet acknowledged, so that the teardown can wait for them. */

#include <nats/nats.h>
#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

typedef struct NatsLink NatsLink;

typedef struct NatsConn {
        natsConnection *nc;
        jsCtx *js;            /* for the stream API on the open thread */
        natsSubscription *acks;
        NatsLink *link;       /* whose id the acks carry; a reference */
        char reply[64];       /* "<inbox>.", the reply subjects' prefix (NUL-terminated) */
        size_t reply_len;
} NatsConn;

typedef struct NatsAck {
        uint64_t offset; /* of the published record, from the reply subject */
        uint64_t seq;    /* stream sequence, when ok */
        bool ok, duplicate;
        natsStatus status;
        int error_code;  /* JetStream's err_code, when the server refused */
} NatsAck;

/* What an open thread needs; strings are copied. */
typedef struct NatsOpenParams {
        char **servers;
        int n_servers;
        char *name;           /* the connection's name, seen in the server's monitoring */
        char *stream;
        char *stream_subject; /* for a stream the thread creates; NULL: refuse to create */
        char *last_subject;   /* where this pipeline's last message is found */
        uint32_t replicas;    /* 0: never create the stream */
        int64_t timeout_ms;   /* connect and API requests */
        int64_t settle_ms;    /* at most this long for the previous connection's publishes */
        int64_t recheck_ms;   /* the lookup of the last message must be stable this long; 0: once */
} NatsOpenParams;

typedef struct NatsOpenResult {
        int error;         /* 0, or negative errno; message says what */
        bool permanent;    /* retrying will not help (configuration) */
        char message[512];
        bool have_last;
        uint64_t last_offset;
        uint64_t last_seq;
        NatsConn *conn;    /* on success; the loop owns it now */
} NatsOpenResult;

typedef void (*nats_link_cb_t)(NatsLink *l, void *userdata);

/* Once per process, before anything else here; nats_link_global_done() at exit waits (bounded) for
 * the link threads and closes cnats. */
int nats_link_global_init(void);
void nats_link_global_done(uint64_t timeout_us);

/* A new link with its eventfd watched on e; cb runs on the loop whenever something arrived. */
int nats_link_new(sd_event *e, nats_link_cb_t cb, void *userdata, NatsLink **ret);
/* The loop lets go: no more callbacks, nothing more arrives; freed once the open thread let go too. */
void nats_link_release(NatsLink *l);

/* Starts the open thread for l; previous (may be NULL) is taken over and torn down first. */
int nats_link_open_async(NatsLink *l, NatsConn *previous, const NatsOpenParams *p);
/* Tears down c on a thread of its own (a sink removed for good); takes it over. */
int nats_conn_retire_async(NatsConn *c, int64_t settle_ms);

/* On the loop: returns true with *ret when the open thread finished (once). */
bool nats_link_take_open(NatsLink *l, NatsOpenResult *ret);
/* Swaps the acks that arrived with *acks (the caller's vector, reused): *n is their number. */
void nats_link_take_acks(NatsLink *l, NatsAck **acks, size_t *allocated, size_t *n);
/* The reason once cnats closed the connection, else NULL. Valid until the link is released. */
const char *nats_link_closed(NatsLink *l);
/* What the server said of the first publish it refused (its description), else "". Valid until the
 * link is released. */
const char *nats_link_ack_error(NatsLink *l);

/* A record at offset is published with the reply subject <reply><offset> (NatsConn.reply): its ack
 * comes back to this connection's link. */
#define NATS_REPLY_MAX (sizeof(((NatsConn *) NULL)->reply) + 21)
void nats_conn_published(NatsConn *c, size_t n);

void nats_open_params_done(NatsOpenParams *p);
