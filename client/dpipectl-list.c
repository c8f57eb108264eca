/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* list-sources and status: read-only views of the pipeline, from the D-Bus properties. */

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dpipectl.h"
#include "json-util.h"
#include "log.h"
#include "pager.h"
#include "table.h"
#include "util.h"

static int object_entry_compare(const void *a, const void *b) {
        return strcmp(((const ObjectEntry *) a)->name, ((const ObjectEntry *) b)->name);
}

void object_entries_free(ObjectEntry *e, size_t n) {
        for (size_t i = 0; i < n; i++)
                json_object_putp(&e[i].props);
        free(e);
}

int list_objects(sd_bus *bus, const char *method, const char *interface, const char *what, sd_bus_message **ret_reply,
                 ObjectEntry **ret, size_t *ret_n) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        ObjectEntry *entries = NULL;
        size_t n = 0;
        int r;

        r = sd_bus_call_method(bus, DPIPED_BUS_NAME, DPIPED_BUS_PATH, DPIPED_MANAGER_INTERFACE, method, &error, &reply, NULL);
        if (r < 0) {
                log_error("Failed to list %s: %s", what, bus_error_text(&error, r));
                return bus_error_exit_status(&error, r);
        }
        r = sd_bus_message_enter_container(reply, 'a', "(ssso)");
        if (r < 0)
                goto parse_error;
        for (;;) {
                ObjectEntry e = {};
                ObjectEntry *a;

                r = sd_bus_message_read(reply, "(ssso)", &e.name, &e.type, &e.state, &e.path);
                if (r < 0)
                        goto parse_error;
                if (r == 0)
                        break;
                a = realloc(entries, (n + 1) * sizeof(ObjectEntry));
                if (!a) {
                        object_entries_free(entries, n);
                        return log_oom();
                }
                entries = a;
                /* An object removed between the two calls just shows what the list said. */
                if (bus_get_all_properties_json(bus, e.path, interface, NULL, &e.props) < 0)
                        e.props = NULL;
                entries[n++] = e;
        }
        r = sd_bus_message_exit_container(reply);
        if (r < 0)
                goto parse_error;

        if (n > 0)
                qsort(entries, n, sizeof(ObjectEntry), object_entry_compare);
        *ret_reply = TAKE_PTR(reply);
        *ret = entries;
        *ret_n = n;
        return 0;

parse_error:
        object_entries_free(entries, n);
        return log_error_errno(r, "Failed to parse the %s reply: %m", method);
}

struct json_object *object_entry_json(const ObjectEntry *e) {
        struct json_object *o = e->props ? json_object_get(e->props) : json_object_new_object();

        if (!o)
                return NULL;
        if (!json_object_object_get_ex(o, "Name", NULL))
                (void) json_object_object_add(o, "Name", json_object_new_string(e->name));
        if (!json_object_object_get_ex(o, "Type", NULL))
                (void) json_object_object_add(o, "Type", json_object_new_string(e->type));
        if (!json_object_object_get_ex(o, "State", NULL))
                (void) json_object_object_add(o, "State", json_object_new_string(e->state));
        (void) json_object_object_add(o, "ObjectPath", json_object_new_string(e->path));
        return o;
}

static const char *source_entry_state(const ObjectEntry *e) {
        return json_get_string(e->props, "State") ?: e->state;
}

static unsigned terminal_columns(void) {
        const char *e = getenv("COLUMNS");
        uint32_t c;

        if (e && safe_atou32(e, &c) >= 0 && c > 0)
                return c;
        return 0; /* not limited: a pager scrolls sideways */
}

int verb_list_sources(sd_bus *bus, int argc, char **argv) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        ObjectEntry *entries = NULL;
        size_t n = 0;
        int r;

        r = list_objects(bus, "ListSources", DPIPED_SOURCE_INTERFACE, "sources", &reply, &entries, &n);
        if (r != 0)
                return r < 0 ? EXIT_FAILURE : r;

        if (arg_json)
                return object_entries_print_json(entries, n);

        _cleanup_(table_freep) Table *t = table_new(6, (const char *const[]) { "NAME", "TYPE", "STATE", "ADDRESS", "RECORDS", "SKIPPED" });
        if (!t) {
                object_entries_free(entries, n);
                return log_oom(), EXIT_FAILURE;
        }
        table_set_align_right(t, 4, true);
        table_set_align_right(t, 5, true);
        for (size_t i = 0; i < n; i++) {
                const ObjectEntry *e = &entries[i];
                const char *state = source_entry_state(e);
                uint64_t records, skipped;

                r = table_add_cell(t, e->name, NULL);
                if (r >= 0)
                        r = table_add_cell(t, e->type, NULL);
                if (r >= 0)
                        r = table_add_cell(t, state, source_state_color(state));
                if (r >= 0)
                        r = table_add_cell(t, json_get_string(e->props, "Address"), NULL);
                if (r >= 0) {
                        if (json_get_uint64(e->props, "RecordsReceived", &records))
                                r = table_add_cellf(t, NULL, "%" PRIu64, records);
                        else
                                r = table_add_cell(t, NULL, NULL);
                }
                if (r >= 0) {
                        if (json_get_uint64(e->props, "RecordsSkipped", &skipped))
                                r = table_add_cellf(t, skipped > 0 ? ANSI_YELLOW : NULL, "%" PRIu64, skipped);
                        else
                                r = table_add_cell(t, NULL, NULL);
                }
                if (r < 0)
                        break;
        }
        object_entries_free(entries, n);
        if (r < 0)
                return log_oom(), EXIT_FAILURE;
        return table_print_listing(t, "source", arg_colors ? terminal_columns() : 0);
}

int object_entries_print_json(ObjectEntry *entries, size_t n) {
        _cleanup_json_ struct json_object *a = json_object_new_array();

        for (size_t i = 0; a && i < n; i++)
                if (json_object_array_add(a, object_entry_json(&entries[i])) < 0)
                        json_object_putp(&a), a = NULL;
        object_entries_free(entries, n);
        if (!a)
                return log_oom(), EXIT_FAILURE;
        json_print(a);
        return EXIT_SUCCESS;
}

int table_print_listing(Table *t, const char *what, unsigned max_width) {
        _cleanup_(buffer_done) Buffer out = {};
        int r;

        r = table_format(t, &(TableFormat) { .header = !arg_no_legend, .colors = arg_colors, .max_width = max_width },
                         &out);
        if (r >= 0 && !arg_no_legend)
                r = buffer_printf(&out, "\n%zu %s%s listed.\n", table_get_rows(t), what, table_get_rows(t) == 1 ? "" : "s");
        if (r < 0)
                return log_oom(), EXIT_FAILURE;
        pager_open(arg_no_pager);
        if (buffer_size(&out) > 0) /* an empty table without legend is no output at all (and no storage) */
                fwrite(buffer_begin(&out), 1, buffer_size(&out), stdout);
        return EXIT_SUCCESS;
}

/* "Last record: Fri 2026-11-27 23:59:01 UTC; 3s ago" */
static void print_time_field(const char *label, struct json_object *props, const char *key) {
        char abs[64], rel[64];
        uint64_t t;

        if (!json_get_uint64(props, key, &t) || t == 0) {
                printf("%14s: n/a\n", label);
                return;
        }
        printf("%14s: %s; %s\n", label, format_timestamp(abs, sizeof(abs), t),
               format_timestamp_relative(rel, sizeof(rel), t, now_usec(CLOCK_REALTIME)));
}

static int status_source(sd_bus *bus, const char *name) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_json_ struct json_object *props = NULL;
        const char *path, *state, *err, *color;
        char bytes[32], rel[64];
        uint64_t records = 0, nbytes = 0, reconnects = 0, skipped = 0, filtered = 0;
        int r;

        r = sd_bus_call_method(bus, DPIPED_BUS_NAME, DPIPED_BUS_PATH, DPIPED_MANAGER_INTERFACE, "GetSource", &error, &reply, "s", name);
        if (r < 0) {
                log_error("Failed to get source %s: %s", name, bus_error_text(&error, r));
                return bus_error_exit_status(&error, r);
        }
        r = sd_bus_message_read(reply, "o", &path);
        if (r < 0)
                return log_error_errno(r, "Failed to parse the GetSource reply: %m"), EXIT_FAILURE;
        r = bus_get_all_properties_json(bus, path, DPIPED_SOURCE_INTERFACE, &error, &props);
        if (r < 0) {
                log_error("Failed to read the properties of source %s: %s", name, bus_error_text(&error, r));
                return bus_error_exit_status(&error, r);
        }
        if (arg_quiet)
                return EXIT_SUCCESS; /* the exit code says it: "dpipectl -q status demo && ..." */
        if (arg_json) {
                (void) json_object_object_add(props, "ObjectPath", json_object_new_string(path));
                json_print(props);
                return EXIT_SUCCESS;
        }

        pager_open(arg_no_pager);
        state = json_get_string(props, "State") ?: "unknown";
        color = source_state_color(state);
        err = json_get_string(props, "LastError");
        (void) json_get_uint64(props, "RecordsReceived", &records);
        (void) json_get_uint64(props, "BytesReceived", &nbytes);
        (void) json_get_uint64(props, "Reconnects", &reconnects);
        (void) json_get_uint64(props, "RecordsSkipped", &skipped);
        (void) json_get_uint64(props, "RecordsFiltered", &filtered);

        printf("%s●%s %s - %s source\n", ansi(color ?: ""), ansi(color ? ANSI_NORMAL : ""),
               json_get_string(props, "Name") ?: name, json_get_string(props, "Type") ?: "unknown");
        {
                char since[64] = "";
                uint64_t t = 0, now = now_usec(CLOCK_REALTIME);

                if (json_get_uint64(props, "StateChangeUSec", &t) && t > 0)
                        (void) snprintf(since, sizeof(since), " since %s", format_timestamp_relative(rel, sizeof(rel), t, now));
                if (source_health(props, state, now) != SOURCE_HEALTH_OK && streq(state, "connecting"))
                        color = ANSI_YELLOW;
                printf("%14s: %s%s%s%s\n", "State", ansi(color ?: ""), state, ansi(color ? ANSI_NORMAL : ""), since);
        }
        printf("%14s: %s\n", "Address", json_get_string(props, "Address") ?: "n/a");
        /* Where the definition comes from, like systemctl status's "Loaded:" and "Drop-In:". */
        const char *fragment = json_get_string(props, "FragmentPath");
        struct json_object *dropins = NULL;
        printf("%14s: %s\n", "Defined by", isempty(fragment) ? "the API (dpipectl add-source)" : fragment);
        if (json_object_object_get_ex(props, "DropInPaths", &dropins) && json_object_is_type(dropins, json_type_array))
                for (size_t i = 0; i < json_object_array_length(dropins); i++)
                        printf("%14s: %s\n", i == 0 ? "Drop-In" : "",
                               json_object_get_string(json_object_array_get_idx(dropins, i)));
        printf("%14s: %" PRIu64 " (%s)\n", "Records", records, format_bytes(bytes, sizeof(bytes), nbytes));
        if (skipped > 0) {
                const char *why = json_get_string(props, "LastSkipReason");

                printf("%14s: %s%" PRIu64 "%s%s%s%s\n", "Skipped", ansi(ANSI_YELLOW), skipped, ansi(ANSI_NORMAL),
                       isempty(why) ? "" : " (last: ", isempty(why) ? "" : why, isempty(why) ? "" : ")");
        }
        if (filtered > 0)
                printf("%14s: %" PRIu64 " (dropped by the transform's where)\n", "Filtered", filtered);
        print_time_field("Last record", props, "LastRecordUSec");
        print_time_field("Last heartbeat", props, "LastHeartbeatUSec");
        printf("%14s: %" PRIu64 "\n", "Reconnects", reconnects);
        if (!isempty(err)) {
                uint64_t t = 0, now = now_usec(CLOCK_REALTIME);
                /* The error stays after the source recovered: then it is history, in grey. */
                bool past = source_health(props, state, now) == SOURCE_HEALTH_OK;
                char when[64] = "";

                if (json_get_uint64(props, "LastErrorUSec", &t) && t > 0)
                        (void) snprintf(when, sizeof(when), " (%s%s)", format_timestamp_relative(rel, sizeof(rel), t, now),
                                        past ? ", recovered" : "");
                printf("%14s: %s%s%s%s\n", "Last error", ansi(past ? ANSI_GREY : ANSI_RED), err, when, ansi(ANSI_NORMAL));
        }
        printf("%14s: %s\n", "Object", path);
        return EXIT_SUCCESS;
}

static int status_pipeline(sd_bus *bus) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_json_ struct json_object *props = NULL;
        ObjectEntry *entries = NULL;
        size_t n = 0, active = 0, failed = 0, degraded = 0;
        uint64_t first = 0, next = 0, written = 0, clients = 0, now = now_usec(CLOCK_REALTIME);
        const char *dot;
        int r;

        r = bus_get_all_properties_json(bus, DPIPED_BUS_PATH, DPIPED_MANAGER_INTERFACE, &error, &props);
        if (r < 0) {
                log_error("Failed to read the pipeline's properties: %s", bus_error_text(&error, r));
                return bus_error_exit_status(&error, r);
        }
        r = list_objects(bus, "ListSources", DPIPED_SOURCE_INTERFACE, "sources", &reply, &entries, &n);
        if (r != 0)
                return r < 0 ? EXIT_FAILURE : r;

        for (size_t i = 0; i < n; i++) {
                const char *s = source_entry_state(&entries[i]);

                active += streq(s, "active");
                failed += streq(s, "failed");
                degraded += source_health(entries[i].props, s, now) == SOURCE_HEALTH_DEGRADED;
        }

        if (arg_json) {
                struct json_object *a = json_object_new_array();

                for (size_t i = 0; a && i < n; i++)
                        (void) json_object_array_add(a, object_entry_json(&entries[i]));
                object_entries_free(entries, n);
                if (!a || json_object_object_add(props, "Sources", a) < 0)
                        return log_oom(), EXIT_FAILURE;
                (void) json_object_object_add(props, "Health", json_object_new_string(
                        failed > 0 ? "failed" : degraded > 0 ? "degraded" : "healthy"));
                json_print(props);
                return failed > 0 || degraded > 0 ? EXIT_UNHEALTHY : EXIT_SUCCESS;
        }

        if (arg_quiet) {
                /* Like systemctl -q is-system-running: the exit code says it. */
                object_entries_free(entries, n);
                return failed > 0 || degraded > 0 ? EXIT_UNHEALTHY : EXIT_SUCCESS;
        }
        pager_open(arg_no_pager);
        (void) json_get_uint64(props, "QueueFirstOffset", &first);
        (void) json_get_uint64(props, "QueueNextOffset", &next);
        (void) json_get_uint64(props, "RecordsWritten", &written);
        (void) json_get_uint64(props, "Clients", &clients);

        /* Like systemctl is-system-running: green only when every source is healthy. */
        dot = failed > 0 ? ANSI_HIGHLIGHT_RED : degraded > 0 ? ANSI_YELLOW : ANSI_HIGHLIGHT_GREEN;
        printf("%s●%s dpipe pipeline (dpiped %s)\n", ansi(dot), ansi(ANSI_NORMAL), json_get_string(props, "Version") ?: "unknown");
        printf("%14s: %s%s%s\n", "Health", ansi(dot),
               failed > 0 ? "failed" : degraded > 0 ? "degraded" : "healthy", ansi(ANSI_NORMAL));
        if (next > first)
                printf("%14s: %" PRIu64 " record%s stored, offsets %" PRIu64 "..%" PRIu64 "\n", "Queue", next - first,
                       next - first == 1 ? "" : "s", first, next - 1);
        else
                printf("%14s: empty, next offset %" PRIu64 "\n", "Queue", next);
        printf("%14s: %" PRIu64 "\n", "Written", written);
        printf("%14s: %" PRIu64 "\n", "Clients", clients);
        if (degraded > 0)
                printf("%14s: %zu (%zu active, %zu need attention, %zu failed)\n", "Sources", n, active, degraded, failed);
        else
                printf("%14s: %zu (%zu active, %zu failed)\n", "Sources", n, active, failed);
        for (size_t i = 0; i < n; i++) {
                const ObjectEntry *e = &entries[i];
                const char *s = source_entry_state(e), *color = source_state_color(s);
                SourceHealth h = source_health(e->props, s, now);
                uint64_t skipped = 0;
                char extra[128] = "", rel[64];

                if (h != SOURCE_HEALTH_OK && streq(s, "connecting")) {
                        uint64_t t = 0;
                        (void) json_get_uint64(e->props, "StateChangeUSec", &t);
                        color = ANSI_YELLOW;
                        (void) snprintf(extra, sizeof(extra), " (connecting since %s)",
                                        format_timestamp_relative(rel, sizeof(rel), t, now));
                } else if (h != SOURCE_HEALTH_OK && !isempty(json_get_string(e->props, "LastError")))
                        (void) snprintf(extra, sizeof(extra), ": %.100s", json_get_string(e->props, "LastError"));
                else if (streq(s, "degraded") && json_get_uint64(e->props, "RecordsSkipped", &skipped))
                        (void) snprintf(extra, sizeof(extra), " (%" PRIu64 " skipped)", skipped);
                printf("%14s  %s %s%s%s %s (%s) %s%s\n", "", i + 1 < n ? "├─" : "└─", ansi(color ?: ""), s,
                       ansi(color ? ANSI_NORMAL : ""), e->name, e->type, json_get_string(e->props, "Address") ?: "", extra);
        }
        object_entries_free(entries, n);
        return failed > 0 || degraded > 0 ? EXIT_UNHEALTHY : EXIT_SUCCESS;
}

int verb_status(sd_bus *bus, int argc, char **argv) {
        int ret = EXIT_SUCCESS;

        if (argc < 2)
                return status_pipeline(bus);
        /* Several names: one block each, a blank line between them, like systemctl status. */
        for (int i = 1; i < argc; i++) {
                if (i > 1 && !arg_json && !arg_quiet)
                        putchar('\n');
                int k = status_source(bus, argv[i]);

                if (k != EXIT_SUCCESS && ret == EXIT_SUCCESS)
                        ret = k; /* the first failure's code, e.g. 4 for a name that does not exist */
        }
        return ret;
}
