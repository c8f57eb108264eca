/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The sink objects, /org/dpipe/Pipeline1/sink/<name escaped>, interface org.dpipe.Pipeline1.Sink. */

#include <errno.h>
#include <stddef.h>

#include "bus-json.h"
#include "dpiped-def-bus.h"
#include "dpiped-manager.h"
#include "dpiped-sink.h"
#include "log.h"

static int property_get_state(sd_bus *bus, const char *path, const char *interface, const char *property,
                              sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Sink *s = userdata;

        return sd_bus_message_append(reply, "s", sink_state_to_string(s->state));
}

static int property_get_address(sd_bus *bus, const char *path, const char *interface, const char *property,
                                sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Sink *s = userdata;

        return sd_bus_message_append(reply, "s", sink_address(s));
}

static int property_get_options(sd_bus *bus, const char *path, const char *interface, const char *property,
                                sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Sink *s = userdata;

        return bus_message_append_dict_json(reply, s->options);
}

/* State and LastError are signalled when they change; RecordsSent and Lag move with every batch and
 * are not (read them when needed). */
const sd_bus_vtable sink_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Name", "s", NULL, offsetof(Sink, name), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Type", "s", NULL, offsetof(Sink, type), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Address", "s", property_get_address, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Options", "a{sv}", property_get_options, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("State", "s", property_get_state, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("RecordsSent", "t", NULL, offsetof(Sink, records_sent), 0),
        SD_BUS_PROPERTY("Lag", "t", NULL, offsetof(Sink, lag), 0),
        SD_BUS_PROPERTY("LastError", "s", NULL, offsetof(Sink, last_error), SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        /* dpipe.sink(5): the file that defines the sink, "" for a sink of the API. */
        SD_BUS_PROPERTY("FragmentPath", "s", bus_property_get_fragment_path, offsetof(Sink, files),
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("DropInPaths", "as", bus_property_get_dropin_paths, offsetof(Sink, files),
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_VTABLE_END,
};

int sink_object_find(sd_bus *bus, const char *path, const char *interface, void *userdata, void **found,
                     sd_bus_error *error) {
        _cleanup_free_ char *name = NULL;
        Manager *m = userdata;
        Sink *s;
        int r;

        r = sd_bus_path_decode(path, DPIPED_BUS_SINK_PREFIX, &name);
        if (r <= 0)
                return r;
        s = manager_find_sink(m, name);
        if (!s)
                return 0;
        *found = s;
        return 1;
}

int sink_node_enumerator(sd_bus *bus, const char *path, void *userdata, char ***nodes, sd_bus_error *error) {
        Manager *m = userdata;
        char **l = NULL;
        size_t n = 0;
        int r = 0;

        for (Sink *s = m->sinks; s; s = s->next) {
                r = bus_node_list_add(&l, &n, s->object_path);
                if (r < 0)
                        break;
        }
        return bus_node_list_finish(&l, n, r, nodes);
}

void sink_emit_state_changed(Sink *s) {
        int r;

        if (!s->manager || !s->manager->bus || !s->object_path)
                return;
        r = sd_bus_emit_properties_changed(s->manager->bus, s->object_path, DPIPED_SINK_INTERFACE, "State", "LastError",
                                           NULL);
        if (r < 0)
                log_debug_errno(r, "Failed to emit PropertiesChanged for sink %s, ignoring: %m", s->name);
}

void sink_emit_files_changed(Sink *s) {
        if (s->manager)
                bus_emit_files_changed(s->manager->bus, s->object_path, DPIPED_SINK_INTERFACE, s->name);
}
