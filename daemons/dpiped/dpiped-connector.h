/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The control connection to one connector type, <runtime-dir>/connector-<type>.sock
 * (docs/ARCHITECTURE.md "dpiped <-> connector"). dpiped keeps it open, resends every source of the
 * type after each (re)connect, and reconnects with exponential backoff when the connector is not
 * there (a socket-activated connector is started by the connect itself). */

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "backoff.h"
#include "buffer.h"
#include "dpiped-manager.h"
#include "dpiped-source.h"

struct Connector {
        Manager *manager;
        Connector *next;

        char *type;
        char *socket_path;
        int fd;
        sd_event_source *io_event_source;
        sd_event_source *retry_timer;
        Buffer in;
        Buffer out;
        bool connected;
        Backoff backoff;
        uint64_t next_id;

        /* Sources removed while disconnected: the connector may still run them, so it is told on
         * the next connect. */
        char **pending_removals;
        size_t n_pending_removals;
};

Connector *connector_free(Connector *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(Connector *, connector_free);
char *connector_socket_path(const char *runtime_dir, const char *type);

/* Finds the connector of a type, creating it (and starting to connect) on first use. */
int manager_get_connector(Manager *m, const char *type, Connector **ret);
void manager_connectors_free(Manager *m);

/* Forwarding; while disconnected these do nothing, the source is sent on connect. */
int connector_send_add(Connector *c, Source *s);
int connector_send_op(Connector *c, const char *op, const char *name);
int connector_remove_source(Connector *c, const char *name);
bool connector_release_if_unneeded(Connector *c);
