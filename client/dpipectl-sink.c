/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* list-sinks (dpipectl(1), dpipe-sink(7)); add-sink and remove-sink are add-source's and remove-source's
 * verbs in dpipectl.c, with AddSink and RemoveSink. */

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dpipectl.h"
#include "json-util.h"
#include "log.h"
#include "pager.h"
#include "table.h"
#include "util.h"

int verb_list_sinks(sd_bus *bus, int argc, char **argv) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(table_freep) Table *t = NULL;
        ObjectEntry *entries = NULL;
        size_t n = 0;
        int r;

        r = list_objects(bus, "ListSinks", DPIPED_SINK_INTERFACE, "sinks", &reply, &entries, &n);
        if (r != 0)
                return r < 0 ? EXIT_FAILURE : r;
        if (arg_json)
                return object_entries_print_json(entries, n);

        t = table_new(6, (const char *const[]) { "NAME", "TYPE", "STATE", "ADDRESS", "SENT", "LAG" });
        if (!t) {
                object_entries_free(entries, n);
                return log_oom(), EXIT_FAILURE;
        }
        table_set_align_right(t, 4, true);
        table_set_align_right(t, 5, true);
        r = 0;
        for (size_t i = 0; r >= 0 && i < n; i++) {
                const ObjectEntry *e = &entries[i];
                const char *state = json_get_string(e->props, "State") ?: e->state;
                uint64_t u;

                r = table_add_cell(t, e->name, NULL);
                if (r >= 0)
                        r = table_add_cell(t, e->type, NULL);
                if (r >= 0)
                        r = table_add_cell(t, state, source_state_color(state));
                if (r >= 0)
                        r = table_add_cell(t, json_get_string(e->props, "Address"), NULL);
                if (r >= 0)
                        r = json_get_uint64(e->props, "RecordsSent", &u) ? table_add_cellf(t, NULL, "%" PRIu64, u)
                                                                          : table_add_cell(t, NULL, NULL);
                if (r >= 0)
                        r = json_get_uint64(e->props, "Lag", &u) ? table_add_cellf(t, NULL, "%" PRIu64, u)
                                                                  : table_add_cell(t, NULL, NULL);
        }
        object_entries_free(entries, n);
        if (r < 0)
                return log_oom(), EXIT_FAILURE;
        return table_print_listing(t, "sink", 0);
}
