/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* One sink: its state machine (connecting -> active -> backoff -> connecting ..., paused, failed),
 * where its stream stands (resume point, records handed over, confirmed, acked), the backlog of
 * records not yet taken by the type, counters and the backoff timer.
 *
 * Every failure takes the same road back: close the target (forgetting what it did not confirm),
 * drop the connection to dpiped and the backlog, wait, open the target again and ask it where it
 * stands, subscribe from there. The target is the only truth about what was delivered; dpiped's
 * durable offset only serves a target that holds nothing of this pipeline. */

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "json-util.h"
#include "log.h"
#include "sink-internal.h"

_Static_assert((int) SINK_CONNECTING == SERVICE_CONNECTING && (int) SINK_ACTIVE == SERVICE_ACTIVE &&
                       (int) SINK_BACKOFF == SERVICE_BACKOFF && (int) SINK_PAUSED == SERVICE_PAUSED &&
                       (int) SINK_FAILED == SERVICE_FAILED,
               "a sink's states are the service library's");

const char *sink_state_to_string(SinkState s) {
        return service_state_to_string(s);
}

const char *sink_name(Sink *s) {
        return s->name;
}
void *sink_config(Sink *s) {
        return s->config;
}
void *sink_data(Sink *s) {
        return s->data;
}
void *sink_type_userdata(Sink *s) {
        return s->manager->service.type_userdata;
}
sd_event *sink_get_event(Sink *s) {
        return s->manager->event;
}
SinkState sink_get_state(Sink *s) {
        return s->core.state;
}
const char *sink_pipeline_id(Sink *s) {
        return s->pipeline_id;
}

bool sink_in_flight(Sink *s) {
        return s->opened && s->next_offset > s->confirmed_next;
}

static uint64_t sink_lag(Sink *s) {
        return s->queue_next_offset > s->next_offset ? s->queue_next_offset - s->next_offset : 0;
}

json_object *sink_state_json(Sink *s) {
        json_object *o = json_object_new_object();

        if (!o)
                return NULL;
        json_object_object_add(o, "op", json_object_new_string("state"));
        json_object_object_add(o, "name", json_object_new_string(s->name));
        json_object_object_add(o, "state", json_object_new_string(sink_state_to_string(s->core.state)));
        json_object_object_add(o, "records_sent", json_object_new_uint64(s->records_sent));
        json_object_object_add(o, "lag", json_object_new_uint64(sink_lag(s)));
        json_object_object_add(o, "next_offset", json_object_new_uint64(s->next_offset));
        json_object_object_add(o, "confirmed_offset", json_object_new_uint64(s->confirmed_next));
        json_object_object_add(o, "queue_next_offset", json_object_new_uint64(s->queue_next_offset));
        json_object_object_add(o, "last_sent_us", json_object_new_uint64(s->last_sent_us));
        json_object_object_add(o, "lost", json_object_new_uint64(s->lost));
        json_object_object_add(o, "reconnects", json_object_new_uint64(s->core.reconnects));
        json_object_object_add(o, "pipeline_id", json_object_new_string(s->pipeline_id));
        json_object_object_add(o, "error", json_object_new_string(s->core.error ?: ""));
        return o;
}

int sink_report(Sink *s) {
        return service_instance_report(&s->core);
}

static void sink_set_state(Sink *s, SinkState state) {
        service_instance_set_state(&s->core, state);
}

/* Closes the target and the connection to dpiped; what was not confirmed is forgotten. */
static void sink_close(Sink *s) {
        s->core.backoff_timer = sd_event_source_disable_unref(s->core.backoff_timer);
        s->generation++;
        s->reader = sink_reader_free(s->reader);
        backlog_clear(&s->backlog);
        s->blocked = false;
        s->resume_known = false;
        if (s->opened) {
                s->opened = false;
                s->manager->type->close(s);
        }
        service_check_drained(&s->manager->service);
}

/* Enters connecting: the type opens its target and tells where it stands (sink_opened()). */
static void sink_begin(Sink *s) {
        if (s->opened || s->manager->service.exiting)
                return;
        sink_set_state(s, SINK_CONNECTING);
        s->opened = true;
        s->manager->type->open(s);
}

/* The sink's stop() and begin() for the service library's life cycle (ServiceClass). */
void sink_class_stop(void *instance) {
        sink_close(instance);
}

void sink_class_begin(void *instance) {
        sink_begin(instance);
}

void sink_opened(Sink *s, bool have_last, uint64_t last_offset) {
        int r;

        if (!s->opened || s->resume_known)
                return;
        s->resume_known = true;
        s->have_resume = have_last;
        s->resume_offset = have_last ? last_offset + 1 : 0;
        if (have_last)
                log_info("Sink %s: the target holds offsets up to %" PRIu64 ", resuming at %" PRIu64, s->name,
                         last_offset, s->resume_offset);
        else
                log_info("Sink %s: the target holds nothing of pipeline %s, resuming at subscription %s's offset",
                         s->name, s->pipeline_id, s->subscription);

        r = sink_reader_new(s, s->manager->connect_address, &s->reader);
        if (r >= 0)
                r = sink_reader_start(s->reader, s->subscription, s->common.window, have_last, s->resume_offset);
        if (r < 0)
                (void) sink_fail(s, r, "cannot connect to dpiped at %s", s->manager->connect_address);
}

void sink_reader_subscribed(Sink *s, uint64_t offset) {
        if (s->have_resume && offset > s->resume_offset)
                log_warning("Sink %s: dpiped's queue starts at offset %" PRIu64 ": records %" PRIu64 "..%" PRIu64
                            " were removed by retention before the target got them",
                            s->name, offset, s->resume_offset, offset - 1);
        s->next_offset = s->confirmed_next = s->acked_next = s->received_next = MAX(offset, s->resume_offset);
        sink_set_state(s, SINK_ACTIVE);
        s->core.state_dirty = true;
}

void sink_reader_status(Sink *s, uint64_t queue_next_offset) {
        s->queue_next_offset = queue_next_offset;
        s->core.state_dirty = true;
        /* The target has records the queue never had: another pipeline's target, or a queue that was
         * reset. Delivering on would silently drop everything up to the target's offset. */
        if (s->have_resume && s->resume_offset > queue_next_offset && s->core.state == SINK_ACTIVE)
                (void) sink_fail_permanently(s, -ESTALE,
                                             "the target holds offsets up to %" PRIu64 " but dpiped's queue ends at %" PRIu64
                                             " (another pipeline's target, or a queue that was reset?)",
                                             s->resume_offset - 1, queue_next_offset);
}

void sink_reader_lost(Sink *s, uint64_t first, uint64_t last) {
        log_warning("Sink %s: records %" PRIu64 "..%" PRIu64 " were lost to damage in dpiped's queue and are skipped",
                    s->name, first, last);
        s->lost += last - first + 1;
        s->core.state_dirty = true;
}

void sink_reader_failed(Sink *s, int error, const char *reason) {
        (void) sink_fail(s, error, "%s", reason);
}

/* Offers the backlog to the type, in batches, until it is empty or the type is full. */
static void sink_dispatch(Sink *s) {
        SinkRecord batch[SINK_DELIVER_BATCH];
        unsigned gen = s->generation;

        while (s->core.state == SINK_ACTIVE && !s->blocked && backlog_size(&s->backlog) > 0) {
                size_t n = backlog_peek(&s->backlog, batch, ELEMENTSOF(batch));
                int r;

                s->offered_next = batch[n - 1].offset + 1;
                r = s->manager->type->deliver(s, batch, n);
                s->offered_next = 0;
                if (s->generation != gen)
                        return; /* the type failed and closed us */
                if (r < 0) {
                        (void) sink_fail(s, r, "delivery failed");
                        return;
                }
                if (r > 0)
                        s->next_offset = batch[r - 1].offset + 1;
                backlog_pop(&s->backlog, (size_t) r);
                if ((size_t) r < n)
                        s->blocked = true;
        }
}

int sink_reader_record(Sink *s, const SinkRecord *rec) {
        int r;

        if (s->core.state != SINK_ACTIVE)
                return 0; /* a record before the subscribe reply: cannot happen with dpiped */
        /* Already in the target (dpiped resent it, or the subscription started before the target's
         * end): dropping it here is what makes a resend harmless. */
        if (rec->offset < s->received_next)
                return 0;
        if (s->manager->service.exiting)
                return 0; /* not handed over any more: the next start reads it again */
        r = backlog_push(&s->backlog, rec);
        if (r < 0) {
                (void) sink_fail(s, r, "cannot keep record %" PRIu64, rec->offset);
                return r;
        }
        s->received_next = rec->offset + 1;
        return 0;
}

void sink_reader_batch_end(Sink *s) {
        unsigned gen = s->generation;

        sink_dispatch(s);
        if (s->generation != gen)
                return;
        sink_flush(s);
}

void sink_flush(Sink *s) {
        if (s->opened && s->core.state == SINK_ACTIVE && s->manager->type->flush)
                s->manager->type->flush(s);
}

static int sink_dispatch_fire(sd_event_source *es, void *userdata) {
        Sink *s = userdata;

        sink_reader_batch_end(s);
        return 0;
}

void sink_ready(Sink *s) {
        if (!s->blocked)
                return;
        s->blocked = false;
        /* Not from within the type's callback: the loop offers the backlog next. */
        (void) sd_event_source_set_enabled(s->dispatch_defer, SD_EVENT_ONESHOT);
}

void sink_confirm(Sink *s, uint64_t offset) {
        if (!s->opened || offset + 1 <= s->confirmed_next)
                return;
        /* Within deliver(), the records offered may already be confirmed (a synchronous target). */
        if (offset >= MAX(s->next_offset, s->offered_next)) {
                log_error("Sink %s: the type confirmed offset %" PRIu64 ", which it was never handed (next %" PRIu64 "), ignoring",
                          s->name, offset, s->next_offset);
                return;
        }
        /* RecordsSent counts offsets: dense, except where dpiped reported damage (counted in "lost"). */
        s->records_sent += offset + 1 - s->confirmed_next;
        s->confirmed_next = offset + 1;
        s->last_sent_us = now_usec(CLOCK_REALTIME);
        s->core.state_dirty = true;
        backoff_reset(&s->core.backoff);
        if (s->reader && sink_reader_ack(s->reader, offset) >= 0)
                s->acked_next = offset + 1;
        service_check_drained(&s->manager->service);
}

static int sink_configure(Sink *s, json_object *options, const char *pipeline_id, char **ret_message) {
        const SinkType *t = s->manager->type;
        char buf[33];
        int r;

        s->config = calloc(1, t->config_size ?: 1);
        if (!s->config)
                return -ENOMEM;
        r = sink_options_configure(t, options, 0, &s->common, s->config, ret_message);
        if (r < 0)
                return r;

        if (!pipeline_id)
                pipeline_id = s->manager->pipeline_id;
        if (!pipeline_id) {
                r = pipeline_id_default(buf);
                if (r < 0) {
                        if (asprintf(ret_message, "no pipeline id given and none derived from /etc/machine-id: %s",
                                     strerror(-r)) < 0)
                                *ret_message = NULL;
                        return -EINVAL;
                }
                pipeline_id = buf;
        }
        if (!pipeline_id_is_valid(pipeline_id)) {
                if (asprintf(ret_message, "invalid pipeline id '%s' (1-64 characters of [A-Za-z0-9_-])", pipeline_id) < 0)
                        *ret_message = NULL;
                return -EINVAL;
        }
        s->pipeline_id = strdup(pipeline_id);
        if (!s->pipeline_id)
                return -ENOMEM;

        if (t->data_size > 0) {
                s->data = calloc(1, t->data_size);
                if (!s->data)
                        return -ENOMEM;
        }
        if (t->init) {
                r = t->init(s);
                if (r < 0) {
                        if (!*ret_message && asprintf(ret_message, "cannot set up the sink: %s", strerror(-r)) < 0)
                                *ret_message = NULL;
                        return r;
                }
        }
        return 0;
}

static void sink_unconfigure(Sink *s) {
        const SinkType *t = s->manager->type;

        if (s->data && t->done)
                t->done(s);
        s->data = mfree(s->data);
        if (s->config)
                sink_options_free(t->options, s->config);
        s->config = mfree(s->config);
        s->pipeline_id = mfree(s->pipeline_id);
}

int sink_new(Manager *m, const char *name, json_object *options, const char *pipeline_id, bool paused,
             char **ret_message, Sink **ret) {
        _cleanup_(sink_freep) Sink *s = NULL;
        int r;

        s = calloc(1, sizeof(Sink));
        if (!s)
                return -ENOMEM;
        s->manager = m;
        s->name = strdup(name);
        if (!s->name || asprintf(&s->subscription, SINK_SUBSCRIPTION_PREFIX "%s", name) < 0)
                return -ENOMEM;
        service_instance_init(&s->core, &m->service, s, s->name,
                              BACKOFF_INIT(SINK_BACKOFF_MIN_USEC, SINK_BACKOFF_MAX_USEC, true));
        r = sd_event_add_defer(m->event, &s->dispatch_defer, sink_dispatch_fire, s);
        if (r >= 0)
                r = sd_event_source_set_enabled(s->dispatch_defer, SD_EVENT_OFF);
        if (r < 0)
                return r;
        r = sink_configure(s, options, pipeline_id, ret_message);
        if (r < 0)
                return r;
        s->options = options ? json_object_get(options) : NULL;
        if (pipeline_id) {
                s->pipeline_id_requested = strdup(pipeline_id);
                if (!s->pipeline_id_requested)
                        return -ENOMEM;
        }
        r = service_insert(&m->service, s->name, s);
        if (r < 0)
                return r;
        s->core.paused = paused;
        log_info("Sink %s: added%s, pipeline %s", s->name, paused ? " (paused)" : "", s->pipeline_id);
        if (paused) {
                s->core.state = SINK_PAUSED;
                (void) sink_report(s);
        } else {
                (void) sink_report(s);
                sink_begin(s);
        }
        *ret = TAKE_PTR(s);
        return 0;
}

Sink *sink_free(Sink *s) {
        if (!s)
                return NULL;
        if (s->manager->type && s->config)
                sink_close(s);
        service_instance_done(&s->core);
        sd_event_source_disable_unref(s->dispatch_defer);
        sink_unconfigure(s);
        backlog_done(&s->backlog);
        if (s->options)
                json_object_put(s->options);
        free(s->pipeline_id_requested);
        free(s->subscription);
        free(s->name);
        return mfree(s);
}

int sink_update(Sink *s, json_object *options, const char *pipeline_id, bool paused, char **ret_message) {
        int r;

        if (options && s->options && json_object_equal(options, s->options) &&
            streq_ptr(pipeline_id, s->pipeline_id_requested)) {
                /* Same definition (dpiped re-sends every sink when it reconnects): keep running. */
                if (paused != s->core.paused) {
                        if (paused)
                                sink_pause(s);
                        else
                                sink_resume(s);
                }
                return 0;
        }

        log_info("Sink %s: options changed, restarting", s->name);
        sink_close(s);
        sink_unconfigure(s);
        if (s->options)
                json_object_put(s->options);
        s->options = NULL;
        s->pipeline_id_requested = mfree(s->pipeline_id_requested);
        r = sink_configure(s, options, pipeline_id, ret_message);
        if (r < 0) {
                /* Keep the object (dpiped may fix the definition), but it cannot run like this. */
                sink_unconfigure(s);
                free(s->core.error);
                s->core.error = *ret_message ? strdup(*ret_message) : NULL;
                sink_set_state(s, SINK_FAILED);
                return r;
        }
        s->options = options ? json_object_get(options) : NULL;
        if (pipeline_id && !(s->pipeline_id_requested = strdup(pipeline_id)))
                return -ENOMEM;
        s->core.paused = paused;
        backoff_reset(&s->core.backoff);
        if (paused)
                sink_set_state(s, SINK_PAUSED);
        else
                sink_begin(s);
        return 0;
}

void sink_remove(Sink *s) {
        Manager *m = s->manager;

        log_info("Sink %s: removed", s->name);
        sink_close(s);
        service_delete(&m->service, s->name);
        sink_free(s);
        service_check_idle(&m->service);
}

void sink_pause(Sink *s) {
        service_instance_pause(&s->core);
}

void sink_resume(Sink *s) {
        service_instance_resume(&s->core, s->config);
}

int sink_fail(Sink *s, int error, const char *fmt, ...) {
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = service_instance_fail(&s->core, error, fmt, ap);
        va_end(ap);
        return r;
}

int sink_fail_permanently(Sink *s, int error, const char *fmt, ...) {
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = service_instance_fail_permanently(&s->core, error, fmt, ap);
        va_end(ap);
        return r;
}

void sink_backoff_reset(Sink *s) {
        backoff_reset(&s->core.backoff);
}
