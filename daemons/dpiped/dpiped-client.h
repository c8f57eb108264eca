/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The client server: the TCP line protocol of interfaces.md §4. Every connection is a Client on the
 * manager's loop; a subscribed client streams records from the queue within its window. */

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "buffer.h"
#include "dpiped-manager.h"
#include "dpiped-subscription.h"

/* Above this much unsent output a client gets no more records until it drains. Its requests are
 * still read (a slow reader that answers pings is alive) up to CLIENT_OUT_MAX of replies, above
 * which nothing more is read from it: the bound on a slow client's memory. */
#define CLIENT_OUT_HIGH (256u * 1024u)
#define CLIENT_OUT_MAX (1024u * 1024u)
/* At most this many records are read from the queue for one client in one go (fairness). */
#define CLIENT_PUMP_BATCH 4096u
#define CLIENTS_MAX 16384u

struct Client {
        Manager *manager;
        Client *next, *prev;

        int fd;
        sd_event_source *io_event_source;
        sd_event_source *timeout_timer;
        Buffer in;
        Buffer out;
        char peer[64];
        uint64_t last_rx_usec;
        bool closing; /* send what is buffered, then close */
        bool pump_pending;

        Subscription *subscription;
};

Client *client_free(Client *c);

int manager_client_server_start(Manager *m);
void manager_clients_free(Manager *m);
/* New records in the queue (or a periodic poll): stream them to every subscribed client. */
void manager_pump_clients(Manager *m);
/* Writes the committed offsets of named subscriptions that changed. */
void manager_commit_subscriptions(Manager *m);
