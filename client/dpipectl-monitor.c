/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* monitor: print source changes as dpiped announces them (PropertiesChanged, SourceAdded,
 * SourceRemoved), one line each, until SIGINT/SIGTERM. */

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-event.h>

#include "dpipectl.h"
#include "json-util.h"
#include "log.h"
#include "util.h"

/* "demo" for a source object, "pipeline" for the manager. Returns malloc'ed text. */
static char *object_label(const char *path) {
        char *name = NULL;

        if (sd_bus_path_decode(path, DPIPED_BUS_SOURCE_PREFIX, &name) > 0)
                return name;
        return strdup(streq(path, DPIPED_BUS_PATH) ? "pipeline" : path);
}

static void print_event(struct json_object *o) {
        if (arg_json)
                json_print_event(o);
        fflush(stdout);
}

static int on_properties_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        _cleanup_json_ struct json_object *props = NULL, *ev = NULL;
        _cleanup_free_ char *label = NULL;
        const char *iface, *path = sd_bus_message_get_path(m);
        int r;

        r = sd_bus_message_read(m, "s", &iface);
        if (r < 0 || strncmp(iface, DPIPED_BUS_NAME ".", strlen(DPIPED_BUS_NAME ".")) != 0)
                return 0;
        r = bus_message_read_properties_json(m, &props);
        if (r < 0)
                return 0;
        label = object_label(path);
        if (!label)
                return log_oom();

        if (!arg_json) {
                const char *state = json_get_string(props, "State"), *color = source_state_color(state);
                bool first = true;

                printf("%s:", label);
                json_object_object_foreach(props, key, val) {
                        printf(first ? " " : ", ");
                        first = false;
                        if (streq(key, "State"))
                                printf("%s=%s%s%s", key, ansi(color ?: ""), state, ansi(color ? ANSI_NORMAL : ""));
                        else
                                printf("%s=%s", key, json_object_is_type(val, json_type_string) ? json_object_get_string(val)
                                                                                                 : json_object_to_json_string(val));
                }
                /* Invalidated properties are announced without a value. */
                if (sd_bus_message_enter_container(m, 'a', "s") > 0) {
                        const char *inv;

                        while (sd_bus_message_read_basic(m, 's', &inv) > 0) {
                                printf("%s%s (changed)", first ? " " : ", ", inv);
                                first = false;
                        }
                }
                putchar('\n');
                fflush(stdout);
                return 0;
        }

        ev = json_object_new_object();
        if (!ev)
                return log_oom();
        (void) json_object_object_add(ev, "event", json_object_new_string("PropertiesChanged"));
        (void) json_object_object_add(ev, "object", json_object_new_string(label));
        (void) json_object_object_add(ev, "path", json_object_new_string(path));
        (void) json_object_object_add(ev, "properties", TAKE_PTR(props));
        print_event(ev);
        return 0;
}

static int on_source_signal(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        _cleanup_json_ struct json_object *ev = NULL;
        const char *member = sd_bus_message_get_member(m), *name, *path;
        int r;

        r = sd_bus_message_read(m, "so", &name, &path);
        if (r < 0)
                return 0;
        if (!arg_json) {
                printf("%s: %s%s%s\n", name, ansi(ANSI_HIGHLIGHT),
                       streq_ptr(member, "SourceAdded") ? "added" : "removed", ansi(ANSI_NORMAL));
                fflush(stdout);
                return 0;
        }
        ev = json_object_new_object();
        if (!ev)
                return log_oom();
        (void) json_object_object_add(ev, "event", json_object_new_string(member));
        (void) json_object_object_add(ev, "name", json_object_new_string(name));
        (void) json_object_object_add(ev, "path", json_object_new_string(path));
        print_event(ev);
        return 0;
}

static int on_name_owner_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        const char *name, *old_owner, *new_owner;

        if (sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) < 0)
                return 0;
        if (arg_json) {
                _cleanup_json_ struct json_object *ev = json_object_new_object();

                if (!ev)
                        return log_oom();
                (void) json_object_object_add(ev, "event", json_object_new_string(isempty(new_owner) ? "ServiceStopped" : "ServiceStarted"));
                print_event(ev);
        } else {
                printf("pipeline: dpiped %s\n", isempty(new_owner) ? "left the bus" : "is on the bus");
                fflush(stdout);
        }
        return 0;
}

int verb_monitor(sd_bus *bus, int argc, char **argv) {
        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        sigset_t mask;
        int r;

        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        (void) sigprocmask(SIG_BLOCK, &mask, NULL);

        r = sd_event_default(&event);
        if (r >= 0)
                r = sd_event_add_signal(event, NULL, SIGTERM, NULL, NULL);
        if (r >= 0)
                r = sd_event_add_signal(event, NULL, SIGINT, NULL, NULL);
        if (r >= 0)
                r = sd_bus_attach_event(bus, event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the event loop: %m"), EXIT_FAILURE;

        r = sd_bus_match_signal(bus, NULL, DPIPED_BUS_NAME, NULL, "org.freedesktop.DBus.Properties", "PropertiesChanged",
                                on_properties_changed, NULL);
        if (r >= 0)
                r = sd_bus_match_signal(bus, NULL, DPIPED_BUS_NAME, DPIPED_BUS_PATH, DPIPED_MANAGER_INTERFACE, "SourceAdded", on_source_signal, NULL);
        if (r >= 0)
                r = sd_bus_match_signal(bus, NULL, DPIPED_BUS_NAME, DPIPED_BUS_PATH, DPIPED_MANAGER_INTERFACE, "SourceRemoved", on_source_signal, NULL);
        if (r >= 0)
                r = sd_bus_add_match(bus, NULL,
                                     "type='signal',sender='org.freedesktop.DBus',interface='org.freedesktop.DBus',"
                                     "member='NameOwnerChanged',arg0='" DPIPED_BUS_NAME "'",
                                     on_name_owner_changed, NULL);
        if (r < 0)
                return log_error_errno(r, "Failed to subscribe to the pipeline's signals: %m"), EXIT_FAILURE;

        /* sd_bus_add_match() waits for the bus to confirm each match: from here on nothing is missed,
         * which the banner tells (scripts may wait for it). */
        if (!arg_json && !arg_no_legend && !arg_quiet) {
                printf("Monitoring %s, press Ctrl-C to stop.\n", DPIPED_BUS_NAME);
                fflush(stdout);
        }

        r = sd_event_loop(event);
        if (r < 0)
                return log_error_errno(r, "Event loop failed: %m"), EXIT_FAILURE;
        return EXIT_SUCCESS;
}
