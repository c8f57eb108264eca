/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* add-sink, remove-sink, list-sinks (dpipectl(1), dpipe-sink(7)). Option values go as strings: which option
 * is a number is the sink type's business, and its daemon converts decimal strings. */

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

int verb_add_sink(sd_bus *bus, int argc, char **argv) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        const char *name = argv[1], *path;
        int r;

        r = sd_bus_message_new_method_call(bus, &m, DPIPED_BUS_NAME, DPIPED_BUS_PATH, DPIPED_MANAGER_INTERFACE, "AddSink");
        if (r >= 0)
                r = sd_bus_message_append(m, "ss", name, arg_type);
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r >= 0 && arg_address)
                r = sd_bus_message_append(m, "{sv}", "address", "s", arg_address);
        for (size_t i = 0; r >= 0 && i < arg_n_options; i++) {
                _cleanup_free_ char *key = NULL;
                const char *value;

                r = option_assignment_split(arg_options[i], &key, &value);
                if (r >= 0)
                        r = sd_bus_message_append(m, "{sv}", key, "s", value);
        }
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r < 0)
                return log_error_errno(r, "Failed to build the AddSink call: %m"), EXIT_FAILURE;

        r = sd_bus_call(bus, m, 0, &error, &reply);
        if (r < 0) {
                log_error("Failed to add sink %s: %s", name, bus_error_text(&error, r));
                return bus_error_exit_status(&error, r);
        }
        r = sd_bus_message_read(reply, "o", &path);
        if (r < 0)
                return log_error_errno(r, "Failed to parse the AddSink reply: %m"), EXIT_FAILURE;
        if (arg_json) {
                _cleanup_json_ struct json_object *o = json_object_new_object();

                if (!o || json_object_object_add(o, "name", json_object_new_string(name)) < 0 ||
                    json_object_object_add(o, "path", json_object_new_string(path)) < 0)
                        return log_oom(), EXIT_FAILURE;
                json_print(o);
        }
        return EXIT_SUCCESS;
}

int verb_remove_sink(sd_bus *bus, int argc, char **argv) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        int r, ret = EXIT_SUCCESS;

        for (int j = 1; j < argc; j++) {
                r = sd_bus_call_method(bus, DPIPED_BUS_NAME, DPIPED_BUS_PATH, DPIPED_MANAGER_INTERFACE, "RemoveSink", &error, NULL, "s",
                                       argv[j]);
                if (r < 0) {
                        log_error("Failed to remove sink %s: %s", argv[j], bus_error_text(&error, r));
                        if (ret == EXIT_SUCCESS)
                                ret = bus_error_exit_status(&error, r);
                        sd_bus_error_free(&error);
                }
        }
        return ret;
}

typedef struct SinkEntry {
        const char *name, *type, *state, *path; /* point into the reply */
        struct json_object *props;              /* GetAll of the sink; NULL if it vanished */
} SinkEntry;

static int sink_entry_compare(const void *a, const void *b) {
        return strcmp(((const SinkEntry *) a)->name, ((const SinkEntry *) b)->name);
}

static void sink_entries_free(SinkEntry *e, size_t n) {
        for (size_t i = 0; i < n; i++)
                json_object_putp(&e[i].props);
        free(e);
}

int verb_list_sinks(sd_bus *bus, int argc, char **argv) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(buffer_done) Buffer out = {};
        _cleanup_(table_freep) Table *t = NULL;
        SinkEntry *entries = NULL;
        size_t n = 0;
        int r;

        r = sd_bus_call_method(bus, DPIPED_BUS_NAME, DPIPED_BUS_PATH, DPIPED_MANAGER_INTERFACE, "ListSinks", &error, &reply, NULL);
        if (r < 0) {
                log_error("Failed to list sinks: %s", bus_error_text(&error, r));
                return bus_error_exit_status(&error, r);
        }
        r = sd_bus_message_enter_container(reply, 'a', "(ssso)");
        while (r >= 0) {
                SinkEntry e = {}, *a;

                r = sd_bus_message_read(reply, "(ssso)", &e.name, &e.type, &e.state, &e.path);
                if (r <= 0)
                        break;
                a = realloc(entries, (n + 1) * sizeof(SinkEntry));
                if (!a) {
                        sink_entries_free(entries, n);
                        return log_oom(), EXIT_FAILURE;
                }
                entries = a;
                if (bus_get_all_properties_json(bus, e.path, DPIPED_SINK_INTERFACE, NULL, &e.props) < 0)
                        e.props = NULL;
                entries[n++] = e;
        }
        if (r < 0) {
                sink_entries_free(entries, n);
                return log_error_errno(r, "Failed to parse the ListSinks reply: %m"), EXIT_FAILURE;
        }
        if (n > 0)
                qsort(entries, n, sizeof(SinkEntry), sink_entry_compare);

        if (arg_json) {
                _cleanup_json_ struct json_object *a = json_object_new_array();

                for (size_t i = 0; a && i < n; i++) {
                        struct json_object *o = entries[i].props ? json_object_get(entries[i].props)
                                                                 : json_object_new_object();
                        if (!o || json_object_array_add(a, o) < 0) {
                                json_object_put(o);
                                json_object_putp(&a);
                                break;
                        }
                        if (!json_object_object_get_ex(o, "Name", NULL))
                                json_object_object_add(o, "Name", json_object_new_string(entries[i].name));
                        if (!json_object_object_get_ex(o, "Type", NULL))
                                json_object_object_add(o, "Type", json_object_new_string(entries[i].type));
                        if (!json_object_object_get_ex(o, "State", NULL))
                                json_object_object_add(o, "State", json_object_new_string(entries[i].state));
                        json_object_object_add(o, "ObjectPath", json_object_new_string(entries[i].path));
                }
                sink_entries_free(entries, n);
                if (!a)
                        return log_oom(), EXIT_FAILURE;
                json_print(a);
                return EXIT_SUCCESS;
        }

        t = table_new(6, (const char *const[]) { "NAME", "TYPE", "STATE", "ADDRESS", "SENT", "LAG" });
        if (!t) {
                sink_entries_free(entries, n);
                return log_oom(), EXIT_FAILURE;
        }
        table_set_align_right(t, 4, true);
        table_set_align_right(t, 5, true);
        r = 0;
        for (size_t i = 0; r >= 0 && i < n; i++) {
                const SinkEntry *e = &entries[i];
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
        sink_entries_free(entries, n);
        if (r >= 0)
                r = table_format(t, &(TableFormat) { .header = !arg_no_legend, .colors = arg_colors }, &out);
        if (r >= 0 && !arg_no_legend)
                r = buffer_printf(&out, "\n%zu sink%s listed.\n", table_get_rows(t), table_get_rows(t) == 1 ? "" : "s");
        if (r < 0)
                return log_oom(), EXIT_FAILURE;
        pager_open(arg_no_pager);
        if (buffer_size(&out) > 0) /* an empty table without legend is no output at all */
                fwrite(buffer_begin(&out), 1, buffer_size(&out), stdout);
        return EXIT_SUCCESS;
}
