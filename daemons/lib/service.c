/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The process side of a service daemon (service.h): the control socket and its accept, the instance
 * table, the report timer, the idle exit, and SIGTERM with its drain. */

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>

#include "daemon-util.h"
#include "log.h"
#include "service.h"
#include "socket-util.h"
#include "util.h"

int service_init(Service *s, const ServiceClass *class, void *userdata, const ServiceTypeHooks *type, sd_event *event,
                 const char *runtime_dir, uint64_t idle_exit_usec) {
        *s = (Service) {
                .class = class,
                .userdata = userdata,
                .type = *type,
                .event = event,
                .idle_exit_usec = idle_exit_usec,
                .listen_fd = -EBADF,
        };
        s->runtime_dir = strdup(runtime_dir);
        if (!s->runtime_dir)
                return -ENOMEM;
        s->instances = lh_kchar_table_new((int) class->table_size, NULL);
        if (!s->instances)
                return -ENOMEM;
        return 0;
}

void service_done(Service *s) {
        while (s->controls_head)
                service_control_free(s->controls_head);
        if (s->instances)
                lh_table_free(s->instances);
        s->instances = NULL;
        s->listen_io = sd_event_source_disable_unref(s->listen_io);
        s->report_timer = sd_event_source_disable_unref(s->report_timer);
        s->idle_timer = sd_event_source_disable_unref(s->idle_timer);
        s->drain_timer = sd_event_source_disable_unref(s->drain_timer);
        s->listen_fd = safe_close(s->listen_fd);
        if (s->type.teardown && s->type_userdata)
                s->type.teardown(s->type_userdata);
        s->type_userdata = NULL;
        /* A socket file left behind would look like a live daemon to dpiped. */
        if (s->bound && s->socket_path)
                (void) unlink(s->socket_path);
        s->socket_path = mfree(s->socket_path);
        s->runtime_dir = mfree(s->runtime_dir);
}

void *service_find(Service *s, const char *name) {
        void *v = NULL;

        if (!lh_table_lookup_ex(s->instances, name, &v))
                return NULL;
        return v;
}

int service_insert(Service *s, const char *name, void *instance) {
        if (lh_table_insert(s->instances, name, instance) < 0)
                return -ENOMEM;
        s->n_instances++;
        return 0;
}

void service_delete(Service *s, const char *name) {
        if (lh_table_delete(s->instances, name) == 0)
                s->n_instances--;
}

void service_broadcast(Service *s, json_object *msg) {
        /* Send errors are noticed by the connection's own io callback (EOF/EPOLLERR), which closes
         * it; closing here could free a connection whose callback is running. */
        for (ServiceControl *c = s->controls_head; c; c = c->controls_next)
                (void) service_control_send(c, msg);
}

static int service_report_fire(sd_event_source *es, uint64_t usec, void *userdata) {
        Service *s = userdata;

        s->class->report(s->userdata);
        return sd_event_source_set_time_relative(es, USEC_PER_SEC);
}

static int service_idle_fire(sd_event_source *es, uint64_t usec, void *userdata) {
        Service *s = userdata;

        log_info("No dpiped connection and no %s for %llu s, exiting", s->class->instances,
                 (unsigned long long) (s->idle_exit_usec / USEC_PER_SEC));
        return sd_event_exit(s->event, 0);
}

void service_check_idle(Service *s) {
        bool idle = s->idle_exit_usec > 0 && s->n_controls == 0 && s->n_instances == 0 &&
                    !s->class->pending(s->userdata);
        int r;

        if (!idle) {
                s->idle_timer = sd_event_source_disable_unref(s->idle_timer);
                return;
        }
        if (s->idle_timer)
                return;
        r = sd_event_add_time_relative(s->event, &s->idle_timer, CLOCK_MONOTONIC, s->idle_exit_usec, 0,
                                       service_idle_fire, s);
        if (r < 0)
                log_warning_errno(r, "Failed to arm idle timer, ignoring: %m");
}

static int service_accept(sd_event_source *es, int fd, uint32_t revents, void *userdata) {
        Service *s = userdata;
        int cfd, r;

        cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
                if (errno != EAGAIN && errno != EINTR)
                        log_warning_errno(errno, "Failed to accept control connection, ignoring: %m");
                return 0;
        }
        r = service_control_new(s, cfd);
        if (r < 0)
                log_warning_errno(r, "Failed to set up control connection, ignoring: %m");
        return 0;
}

static int service_drain_timeout(sd_event_source *es, uint64_t usec, void *userdata) {
        Service *s = userdata;

        log_warning("%s within %u s, exiting anyway%s", s->class->drain_unconfirmed,
                    (unsigned) (s->class->drain_timeout_usec / USEC_PER_SEC), s->class->drain_timeout_note ?: "");
        return sd_event_exit(s->event, 0);
}

void service_check_drained(Service *s) {
        if (s->exiting && !s->class->pending(s->userdata))
                (void) sd_event_exit(s->event, 0);
}

static int service_on_signal(sd_event_source *es, const struct signalfd_siginfo *si, void *userdata) {
        Service *s = userdata;
        int r;

        if (s->exiting) {
                log_info("Received %s again, exiting now", strsignal((int) si->ssi_signo));
                return sd_event_exit(s->event, 0);
        }
        log_info("Received %s, exiting", strsignal((int) si->ssi_signo));
        s->exiting = true;
        if (s->class->drain(s->userdata) <= 0)
                return sd_event_exit(s->event, 0);
        r = sd_event_add_time_relative(s->event, &s->drain_timer, CLOCK_MONOTONIC, s->class->drain_timeout_usec, 0,
                                       service_drain_timeout, s);
        if (r < 0)
                return sd_event_exit(s->event, 0);
        return 0;
}

static int service_listen(Service *s) {
        _cleanup_free_ char *name = NULL;
        int r;

        if (asprintf(&name, "%s-%s.sock", s->class->kind, s->type.name) < 0)
                return log_oom();
        s->socket_path = path_join(s->runtime_dir, name);
        if (!s->socket_path)
                return log_oom();
        s->listen_fd = listen_fd_take(NULL, AF_UNIX);
        s->activated = s->listen_fd >= 0;
        if (!s->activated) {
                r = mkdir_p(s->runtime_dir, 0755);
                if (r < 0)
                        return log_error_errno(r, "Failed to create runtime directory %s: %m", s->runtime_dir);
                s->listen_fd = socket_listen_unix(s->socket_path, SOMAXCONN);
                s->bound = s->listen_fd >= 0;
        }
        if (s->listen_fd < 0)
                return log_error_errno(s->listen_fd, "Failed to listen on %s: %m", s->socket_path);
        r = fd_set_nonblock(s->listen_fd, true);
        if (r < 0)
                return log_error_errno(r, "Failed to make the control socket non-blocking: %m");
        r = sd_event_add_io(s->event, &s->listen_io, s->listen_fd, EPOLLIN, service_accept, s);
        if (r < 0)
                return log_error_errno(r, "Failed to watch the control socket: %m");
        return 0;
}

int service_start(Service *s) {
        int r;

        if (s->type.setup) {
                r = s->type.setup(s->event, &s->type_userdata);
                if (r < 0)
                        return log_error_errno(r, "Failed to set up the %s %s: %m", s->type.name, s->class->kind);
        }
        /* The signals were blocked by daemon_setup() in main. */
        r = event_add_exit_signals(s->event, service_on_signal, s);
        if (r < 0)
                return log_error_errno(r, "Failed to watch signals: %m");
        r = sd_event_set_watchdog(s->event, true);
        if (r < 0)
                log_warning_errno(r, "Failed to enable the watchdog, ignoring: %m");
        r = service_listen(s);
        if (r < 0)
                return r;
        r = sd_event_add_time_relative(s->event, &s->report_timer, CLOCK_MONOTONIC, USEC_PER_SEC, 0,
                                       service_report_fire, s);
        if (r >= 0)
                r = sd_event_source_set_enabled(s->report_timer, SD_EVENT_ON);
        if (r < 0)
                return log_error_errno(r, "Failed to set up event sources: %m");
        service_check_idle(s);
        return 0;
}

int service_run(Service *s, const char *status) {
        int r;

        (void) sd_notifyf(false, "READY=1\nSTATUS=%s", status);
        r = sd_event_loop(s->event);
        (void) sd_notify(false, "STOPPING=1");
        if (r < 0) {
                log_error_errno(r, "Event loop failed: %m");
                return 1;
        }
        return r;
}
