/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Before dpiped accepts a source (a sink) it asks the type's connector (sink daemon) whether the
 * options are right: the daemon's option table is the only schema (man:dpipe-connector(7) and
 * man:dpipe-sink(7), "check"). The question goes over a connection of its own to
 * <runtime-dir>/connector-<type>.sock (sink-<type>.sock), so it starts a socket-activated daemon
 * like any connect does, and never disturbs the long-lived control connection. */

#include <json-c/json.h>
#include <stdint.h>

#include "macro.h"
#include "util.h"

typedef struct Manager Manager;
typedef struct OptionCheck OptionCheck;
typedef struct ConnectorKind ConnectorKind;

typedef enum OptionCheckResult {
        OPTION_CHECK_ACCEPTED,  /* the connector took them */
        OPTION_CHECK_REFUSED,   /* the connector refused them; message says why */
        OPTION_CHECK_UNCHECKED, /* no connector answered (not running, hung): the connector checks them
                                 * when it gets the source, and reports a refusal as the source's state */
        OPTION_CHECK_NO_TYPE,   /* no socket: no connector of this type is installed */
} OptionCheckResult;

typedef struct OptionCheckAnswer {
        OptionCheckResult result;
        const char *message;        /* why refused, else NULL */
        struct json_object *options; /* accepted: the options with values of the connector's types, or NULL */
} OptionCheckAnswer;

/* Called once with the answer (valid during the call). The check is freed already. */
typedef void (*option_check_handler_t)(const OptionCheckAnswer *answer, void *userdata);

/* How long a connector has to answer (it may have to be started first). */
#define OPTION_CHECK_TIMEOUT_USEC (10 * USEC_PER_SEC)

/* Starts the check. Returns 1 and the pending check in *ret (the handler is called later), or 0 and
 * the result in *ret_result when it is known at once (no socket, nobody listening), or < 0. */
int option_check_start(Manager *m, const ConnectorKind *kind, const char *type, json_object *options, option_check_handler_t handler,
                       void *userdata, OptionCheck **ret, OptionCheckResult *ret_result);
/* Called instead of the handler when a pending check is freed unanswered (dpiped exits, the client
 * that asked went away), to free the userdata. */
void option_check_set_destroy(OptionCheck *q, void (*destroy)(void *userdata));
/* Cancels a pending check: its handler is not called, the destroy callback is. */
OptionCheck *option_check_free(OptionCheck *q);
DEFINE_TRIVIAL_CLEANUP_FUNC(OptionCheck *, option_check_free);
void manager_option_checks_free(Manager *m);
