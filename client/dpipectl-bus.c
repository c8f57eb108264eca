/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bus-json.h"
#include "bus-names.h"
#include "dpipectl.h"
#include "json-util.h"
#include "macro.h"

SourceHealth source_health(struct json_object *props, const char *state, uint64_t now) {
        uint64_t since = 0;

        if (streq_ptr(state, "active") || streq_ptr(state, "paused"))
                return SOURCE_HEALTH_OK;
        if (streq_ptr(state, "failed"))
                return SOURCE_HEALTH_FAILED;
        /* Connecting is what a source does for a moment after a start; for longer it is stuck (a
         * peer that never answers, a connector that never reports). */
        if (streq_ptr(state, "connecting") && json_get_uint64(props, "StateChangeUSec", &since) && since > 0 &&
            now < since + CONNECTING_STUCK_USEC)
                return SOURCE_HEALTH_OK;
        if (streq_ptr(state, "connecting") && !json_get_uint64(props, "StateChangeUSec", &since))
                return SOURCE_HEALTH_OK; /* an older dpiped: no way to tell */
        return SOURCE_HEALTH_DEGRADED;
}

const char *source_state_color(const char *state) {
        if (streq_ptr(state, "active"))
                return ANSI_HIGHLIGHT_GREEN;
        if (streq_ptr(state, "failed"))
                return ANSI_HIGHLIGHT_RED;
        if (streq_ptr(state, "connecting") || streq_ptr(state, "backoff") || streq_ptr(state, "degraded"))
                return ANSI_YELLOW;
        if (streq_ptr(state, "paused"))
                return ANSI_GREY;
        return NULL;
}

int bus_message_read_properties_json(sd_bus_message *m, struct json_object **ret) {
        /* Properties of types we do not show are left out. */
        return bus_message_read_dict_json(m, BUS_JSON_ARRAYS | BUS_JSON_SKIP_UNSUPPORTED, ret, NULL, NULL);
}

int bus_get_all_properties_json(sd_bus *bus, const char *path, const char *iface, sd_bus_error *error,
                                struct json_object **ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_call_method(bus, DPIPED_BUS_NAME, path, "org.freedesktop.DBus.Properties", "GetAll", error, &reply,
                               "s", iface);
        if (r < 0)
                return r;
        return bus_message_read_properties_json(reply, ret);
}

const char *bus_error_text(const sd_bus_error *e, int r) {
        if (e && sd_bus_error_has_name(e, SD_BUS_ERROR_ACCESS_DENIED)) {
                static char buf[512];

                /* dbus-daemon's refusal reads "Rejected send message, 1 matched rules; type=..." and
                 * lists its rule; dpiped's own (polkit said no) gives its reason. Say both in words. */
                if (!arg_verb_changes)
                        return "Access denied: the D-Bus policy does not let you read the pipeline "
                               "(is org.dpipe.Pipeline1.conf installed where dbus-daemon reads it, and dbus reloaded? "
                               "see dpipectl(1))";
                if (isempty(e->message) || strncmp(e->message, "Rejected send message", 21) == 0)
                        return "Access denied: changing the pipeline over D-Bus needs root, or polkit's "
                               "org.dpipe.pipeline1.manage (see dpipectl(1))";
                snprintf(buf, sizeof(buf), "Access denied: %s (see dpipectl(1))", e->message);
                return buf;
        }
        if (e && sd_bus_error_is_set(e)) {
                /* A missing service is better said in words than as a D-Bus error name. */
                if (sd_bus_error_has_name(e, "org.freedesktop.DBus.Error.ServiceUnknown") ||
                    sd_bus_error_has_name(e, "org.freedesktop.DBus.Error.NameHasNoOwner"))
                        return "dpiped is not running (" DPIPED_BUS_NAME " is not on the bus)";
                if (!isempty(e->message))
                        return e->message;
                return e->name;
        }
        errno = r < 0 ? -r : r;
        return strerror(errno);
}

int bus_error_exit_status(const sd_bus_error *e, int r) {
        if (e && (sd_bus_error_has_name(e, BUS_ERROR_NO_SUCH_SOURCE) || sd_bus_error_has_name(e, BUS_ERROR_NO_SUCH_SINK)))
                return EXIT_NO_SUCH_SOURCE;
        if (e && sd_bus_error_has_name(e, SD_BUS_ERROR_ACCESS_DENIED))
                return EXIT_DENIED;
        if (e && (sd_bus_error_has_name(e, "org.freedesktop.DBus.Error.ServiceUnknown") ||
                  sd_bus_error_has_name(e, "org.freedesktop.DBus.Error.NameHasNoOwner")))
                return EXIT_NOT_RUNNING;
        return EXIT_FAILURE;
}

#define JSON_PRETTY_FLAGS (JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE)
#define JSON_SHORT_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

void json_print(struct json_object *o) {
        bool pretty = arg_json_mode == JSON_PRETTY || (arg_json_mode == JSON_AUTO && isatty(STDOUT_FILENO));

        puts(json_object_to_json_string_ext(o, pretty ? JSON_PRETTY_FLAGS : JSON_SHORT_FLAGS));
}

int json_event_flags(void) {
        return arg_json_mode == JSON_PRETTY ? JSON_PRETTY_FLAGS : JSON_SHORT_FLAGS;
}

void json_print_event(struct json_object *o) {
        puts(json_object_to_json_string_ext(o, json_event_flags()));
}
