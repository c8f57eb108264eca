/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Where clients connect (dpiped(8), CLIENT PROTOCOL and ACCESS): the TCP listener(s) and
 * <runtime-dir>/client.sock.
 *
 * Socket-activated (dpiped.socket), dpiped takes every socket systemd passes and tells them apart
 * by family: AF_UNIX is client.sock, AF_INET/AF_INET6 are TCP (FileDescriptorName= is one per
 * unit, so the names cannot). It binds --listen only when started by hand, and client.sock
 * whenever it was not passed (mode 0666: everyone may read; the peer's credentials decide who may
 * change the pipeline).
 *
 * A TCP listener speaks TLS when dpiped has a certificate; one on an address that is not loopback
 * is refused in plain text, unless --allow-plaintext. Accepted connections become Clients; above
 * --max-clients a connection gets an "overloaded" error line (when it is not TLS) and is closed. */

#include <stdbool.h>

#include "dpiped-manager.h"

#define CLIENT_SOCKET_NAME "client.sock"

typedef struct Listener Listener;

/* Sets up every listener; returns a negative errno (logged) when dpiped must not start. */
int manager_listen(Manager *m);
void manager_listeners_free(Manager *m);
