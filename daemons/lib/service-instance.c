/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The life cycle of an instance (a connector's source, a sink), whatever its kind: state changes and
 * their reports, pause and resume, failure with a backoff retry or for good. The kind says how to
 * stop and begin (ServiceClass); it keeps what runs in between. */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json-util.h"
#include "log.h"
#include "service.h"
#include "util.h"

static const char *const service_state_table[_SERVICE_STATE_MAX] = {
        [SERVICE_CONNECTING] = "connecting",
        [SERVICE_ACTIVE] = "active",
        [SERVICE_BACKOFF] = "backoff",
        [SERVICE_PAUSED] = "paused",
        [SERVICE_FAILED] = "failed",
};

const char *service_state_to_string(int state) {
        return state >= 0 && state < _SERVICE_STATE_MAX ? service_state_table[state] : NULL;
}

void service_instance_init(ServiceInstance *i, Service *s, void *owner, const char *name, Backoff backoff) {
        i->service = s;
        i->owner = owner;
        i->name = name;
        i->backoff = backoff;
}

void service_instance_done(ServiceInstance *i) {
        i->backoff_timer = sd_event_source_disable_unref(i->backoff_timer);
        i->error = mfree(i->error);
}

/* The name for the journal's DPIPE_SOURCE= field, if the kind logs it. */
static const char *instance_field(const ServiceInstance *i) {
        return i->service->class->log_source_field ? i->name : NULL;
}

int service_instance_report(ServiceInstance *i) {
        _cleanup_json_ json_object *o = i->service->class->state(i->owner);

        if (!o)
                return -ENOMEM;
        i->state_dirty = false;
        service_broadcast(i->service, o);
        return 0;
}

void service_instance_set_state(ServiceInstance *i, int state) {
        if (i->state == state)
                return;
        log_source_full(LOG_INFO, instance_field(i), "%s %s: %s -> %s", i->service->class->title, i->name,
                        service_state_to_string(i->state), service_state_to_string(state));
        i->state = state;
        (void) service_instance_report(i);
}

void service_instance_pause(ServiceInstance *i) {
        i->paused = true;
        i->service->class->stop(i->owner);
        service_instance_set_state(i, SERVICE_PAUSED);
}

void service_instance_resume(ServiceInstance *i, bool configured) {
        i->paused = false;
        if (!configured)
                return; /* failed configuration: stays failed until a valid add */
        if (i->state != SERVICE_PAUSED && i->state != SERVICE_FAILED)
                return;
        backoff_reset(&i->backoff);
        i->service->class->stop(i->owner);
        i->service->class->begin(i->owner);
}

static int instance_backoff_fire(sd_event_source *es, uint64_t usec, void *userdata) {
        ServiceInstance *i = userdata;

        i->backoff_timer = sd_event_source_disable_unref(i->backoff_timer);
        i->reconnects++;
        i->service->class->begin(i->owner);
        return 0;
}

/* "<fmt's text>: <strerror of error>", or fmt's text alone for error 0; NULL when out of memory. */
static void instance_set_error(ServiceInstance *i, int error, const char *fmt, va_list ap) {
        _cleanup_free_ char *msg = NULL;
        char *full = NULL;

        free(i->error);
        i->error = NULL;
        if (vasprintf(&msg, fmt, ap) < 0)
                return;
        if (error == 0 || asprintf(&full, "%s: %s", msg, strerror(abs(error))) < 0)
                i->error = TAKE_PTR(msg);
        else
                i->error = full;
}

int service_instance_fail(ServiceInstance *i, int error, const char *fmt, va_list ap) {
        const ServiceClass *class = i->service->class;
        uint64_t delay;
        int r;

        instance_set_error(i, error, fmt, ap);
        class->stop(i->owner);
        if (i->service->exiting) {
                /* No retry while the daemon drains: the next start begins again. */
                log_source_full(LOG_WARNING, instance_field(i), "%s %s: %s", class->title, i->name, i->error ?: "failed");
                service_instance_set_state(i, SERVICE_BACKOFF);
                return error < 0 ? error : -error;
        }
        delay = backoff_next(&i->backoff);
        log_source_full(LOG_WARNING, instance_field(i), "%s %s: %s; retrying in %" PRIu64 " ms", class->title, i->name,
                        i->error ?: "failed", delay / USEC_PER_MSEC);
        r = sd_event_add_time_relative(i->service->event, &i->backoff_timer, CLOCK_MONOTONIC, delay, 0,
                                       instance_backoff_fire, i);
        if (r < 0)
                log_source_full_errno(LOG_ERR, r, instance_field(i), "%s %s: failed to arm the backoff timer: %m",
                                      class->title, i->name);
        if (i->state == SERVICE_BACKOFF)
                (void) service_instance_report(i); /* new error text */
        else
                service_instance_set_state(i, SERVICE_BACKOFF);
        return error < 0 ? error : -error;
}

int service_instance_fail_permanently(ServiceInstance *i, int error, const char *fmt, va_list ap) {
        const ServiceClass *class = i->service->class;

        instance_set_error(i, error, fmt, ap);
        log_source_full(LOG_ERR, instance_field(i), "%s %s: %s; giving up until the %s is resumed or re-added",
                        class->title, i->name, i->error ?: "failed", class->instance);
        class->stop(i->owner);
        service_instance_set_state(i, SERVICE_FAILED);
        return error < 0 ? error : -error;
}
