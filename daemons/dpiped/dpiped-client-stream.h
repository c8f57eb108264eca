/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Streaming records to subscribed clients (dpiped-client-stream.c). */

#include <systemd/sd-event.h>

#include "dpiped-client.h"

struct json_object;

int op_subscribe(Client *c, struct json_object *req, struct json_object *id);
int op_ack(Client *c, struct json_object *req, struct json_object *id);
/* Stores the committed offset of the client's named subscription if it changed. */
void client_commit(Client *c);
/* Pumps the clients with pump_pending set from the loop, soon. */
void manager_schedule_pump(Manager *m);
/* The handlers of manager->pump_event and manager->commit_timer. */
int pump_handler(sd_event_source *es, void *userdata);
int commit_handler(sd_event_source *es, uint64_t usec, void *userdata);
/* dpiped --stream=: lets the client's stream reader go (its thread stores the last commit). */
void client_stream_stop(Client *c);
