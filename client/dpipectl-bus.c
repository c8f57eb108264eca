/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "dpipectl.h"
#include "json-util.h"
#include "macro.h"

const char *source_state_color(const char *state) {
        if (streq_ptr(state, "active"))
                return ANSI_HIGHLIGHT_GREEN;
        if (streq_ptr(state, "failed"))
                return ANSI_HIGHLIGHT_RED;
        if (streq_ptr(state, "connecting") || streq_ptr(state, "backoff"))
                return ANSI_YELLOW;
        if (streq_ptr(state, "paused"))
                return ANSI_GREY;
        return NULL;
}

static int read_basic_json(sd_bus_message *m, char type, struct json_object **ret) {
        union {
                uint8_t y;
                int16_t n;
                uint16_t q;
                int32_t i;
                uint32_t u;
                int64_t x;
                uint64_t t;
                double d;
                int b;
                const char *s;
        } v;
        struct json_object *o;
        int r;

        r = sd_bus_message_read_basic(m, type, &v);
        if (r < 0)
                return r;
        switch (type) {
        case 's':
        case 'o':
        case 'g':
                o = json_object_new_string(v.s);
                break;
        case 'b':
                o = json_object_new_boolean(v.b);
                break;
        case 'y':
                o = json_object_new_int(v.y);
                break;
        case 'n':
                o = json_object_new_int(v.n);
                break;
        case 'q':
                o = json_object_new_int(v.q);
                break;
        case 'i':
                o = json_object_new_int(v.i);
                break;
        case 'u':
                o = json_object_new_int64(v.u);
                break;
        case 'x':
                o = json_object_new_int64(v.x);
                break;
        case 't':
                o = json_object_new_uint64(v.t);
                break;
        case 'd':
                o = json_object_new_double(v.d);
                break;
        default:
                return -EOPNOTSUPP;
        }
        if (!o)
                return -ENOMEM;
        *ret = o;
        return 0;
}

/* The value of one variant; NULL (*ret) for types we do not show. */
static int read_variant_json(sd_bus_message *m, struct json_object **ret) {
        const char *contents;
        char type;
        int r;

        r = sd_bus_message_peek_type(m, &type, &contents);
        if (r < 0)
                return r;
        if (type != 'v')
                return -EBADMSG;
        r = sd_bus_message_enter_container(m, 'v', contents);
        if (r < 0)
                return r;

        *ret = NULL;
        if (strlen(contents) == 1 && strchr("sogbynqiuxtd", contents[0]))
                r = read_basic_json(m, contents[0], ret);
        else if (strlen(contents) == 2 && contents[0] == 'a' && strchr("sog", contents[1])) {
                _cleanup_json_ struct json_object *a = json_object_new_array();
                const char *s;

                if (!a)
                        return -ENOMEM;
                r = sd_bus_message_enter_container(m, 'a', contents + 1);
                if (r < 0)
                        return r;
                while ((r = sd_bus_message_read_basic(m, contents[1], &s)) > 0)
                        if (json_object_array_add(a, json_object_new_string(s)) < 0)
                                return -ENOMEM;
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(m);
                if (r >= 0)
                        *ret = TAKE_PTR(a);
        } else
                r = sd_bus_message_skip(m, contents);
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(m);
}

int bus_message_read_properties_json(sd_bus_message *m, struct json_object **ret) {
        _cleanup_json_ struct json_object *props = json_object_new_object();
        int r;

        if (!props)
                return -ENOMEM;
        r = sd_bus_message_enter_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
                struct json_object *v = NULL;
                const char *name;

                r = sd_bus_message_read_basic(m, 's', &name);
                if (r < 0)
                        return r;
                r = read_variant_json(m, &v);
                if (r < 0)
                        return r;
                if (v && json_object_object_add(props, name, v) < 0) {
                        json_object_put(v);
                        return -ENOMEM;
                }
                r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        r = sd_bus_message_exit_container(m);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(props);
        return 0;
}

int bus_get_all_properties_json(sd_bus *bus, const char *path, const char *iface, sd_bus_error *error,
                                struct json_object **ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_call_method(bus, BUS_NAME, path, "org.freedesktop.DBus.Properties", "GetAll", error, &reply,
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
                        return "dpiped is not running (" BUS_NAME " is not on the bus)";
                if (!isempty(e->message))
                        return e->message;
                return e->name;
        }
        errno = r < 0 ? -r : r;
        return strerror(errno);
}

int bus_error_exit_status(const sd_bus_error *e, int r) {
        if (e && sd_bus_error_has_name(e, "org.dpipe.Pipeline1.Error.NoSuchSource"))
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
