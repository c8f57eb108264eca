/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The control connection to one connector type, <runtime-dir>/connector-<type>.sock
 * (docs/ARCHITECTURE.md "dpiped <-> connector"), or to one sink type, <runtime-dir>/sink-<type>.sock:
 * both speak the same protocol (add/remove/pause/resume, state reports). dpiped keeps it open,
 * resends every source (sink) of the type after each (re)connect, and reconnects with exponential
 * backoff when the daemon is not there (a socket-activated daemon is started by the connect itself).
 * What differs between the two is a ConnectorKind: which objects the link carries. */

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "frame-conn.h"
#include "dpiped-manager.h"
#include "dpiped-source.h"

typedef struct ConnectorKind {
        const char *prefix; /* the socket is <runtime-dir>/<prefix>-<type>.sock */
        const char *what, *title; /* "connector"/"Connector": for log messages */
        const char *object;       /* "source": what the daemon runs */
        const char *lost, *unreachable; /* LastError when the connection is lost, cannot be made */
        /* Whether any object of the link's type is registered. */
        bool (*has_objects)(Connector *c);
        /* Whether an object of this name is registered (a pending removal is then moot). */
        bool (*exists)(Connector *c, const char *name);
        /* After a (re)connect: send every object of the type. */
        int (*send_all)(Connector *c);
        /* The daemon is not reachable: every object of the type is connecting again. */
        void (*set_connecting)(Connector *c, const char *reason);
        /* A state report, and an error reply to the request of this id. */
        void (*handle_state)(Connector *c, struct json_object *o);
        bool (*handle_error)(Connector *c, uint64_t id, const char *message);
} ConnectorKind;

extern const ConnectorKind connector_kind_source;

struct Connector {
        Manager *manager;
        Connector *next;
        const ConnectorKind *kind;

        char *type;
        char *socket_path;
        FrameConn conn;       /* the control connection, reconnecting with backoff */
        bool was_connected;   /* this connection attempt got as far as the connect */
        const char *bad_data; /* why we end the connection, when the daemon sent nonsense */
        uint64_t next_id;

        /* Sources removed while disconnected: the connector may still run them, so it is told on
         * the next connect. */
        char **pending_removals;
        size_t n_pending_removals;
};

Connector *connector_free(Connector *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(Connector *, connector_free);
char *connector_socket_path(const char *runtime_dir, const char *type);
char *connector_kind_socket_path(const ConnectorKind *kind, const char *runtime_dir, const char *type);

/* Finds the link of a kind and type, creating it (and starting to connect) on first use. */
int manager_get_link(Manager *m, const ConnectorKind *kind, const char *type, Connector **ret);
/* The existing link of a kind and type, or NULL. */
Connector *manager_find_link(Manager *m, const ConnectorKind *kind, const char *type);
static inline bool connector_is_connected(const Connector *c) {
        return frame_conn_is_connected(&c->conn);
}
static inline int manager_get_connector(Manager *m, const char *type, Connector **ret) {
        return manager_get_link(m, &connector_kind_source, type, ret);
}
void manager_connectors_free(Manager *m);

/* Forwarding; while disconnected these do nothing, the source is sent on connect. */
int connector_send_add(Connector *c, Source *s);
/* Sends o with a fresh "id" added; returns the id in *ret_id. Does nothing while disconnected. */
int connector_send_request(Connector *c, struct json_object *o, uint64_t *ret_id);
int connector_send_op(Connector *c, const char *op, const char *name);
int connector_remove_source(Connector *c, const char *name);
bool connector_release_if_unneeded(Connector *c);
