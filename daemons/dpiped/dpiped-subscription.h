/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A client's subscription: where it reads the queue, which sources it wants, and the window of
 * records sent but not yet acked. A named subscription is durable: the offset after the last ack
 * is stored in <state-dir>/subscriptions/<name>.offset and "from":"committed" resumes there. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"
#include "queue.h"

#define SUBSCRIPTION_WINDOW_DEFAULT 10000u
#define SUBSCRIPTION_WINDOW_MAX 1000000u
#define SUBSCRIPTION_SOURCES_MAX 256u

typedef struct Subscription {
        QueueReader *reader;  /* NULL until the queue exists */
        uint64_t next_offset; /* the offset the reader reads next */

        uint32_t window;
        /* Offsets sent and not acked, oldest first: a ring that grows up to window entries, so that
         * memory is bounded by the window whatever the client does. */
        uint64_t *in_flight;
        size_t in_flight_allocated;
        size_t in_flight_head;
        size_t n_in_flight;

        char **sources; /* filter; NULL = every source */
        size_t n_sources;

        char *name;         /* durable subscriptions */
        uint64_t committed; /* offset after the last acked record */
        bool commit_dirty;
        uint64_t lost_end;  /* after the last offsets reported lost (subscription_lost()) */

        uint64_t serial;       /* names an anonymous subscription in the metrics: "anonymous-<serial>" */
        uint64_t records_sent; /* since it subscribed */
} Subscription;

/* What the metrics and ListSubscriptions() say about a subscription. */
typedef struct SubscriptionInfo {
        char label[80];    /* the durable name, or "anonymous-<serial>" */
        uint64_t position; /* the first offset not acknowledged yet */
        uint64_t lag;      /* records in the queue from position on (of every source) */
} SubscriptionInfo;

void subscription_info(const Subscription *s, uint64_t queue_next, SubscriptionInfo *ret);

Subscription *subscription_free(Subscription *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(Subscription *, subscription_free);
int subscription_new(uint64_t from, uint32_t window, Subscription **ret);

int subscription_add_source(Subscription *s, const char *name);
bool subscription_wants(const Subscription *s, const char *source, size_t source_len);

static inline bool subscription_window_full(const Subscription *s) {
        return s->n_in_flight >= s->window;
}
int subscription_sent(Subscription *s, uint64_t offset);
/* Retires every in-flight offset <= offset; returns how many. */
size_t subscription_ack(Subscription *s, uint64_t offset);
/* The offsets up to last were lost to damage in the queue: nothing to send or ack for them. Once
 * everything sent before them is acked, a durable subscription's offset moves past them, so that it
 * does not resume in front of them again. */
void subscription_lost(Subscription *s, uint64_t last);

/* The durable store. */
int subscription_load_committed(const char *dir, const char *name, uint64_t *ret);
int subscription_save_committed(const char *dir, const char *name, uint64_t offset);
