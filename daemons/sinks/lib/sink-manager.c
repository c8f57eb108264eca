/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The Manager of a sink process: the event loop, the once-a-second report, and what the service
 * library (daemons/lib/service.h: control socket, sink table, idle exit, SIGTERM) asks of a sink
 * daemon. */

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#include "json-util.h"
#include "log.h"
#include "sink-internal.h"

Sink *manager_find_sink(Manager *m, const char *name) {
        return service_find(&m->service, name);
}

static void manager_report(void *userdata) {
        Manager *m = userdata;
        struct lh_entry *e;
        unsigned active = 0;
        uint64_t sent = 0, lag = 0;

        service_foreach(&m->service, e) {
                Sink *s = (Sink *) lh_entry_v(e);

                if (s->reader)
                        (void) sink_reader_request_status(s->reader);
                if (s->core.state_dirty)
                        (void) sink_report(s);
                if (s->core.state == SINK_ACTIVE)
                        active++;
                sent += s->records_sent;
                if (s->queue_next_offset > s->next_offset)
                        lag += s->queue_next_offset - s->next_offset;
        }
        (void) sd_notifyf(false, "STATUS=%u sinks (%u active), %llu records sent, lag %llu", m->service.n_instances,
                          active, (unsigned long long) sent, (unsigned long long) lag);
}

/* Records in flight: handed to a target, not yet confirmed. */
static bool manager_pending(void *userdata) {
        Manager *m = userdata;
        struct lh_entry *e;

        service_foreach(&m->service, e)
                if (sink_in_flight((Sink *) lh_entry_v(e)))
                        return true;
        return false;
}

/* Take no more records, let the targets make durable what they were handed and ack it, so that the
 * next start has little to find out. Nothing is lost either way: what is not confirmed is read
 * again. */
static int manager_drain(void *userdata) {
        Manager *m = userdata;
        struct lh_entry *e;

        service_foreach(&m->service, e)
                sink_flush((Sink *) lh_entry_v(e));
        return manager_pending(m);
}

/* The request's "pipeline_id" (NULL if it has none), refused if it is not one. */
static int request_pipeline_id(json_object *req, const char **ret, char **ret_message) {
        json_object *v;

        *ret = json_get_string(req, "pipeline_id");
        if (json_object_object_get_ex(req, "pipeline_id", &v) && !pipeline_id_is_valid(*ret)) {
                *ret_message = strdup("invalid pipeline id (1-64 characters of [A-Za-z0-9_-])");
                return *ret_message ? -EINVAL : -ENOMEM;
        }
        return 0;
}

static int manager_add(void *userdata, void *instance, const char *name, json_object *options, bool paused,
                       json_object *req, char **ret_message) {
        const char *pipeline_id;
        Sink *s;
        int r;

        r = request_pipeline_id(req, &pipeline_id, ret_message);
        if (r < 0)
                return r;
        if (instance)
                return sink_update(instance, options, pipeline_id, paused, ret_message);
        return sink_new(userdata, name, options, pipeline_id, paused, ret_message, &s);
}

/* dpiped asks before it accepts a sink; the pipeline id, if given, is checked as an add would. */
static int manager_check(void *userdata, json_object *req, json_object **ret_typed, char **ret_message) {
        Manager *m = userdata;
        json_object *options = NULL;
        const char *pipeline_id;
        int r;

        r = request_pipeline_id(req, &pipeline_id, ret_message);
        if (r < 0)
                return r;
        (void) json_object_object_get_ex(req, "options", &options);
        return sink_check_options(m->type, options, ret_typed, ret_message);
}

static void manager_act(void *instance, ServiceAct act) {
        switch (act) {
        case SERVICE_REMOVE:
                return sink_remove(instance);
        case SERVICE_PAUSE:
                return sink_pause(instance);
        case SERVICE_RESUME:
                return sink_resume(instance);
        }
}

static json_object *manager_state(void *instance) {
        return sink_state_json(instance);
}

_Static_assert(SINK_NAME_MAX == 59, "the error message names the limit");

const ServiceClass sink_service_class = {
        .kind = "sink",
        .instance = "sink",
        .instances = "sinks",
        .name_max = SINK_NAME_MAX,
        .invalid_name = "invalid sink name (1-59 characters of [A-Za-z0-9_.-])",
        .table_size = 64,
        .drain_timeout_usec = SINK_DRAIN_TIMEOUT_USEC,
        .drain_unconfirmed = "Targets did not confirm everything",
        .drain_timeout_note = " (the next start delivers the rest)",
        .add = manager_add,
        .check = manager_check,
        .act = manager_act,
        .state = manager_state,
        .title = "Sink",
        .stop = sink_class_stop,
        .begin = sink_class_begin,
        .report = manager_report,
        .drain = manager_drain,
        .pending = manager_pending,
};

int manager_new(const SinkType *type, const char *runtime_dir, const char *connect_address, const char *pipeline_id,
                uint64_t idle_exit_usec, Manager **ret) {
        _cleanup_(manager_freep) Manager *m = NULL;
        int r;

        m = calloc(1, sizeof(Manager));
        if (!m)
                return -ENOMEM;
        m->type = type;
        r = sd_event_default(&m->event);
        if (r < 0)
                return r;
        r = service_init(&m->service, &sink_service_class, m,
                         &(ServiceTypeHooks) { type->name, type->setup, type->teardown }, m->event, runtime_dir,
                         idle_exit_usec);
        if (r < 0)
                return r;
        m->connect_address = connect_address ? strdup(connect_address) : path_join(runtime_dir, "client.sock");
        if (!m->connect_address)
                return -ENOMEM;
        if (pipeline_id) {
                m->pipeline_id = strdup(pipeline_id);
                if (!m->pipeline_id)
                        return -ENOMEM;
        }
        *ret = TAKE_PTR(m);
        return 0;
}

Manager *manager_free(Manager *m) {
        struct lh_entry *e, *tmp;

        if (!m)
                return NULL;
        if (m->service.instances)
                lh_foreach_safe(m->service.instances, e, tmp) {
                        Sink *s = (Sink *) lh_entry_v(e);
                        service_delete(&m->service, s->name);
                        sink_free(s);
                }
        service_done(&m->service);
        sd_event_unref(m->event);
        free(m->connect_address);
        free(m->pipeline_id);
        return mfree(m);
}

int manager_start(Manager *m) {
        int r;

        r = service_start(&m->service);
        if (r < 0)
                return r;

        log_info("dpipe-sink-%s %s listening on %s%s, reading from dpiped at %s", m->type->name, dpipe_version(),
                 m->service.socket_path, m->service.activated ? " (socket-activated)" : "", m->connect_address);
        return 0;
}
