/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>
#include <systemd/sd-bus.h>

#include "dpiped-def-file.h"

/* FragmentPath s and DropInPaths as: SD_BUS_PROPERTY(..., offsetof(Object, files), ...). */
int bus_property_get_fragment_path(sd_bus *bus, const char *path, const char *interface, const char *property,
                                   sd_bus_message *reply, void *userdata, sd_bus_error *error);
int bus_property_get_dropin_paths(sd_bus *bus, const char *path, const char *interface, const char *property,
                                  sd_bus_message *reply, void *userdata, sd_bus_error *error);
/* PropertiesChanged for both; name is the object's, for the log. */
void bus_emit_files_changed(sd_bus *bus, const char *object_path, const char *interface, const char *name);

/* A node enumerator's list: add each path (the list stays NULL-terminated), then finish with the
 * last error or 0: frees the list on error, else hands it to *ret (an empty one when nothing was
 * added) and returns 1. */
int bus_node_list_add(char ***l, size_t *n, const char *object_path);
int bus_node_list_finish(char ***l, size_t n, int r, char ***ret);
