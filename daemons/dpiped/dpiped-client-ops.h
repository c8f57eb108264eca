/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The client protocol's ops (dpiped-client-ops.c), for the connection code. */

#include <stddef.h>

#include "dpiped-client.h"

/* One request line: parsed, checked against what the client may do, and run. Returns < 0 when the
 * client must be dropped; errors the client made are replied to, not returned. */
int client_process_line(Client *c, char *line, size_t len);
/* Works out c->access from the connection, its token and --read-only-clients. */
void client_update_access(Client *c);
