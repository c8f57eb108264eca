/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* D-Bus a{sv} <-> JSON objects, for the options dpiped takes and shows and the properties
 * dpipectl prints: one mapping, so that a value looks the same on both sides.
 *
 *   s o g            string
 *   b                boolean
 *   y n q i u x t    integer (int64 where it fits, else uint64)
 *   d                number (finite only: JSON has no NaN or Infinity)
 *   as ao ag         array of strings (with BUS_JSON_ARRAYS)
 *
 * JSON to a{sv}: strings "s", booleans "b", integers "t" (negative ones "x"), numbers "d"; null,
 * arrays and objects as their JSON text in an "s". */

#include <json-c/json.h>
#include <systemd/sd-bus.h>

typedef enum BusJsonFlags {
        BUS_JSON_ARRAYS = 1 << 0,           /* take arrays of strings too */
        BUS_JSON_SKIP_UNSUPPORTED = 1 << 1, /* leave other types and non-finite numbers out instead of failing */
} BusJsonFlags;

/* Reads an a{sv} into a new JSON object. On a value it cannot take, returns -EOPNOTSUPP (another
 * type), -EDOM (a double that is NaN) or -ERANGE (an infinite one) and, where asked for, its key
 * and signature in *ret_bad_key and *ret_bad_type (valid while the message lives). */
int bus_message_read_dict_json(sd_bus_message *m, BusJsonFlags flags, struct json_object **ret,
                               const char **ret_bad_key, const char **ret_bad_type);

/* Appends a JSON object (NULL: none) as an a{sv}. */
int bus_message_append_dict_json(sd_bus_message *m, struct json_object *o);
