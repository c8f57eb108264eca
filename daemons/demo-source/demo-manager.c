/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <systemd/sd-daemon.h>

#include "daemon-util.h"
#include "log.h"
#include "demo-http.h"
#include "demo-manager.h"
#include "demo-tcp.h"
#include "util.h"

Manager *manager_free(Manager *m) {
        if (!m)
                return NULL;
        tcp_server_free(m->tcp);
        http_server_free(m->http);
        sd_event_source_disable_unref(m->inotify_source);
        loader_free(m->loader);
        sd_event_unref(m->event);
        free(m->path);
        free(m->records_pointer);
        free(m->tcp_listen);
        free(m->http_listen);
        free(m);
        return NULL;
}

int manager_new(Manager **ret) {
        _cleanup_(manager_freep) Manager *m = NULL;

        m = calloc(1, sizeof(Manager));
        if (!m)
                return -ENOMEM;
        m->heartbeat_usec = 5000 * USEC_PER_MSEC;
        m->max_clients = 10000;
        m->client_buffer_max = 4u * 1024u * 1024u;
        m->http_max_limit = 1000;
        m->query_max_limit = 10000;
        m->start_usec = now_usec(CLOCK_MONOTONIC);
        *ret = TAKE_PTR(m);
        return 0;
}

void manager_update_status(Manager *m) {
        if (!m->loader)
                return;
        (void) sd_notifyf(false, "STATUS=Serving %zu rows from %s to %zu TCP clients.",
                          manager_dataset(m)->n_rows, m->path, tcp_server_n_clients(m->tcp));
}

/* Loads the file; on a malformed file logs "file:line:column: what" once. */
static int manager_load_file(Manager *m, Loader **ret) {
        LoadError err = {};
        char msg[1024];
        int r;

        r = loader_load(m->path, &m->load_options, &err, ret);
        if (r == -EBADMSG) {
                loader_format_error(m->path, &err, msg, sizeof(msg));
                return log_error_errno(r, "%s", msg);
        }
        if (r == -EPROTONOSUPPORT)
                return log_error_errno(r, "Cannot tell the format of %s from its name; use --format=csv|json.", m->path);
        if (r < 0)
                return log_error_errno(r, "Failed to load %s: %m", m->path);
        return 0;
}

static int manager_watch(Manager *m);

int manager_load(Manager *m) {
        int r;

        r = manager_load_file(m, &m->loader);
        if (r < 0)
                return r;
        m->generation++;
        log_info("Loaded %zu rows from %s (%zu bytes in memory).", manager_dataset(m)->n_rows, m->path,
                 dataset_size_bytes(manager_dataset(m)));
        if (m->load_options.follow && !m->loader->can_follow)
                log_warning("%s is a JSON %s, not JSON Lines: appended data cannot be followed, ignoring --follow.",
                            m->path, m->loader->json ? json_loader_shape(m->loader->json) : "file");
        return 0;
}

int manager_reload(Manager *m) {
        Loader *l = NULL;
        int r;

        log_info("Reloading %s.", m->path);
        r = manager_load_file(m, &l);
        if (r < 0) {
                log_warning("Reload of %s failed, still serving the previous %zu rows.", m->path,
                            manager_dataset(m)->n_rows);
                return r;
        }
        loader_free(m->loader);
        m->loader = l;
        m->generation++;
        m->reloads++;
        log_info("Reloaded %s: %zu rows.", m->path, manager_dataset(m)->n_rows);
        (void) manager_watch(m);
        tcp_server_data_changed(m->tcp);
        manager_update_status(m);
        return 0;
}

static int on_sighup(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        (void) sd_notify(false, "RELOADING=1");
        (void) manager_reload(userdata);
        (void) sd_notify(false, "READY=1");
        return 0;
}

static int on_inotify(sd_event_source *s, const struct inotify_event *ev, void *userdata) {
        Manager *m = userdata;
        LoadError err = {};
        char msg[1024];
        int r;

        if (ev->mask & (IN_MOVE_SELF | IN_DELETE_SELF | IN_IGNORED)) {
                log_info("%s was replaced or removed; reloading.", m->path);
                m->inotify_source = sd_event_source_disable_unref(m->inotify_source);
                (void) manager_reload(m);
                return 0;
        }

        r = loader_read_more(m->loader, &err);
        if (r == -ESTALE) {
                log_info("%s was truncated; reloading.", m->path);
                (void) manager_reload(m);
                return 0;
        }
        if (r == -EBADMSG) {
                loader_format_error(m->path, &err, msg, sizeof(msg));
                log_error("%s", msg);
                log_warning("Stopped following %s after malformed data; fix it and send SIGHUP to reload.", m->path);
                m->inotify_source = sd_event_source_disable_unref(m->inotify_source);
                return 0;
        }
        if (r < 0) {
                log_warning_errno(r, "Failed to read appended data of %s, ignoring: %m", m->path);
                return 0;
        }
        if (r > 0) {
                m->generation++;
                log_debug("Loaded %d appended rows from %s, %zu in all.", r, m->path, manager_dataset(m)->n_rows);
                tcp_server_data_changed(m->tcp);
                manager_update_status(m);
        }
        return 0;
}

static int manager_watch(Manager *m) {
        int r;

        m->inotify_source = sd_event_source_disable_unref(m->inotify_source);
        if (!m->load_options.follow || !m->loader->can_follow)
                return 0;
        r = sd_event_add_inotify(m->event, &m->inotify_source, m->path,
                                 IN_MODIFY | IN_CLOSE_WRITE | IN_ATTRIB | IN_MOVE_SELF | IN_DELETE_SELF, on_inotify, m);
        if (r < 0)
                return log_warning_errno(r, "Failed to watch %s, not following it: %m", m->path);
        /* Rows may have been appended between loading and watching. */
        return 0;
}

static int on_exit_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Manager *m = userdata;

        log_info("Received SIG%s, exiting.", si->ssi_signo == SIGINT ? "INT" : "TERM");
        (void) sd_notify(false, "STOPPING=1");
        return sd_event_exit(m->event, 0);
}

int manager_start(Manager *m) {
        sigset_t mask;
        int r;

        r = sd_event_default(&m->event);
        if (r < 0)
                return log_error_errno(r, "Failed to allocate event loop: %m");

        /* SIGTERM and SIGINT were blocked by daemon_setup(); SIGHUP (reload) is ours. */
        sigemptyset(&mask);
        sigaddset(&mask, SIGHUP);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return log_error_errno(errno, "Failed to block SIGHUP: %m");
        r = event_add_exit_signals(m->event, on_exit_signal, m);
        if (r >= 0)
                r = sd_event_add_signal(m->event, NULL, SIGHUP, on_sighup, m);
        if (r < 0)
                return log_error_errno(r, "Failed to add signal handlers: %m");

        if (m->tcp_listen) {
                r = tcp_server_new(m, m->tcp_listen, &m->tcp);
                if (r < 0)
                        return r;
                log_info("Serving real-time TCP on %s.", m->tcp_listen);
        }
        if (m->http_listen) {
                r = http_server_new(m, m->http_listen, &m->http);
                if (r < 0)
                        return r;
                log_info("Serving REST over HTTP on %s.", m->http_listen);
        }

        r = manager_watch(m);
        if (r < 0)
                return r;
        /* Catch up with anything appended while we were starting. */
        if (m->inotify_source) {
                LoadError err = {};
                r = loader_read_more(m->loader, &err);
                if (r > 0)
                        m->generation++;
        }
        return 0;
}
