/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Who changes the pipeline (dpiped(8), ACCESS): every change, from D-Bus or from the client protocol,
 * is logged once with the Actor that made it, and so is every refused attempt. Under journald the
 * entry carries structured fields, so `journalctl DPIPE_AUDIT=1` lists them all:
 *
 *   DPIPE_AUDIT=1, DPIPE_OP= (add_source, remove_source, pause_source, resume_source, reload, hello),
 *   DPIPE_RESULT= (ok, denied), DPIPE_SOURCE=, DPIPE_TRANSPORT= (dbus, unix, tcp, tls),
 *   DPIPE_PEER_UID=, DPIPE_PEER_PID=, DPIPE_PEER_UNIT=, DPIPE_BUS_SENDER=, DPIPE_TOKEN=,
 *   DPIPE_TLS_CN=, DPIPE_PEER= (the TCP peer's address)
 *
 * Elsewhere the line on stderr says the same in words. */

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "macro.h"

#define UID_INVALID ((uid_t) -1)

typedef enum ActorTransport {
        ACTOR_DBUS,
        ACTOR_UNIX, /* client.sock */
        ACTOR_TCP,
        ACTOR_TLS,
} ActorTransport;

/* Borrowed strings; NULL (uid UID_INVALID, pid 0) for what is not known. */
typedef struct Actor {
        ActorTransport transport;
        uid_t uid;
        pid_t pid;
        const char *unit;
        const char *bus_sender;
        const char *token;
        const char *tls_cn;
        const char *peer;
} Actor;

const char *actor_transport_to_string(ActorTransport t);
/* "uid 0 (pid 4242, unit foo.service) over D-Bus (:1.42)", "token ops (TLS CN backup) from
 * 10.0.0.5:4711 over TLS". */
const char *actor_describe(const Actor *a, char *buf, size_t size);

/* One audit entry: "<what> by <actor>." with the fields above. actor NULL means dpiped itself (a
 * change nobody asked for over an API); source may be NULL. */
void audit_log(int level, const Actor *actor, const char *op, const char *source, bool denied, const char *format, ...)
        _printf_(6, 7);
