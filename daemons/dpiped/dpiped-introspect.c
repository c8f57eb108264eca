/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <systemd/sd-id128.h>

#include "dpiped-manager.h"
#include "dpiped-sink.h"
#include "dpiped-source.h"
#include "log.h"
#include "util.h"

/* ---- --bus-introspect ----------------------------------------------------------------------------
 *
 * Prints the XML of our interfaces exactly as sd-bus generates it for the running daemon: the
 * objects are registered on a private peer-to-peer connection over a socketpair and introspected
 * through it, so the output cannot drift from the vtables. */

typedef struct IntrospectCall {
        char *xml;
        int error;
        bool done;
} IntrospectCall;

static int introspect_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        IntrospectCall *c = userdata;
        const char *xml;
        int r;

        c->done = true;
        if (sd_bus_message_is_method_error(reply, NULL)) {
                c->error = -EIO;
                return 0;
        }
        r = sd_bus_message_read(reply, "s", &xml);
        if (r < 0) {
                c->error = r;
                return 0;
        }
        c->xml = strdup(xml);
        if (!c->xml)
                c->error = -ENOMEM;
        return 0;
}

static int introspect_path(sd_bus *server, sd_bus *client, const char *path, char **ret) {
        _cleanup_(sd_bus_slot_unrefp) sd_bus_slot *slot = NULL;
        IntrospectCall call = {};
        int r;

        r = sd_bus_call_method_async(client, &slot, NULL, path, "org.freedesktop.DBus.Introspectable", "Introspect",
                                     introspect_reply, &call, NULL);
        if (r < 0)
                return r;
        for (int i = 0; i < 1000 && !call.done; i++) {
                int a = sd_bus_process(server, NULL), b = sd_bus_process(client, NULL);
                if (a < 0)
                        return a;
                if (b < 0)
                        return b;
                if (a == 0 && b == 0) {
                        struct pollfd p[2] = {
                                { .fd = sd_bus_get_fd(server), .events = (short) sd_bus_get_events(server) },
                                { .fd = sd_bus_get_fd(client), .events = (short) sd_bus_get_events(client) },
                        };
                        (void) poll(p, 2, 10);
                }
        }
        if (!call.done)
                return -ETIMEDOUT;
        if (call.error < 0)
                return call.error;
        *ret = call.xml;
        return 0;
}

static int print_interface(const char *xml, const char *interface) {
        _cleanup_free_ char *open = NULL;
        const char *start, *end;

        if (asprintf(&open, " <interface name=\"%s\">", interface) < 0)
                return -ENOMEM;
        start = strstr(xml, open);
        if (!start)
                return -ENOENT;
        end = strstr(start, " </interface>\n");
        if (!end)
                return -EBADMSG;
        fwrite(start, 1, (size_t) (end - start) + strlen(" </interface>\n"), stdout);
        return 0;
}

int bus_introspect_print(void) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *server = NULL, *client = NULL;
        _cleanup_free_ char *manager_xml = NULL, *source_xml = NULL, *sink_xml = NULL;
        _cleanup_(source_freep) Source *s = NULL;
        _cleanup_(sink_freep) Sink *k = NULL;
        Manager m = {};
        sd_id128_t id;
        int pair[2], r;

        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, pair) < 0)
                return log_error_errno(errno, "Failed to create a socket pair: %m");
        r = sd_id128_randomize(&id);
        if (r >= 0)
                r = sd_bus_new(&server);
        if (r >= 0)
                r = sd_bus_set_fd(server, pair[0], pair[0]);
        if (r >= 0)
                r = sd_bus_set_server(server, 1, id);
        if (r >= 0)
                r = sd_bus_new(&client);
        if (r >= 0)
                r = sd_bus_set_fd(client, pair[1], pair[1]);
        if (r < 0) {
                safe_close(pair[0]);
                safe_close(pair[1]);
                return log_error_errno(r, "Failed to set up a private bus connection: %m");
        }

        /* One example source, so that the Source interface has an object to show. */
        r = source_new("example", "tcp", NULL, &s);
        if (r >= 0)
                r = sd_bus_path_encode(DPIPED_BUS_SOURCE_PREFIX, "example", &s->object_path);
        if (r < 0)
                return log_oom();
        m.sources = m.sources_tail = s;
        m.n_sources = 1;
        r = sink_new("example", "file", NULL, &k);
        if (r >= 0)
                r = sd_bus_path_encode(DPIPED_BUS_SINK_PREFIX, "example", &k->object_path);
        if (r < 0)
                return log_oom();
        m.sinks = m.sinks_tail = k;
        m.n_sinks = 1;

        r = bus_add_objects(server, &m);
        if (r >= 0)
                r = sd_bus_start(server);
        if (r >= 0)
                r = sd_bus_start(client);
        if (r >= 0)
                r = introspect_path(server, client, DPIPED_BUS_PATH, &manager_xml);
        if (r >= 0)
                r = introspect_path(server, client, s->object_path, &source_xml);
        if (r >= 0)
                r = introspect_path(server, client, k->object_path, &sink_xml);
        if (r < 0)
                return log_error_errno(r, "Failed to introspect our own objects: %m");

        fputs("<!DOCTYPE node PUBLIC \"-//freedesktop//DTD D-BUS Object Introspection 1.0//EN\"\n"
              "\"http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd\">\n"
              "<node>\n",
              stdout);
        r = print_interface(manager_xml, DPIPED_MANAGER_INTERFACE);
        if (r >= 0)
                r = print_interface(source_xml, DPIPED_SOURCE_INTERFACE);
        if (r >= 0)
                r = print_interface(sink_xml, DPIPED_SINK_INTERFACE);
        if (r < 0)
                return log_error_errno(r, "Failed to find our interfaces in the introspection data: %m");
        fputs("</node>\n", stdout);
        return fflush(stdout) == 0 ? 0 : -EIO;
}
