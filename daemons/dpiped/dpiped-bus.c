/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "bus-json.h"
#include "dpiped-audit.h"
#include "dpiped-manager.h"
#include "dpiped-polkit.h"
#include "dpiped-sink.h"
#include "dpiped-source.h"
#include "json-util.h"
#include "log.h"
#include "util.h"

/* The Manager object: properties, method handlers (in the seven steps: read, normalise, validate,
 * authorize (dpiped-polkit.c), work (dpiped-manager.c), map errors, reply), the vtable, signals, and
 * connecting to the bus. The Source objects are in dpiped-source-bus.c, --bus-introspect in
 * dpiped-introspect.c. */

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

/* a{sv} → JSON object, basic types only (common/bus-json.c), with the refusal named. */
static int bus_read_options(sd_bus_message *message, struct json_object **ret, sd_bus_error *error) {
        const char *key = NULL, *type = NULL;
        int r;

        r = bus_message_read_dict_json(message, 0, ret, &key, &type);
        if (r == -EDOM || r == -ERANGE)
                /* JSON has no NaN or Infinity: json-c would write them into the registry file as
                 * they are, and nothing could read it back. */
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "Option \"%.64s\" is %s; options must be finite numbers.", key,
                                         r == -EDOM ? "NaN" : "infinite");
        if (r == -EOPNOTSUPP)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "Option \"%.64s\" has type \"%.16s\"; options must be of a basic type.",
                                         key, type);
        return r;
}

/* What the Add/Remove/Get methods of sources and sinks differ in. */
typedef struct BusKind {
        const DefOps *ops; /* find, iterate, what, the name rule */
        const char *no_such; /* the error of an unknown name */
        int (*check)(Manager *m, const char *name, const char *type, struct json_object *options,
                     option_check_handler_t handler, void *userdata, OptionCheck **ret_check,
                     OptionCheckResult *ret_result, sd_bus_error *error);
        /* The add itself, once the daemon answered. */
        int (*add)(Manager *m, const char *name, const char *type, struct json_object *options,
                   const OptionCheckAnswer *check, const Actor *actor, sd_bus_error *error);
        int (*remove)(Manager *m, const char *name, const Actor *actor, sd_bus_error *error);
} BusKind;

static int source_add(Manager *m, const char *name, const char *type, struct json_object *options,
                      const OptionCheckAnswer *check, const Actor *actor, sd_bus_error *error) {
        return manager_add_source(m, name, type, options, check, actor, NULL, error);
}

static int sink_add(Manager *m, const char *name, const char *type, struct json_object *options,
                    const OptionCheckAnswer *check, const Actor *actor, sd_bus_error *error) {
        return manager_add_sink(m, name, type, options, check, actor, NULL, error);
}

static const BusKind bus_kind_source = {
        .ops = &def_ops_source,
        .no_such = BUS_ERROR_NO_SUCH_SOURCE,
        .check = manager_add_source_check,
        .add = source_add,
        .remove = manager_remove_source,
};

static const BusKind bus_kind_sink = {
        .ops = &def_ops_sink,
        .no_such = BUS_ERROR_NO_SUCH_SINK,
        .check = manager_add_sink_check,
        .add = sink_add,
        .remove = manager_remove_sink,
};

/* The object path of name, or NULL. */
static const char *bus_kind_path(const BusKind *kind, Manager *m, const char *name) {
        void *o = kind->ops->find(m, name);
        return o ? kind->ops->object_path(o) : NULL;
}

/* An AddSource or AddSink call waiting for the daemon's check of its options. */
typedef struct BusAdd {
        Manager *manager;
        const BusKind *kind;
        sd_bus_message *request;
} BusAdd;

/* 5.-7. of AddSource/AddSink, once the daemon has checked the options: work, errors, reply. */
static int bus_add_finish(sd_bus_message *message, Manager *m, const BusKind *kind, const OptionCheckAnswer *check,
                          sd_bus_error *error) {
        _cleanup_(sd_bus_creds_unrefp) sd_bus_creds *creds = NULL;
        _cleanup_json_ struct json_object *options = NULL;
        const char *name, *type, *path;
        Actor actor;
        int r;

        r = sd_bus_message_rewind(message, true);
        if (r < 0)
                return r;
        r = sd_bus_message_read(message, "ss", &name, &type);
        if (r < 0)
                return r;
        r = bus_read_options(message, &options, error);
        if (r < 0)
                return r;
        bus_actor(message, &actor, &creds);
        r = kind->add(m, name, type, options, check, &actor, error);
        if (r < 0)
                return r;
        path = bus_kind_path(kind, m, name);
        /* SourceAdded/SinkAdded was emitted by the manager */
        return sd_bus_reply_method_return(message, "o", path);
}

static void bus_add_checked(const OptionCheckAnswer *answer, void *userdata) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        BusAdd *a = userdata;
        int r;

        r = bus_add_finish(a->request, a->manager, a->kind, answer, &error);
        if (r < 0)
                (void) sd_bus_reply_method_errno(a->request, r, &error);
        sd_bus_message_unref(a->request);
        free(a);
}

static void bus_add_cancelled(void *userdata) {
        BusAdd *a = userdata;

        sd_bus_message_unref(a->request);
        free(a);
}

static int method_add(sd_bus_message *message, Manager *m, const BusKind *kind, sd_bus_message_handler_t self,
                      sd_bus_error *error) {
        _cleanup_json_ struct json_object *options = NULL;
        OptionCheckResult check;
        OptionCheck *q;
        BusAdd *a;
        const char *name, *type;
        int r;

        /* 1. read */
        r = sd_bus_message_read(message, "ss", &name, &type);
        if (r < 0)
                return r;
        r = bus_read_options(message, &options, error);
        if (r < 0)
                return r;
        /* 2./3. validate what needs no state (the rest is checked by the manager); name is never
         * NULL after a successful read, which the compiler cannot know */
        if (!kind->ops->file_kind->name_is_valid(name))
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Invalid %s name \"%.80s\": use %s.",
                                         kind->ops->file_kind->what, name ?: "", kind->ops->file_kind->name_rule);
        /* 4. authorize */
        r = bus_verify_manage(message, m, self, error);
        if (r < 0)
                return r;
        if (r == 0)
                return 1; /* polkit will call us again */
        /* the rest of 3.: the type's daemon checks the options, which may take a while (it may have
         * to be started); the reply waits for it */
        a = calloc(1, sizeof(BusAdd));
        if (!a)
                return -ENOMEM;
        *a = (BusAdd) { .manager = m, .kind = kind, .request = sd_bus_message_ref(message) };
        r = kind->check(m, name, type, options, bus_add_checked, a, &q, &check, error);
        if (r <= 0)
                bus_add_cancelled(a);
        if (r < 0)
                return r;
        if (r > 0) {
                option_check_set_destroy(q, bus_add_cancelled);
                return 1;
        }
        /* 5.-7. */
        return bus_add_finish(message, m, kind, &(OptionCheckAnswer) { .result = check }, error);
}

static int method_add_source(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        return method_add(message, userdata, &bus_kind_source, method_add_source, error);
}

static int method_add_sink(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        return method_add(message, userdata, &bus_kind_sink, method_add_sink, error);
}

static int method_remove(sd_bus_message *message, Manager *m, const BusKind *kind, sd_bus_message_handler_t self,
                         sd_bus_error *error) {
        _cleanup_(sd_bus_creds_unrefp) sd_bus_creds *creds = NULL;
        Actor actor;
        const char *name;
        int r;

        r = sd_bus_message_read(message, "s", &name);
        if (r < 0)
                return r;
        if (!bus_kind_path(kind, m, name))
                return sd_bus_error_setf(error, kind->no_such, "No %s named \"%.80s\".", kind->ops->file_kind->what,
                                         name);
        r = bus_verify_manage(message, m, self, error);
        if (r < 0)
                return r;
        if (r == 0)
                return 1;
        bus_actor(message, &actor, &creds);
        r = kind->remove(m, name, &actor, error);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(message, NULL);
}

static int method_remove_source(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        return method_remove(message, userdata, &bus_kind_source, method_remove_source, error);
}

static int method_remove_sink(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        return method_remove(message, userdata, &bus_kind_sink, method_remove_sink, error);
}

static int method_get(sd_bus_message *message, Manager *m, const BusKind *kind, sd_bus_error *error) {
        const char *name, *path;
        int r;

        r = sd_bus_message_read(message, "s", &name);
        if (r < 0)
                return r;
        path = bus_kind_path(kind, m, name);
        if (!path)
                return sd_bus_error_setf(error, kind->no_such, "No %s named \"%.80s\".", kind->ops->file_kind->what,
                                         name);
        return sd_bus_reply_method_return(message, "o", path);
}

static int method_get_source(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        return method_get(message, userdata, &bus_kind_source, error);
}

static int method_get_sink(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        return method_get(message, userdata, &bus_kind_sink, error);
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

static int method_reload(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_creds_unrefp) sd_bus_creds *creds = NULL;
        Manager *m = userdata;
        Actor actor;
        int r;

        r = bus_verify_manage(message, m, method_reload, error);
        if (r < 0)
                return r;
        if (r == 0)
                return 1;
        bus_actor(message, &actor, &creds);
        r = manager_reload(m, &actor, error);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(message, NULL);
}

static int method_list(sd_bus_message *message, Manager *m, const BusKind *kind) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_message_new_method_return(message, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "(ssso)");
        if (r < 0)
                return r;
        for (void *o = kind->ops->first(m); o; o = kind->ops->next(o)) {
                r = sd_bus_message_append(reply, "(ssso)", kind->ops->name(o), kind->ops->type(o), kind->ops->state(o),
                                          kind->ops->object_path(o));
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static int method_list_sources(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        return method_list(message, userdata, &bus_kind_source);
}

static int method_list_sinks(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        return method_list(message, userdata, &bus_kind_sink);
}

static int property_get_pipeline_id(sd_bus *bus, const char *path, const char *interface, const char *property,
                                    sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;

        return sd_bus_message_append(reply, "s", m->pipeline_id ?: "");
}

static int property_get_stream(sd_bus *bus, const char *path, const char *interface, const char *property,
                               sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;

        return sd_bus_message_append(reply, "s", m->stream ?: "");
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
        SD_BUS_PROPERTY("PipelineId", "s", property_get_pipeline_id, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Stream", "s", property_get_stream, 0, SD_BUS_VTABLE_PROPERTY_CONST),
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
        SD_BUS_METHOD_WITH_ARGS("Reload",
                                SD_BUS_NO_ARGS,
                                SD_BUS_NO_RESULT,
                                method_reload,
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
        SD_BUS_METHOD_WITH_ARGS("AddSink",
                                SD_BUS_ARGS("s", name, "s", type, "a{sv}", options),
                                SD_BUS_RESULT("o", sink),
                                method_add_sink,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("RemoveSink",
                                SD_BUS_ARGS("s", name),
                                SD_BUS_NO_RESULT,
                                method_remove_sink,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ListSinks",
                                SD_BUS_NO_ARGS,
                                SD_BUS_RESULT("a(ssso)", sinks),
                                method_list_sinks,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetSink",
                                SD_BUS_ARGS("s", name),
                                SD_BUS_RESULT("o", sink),
                                method_get_sink,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ListSubscriptions",
                                SD_BUS_NO_ARGS,
                                SD_BUS_RESULT("a(sssttttu)", subscriptions),
                                method_list_subscriptions,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_SIGNAL_WITH_ARGS("SourceAdded", SD_BUS_ARGS("s", name, "o", source), 0),
        SD_BUS_SIGNAL_WITH_ARGS("SourceRemoved", SD_BUS_ARGS("s", name, "o", source), 0),
        SD_BUS_SIGNAL_WITH_ARGS("SinkAdded", SD_BUS_ARGS("s", name, "o", sink), 0),
        SD_BUS_SIGNAL_WITH_ARGS("SinkRemoved", SD_BUS_ARGS("s", name, "o", sink), 0),
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

void manager_emit_sink_added(Manager *m, Sink *s) {
        if (m->bus)
                (void) sd_bus_emit_signal(m->bus, DPIPED_BUS_PATH, DPIPED_MANAGER_INTERFACE, "SinkAdded", "so", s->name,
                                          s->object_path);
}

void manager_emit_sink_removed(Manager *m, const char *name, const char *path) {
        if (m->bus)
                (void) sd_bus_emit_signal(m->bus, DPIPED_BUS_PATH, DPIPED_MANAGER_INTERFACE, "SinkRemoved", "so", name,
                                          path);
}

void manager_emit_clients_changed(Manager *m) {
        if (m->bus)
                (void) sd_bus_emit_properties_changed(m->bus, DPIPED_BUS_PATH, DPIPED_MANAGER_INTERFACE, "Clients",
                                                      NULL);
}

/* ---- setup --------------------------------------------------------------------------------------- */

int bus_add_objects(sd_bus *bus, Manager *m) {
        int r;

        r = sd_bus_add_object_vtable(bus, NULL, DPIPED_BUS_PATH, DPIPED_MANAGER_INTERFACE, manager_vtable, m);
        if (r < 0)
                return r;
        r = sd_bus_add_fallback_vtable(bus, NULL, DPIPED_BUS_SOURCE_PREFIX, DPIPED_SOURCE_INTERFACE, source_vtable,
                                       source_object_find, m);
        if (r < 0)
                return r;
        r = sd_bus_add_node_enumerator(bus, NULL, DPIPED_BUS_SOURCE_PREFIX, source_node_enumerator, m);
        if (r < 0)
                return r;
        r = sd_bus_add_fallback_vtable(bus, NULL, DPIPED_BUS_SINK_PREFIX, DPIPED_SINK_INTERFACE, sink_vtable,
                                       sink_object_find, m);
        if (r < 0)
                return r;
        return sd_bus_add_node_enumerator(bus, NULL, DPIPED_BUS_SINK_PREFIX, sink_node_enumerator, m);
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
