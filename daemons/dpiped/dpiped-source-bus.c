/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stddef.h>

#include "bus-json.h"
#include "dpiped-def-bus.h"
#include "dpiped-manager.h"
#include "dpiped-source.h"
#include "log.h"

static int property_get_state(sd_bus *bus, const char *path, const char *interface, const char *property,
                              sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Source *s = userdata;

        return sd_bus_message_append(reply, "s", source_state_to_string(s->state));
}

static int property_get_address(sd_bus *bus, const char *path, const char *interface, const char *property,
                                sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Source *s = userdata;

        return sd_bus_message_append(reply, "s", source_address(s));
}

static int property_get_paused(sd_bus *bus, const char *path, const char *interface, const char *property,
                               sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Source *s = userdata;

        return sd_bus_message_append(reply, "b", (int) s->paused);
}

static int property_get_options(sd_bus *bus, const char *path, const char *interface, const char *property,
                                sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Source *s = userdata;

        return bus_message_append_dict_json(reply, s->options);
}

/* State, LastError, Reconnects and Paused are signalled when they change; the counters move with
 * every record and are not (read them when needed), nor is LastSkipReason, which moves with every
 * skipped record. */
const sd_bus_vtable source_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Name", "s", NULL, offsetof(Source, name), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Type", "s", NULL, offsetof(Source, type), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Address", "s", property_get_address, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Options", "a{sv}", property_get_options, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("State", "s", property_get_state, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Paused", "b", property_get_paused, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("RecordsReceived", "t", NULL, offsetof(Source, records_received), 0),
        SD_BUS_PROPERTY("BytesReceived", "t", NULL, offsetof(Source, bytes_received), 0),
        SD_BUS_PROPERTY("LastRecordUSec", "t", NULL, offsetof(Source, last_record_usec), 0),
        SD_BUS_PROPERTY("LastHeartbeatUSec", "t", NULL, offsetof(Source, last_heartbeat_usec), 0),
        SD_BUS_PROPERTY("Reconnects", "u", NULL, offsetof(Source, reconnects), SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("LastError", "s", NULL, offsetof(Source, last_error), SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("RecordsSkipped", "t", NULL, offsetof(Source, records_skipped), 0),
        SD_BUS_PROPERTY("LastSkipReason", "s", NULL, offsetof(Source, last_skip_reason), 0),
        SD_BUS_PROPERTY("RecordsFiltered", "t", NULL, offsetof(Source, records_filtered), 0),
        /* dpipe.source(5): the file that defines the source, "" for a source of the API. */
        SD_BUS_PROPERTY("FragmentPath", "s", bus_property_get_fragment_path, offsetof(Source, files),
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("DropInPaths", "as", bus_property_get_dropin_paths, offsetof(Source, files),
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("LastErrorUSec", "t", NULL, offsetof(Source, last_error_usec), SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("StateChangeUSec", "t", NULL, offsetof(Source, state_change_usec), SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_VTABLE_END,
};

int source_object_find(sd_bus *bus, const char *path, const char *interface, void *userdata, void **found,
                       sd_bus_error *error) {
        _cleanup_free_ char *name = NULL;
        Manager *m = userdata;
        Source *s;
        int r;

        r = sd_bus_path_decode(path, DPIPED_BUS_SOURCE_PREFIX, &name);
        if (r <= 0)
                return r;
        s = manager_find_source(m, name);
        if (!s)
                return 0;
        *found = s;
        return 1;
}

int source_node_enumerator(sd_bus *bus, const char *path, void *userdata, char ***nodes, sd_bus_error *error) {
        Manager *m = userdata;
        char **l = NULL;
        size_t n = 0;
        int r = 0;

        LIST_FOREACH(sources, s, m->sources) {
                r = bus_node_list_add(&l, &n, s->object_path);
                if (r < 0)
                        break;
        }
        return bus_node_list_finish(&l, n, r, nodes);
}

void source_emit_state_changed(Source *s) {
        int r;

        if (!s->manager || !s->manager->bus || !s->object_path)
                return;
        r = sd_bus_emit_properties_changed(s->manager->bus, s->object_path, DPIPED_SOURCE_INTERFACE, "State",
                                           "Paused", "Reconnects", "LastError", "LastErrorUSec", "StateChangeUSec", NULL);
        if (r < 0)
                log_debug_errno(r, "Failed to emit PropertiesChanged for source %s, ignoring: %m", s->name);
}

void source_emit_files_changed(Source *s) {
        if (s->manager)
                bus_emit_files_changed(s->manager->bus, s->object_path, DPIPED_SOURCE_INTERFACE, s->name);
}
