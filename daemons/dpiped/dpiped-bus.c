/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <systemd/sd-id128.h>

#include "dpiped-audit.h"
#include "dpiped-manager.h"
#include "dpiped-source.h"
#include "json-util.h"
#include "log.h"
#include "util.h"

/* ---- authorization ------------------------------------------------------------------------------
 *
 * The bus policy already lets only root call the changing methods. Here we check again (a session
 * bus has no such policy) and, for other callers, ask polkit about org.dpipe.pipeline1.manage when
 * it is on the bus. The polkit question is asynchronous: the method call is kept, and when the
 * answer arrives the method handler runs again from the start and finds the answer. */

typedef struct PolkitQuery {
        Manager *manager;
        struct PolkitQuery *next, *prev;
        sd_bus_message *request;
        sd_bus_message_handler_t handler;
        sd_bus_slot *slot;
        bool done;
        bool authorized;
} PolkitQuery;

static PolkitQuery *polkit_query_free(PolkitQuery *q) {
        if (!q)
                return NULL;
        if (q->prev)
                q->prev->next = q->next;
        else if (q->manager->polkit_queries == q)
                q->manager->polkit_queries = q->next;
        if (q->next)
                q->next->prev = q->prev;
        sd_bus_slot_unref(q->slot);
        sd_bus_message_unref(q->request);
        free(q);
        return NULL;
}

void manager_polkit_queries_free(Manager *m) {
        while (m->polkit_queries)
                polkit_query_free(m->polkit_queries);
}

static int polkit_reply_handler(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        PolkitQuery *q = userdata;
        int authorized = 0, challenge = 0, r;

        q->slot = sd_bus_slot_unref(q->slot);
        q->done = true;
        if (sd_bus_message_is_method_error(reply, NULL))
                log_debug("polkit is not available (%s), denying.", sd_bus_message_get_error(reply)->name);
        else {
                r = sd_bus_message_enter_container(reply, 'r', "bba{ss}");
                if (r >= 0)
                        r = sd_bus_message_read(reply, "bb", &authorized, &challenge);
                if (r < 0)
                        log_warning_errno(r, "Malformed reply from polkit, denying: %m");
                q->authorized = r >= 0 && authorized;
        }

        /* Run the method again: this time bus_verify_manage() finds the answer. */
        r = sd_bus_message_rewind(q->request, true);
        if (r >= 0)
                r = q->handler(q->request, q->manager, &error);
        if (r < 0)
                (void) sd_bus_reply_method_errno(q->request, r, &error);
        polkit_query_free(q);
        return 0;
}

/* The caller of a method, for the audit log: uid, pid and unit as the bus and /proc tell them. The
 * strings stay valid while *ret_creds is referenced. */
static void bus_actor(sd_bus_message *message, Actor *ret, sd_bus_creds **ret_creds) {
        sd_bus_creds *creds = NULL;

        *ret = (Actor) { .transport = ACTOR_DBUS, .uid = UID_INVALID, .bus_sender = sd_bus_message_get_sender(message) };
        if (sd_bus_query_sender_creds(message, SD_BUS_CREDS_EUID | SD_BUS_CREDS_PID | SD_BUS_CREDS_UNIT | SD_BUS_CREDS_AUGMENT,
                                      &creds) < 0) {
                *ret_creds = NULL;
                return;
        }
        (void) sd_bus_creds_get_euid(creds, &ret->uid);
        (void) sd_bus_creds_get_pid(creds, &ret->pid);
        (void) sd_bus_creds_get_unit(creds, &ret->unit);
        *ret_creds = creds;
}

static const char *bus_method_op(sd_bus_message *message) {
        const char *member = sd_bus_message_get_member(message);

        if (streq_ptr(member, "AddSource"))
                return "add_source";
        if (streq_ptr(member, "RemoveSource"))
                return "remove_source";
        if (streq_ptr(member, "PauseSource"))
                return "pause_source";
        if (streq_ptr(member, "ResumeSource"))
                return "resume_source";
        return member ?: "unknown";
}

/* A refused attempt, logged once, at notice. */
static int bus_denied(sd_bus_message *message, sd_bus_error *error, const char *why) {
        _cleanup_(sd_bus_creds_unrefp) sd_bus_creds *creds = NULL;
        const char *name = NULL;
        Actor actor;

        bus_actor(message, &actor, &creds);
        (void) sd_bus_message_rewind(message, true);
        (void) sd_bus_message_read_basic(message, 's', &name);
        audit_log(LOG_NOTICE, &actor, bus_method_op(message), name, true, "Refused %s of source %s (%s)",
                  bus_method_op(message), name ?: "?", why);
        return sd_bus_error_set(error, SD_BUS_ERROR_ACCESS_DENIED, why);
}

/* Returns 1 if the caller may change the pipeline, 0 if the answer is pending (the handler returns
 * 1 and replies later), or a negative error (AccessDenied set). */
static int bus_verify_manage(sd_bus_message *message, Manager *m, sd_bus_message_handler_t handler,
                             sd_bus_error *error) {
        _cleanup_(sd_bus_creds_unrefp) sd_bus_creds *creds = NULL;
        PolkitQuery *q;
        uid_t euid;
        int r;

        for (q = m->polkit_queries; q; q = q->next)
                if (q->request == message) {
                        if (!q->done)
                                return 0;
                        if (q->authorized)
                                return 1;
                        return bus_denied(message, error,
                                          "Changing the pipeline needs root or the polkit action " DPIPED_POLKIT_ACTION ".");
                }

        r = sd_bus_query_sender_creds(message, SD_BUS_CREDS_EUID, &creds);
        if (r >= 0)
                r = sd_bus_creds_get_euid(creds, &euid);
        if (r >= 0 && euid == 0)
                return 1;
        /* On the user's own session bus the user is in charge of their own pipeline. */
        if (r >= 0 && m->user_bus && euid == geteuid())
                return 1;
        if (m->user_bus)
                return bus_denied(message, error, "Only the owner may change the pipeline.");

        q = calloc(1, sizeof(PolkitQuery));
        if (!q)
                return -ENOMEM;
        q->manager = m;
        q->handler = handler;
        q->request = sd_bus_message_ref(message);
        q->next = m->polkit_queries;
        if (m->polkit_queries)
                m->polkit_queries->prev = q;
        m->polkit_queries = q;

        r = sd_bus_call_method_async(
                        sd_bus_message_get_bus(message), &q->slot, "org.freedesktop.PolicyKit1",
                        "/org/freedesktop/PolicyKit1/Authority", "org.freedesktop.PolicyKit1.Authority",
                        "CheckAuthorization", polkit_reply_handler, q, "(sa{sv})sa{ss}us", "system-bus-name", 1, "name",
                        "s", sd_bus_message_get_sender(message), DPIPED_POLKIT_ACTION, 0,
                        (uint32_t) sd_bus_message_get_allow_interactive_authorization(message), "");
        if (r < 0) {
                polkit_query_free(q);
                return bus_denied(message, error, "Changing the pipeline needs root.");
        }
        return 0;
}

/* ---- properties ---------------------------------------------------------------------------------- */

static int property_get_version(sd_bus *bus, const char *path, const char *interface, const char *property,
                                sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return sd_bus_message_append(reply, "s", dpipe_version());
}

static int property_get_queue_offset(sd_bus *bus, const char *path, const char *interface, const char *property,
                                     sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        uint64_t first, next;

        manager_queue_bounds(m, &first, &next);
        return sd_bus_message_append(reply, "t", streq(property, "QueueFirstOffset") ? first : next);
}

/* ---- methods ------------------------------------------------------------------------------------- */

/* a{sv} → JSON object, basic types only. */
static int bus_read_options(sd_bus_message *message, struct json_object **ret, sd_bus_error *error) {
        _cleanup_json_ struct json_object *o = json_object_new_object();
        int r;

        if (!o)
                return -ENOMEM;
        r = sd_bus_message_enter_container(message, 'a', "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(message, 'e', "sv")) > 0) {
                struct json_object *v = NULL;
                const char *key, *contents;
                char type;

                r = sd_bus_message_read(message, "s", &key);
                if (r < 0)
                        return r;
                r = sd_bus_message_peek_type(message, NULL, &contents);
                if (r < 0)
                        return r;
                r = sd_bus_message_enter_container(message, 'v', contents);
                if (r < 0)
                        return r;
                type = contents[0];
                if (strlen(contents) != 1)
                        type = 0;
                switch (type) {
                case 's': {
                        const char *s;
                        r = sd_bus_message_read_basic(message, 's', &s);
                        v = r >= 0 ? json_object_new_string(s) : NULL;
                        break;
                }
                case 'b': {
                        int b;
                        r = sd_bus_message_read_basic(message, 'b', &b);
                        v = r >= 0 ? json_object_new_boolean(b) : NULL;
                        break;
                }
                case 'y': case 'q': case 'u': case 't': {
                        uint64_t u = 0;
                        union { uint8_t y; uint16_t q; uint32_t u; uint64_t t; } x = {};
                        r = sd_bus_message_read_basic(message, type, &x);
                        u = type == 'y' ? x.y : type == 'q' ? x.q : type == 'u' ? x.u : x.t;
                        v = r >= 0 ? (u <= INT64_MAX ? json_object_new_int64((int64_t) u) : json_object_new_uint64(u)) : NULL;
                        break;
                }
                case 'n': case 'i': case 'x': {
                        union { int16_t n; int32_t i; int64_t x; } x = {};
                        r = sd_bus_message_read_basic(message, type, &x);
                        v = r >= 0 ? json_object_new_int64(type == 'n' ? x.n : type == 'i' ? x.i : x.x) : NULL;
                        break;
                }
                case 'd': {
                        double d;
                        r = sd_bus_message_read_basic(message, 'd', &d);
                        if (r >= 0 && !isfinite(d))
                                /* JSON has no NaN or Infinity: json-c would write them into the
                                 * registry file as they are, and nothing could read it back. */
                                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                         "Option \"%.64s\" is %s; options must be finite numbers.",
                                                         key, isnan(d) ? "NaN" : "infinite");
                        v = r >= 0 ? json_object_new_double(d) : NULL;
                        break;
                }
                default:
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                 "Option \"%.64s\" has type \"%.16s\"; options must be of a basic type.",
                                                 key, contents);
                }
                if (r < 0)
                        return r;
                if (!v || json_object_object_add(o, key, v) < 0) {
                        json_object_put(v);
                        return -ENOMEM;
                }
                r = sd_bus_message_exit_container(message);
                if (r >= 0)
                        r = sd_bus_message_exit_container(message);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        r = sd_bus_message_exit_container(message);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(o);
        return 0;
}

static int method_add_source(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_creds_unrefp) sd_bus_creds *creds = NULL;
        _cleanup_json_ struct json_object *options = NULL;
        Manager *m = userdata;
        Actor actor;
        const char *name, *type;
        Source *s;
        int r;

        /* 1. read */
        r = sd_bus_message_read(message, "ss", &name, &type);
        if (r < 0)
                return r;
        r = bus_read_options(message, &options, error);
        if (r < 0)
                return r;
        /* 2./3. validate what needs no state (the rest is checked by manager_add_source()); name is
         * never NULL after a successful read, which the compiler cannot know */
        if (!source_name_is_valid(name))
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "Invalid source name \"%.80s\": use 1-64 characters of [A-Za-z0-9_.-].",
                                         name ?: "");
        /* 4. authorize */
        r = bus_verify_manage(message, m, method_add_source, error);
        if (r < 0)
                return r;
        if (r == 0)
                return 1; /* polkit will call us again */
        /* 5./6. work, with named errors (and the audit line) */
        bus_actor(message, &actor, &creds);
        r = manager_add_source(m, name, type, options, &actor, &s, error);
        if (r < 0)
                return r;
        /* 7. reply (SourceAdded was emitted by the manager) */
        return sd_bus_reply_method_return(message, "o", s->object_path);
}

static int method_remove_source(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_creds_unrefp) sd_bus_creds *creds = NULL;
        Manager *m = userdata;
        Actor actor;
        const char *name;
        int r;

        r = sd_bus_message_read(message, "s", &name);
        if (r < 0)
                return r;
        if (!manager_find_source(m, name))
                return sd_bus_error_setf(error, BUS_ERROR_NO_SUCH_SOURCE, "No source named \"%.80s\".", name);
        r = bus_verify_manage(message, m, method_remove_source, error);
        if (r < 0)
                return r;
        if (r == 0)
                return 1;
        bus_actor(message, &actor, &creds);
        r = manager_remove_source(m, name, &actor, error);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(message, NULL);
}

static int method_pause_resume(sd_bus_message *message, Manager *m, bool pause, sd_bus_message_handler_t self,
                               sd_bus_error *error) {
        _cleanup_(sd_bus_creds_unrefp) sd_bus_creds *creds = NULL;
        const char *name;
        Actor actor;
        Source *s;
        int r;

        r = sd_bus_message_read(message, "s", &name);
        if (r < 0)
                return r;
        s = manager_find_source(m, name);
        if (!s)
                return sd_bus_error_setf(error, BUS_ERROR_NO_SUCH_SOURCE, "No source named \"%.80s\".", name);
        if (s->paused == pause)
                return sd_bus_reply_method_return(message, NULL); /* no-op, needs no privilege */
        r = bus_verify_manage(message, m, self, error);
        if (r < 0)
                return r;
        if (r == 0)
                return 1;
        bus_actor(message, &actor, &creds);
        r = manager_pause_source(m, name, pause, &actor, error);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(message, NULL);
}

static int method_pause_source(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        return method_pause_resume(message, userdata, true, method_pause_source, error);
}

static int method_resume_source(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        return method_pause_resume(message, userdata, false, method_resume_source, error);
}

static int method_list_sources(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        Manager *m = userdata;
        int r;

        r = sd_bus_message_new_method_return(message, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "(ssso)");
        if (r < 0)
                return r;
        for (Source *s = m->sources; s; s = s->next) {
                r = sd_bus_message_append(reply, "(ssso)", s->name, s->type, source_state_to_string(s->state),
                                          s->object_path);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static int method_get_source(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        const char *name;
        Source *s;
        int r;

        r = sd_bus_message_read(message, "s", &name);
        if (r < 0)
                return r;
        s = manager_find_source(m, name);
        if (!s)
                return sd_bus_error_setf(error, BUS_ERROR_NO_SUCH_SOURCE, "No source named \"%.80s\".", name);
        return sd_bus_reply_method_return(message, "o", s->object_path);
}

/* Clients is signalled on every connect and disconnect; the queue figures move with every record
 * and are not. */
static const sd_bus_vtable manager_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Version", "s", property_get_version, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("QueueFirstOffset", "t", property_get_queue_offset, 0, 0),
        SD_BUS_PROPERTY("QueueNextOffset", "t", property_get_queue_offset, 0, 0),
        SD_BUS_PROPERTY("Clients", "u", NULL, offsetof(Manager, n_clients), SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("RecordsWritten", "t", property_get_queue_offset, 0, 0),
        SD_BUS_METHOD_WITH_ARGS("AddSource",
                                SD_BUS_ARGS("s", name, "s", type, "a{sv}", options),
                                SD_BUS_RESULT("o", source),
                                method_add_source,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("RemoveSource",
                                SD_BUS_ARGS("s", name),
                                SD_BUS_NO_RESULT,
                                method_remove_source,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("PauseSource",
                                SD_BUS_ARGS("s", name),
                                SD_BUS_NO_RESULT,
                                method_pause_source,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ResumeSource",
                                SD_BUS_ARGS("s", name),
                                SD_BUS_NO_RESULT,
                                method_resume_source,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ListSources",
                                SD_BUS_NO_ARGS,
                                SD_BUS_RESULT("a(ssso)", sources),
                                method_list_sources,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetSource",
                                SD_BUS_ARGS("s", name),
                                SD_BUS_RESULT("o", source),
                                method_get_source,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_SIGNAL_WITH_ARGS("SourceAdded", SD_BUS_ARGS("s", name, "o", source), 0),
        SD_BUS_SIGNAL_WITH_ARGS("SourceRemoved", SD_BUS_ARGS("s", name, "o", source), 0),
        SD_BUS_VTABLE_END,
};

/* ---- signals ------------------------------------------------------------------------------------- */

void manager_emit_source_added(Manager *m, Source *s) {
        if (m->bus)
                (void) sd_bus_emit_signal(m->bus, DPIPED_BUS_PATH, DPIPED_MANAGER_INTERFACE, "SourceAdded", "so",
                                          s->name, s->object_path);
}

void manager_emit_source_removed(Manager *m, const char *name, const char *path) {
        if (m->bus)
                (void) sd_bus_emit_signal(m->bus, DPIPED_BUS_PATH, DPIPED_MANAGER_INTERFACE, "SourceRemoved", "so",
                                          name, path);
}

void manager_emit_clients_changed(Manager *m) {
        if (m->bus)
                (void) sd_bus_emit_properties_changed(m->bus, DPIPED_BUS_PATH, DPIPED_MANAGER_INTERFACE, "Clients",
                                                      NULL);
}

/* ---- setup --------------------------------------------------------------------------------------- */

static int bus_add_objects(sd_bus *bus, Manager *m) {
        int r;

        r = sd_bus_add_object_vtable(bus, NULL, DPIPED_BUS_PATH, DPIPED_MANAGER_INTERFACE, manager_vtable, m);
        if (r < 0)
                return r;
        r = sd_bus_add_fallback_vtable(bus, NULL, DPIPED_BUS_SOURCE_PREFIX, DPIPED_SOURCE_INTERFACE, source_vtable,
                                       source_object_find, m);
        if (r < 0)
                return r;
        return sd_bus_add_node_enumerator(bus, NULL, DPIPED_BUS_SOURCE_PREFIX, source_node_enumerator, m);
}

int manager_connect_bus(Manager *m) {
        int r;

        r = m->user_bus ? sd_bus_default_user(&m->bus) : sd_bus_default_system(&m->bus);
        if (r < 0)
                return log_error_errno(r, "Failed to connect to the %s bus: %m", m->user_bus ? "user" : "system");
        r = bus_add_objects(m->bus, m);
        if (r < 0)
                return log_error_errno(r, "Failed to register the D-Bus objects: %m");
        r = sd_bus_request_name(m->bus, DPIPED_BUS_NAME, 0);
        if (r == -EEXIST)
                return log_error_errno(r, "Failed to take the bus name " DPIPED_BUS_NAME ": another dpiped runs.");
        if (r < 0)
                return log_error_errno(r, "Failed to take the bus name " DPIPED_BUS_NAME
                                          " (is the D-Bus policy dbus/org.dpipe.Pipeline1.conf installed?): %m");
        r = sd_bus_attach_event(m->bus, m->event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0)
                return log_error_errno(r, "Failed to attach the bus to the event loop: %m");
        /* Without the bus there is no control plane: exit, systemd restarts us. */
        (void) sd_bus_set_exit_on_disconnect(m->bus, true);
        log_info("Serving " DPIPED_BUS_NAME " on the %s bus.", m->user_bus ? "user" : "system");
        return 0;
}

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
        _cleanup_free_ char *manager_xml = NULL, *source_xml = NULL;
        _cleanup_(source_freep) Source *s = NULL;
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

        r = bus_add_objects(server, &m);
        if (r >= 0)
                r = sd_bus_start(server);
        if (r >= 0)
                r = sd_bus_start(client);
        if (r >= 0)
                r = introspect_path(server, client, DPIPED_BUS_PATH, &manager_xml);
        if (r >= 0)
                r = introspect_path(server, client, s->object_path, &source_xml);
        if (r < 0)
                return log_error_errno(r, "Failed to introspect our own objects: %m");

        fputs("<!DOCTYPE node PUBLIC \"-//freedesktop//DTD D-BUS Object Introspection 1.0//EN\"\n"
              "\"http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd\">\n"
              "<node>\n",
              stdout);
        r = print_interface(manager_xml, DPIPED_MANAGER_INTERFACE);
        if (r >= 0)
                r = print_interface(source_xml, DPIPED_SOURCE_INTERFACE);
        if (r < 0)
                return log_error_errno(r, "Failed to find our interfaces in the introspection data: %m");
        fputs("</node>\n", stdout);
        return fflush(stdout) == 0 ? 0 : -EIO;
}
