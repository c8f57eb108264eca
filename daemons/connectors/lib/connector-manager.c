/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The Manager of a connector process: the event loop, the control socket, the source table, the
 * writer client, the deferred flush of open batches, the once-a-second report, and idle exit. */

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>

#include "connector-internal.h"
#include "daemon-util.h"
#include "log.h"
#include "socket-util.h"

Source *manager_find_source(Manager *m, const char *name) {
        void *v = NULL;

        if (!lh_table_lookup_ex(m->sources, name, &v))
                return NULL;
        return v;
}

void manager_broadcast(Manager *m, json_object *msg) {
        /* Send errors are noticed by the connection's own io callback (EOF/EPOLLERR), which closes
         * it; closing here could free a connection whose callback is running. */
        for (ControlConnection *c = m->controls_head; c; c = c->controls_next)
                (void) control_send(c, msg);
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
                lh_foreach(m->sources, e)
                        source_set_throttled((Source *) lh_entry_v(e), true);
        } else if (m->throttled_all && m->writer.unacked_bytes <= MANAGER_UNACKED_MAX / 2) {
                m->throttled_all = false;
                lh_foreach(m->sources, e) {
                        Source *s = (Source *) lh_entry_v(e);
                        if (s->unacked_bytes <= SOURCE_UNACKED_MAX / 2)
                                source_set_throttled(s, false);
                }
        }
}

/* Runs before every event loop iteration (it belongs to the report timer, which is always on):
 * the iteration about to start takes a new timestamp. */
static int manager_prepare(sd_event_source *es, void *userdata) {
        Manager *m = userdata;

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

static int manager_report_fire(sd_event_source *es, uint64_t usec, void *userdata) {
        Manager *m = userdata;
        struct lh_entry *e;
        unsigned active = 0, unacked = 0;

        lh_foreach(m->sources, e) {
                Source *s = (Source *) lh_entry_v(e);
                source_log_skips(s);
                if (s->state_dirty)
                        (void) source_report(s);
                if (s->state == SOURCE_ACTIVE)
                        active++;
        }
        /* Positions are what a restart needs beyond the writer's last seq: keep them fresh.
         * A seq-only cursor is written when the source stops. */
        (void) source_save_cursors(m, CURSORS_WITH_POSITION);
        for (Batch *b = m->writer.batches_head; b; b = b->batches_next)
                unacked++;
        (void) sd_notifyf(false, "STATUS=%u sources (%u active), writer %s, %u batches unacked", m->n_sources, active,
                          frame_conn_is_connected(&m->writer.conn) ? "connected" : "not connected", unacked);
        return sd_event_source_set_time_relative(es, USEC_PER_SEC);
}

static int manager_idle_fire(sd_event_source *es, uint64_t usec, void *userdata) {
        Manager *m = userdata;

        log_info("No dpiped connection and no sources for %llu s, exiting",
                 (unsigned long long) (m->idle_exit_usec / USEC_PER_SEC));
        return sd_event_exit(m->event, 0);
}

void manager_check_idle(Manager *m) {
        bool idle = m->idle_exit_usec > 0 && m->n_controls == 0 && m->n_sources == 0 && !m->writer.batches_head;
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

        log_warning("Writer did not ack everything within %u s, exiting anyway", (unsigned) (DRAIN_TIMEOUT_USEC / USEC_PER_SEC));
        return sd_event_exit(m->event, 0);
}

void manager_check_drained(Manager *m) {
        if (m->exiting && !m->writer.batches_head)
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
        /* Stop reading, hand over what was read, and give the writer a moment to ack it: records of
         * a raw stream that can not be asked for again would otherwise be lost. */
        m->exiting = true;
        lh_foreach(m->sources, e) {
                Source *s = (Source *) lh_entry_v(e);
                if (s->started) {
                        s->started = false;
                        m->type->stop(s);
                }
                source_flush(s);
        }
        if (!m->writer.batches_head || !frame_conn_is_connected(&m->writer.conn))
                return sd_event_exit(m->event, 0);
        r = sd_event_add_time_relative(m->event, &m->drain_timer, CLOCK_MONOTONIC, DRAIN_TIMEOUT_USEC, 0,
                                       manager_drain_timeout, m);
        if (r < 0)
                return sd_event_exit(m->event, 0);
        return 0;
}

int manager_new(const ConnectorType *type, const char *runtime_dir, const char *state_dir, uint64_t idle_exit_usec,
                Manager **ret) {
        _cleanup_(manager_freep) Manager *m = NULL;
        _cleanup_free_ char *writer_path = NULL, *sub = NULL;
        int r;

        m = calloc(1, sizeof(Manager));
        if (!m)
                return -ENOMEM;
        m->type = type;
        m->listen_fd = -EBADF;
        m->idle_exit_usec = idle_exit_usec;
        m->runtime_dir = strdup(runtime_dir);
        m->state_dir = strdup(state_dir);
        if (asprintf(&sub, "connector-%s", type->name) < 0)
                return -ENOMEM;
        if (!m->runtime_dir || !m->state_dir)
                return -ENOMEM;
        m->cursor_dir = path_join(state_dir, sub);
        writer_path = path_join(runtime_dir, "writer.sock");
        if (!m->cursor_dir || !writer_path)
                return -ENOMEM;
        m->sources = lh_kchar_table_new(256, NULL);
        if (!m->sources)
                return -ENOMEM;

        r = sd_event_default(&m->event);
        if (r < 0)
                return r;
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
        if (m->sources) {
                lh_foreach(m->sources, e)
                        source_flush((Source *) lh_entry_v(e));
                /* All at once: one sync for a thousand cursors instead of two each. */
                (void) source_save_cursors(m, CURSORS_ALL);
                lh_foreach_safe(m->sources, e, tmp) {
                        Source *s = (Source *) lh_entry_v(e);
                        lh_table_delete(m->sources, s->name);
                        source_free(s);
                }
        }
        while (m->controls_head)
                control_connection_free(m->controls_head);
        if (m->writer.manager)
                writer_client_done(&m->writer);
        if (m->sources)
                lh_table_free(m->sources);
        if (m->type->teardown && m->type_userdata)
                m->type->teardown(m->type_userdata);
        sd_event_source_disable_unref(m->listen_io);
        sd_event_source_disable_unref(m->flush_defer);
        sd_event_source_disable_unref(m->cursor_defer);
        sd_event_source_disable_unref(m->report_timer);
        sd_event_source_disable_unref(m->idle_timer);
        sd_event_source_disable_unref(m->drain_timer);
        safe_close(m->listen_fd);
        /* A socket file left behind would look like a live connector to the next one's peers. */
        if (m->bound_path) {
                (void) unlink(m->bound_path);
                free(m->bound_path);
        }
        sd_event_unref(m->event);
        free(m->runtime_dir);
        free(m->state_dir);
        free(m->cursor_dir);
        return mfree(m);
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
                        return log_error_errno(r, "Failed to set up the %s connector: %m", m->type->name);
        }

        if (asprintf(&name, "connector-%s.sock", m->type->name) < 0)
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
                r = sd_event_add_time_relative(m->event, &m->report_timer, CLOCK_MONOTONIC, USEC_PER_SEC, 0,
                                               manager_report_fire, m);
        if (r >= 0)
                r = sd_event_source_set_enabled(m->report_timer, SD_EVENT_ON);
        if (r >= 0)
                r = sd_event_source_set_prepare(m->report_timer, manager_prepare);
        if (r < 0)
                return log_error_errno(r, "Failed to set up event sources: %m");
        m->now_cacheable = true;
        manager_check_idle(m);

        log_info("dpipe-connector-%s %s listening on %s%s", m->type->name, dpipe_version(), path,
                 activated ? " (socket-activated)" : "");
        return 0;
}
