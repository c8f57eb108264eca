/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Who called a method, and whether they may change the pipeline: root, the owner on a user bus, or
 * polkit's answer for org.dpipe.pipeline1.manage (asked asynchronously). */

#include <systemd/sd-bus.h>

#include "dpiped-audit.h"
#include "dpiped-manager.h"

/* The caller of a method, for the audit log. The strings stay valid while *ret_creds is referenced. */
void bus_actor(sd_bus_message *message, Actor *ret, sd_bus_creds **ret_creds);
/* Returns 1 if the caller may change the pipeline, 0 if the answer is pending (the handler returns
 * 1, and handler is called again with the same message when polkit answers), or a negative error
 * (AccessDenied set). */
int bus_verify_manage(sd_bus_message *message, Manager *m, sd_bus_message_handler_t handler, sd_bus_error *error);
