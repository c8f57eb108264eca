/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The Manager of a sink process: the event loop, the control socket, the sink table, the
 * once-a-second report, idle exit, and the drain on SIGTERM. */

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>

#include "daemon-util.h"
#include "log.h"
#include "sink-internal.h"
#include "socket-util.h"

Sink *manager_find_sink(Manager *m, const char *name) {
        void *v = NULL;

        if (!lh_table_lookup_ex(m->sinks, name, &v))
                return NULL;
        return v;
}

void manager_broadcast(Manager *m, json_object *msg) {
        /* Send errors are noticed by the connection's own io callback (EOF/EPOLLERR), which closes
         * it; closing here could free a connection whose callback is running. */
        for (ControlConnection *c = m->controls_head; c; c = c->controls_next)
                (void) control_send(c, msg);
}

static int manager_report_fire(sd_event_source *es, uint64_t usec, void *userdata) {
        Manager *m = userdata;
        struct lh_entry *e;
        unsigned active = 0;
        uint64_t sent = 0, lag = 0;

        lh_foreach(m->sinks, e) {
                Sink *s = (Sink *) lh_entry_v(e);

                if (s->reader)
                        (void) sink_reader_request_status(s->reader);
                if (s->state_dirty)
                        (void) sink_report(s);
                if (s->state == SINK_ACTIVE)
                        active++;
                sent += s->records_sent;
                if (s->queue_next_offset > s->next_offset)
                        lag += s->queue_next_offset - s->next_offset;
        }
        (void) sd_notifyf(false, "STATUS=%u sinks (%u active), %llu records sent, lag %llu", m->n_sinks, active,
                          (unsigned long long) sent, (unsigned long long) lag);
        return sd_event_source_set_time_relative(es, USEC_PER_SEC);
}

static int manager_idle_fire(sd_event_source *es, uint64_t usec, void *userdata) {
        Manager *m = userdata;

        log_info("No dpiped connection and no sinks for %llu s, exiting",
                 (unsigned long long) (m->idle_exit_usec / USEC_PER_SEC));
        return sd_event_exit(m->event, 0);
}

void manager_check_idle(Manager *m) {
        bool idle = m->idle_exit_usec > 0 && m->n_controls == 0 && m->n_sinks == 0;
        int r;

        if (!idle) {
                m->idle_timer = sd_event_source_disable_unref(m->idle_timer);
                return;
        }
        if (m->idle_timer)
                return;
        r = sd_event_add_time_relative(m->event, &m->idle_timer, CLOCK_MONOTONIC, m->idle_exit_usec, 0,
                                       manager_idle_fire, m);
        if (r < 0)
                log_warning_errno(r, "Failed to arm idle timer, ignoring: %m");
}

static int manager_accept(sd_event_source *es, int fd, uint32_t revents, void *userdata) {
        Manager *m = userdata;
        int cfd, r;

        cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
                if (errno != EAGAIN && errno != EINTR)
                        log_warning_errno(errno, "Failed to accept control connection, ignoring: %m");
                return 0;
        }
        r = control_connection_new(m, cfd);
        if (r < 0)
                log_warning_errno(r, "Failed to set up control connection, ignoring: %m");
        return 0;
}

static int manager_drain_timeout(sd_event_source *es, uint64_t usec, void *userdata) {
        Manager *m = userdata;

        log_warning("Targets did not confirm everything within %u s, exiting anyway (the next start delivers the rest)",
                    (unsigned) (SINK_DRAIN_TIMEOUT_USEC / USEC_PER_SEC));
        return sd_event_exit(m->event, 0);
}

void manager_check_drained(Manager *m) {
        struct lh_entry *e;

        if (!m->exiting)
                return;
        lh_foreach(m->sinks, e)
                if (sink_in_flight((Sink *) lh_entry_v(e)))
                        return;
        (void) sd_event_exit(m->event, 0);
}

static int manager_on_signal(sd_event_source *es, const struct signalfd_siginfo *si, void *userdata) {
        Manager *m = userdata;
        struct lh_entry *e;
        int r;

        if (m->exiting) {
                log_info("Received %s again, exiting now", strsignal((int) si->ssi_signo));
                return sd_event_exit(m->event, 0);
        }
        log_info("Received %s, exiting", strsignal((int) si->ssi_signo));
        /* Take no more records, let the targets make durable what they were handed and ack it, so
         * that the next start has little to find out. Nothing is lost either way: what is not
         * confirmed is read again. */
        m->exiting = true;
        lh_foreach(m->sinks, e)
                sink_flush((Sink *) lh_entry_v(e));
        r = sd_event_add_time_relative(m->event, &m->drain_timer, CLOCK_MONOTONIC, SINK_DRAIN_TIMEOUT_USEC, 0,
                                       manager_drain_timeout, m);
        if (r < 0)
                return sd_event_exit(m->event, 0);
        manager_check_drained(m);
        return 0;
}

int manager_new(const SinkType *type, const char *runtime_dir, const char *connect_address, const char *pipeline_id,
                uint64_t idle_exit_usec, Manager **ret) {
        _cleanup_(manager_freep) Manager *m = NULL;
        int r;

        m = calloc(1, sizeof(Manager));
        if (!m)
                return -ENOMEM;
        m->type = type;
        m->listen_fd = -EBADF;
        m->idle_exit_usec = idle_exit_usec;
        m->runtime_dir = strdup(runtime_dir);
        if (!m->runtime_dir)
                return -ENOMEM;
        m->connect_address = connect_address ? strdup(connect_address) : path_join(runtime_dir, "client.sock");
        if (!m->connect_address)
                return -ENOMEM;
        if (pipeline_id) {
                m->pipeline_id = strdup(pipeline_id);
                if (!m->pipeline_id)
                        return -ENOMEM;
        }
        m->sinks = lh_kchar_table_new(64, NULL);
        if (!m->sinks)
                return -ENOMEM;
        r = sd_event_default(&m->event);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(m);
        return 0;
}

Manager *manager_free(Manager *m) {
        struct lh_entry *e, *tmp;

        if (!m)
                return NULL;
        if (m->sinks) {
                lh_foreach_safe(m->sinks, e, tmp) {
                        Sink *s = (Sink *) lh_entry_v(e);
                        lh_table_delete(m->sinks, s->name);
                        sink_free(s);
                }
                lh_table_free(m->sinks);
        }
        while (m->controls_head)
                control_connection_free(m->controls_head);
        if (m->type->teardown && m->type_userdata)
                m->type->teardown(m->type_userdata);
        sd_event_source_disable_unref(m->listen_io);
        sd_event_source_disable_unref(m->report_timer);
        sd_event_source_disable_unref(m->idle_timer);
        sd_event_source_disable_unref(m->drain_timer);
        safe_close(m->listen_fd);
        /* A socket file left behind would look like a live sink daemon to dpiped. */
        if (m->bound_path) {
                (void) unlink(m->bound_path);
                free(m->bound_path);
        }
        sd_event_unref(m->event);
        free(m->runtime_dir);
        free(m->connect_address);
        free(m->pipeline_id);
        return sink_mfree(m);
}

int manager_start(Manager *m) {
        _cleanup_free_ char *path = NULL, *name = NULL;
        bool activated;
        int r;

        /* The signals were blocked by daemon_setup() in main. */
        r = event_add_exit_signals(m->event, manager_on_signal, m);
        if (r < 0)
                return log_error_errno(r, "Failed to watch signals: %m");
        r = sd_event_set_watchdog(m->event, true);
        if (r < 0)
                log_warning_errno(r, "Failed to enable the watchdog, ignoring: %m");

        if (m->type->setup) {
                r = m->type->setup(m->event, &m->type_userdata);
                if (r < 0)
                        return log_error_errno(r, "Failed to set up the %s sink: %m", m->type->name);
        }

        if (asprintf(&name, "sink-%s.sock", m->type->name) < 0)
                return log_oom();
        path = path_join(m->runtime_dir, name);
        if (!path)
                return log_oom();
        m->listen_fd = listen_fd_take(NULL, AF_UNIX);
        activated = m->listen_fd >= 0;
        if (!activated) {
                r = mkdir_p(m->runtime_dir, 0755);
                if (r < 0)
                        return log_error_errno(r, "Failed to create runtime directory %s: %m", m->runtime_dir);
                m->listen_fd = socket_listen_unix(path, SOMAXCONN);
                if (m->listen_fd >= 0) {
                        m->bound_path = strdup(path);
                        if (!m->bound_path)
                                return log_oom();
                }
        }
        if (m->listen_fd < 0)
                return log_error_errno(m->listen_fd, "Failed to listen on %s: %m", path);
        r = fd_set_nonblock(m->listen_fd, true);
        if (r < 0)
                return log_error_errno(r, "Failed to make the control socket non-blocking: %m");
        r = sd_event_add_io(m->event, &m->listen_io, m->listen_fd, EPOLLIN, manager_accept, m);
        if (r < 0)
                return log_error_errno(r, "Failed to watch the control socket: %m");

        r = sd_event_add_time_relative(m->event, &m->report_timer, CLOCK_MONOTONIC, USEC_PER_SEC, 0,
                                       manager_report_fire, m);
        if (r >= 0)
                r = sd_event_source_set_enabled(m->report_timer, SD_EVENT_ON);
        if (r < 0)
                return log_error_errno(r, "Failed to set up event sources: %m");
        manager_check_idle(m);

        log_info("dpipe-sink-%s %s listening on %s%s, reading from dpiped at %s", m->type->name, dpipe_version(), path,
                 activated ? " (socket-activated)" : "", m->connect_address);
        return 0;
}
