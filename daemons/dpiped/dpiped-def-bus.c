/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What the Source and Sink objects have in common on the bus: where a definition comes from
 * (FragmentPath, DropInPaths: dpipe.source(5), dpipe.sink(5)), and the list of object paths of a
 * node enumerator. */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dpiped-def-bus.h"
#include "log.h"

/* userdata is the object's DefFiles (the property's offset points there). */
int bus_property_get_fragment_path(sd_bus *bus, const char *path, const char *interface, const char *property,
                                   sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        const DefFiles *d = userdata;

        return sd_bus_message_append(reply, "s", d->fragment_path ?: "");
}

int bus_property_get_dropin_paths(sd_bus *bus, const char *path, const char *interface, const char *property,
                                  sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        const DefFiles *d = userdata;
        int r;

        r = sd_bus_message_open_container(reply, 'a', "s");
        if (r < 0)
                return r;
        for (size_t i = 0; d->dropin_paths && d->dropin_paths[i]; i++) {
                r = sd_bus_message_append_basic(reply, 's', d->dropin_paths[i]);
                if (r < 0)
                        return r;
        }
        return sd_bus_message_close_container(reply);
}

void bus_emit_files_changed(sd_bus *bus, const char *object_path, const char *interface, const char *name) {
        int r;

        if (!bus || !object_path)
                return;
        r = sd_bus_emit_properties_changed(bus, object_path, interface, "FragmentPath", "DropInPaths", NULL);
        if (r < 0)
                log_debug_errno(r, "Failed to emit PropertiesChanged for %s, ignoring: %m", name);
}

int bus_node_list_add(char ***l, size_t *n, const char *object_path) {
        char **k;

        k = realloc(*l, (*n + 2) * sizeof(char *));
        if (!k)
                return -ENOMEM;
        *l = k;
        k[*n] = strdup(object_path);
        if (!k[*n])
                return -ENOMEM;
        k[++*n] = NULL;
        return 0;
}

int bus_node_list_finish(char ***l, size_t n, int r, char ***ret) {
        if (r < 0) {
                for (size_t i = 0; *l && i < n; i++)
                        free((*l)[i]);
                free(*l);
                *l = NULL;
                return r;
        }
        if (!*l) {
                *l = calloc(1, sizeof(char *));
                if (!*l)
                        return -ENOMEM;
        }
        *ret = *l;
        *l = NULL;
        return 1;
}
