/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The pipeline id (dpipe-sink(7)): the name of one dpipe pipeline beyond its machine, in the
 * NATS message ids (<pipeline-id>:<offset>) and subjects (dpipe.<pipeline-id>.<source>) its sinks
 * publish. 1-64 characters of [A-Za-z0-9_-]: one NATS subject token, no dots or wildcards.
 *
 * By default it is derived from /etc/machine-id (an application-specific id, so that the machine id
 * itself is not published): stable for the life of the installation, different on every machine. */

#include <stdbool.h>
#include <stddef.h>

#define PIPELINE_ID_MAX 64

bool pipeline_id_is_valid(const char *s);
/* Writes the default id (32 hex digits and a NUL) into ret. Negative errno when /etc/machine-id is
 * missing or unreadable. */
int pipeline_id_default(char ret[static 33]);
