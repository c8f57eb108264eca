/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "dpiped-audit.h"
#include "dpiped-manager.h"
#include "dpiped-polkit.h"
#include "list.h"
#include "log.h"
#include "util.h"

/* ---- authorization ------------------------------------------------------------------------------
 *
 * The bus policy already lets only root call the changing methods. Here we check again (a session
 * bus has no such policy) and, for other callers, ask polkit about org.dpipe.pipeline1.manage when
 * it is on the bus. The polkit question is asynchronous: the method call is kept, and when the
 * answer arrives the method handler runs again from the start and finds the answer. */

typedef struct PolkitQuery {
        Manager *manager;
        LIST_FIELDS(struct PolkitQuery, queries);
        sd_bus_message *request;
        sd_bus_message_handler_t handler;
        sd_bus_slot *slot;
        bool done;
        bool authorized;
} PolkitQuery;

static PolkitQuery *polkit_query_free(PolkitQuery *q) {
        if (!q)
                return NULL;
        LIST_REMOVE(queries, q->manager->polkit_queries, q);
        sd_bus_slot_unref(q->slot);
        sd_bus_message_unref(q->request);
        free(q);
        return NULL;
}

void manager_polkit_queries_free(Manager *m) {
        while (m->polkit_queries)
                polkit_query_free(m->polkit_queries);
}

static int polkit_reply_handler(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        PolkitQuery *q = userdata;
        int authorized = 0, challenge = 0, r;

        q->slot = sd_bus_slot_unref(q->slot);
        q->done = true;
        if (sd_bus_message_is_method_error(reply, NULL))
                log_debug("polkit is not available (%s), denying.", sd_bus_message_get_error(reply)->name);
        else {
                r = sd_bus_message_enter_container(reply, 'r', "bba{ss}");
                if (r >= 0)
                        r = sd_bus_message_read(reply, "bb", &authorized, &challenge);
                if (r < 0)
                        log_warning_errno(r, "Malformed reply from polkit, denying: %m");
                q->authorized = r >= 0 && authorized;
        }

        /* Run the method again: this time bus_verify_manage() finds the answer. */
        r = sd_bus_message_rewind(q->request, true);
        if (r >= 0)
                r = q->handler(q->request, q->manager, &error);
        if (r < 0)
                (void) sd_bus_reply_method_errno(q->request, r, &error);
        polkit_query_free(q);
        return 0;
}

/* The caller of a method, for the audit log: uid, pid and unit as the bus and /proc tell them. The
 * strings stay valid while *ret_creds is referenced. */
void bus_actor(sd_bus_message *message, Actor *ret, sd_bus_creds **ret_creds) {
        sd_bus_creds *creds = NULL;

        *ret = (Actor) { .transport = ACTOR_DBUS, .uid = UID_INVALID, .bus_sender = sd_bus_message_get_sender(message) };
        if (sd_bus_query_sender_creds(message, SD_BUS_CREDS_EUID | SD_BUS_CREDS_PID | SD_BUS_CREDS_UNIT | SD_BUS_CREDS_AUGMENT,
                                      &creds) < 0) {
                *ret_creds = NULL;
                return;
        }
        (void) sd_bus_creds_get_euid(creds, &ret->uid);
        (void) sd_bus_creds_get_pid(creds, &ret->pid);
        (void) sd_bus_creds_get_unit(creds, &ret->unit);
        *ret_creds = creds;
}

static const char *bus_method_op(sd_bus_message *message) {
        const char *member = sd_bus_message_get_member(message);

        if (streq_ptr(member, "AddSource"))
                return "add_source";
        if (streq_ptr(member, "RemoveSource"))
                return "remove_source";
        if (streq_ptr(member, "PauseSource"))
                return "pause_source";
        if (streq_ptr(member, "ResumeSource"))
                return "resume_source";
        if (streq_ptr(member, "Reload"))
                return "reload";
        if (streq_ptr(member, "AddSink"))
                return "add_sink";
        if (streq_ptr(member, "RemoveSink"))
                return "remove_sink";
        return member ?: "unknown";
}

/* A refused attempt, logged once, at notice. */
static int bus_denied(sd_bus_message *message, sd_bus_error *error, const char *why) {
        _cleanup_(sd_bus_creds_unrefp) sd_bus_creds *creds = NULL;
        const char *name = NULL;
        Actor actor;

        bus_actor(message, &actor, &creds);
        (void) sd_bus_message_rewind(message, true);
        (void) sd_bus_message_read_basic(message, 's', &name);
        audit_log(LOG_NOTICE, &actor, bus_method_op(message), name, true, "Refused %s of %s %s (%s)",
                  bus_method_op(message), strstr(bus_method_op(message), "sink") ? "sink" : "source", name ?: "?", why);
        return sd_bus_error_set(error, SD_BUS_ERROR_ACCESS_DENIED, why);
}

/* Returns 1 if the caller may change the pipeline, 0 if the answer is pending (the handler returns
 * 1 and replies later), or a negative error (AccessDenied set). */
int bus_verify_manage(sd_bus_message *message, Manager *m, sd_bus_message_handler_t handler,
                             sd_bus_error *error) {
        _cleanup_(sd_bus_creds_unrefp) sd_bus_creds *creds = NULL;
        PolkitQuery *q;
        uid_t euid;
        int r;

        LIST_FOREACH(queries, i, m->polkit_queries)
                if (i->request == message) {
                        if (!i->done)
                                return 0;
                        if (i->authorized)
                                return 1;
                        return bus_denied(message, error,
                                          "Changing the pipeline needs root or the polkit action " DPIPED_POLKIT_ACTION ".");
                }

        r = sd_bus_query_sender_creds(message, SD_BUS_CREDS_EUID, &creds);
        if (r >= 0)
                r = sd_bus_creds_get_euid(creds, &euid);
        if (r >= 0 && euid == 0)
                return 1;
        /* On the user's own session bus the user is in charge of their own pipeline. */
        if (r >= 0 && m->user_bus && euid == geteuid())
                return 1;
        if (m->user_bus)
                return bus_denied(message, error, "Only the owner may change the pipeline.");

        q = calloc(1, sizeof(PolkitQuery));
        if (!q)
                return -ENOMEM;
        q->manager = m;
        q->handler = handler;
        q->request = sd_bus_message_ref(message);
        LIST_PREPEND(queries, m->polkit_queries, q);

        r = sd_bus_call_method_async(
                        sd_bus_message_get_bus(message), &q->slot, "org.freedesktop.PolicyKit1",
                        "/org/freedesktop/PolicyKit1/Authority", "org.freedesktop.PolicyKit1.Authority",
                        "CheckAuthorization", polkit_reply_handler, q, "(sa{sv})sa{ss}us", "system-bus-name", 1, "name",
                        "s", sd_bus_message_get_sender(message), DPIPED_POLKIT_ACTION, 0,
                        (uint32_t) sd_bus_message_get_allow_interactive_authorization(message), "");
        if (r < 0) {
                polkit_query_free(q);
                return bus_denied(message, error, "Changing the pipeline needs root.");
        }
        return 0;
}
