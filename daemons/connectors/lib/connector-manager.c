/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The Manager of a connector process: the event loop, the writer client, the deferred flush of open
 * batches, the once-a-second report, and what the service library (daemons/lib/service.h: control
 * socket, source table, idle exit, SIGTERM) asks of a connector. */

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#include "connector-internal.h"
#include "json-util.h"
#include "log.h"

Source *manager_find_source(Manager *m, const char *name) {
        return service_find(&m->service, name);
}

static int manager_flush_all(sd_event_source *es, void *userdata) {
        Manager *m = userdata;

        while (m->flush_head)
                source_flush(m->flush_head);
        /* One write for every batch of this iteration, not one per batch. */
        writer_client_write(&m->writer);
        return 0;
}

/* The cursors of the sources that stopped, once nothing else is pending: a peer restart that drops
 * a thousand connections costs one sync, not two thousand fsync()s on the loop. Under constant load
 * the report timer writes them within a second instead. */
static int manager_save_due_cursors(sd_event_source *es, void *userdata) {
        Manager *m = userdata;

        (void) source_save_cursors(m, CURSORS_DUE);
        return 0;
}

void manager_schedule_cursor_save(Manager *m) {
        (void) sd_event_source_set_enabled(m->cursor_defer, SD_EVENT_ONESHOT);
}

void manager_schedule_write(Manager *m) {
        (void) sd_event_source_set_enabled(m->flush_defer, SD_EVENT_ONESHOT);
}

void manager_schedule_flush(Manager *m, Source *s) {
        if (!s->in_flush_list) {
                LIST_APPEND_TAIL(flush, m->flush_head, m->flush_tail, s);
                s->in_flush_list = true;
        }
        manager_schedule_write(m);
}

void manager_update_throttle(Manager *m) {
        struct lh_entry *e;

        if (!m->throttled_all && m->writer.unacked_bytes > MANAGER_UNACKED_MAX) {
                log_notice("Writer is behind (%zu MiB unacked), pausing reads",
                           (size_t) (m->writer.unacked_bytes >> 20));
                m->throttled_all = true;
                service_foreach(&m->service, e)
                        source_set_throttled((Source *) lh_entry_v(e), true);
        } else if (m->throttled_all && m->writer.unacked_bytes <= MANAGER_UNACKED_MAX / 2) {
                m->throttled_all = false;
                service_foreach(&m->service, e) {
                        Source *s = (Source *) lh_entry_v(e);
                        if (s->unacked_bytes <= SOURCE_UNACKED_MAX / 2)
                                source_set_throttled(s, false);
                }
        }
}

/* Runs before every event loop iteration (it belongs to the service's report timer, which is always
 * on, and gets that timer's userdata, the Service): the iteration about to start takes a new
 * timestamp. */
static int manager_prepare(sd_event_source *es, void *userdata) {
        Manager *m = ((Service *) userdata)->userdata;

        m->now_valid = false;
        return 0;
}

uint64_t manager_now(Manager *m) {
        uint64_t now;
        int r;

        if (m->now_valid)
                return m->now_realtime;
        /* sd-event took this time when the iteration began: no clock read. It says 0 for that,
         * > 0 when it had to read the clock because no iteration ran yet (not cached then). */
        r = sd_event_now(m->event, CLOCK_REALTIME, &now);
        if (r < 0)
                return now_usec(CLOCK_REALTIME);
        if (r == 0 && m->now_cacheable) {
                m->now_realtime = now;
                m->now_valid = true;
        }
        return now;
}

static void manager_report(void *userdata) {
        Manager *m = userdata;
        struct lh_entry *e;
        unsigned active = 0, unacked = 0;

        service_foreach(&m->service, e) {
                Source *s = (Source *) lh_entry_v(e);
                source_log_skips(s);
                if (s->core.state_dirty)
                        (void) source_report(s);
                if (s->core.state == SOURCE_ACTIVE)
                        active++;
        }
        /* Positions are what a restart needs beyond the writer's last seq: keep them fresh.
         * A seq-only cursor is written when the source stops. */
        (void) source_save_cursors(m, CURSORS_WITH_POSITION);
        for (Batch *b = m->writer.batches_head; b; b = b->batches_next)
                unacked++;
        (void) sd_notifyf(false, "STATUS=%u sources (%u active), writer %s, %u batches unacked", m->service.n_instances,
                          active, frame_conn_is_connected(&m->writer.conn) ? "connected" : "not connected", unacked);
}

/* Stop reading, hand over what was read, and give the writer a moment to ack it: records of a raw
 * stream that can not be asked for again would otherwise be lost. */
static int manager_drain(void *userdata) {
        Manager *m = userdata;
        struct lh_entry *e;

        service_foreach(&m->service, e) {
                Source *s = (Source *) lh_entry_v(e);
                if (s->started) {
                        s->started = false;
                        m->type->stop(s);
                }
                source_flush(s);
        }
        return m->writer.batches_head && frame_conn_is_connected(&m->writer.conn);
}

static bool manager_pending(void *userdata) {
        Manager *m = userdata;

        return m->writer.batches_head;
}

static int manager_add(void *userdata, void *instance, const char *name, json_object *options, bool paused,
                       json_object *req, char **ret_message) {
        Source *s;

        if (instance)
                return source_update(instance, options, paused, ret_message);
        return source_new(userdata, name, options, paused, ret_message, &s);
}

static int manager_check(void *userdata, json_object *req, json_object **ret_typed, char **ret_message) {
        Manager *m = userdata;
        json_object *options = NULL;

        (void) json_object_object_get_ex(req, "options", &options);
        return connector_check_options(m->type, options, ret_typed, ret_message);
}

static void manager_act(void *instance, ServiceAct act) {
        if (act == SERVICE_REMOVE)
                source_remove(instance);
        else if (act == SERVICE_PAUSE)
                source_pause(instance);
        else
                source_resume(instance);
}

static json_object *manager_state(void *instance) {
        return source_state_json(instance);
}

const ServiceClass connector_service_class = {
        .kind = "connector",
        .instance = "source",
        .instances = "sources",
        .name_max = SOURCE_NAME_MAX,
        .invalid_name = "invalid source name",
        .table_size = 256,
        .drain_timeout_usec = DRAIN_TIMEOUT_USEC,
        .drain_unconfirmed = "Writer did not ack everything",
        .add = manager_add,
        .check = manager_check,
        .act = manager_act,
        .state = manager_state,
        .log_source_field = true,
        .title = "Source",
        .stop = source_class_stop,
        .begin = source_class_begin,
        .report = manager_report,
        .drain = manager_drain,
        .pending = manager_pending,
};

int manager_new(const ConnectorType *type, const char *runtime_dir, const char *state_dir, uint64_t idle_exit_usec,
                Manager **ret) {
        _cleanup_(manager_freep) Manager *m = NULL;
        _cleanup_free_ char *writer_path = NULL, *sub = NULL;
        int r;

        m = calloc(1, sizeof(Manager));
        if (!m)
                return -ENOMEM;
        m->type = type;
        r = sd_event_default(&m->event);
        if (r < 0)
                return r;
        r = service_init(&m->service, &connector_service_class, m,
                         &(ServiceTypeHooks) { type->name, type->setup, type->teardown }, m->event, runtime_dir,
                         idle_exit_usec);
        if (r < 0)
                return r;
        m->state_dir = strdup(state_dir);
        if (asprintf(&sub, "connector-%s", type->name) < 0)
                return -ENOMEM;
        if (!m->state_dir)
                return -ENOMEM;
        m->cursor_dir = path_join(state_dir, sub);
        writer_path = path_join(runtime_dir, "writer.sock");
        if (!m->cursor_dir || !writer_path)
                return -ENOMEM;
        r = writer_client_init(&m->writer, m, writer_path);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(m);
        return 0;
}

Manager *manager_free(Manager *m) {
        struct lh_entry *e, *tmp;

        if (!m)
                return NULL;
        if (m->service.instances) {
                service_foreach(&m->service, e)
                        source_flush((Source *) lh_entry_v(e));
                /* All at once: one sync for a thousand cursors instead of two each. */
                (void) source_save_cursors(m, CURSORS_ALL);
                lh_foreach_safe(m->service.instances, e, tmp) {
                        Source *s = (Source *) lh_entry_v(e);
                        service_delete(&m->service, s->name);
                        source_free(s);
                }
        }
        service_done(&m->service);
        if (m->writer.manager)
                writer_client_done(&m->writer);
        sd_event_source_disable_unref(m->flush_defer);
        sd_event_source_disable_unref(m->cursor_defer);
        sd_event_unref(m->event);
        free(m->state_dir);
        free(m->cursor_dir);
        return mfree(m);
}

int manager_start(Manager *m) {
        int r;

        r = service_start(&m->service);
        if (r < 0)
                return r;

        r = sd_event_add_defer(m->event, &m->flush_defer, manager_flush_all, m);
        if (r >= 0)
                r = sd_event_source_set_enabled(m->flush_defer, SD_EVENT_OFF);
        if (r >= 0)
                r = sd_event_add_defer(m->event, &m->cursor_defer, manager_save_due_cursors, m);
        if (r >= 0)
                r = sd_event_source_set_priority(m->cursor_defer, SD_EVENT_PRIORITY_IDLE);
        if (r >= 0)
                r = sd_event_source_set_enabled(m->cursor_defer, SD_EVENT_OFF);
        if (r >= 0)
                r = sd_event_source_set_prepare(m->service.report_timer, manager_prepare);
        if (r < 0)
                return log_error_errno(r, "Failed to set up event sources: %m");
        m->now_cacheable = true;

        log_info("dpipe-connector-%s %s listening on %s%s", m->type->name, dpipe_version(), m->service.socket_path,
                 m->service.activated ? " (socket-activated)" : "");
        return 0;
}
