/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Manager.ListSubscriptions(): the subscriptions of the connected clients, for dpipectl top. The
 * same figures as the dpipe_subscription_* metrics (subscription_info()). */

#include <errno.h>

#include "dpiped-client.h"
#include "dpiped-manager.h"
#include "dpiped-subscription.h"
#include "log.h"
#include "util.h"

int method_list_subscriptions(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        Manager *m = userdata;
        uint64_t first, next;
        int r;

        manager_queue_bounds(m, &first, &next);
        r = sd_bus_message_new_method_return(message, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "(sssttttu)");
        if (r < 0)
                return r;
        for (Client *c = m->clients; c; c = c->clients_next) {
                _cleanup_(buffer_done) Buffer sources = {};
                Subscription *s = c->subscription;
                SubscriptionInfo i;

                if (!s)
                        continue;
                subscription_info(s, next, &i);
                for (size_t k = 0; k < s->n_sources; k++)
                        if (buffer_printf(&sources, "%s%s", k > 0 ? "," : "", s->sources[k]) < 0)
                                return -ENOMEM;
                if (buffer_append(&sources, "", 1) < 0)
                        return -ENOMEM;
                r = sd_bus_message_append(reply, "(sssttttu)", i.label, c->peer, buffer_begin(&sources), i.position,
                                          s->next_offset, i.lag, s->records_sent, (uint32_t) s->n_in_flight);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}
