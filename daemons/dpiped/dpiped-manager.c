/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>

#include "config.h"
#include "dpiped-audit.h"
#include "dpiped-client.h"
#include "dpiped-connector.h"
#include "dpiped-listen.h"
#include "dpiped-manager.h"
#include "dpiped-metrics.h"
#include "dpiped-registry.h"
#include "dpiped-sink.h"
#include "dpiped-stream.h"
#include "dpiped-source.h"
#include "dpiped-tokens.h"
#include "dpiped-writer.h"
#include "json-util.h"
#include "pipeline-id.h"
#include "log.h"
#include "queue.h"
#include "tls.h"
#include "util.h"

#define QUEUE_POLL_USEC (1 * USEC_PER_SEC)

int manager_new(const ManagerConfig *config, Manager **ret) {
        _cleanup_(manager_freep) Manager *m = NULL;
        int r;

        m = calloc(1, sizeof(Manager));
        if (!m)
                return -ENOMEM;
        m->queue_watch_fd = -EBADF;
        m->runtime_dir = strdup(config->runtime_dir);
        m->state_dir = strdup(config->state_dir);
        if (!m->runtime_dir || !m->state_dir)
                return -ENOMEM;
        m->queue_dir = path_join(m->state_dir, "queue");
        m->sources_dir = path_join(m->state_dir, "sources");
        m->subscriptions_dir = path_join(m->state_dir, "subscriptions");
        m->sinks_dir = path_join(m->state_dir, "sinks");
        if (!m->queue_dir || !m->sources_dir || !m->subscriptions_dir || !m->sinks_dir)
                return -ENOMEM;
        r = strv_split(config->source_dirs ?: SOURCE_DIRS_DEFAULT, ':', &m->source_dirs);
        if (r < 0)
                return r;
        r = strv_split(config->sink_dirs ?: SINK_DIRS_DEFAULT, ':', &m->sink_dirs);
        if (r < 0)
                return r;
        if (config->pipeline_id)
                m->pipeline_id = strdup(config->pipeline_id);
        else {
                char id[33];

                r = pipeline_id_default(id);
                if (r < 0)
                        log_warning_errno(r, "Cannot derive the pipeline id from /etc/machine-id (%m); sinks use "
                                             "their own --pipeline-id= or fail. Give dpiped --pipeline-id=.");
                else
                        m->pipeline_id = strdup(id);
                if (r >= 0 && !m->pipeline_id)
                        return -ENOMEM;
        }
        if (config->pipeline_id && !m->pipeline_id)
                return -ENOMEM;
        if (config->stream) {
                m->stream = strdup(config->stream);
                m->stream_name = strdup(config->stream_name ?: "DPIPE");
                if (!m->stream || !m->stream_name)
                        return -ENOMEM;
        }
        m->listen_address = config->listen_address;
        m->listen_tcp = config->listen_tcp;
        m->allow_plaintext = config->allow_plaintext;
        m->have_admin_gid = config->have_admin_gid;
        m->admin_group = strdup(config->admin_group ?: "dpipe");
        if (!m->admin_group)
                return -ENOMEM;
        m->admin_gid = config->admin_gid;
        m->max_client_memory = config->max_client_memory;
        m->max_clients = config->max_clients;
        m->heartbeat_usec = config->heartbeat_usec;
        m->client_timeout_usec = config->client_timeout_usec;
        m->user_bus = config->user_bus;
        m->read_only_clients = config->read_only_clients;
        m->start_usec = now_usec(CLOCK_MONOTONIC);
        m->metrics = config->metrics;
        m->metrics_address = config->metrics_address;
        m->degraded_usec = config->degraded_usec;

        r = sd_event_default(&m->event);
        if (r < 0)
                return r;
        /* Last: taken over only on success, so that the caller frees them otherwise. */
        m->tokens = config->tokens;
        m->tls = config->tls;
        *ret = TAKE_PTR(m);
        return 0;
}

static void manager_unlink_source(Manager *m, Source *s) {
        LIST_REMOVE_TAIL(sources, m->sources, m->sources_tail, s);
        m->n_sources--;
}

static int manager_link_source(Manager *m, Source *s) {
        int r;

        r = sd_bus_path_encode(DPIPED_BUS_SOURCE_PREFIX, s->name, &s->object_path);
        if (r < 0)
                return r;
        s->manager = m;
        LIST_APPEND_TAIL(sources, m->sources, m->sources_tail, s);
        m->n_sources++;
        return 0;
}

Manager *manager_free(Manager *m) {
        if (!m)
                return NULL;

        /* Clients first: they store the offsets of their durable subscriptions on the way out. */
        manager_clients_free(m);
        m->stream_link = stream_link_free(m->stream_link);
#if HAVE_METRICS
        metrics_server_free(m->metrics_server);
#endif
        writer_link_free(m->writer_link);
        manager_polkit_queries_free(m);
        manager_option_checks_free(m);
        manager_connectors_free(m);
        manager_sinks_free(m);
        while (m->sources) {
                Source *s = m->sources;
                manager_unlink_source(m, s);
                source_free(s);
        }

        manager_listeners_free(m);
        token_set_free(m->tokens);
        tls_context_free(m->tls);
        free(m->read_buffer);
        sd_event_source_disable_unref(m->heartbeat_timer);
        sd_event_source_disable_unref(m->commit_timer);
        sd_event_source_disable_unref(m->pump_event);
        sd_event_source_disable_unref(m->queue_watch_event_source);
        sd_event_source_disable_unref(m->queue_poll_timer);
        safe_close(m->queue_watch_fd);

        sd_bus_flush_close_unref(m->bus);
        sd_event_unref(m->event);

        free(m->admin_group);
        free(m->runtime_dir);
        free(m->state_dir);
        free(m->queue_dir);
        free(m->sources_dir);
        free(m->subscriptions_dir);
        strv_free(m->source_dirs);
        strv_free(m->sink_dirs);
        free(m->sinks_dir);
        free(m->pipeline_id);
        free(m->stream);
        free(m->stream_name);
        free(m);
        return NULL;
}

Source *manager_find_source(Manager *m, const char *name) {
        LIST_FOREACH(sources, s, m->sources)
                if (streq(s->name, name))
                        return s;
        return NULL;
}

bool manager_type_is_known(Manager *m, const char *type) {
        _cleanup_free_ char *path = NULL;
        struct stat st;

        if (streq(type, "tcp") || streq(type, "http"))
                return true;
        /* Any other type is known once its connector's socket is installed (or activated). */
        path = connector_socket_path(m->runtime_dir, type);
        return path && stat(path, &st) >= 0 && S_ISSOCK(st.st_mode);
}

void manager_queue_bounds(Manager *m, uint64_t *ret_first, uint64_t *ret_next) {
        uint64_t first = 0, next = 0;

        if (m->stream_link) {
                if (!stream_link_bounds(m->stream_link, &first, &next))
                        first = next = 0;
        } else if (queue_bounds(m->queue_dir, &first, &next) < 0)
                first = next = 0;
        if (ret_first)
                *ret_first = first;
        if (ret_next)
                *ret_next = next;
}

void manager_update_status(Manager *m) {
        (void) sd_notifyf(false, "STATUS=%u source%s, %u client%s", m->n_sources, m->n_sources == 1 ? "" : "s",
                          m->n_clients, m->n_clients == 1 ? "" : "s");
}

/* A --stream dpiped serves what edge pipelines publish: it has no sources and no queue of its own. */
int manager_refuse_stream_change(Manager *m, sd_bus_error *error) {
        return sd_bus_error_setf(error, SD_BUS_ERROR_NOT_SUPPORTED,
                                 "This dpiped serves the stream %s (--stream=): sources and sinks belong to the "
                                 "pipelines that sink into it.",
                                 m->stream_name);
}

static int manager_add_source_validate(Manager *m, const char *name, const char *type, struct json_object *options,
                                       struct json_object **ret_normalized, sd_bus_error *error) {
        char reason[512];
        Source *existing;
        int r;

        if (!source_name_is_valid(name))
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "Invalid source name \"%.80s\": use 1-64 characters of [A-Za-z0-9_.-].", name);
        if (!source_type_is_valid(type))
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Invalid source type \"%.80s\".", type);
        if (m->stream)
                return manager_refuse_stream_change(m, error);
        existing = manager_find_source(m, name);
        if (existing && source_is_from_file(existing))
                return sd_bus_error_setf(error, BUS_ERROR_SOURCE_EXISTS,
                                         "A source named \"%s\" exists already, defined by %s.", name,
                                         existing->files.fragment_path);
        if (existing)
                return sd_bus_error_setf(error, BUS_ERROR_SOURCE_EXISTS, "A source named \"%s\" exists already.", name);
        if (!manager_type_is_known(m, type))
                return sd_bus_error_setf(error, BUS_ERROR_UNKNOWN_TYPE,
                                         "Unknown source type \"%s\": no connector at %s/connector-%s.sock.", type,
                                         m->runtime_dir, type);
        r = source_options_normalize(type, options, ret_normalized, reason, sizeof(reason));
        if (r == -ENOMEM)
                return sd_bus_error_set_errno(error, r);
        if (r < 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Invalid options for source \"%s\": %s.",
                                         name, reason);
        return 0;
}

int manager_add_source_check(Manager *m, const char *name, const char *type, struct json_object *options,
                             option_check_handler_t handler, void *userdata, OptionCheck **ret_check,
                             OptionCheckResult *ret_result, sd_bus_error *error) {
        _cleanup_json_ struct json_object *normalized = NULL;
        int r;

        /* What dpiped can tell alone first: a request that fails here never wakes up a connector. */
        r = manager_add_source_validate(m, name, type, options, &normalized, error);
        if (r < 0)
                return r;
        r = option_check_start(m, &connector_kind_source, type, normalized, handler, userdata, ret_check, ret_result);
        if (r < 0)
                return sd_bus_error_set_errno(error, r);
        return r;
}

int manager_add_source(Manager *m, const char *name, const char *type, struct json_object *options,
                       const OptionCheckAnswer *check, const Actor *actor, Source **ret, sd_bus_error *error) {
        _cleanup_json_ struct json_object *normalized = NULL;
        _cleanup_(source_freep) Source *s = NULL;
        Source *added;
        int r;

        /* Again: the pipeline may have changed while the connector checked the options. */
        r = manager_add_source_validate(m, name, type, check->options ?: options, &normalized, error);
        if (r < 0)
                return r;
        switch (check->result) {
        case OPTION_CHECK_REFUSED:
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Invalid options for source \"%s\": %s.",
                                         name, check->message ?: "refused by the connector");
        case OPTION_CHECK_NO_TYPE:
                /* The built-in types are known without a socket: their connector may just not run. */
                if (!streq(type, "tcp") && !streq(type, "http"))
                        return sd_bus_error_setf(error, BUS_ERROR_UNKNOWN_TYPE,
                                                 "Unknown source type \"%s\": no connector at %s/connector-%s.sock.",
                                                 type, m->runtime_dir, type);
                break;
        default:
                break;
        }

        r = source_new(name, type, normalized, &s);
        if (r < 0)
                return sd_bus_error_set_errno(error, r);

        /* Persist first: a source that was acknowledged must come back after a crash. */
        r = registry_save(m->sources_dir, s);
        if (r < 0) {
                log_error_errno(r, "Failed to persist source %s: %m", name);
                return sd_bus_error_setf(error, SD_BUS_ERROR_FAILED, "Failed to persist source \"%s\": %s", name,
                                         strerror(-r));
        }
        added = TAKE_PTR(s);
        r = manager_source_start(m, added);
        if (r < 0) {
                (void) registry_remove(m->sources_dir, name);
                return sd_bus_error_set_errno(error, r);
        }
        audit_log(LOG_INFO, actor, "add_source", added->name, false, "Source %s added (type %s, address %s)", added->name,
                  added->type, source_address(added));
        if (ret)
                *ret = added;
        return 0;
}

int manager_source_start(Manager *m, Source *s) {
        Connector *c;
        int r;

        r = manager_link_source(m, s);
        if (r < 0) {
                source_free(s);
                return r;
        }
        r = manager_get_connector(m, s->type, &c);
        if (r < 0)
                log_warning_errno(r, "Failed to set up connector %s, the source stays registered: %m", s->type);
        else
                (void) connector_send_add(c, s);

        manager_emit_source_added(m, s);
        manager_update_status(m);
        return 0;
}

void manager_source_stop(Manager *m, Source *s) {
        manager_unlink_source(m, s);
        Connector *c = manager_find_link(m, &connector_kind_source, s->type);
        if (c) {
                if (connector_remove_source(c, s->name) < 0)
                        log_warning("Failed to tell connector %s to forget source %s, ignoring.", c->type, s->name);
                (void) connector_release_if_unneeded(c);
        }
        manager_emit_source_removed(m, s->name, s->object_path);
        source_free(s);
        manager_update_status(m);
}

int manager_remove_source(Manager *m, const char *name, const Actor *actor, sd_bus_error *error) {
        Source *s;
        int r;

        if (m->stream)
                return manager_refuse_stream_change(m, error);
        s = manager_find_source(m, name);
        if (!s)
                return sd_bus_error_setf(error, BUS_ERROR_NO_SUCH_SOURCE, "No source named \"%.80s\".", name);
        if (source_is_from_file(s))
                return sd_bus_error_setf(error, BUS_ERROR_SOURCE_DEFINED_BY_FILE,
                                         "Source \"%s\" is defined by %s: remove or mask that file, then reload "
                                         "(dpipectl reload).",
                                         s->name, s->files.fragment_path);

        r = registry_remove(m->sources_dir, name);
        if (r < 0) {
                log_error_errno(r, "Failed to remove source %s from the registry: %m", name);
                return sd_bus_error_setf(error, SD_BUS_ERROR_FAILED,
                                         "Failed to remove source \"%s\" from the registry: %s", name, strerror(-r));
        }
        audit_log(LOG_INFO, actor, "remove_source", s->name, false, "Source %s removed", s->name);
        manager_source_stop(m, s);
        return 0;
}

int manager_pause_source(Manager *m, const char *name, bool pause, const Actor *actor, sd_bus_error *error) {
        Source *s;
        int r;

        if (m->stream)
                return manager_refuse_stream_change(m, error);
        s = manager_find_source(m, name);
        if (!s)
                return sd_bus_error_setf(error, BUS_ERROR_NO_SUCH_SOURCE, "No source named \"%.80s\".", name);
        if (s->paused == pause)
                return 0; /* nothing to do */

        s->paused = pause;
        /* A pause of a source defined by a file lasts until dpiped restarts: its definition is the
         * file's, and nothing of it goes into the registry. */
        r = source_is_from_file(s) ? 0 : registry_save(m->sources_dir, s);
        if (r < 0) {
                s->paused = !pause;
                log_error_errno(r, "Failed to persist source %s: %m", name);
                return sd_bus_error_setf(error, SD_BUS_ERROR_FAILED, "Failed to persist source \"%s\": %s", name,
                                         strerror(-r));
        }
        Connector *c = manager_find_link(m, &connector_kind_source, s->type);
        if (c)
                (void) connector_send_op(c, pause ? "pause" : "resume", s->name);

        audit_log(LOG_INFO, actor, pause ? "pause_source" : "resume_source", s->name, false, "Source %s %s", s->name,
                  pause ? "paused" : "resumed");
        if (source_set_state(s, pause ? SOURCE_PAUSED : SOURCE_CONNECTING, NULL, now_usec(CLOCK_REALTIME)))
                source_emit_state_changed(s);
        return 0;
}

static int manager_load_registry(Manager *m) {
        _cleanup_free_ Source **list = NULL;
        size_t n = 0;
        int r;

        r = registry_load(m->sources_dir, &list, &n);
        if (r < 0)
                return log_error_errno(r, "Failed to load the source registry from %s: %m", m->sources_dir);
        for (size_t i = 0; i < n; i++) {
                r = manager_link_source(m, list[i]);
                if (r < 0) {
                        for (size_t j = i; j < n; j++)
                                source_free(list[j]);
                        return log_oom();
                }
        }
        LIST_FOREACH(sources, s, m->sources) {
                r = manager_get_connector(m, s->type, NULL);
                if (r < 0)
                        return log_error_errno(r, "Failed to set up connector %s: %m", s->type);
        }
        if (n > 0)
                log_info("Loaded %zu source%s from the registry.", n, n == 1 ? "" : "s");
        return 0;
}

static int queue_watch_handler(sd_event_source *es, int fd, uint32_t revents, void *userdata) {
        Manager *m = userdata;

        queue_watch_drain(fd);
        manager_pump_clients(m);
        return 0;
}

static void manager_queue_watch_try(Manager *m) {
        int fd, r;

        if (m->queue_watch_fd >= 0)
                return;
        r = queue_watch_open(m->queue_dir, &fd);
        if (r < 0) {
                log_debug_errno(r, "Cannot watch %s yet, polling: %m", m->queue_dir);
                return;
        }
        r = sd_event_add_io(m->event, &m->queue_watch_event_source, fd, EPOLLIN, queue_watch_handler, m);
        if (r < 0) {
                log_warning_errno(r, "Failed to watch the queue, polling: %m");
                safe_close(fd);
                return;
        }
        m->queue_watch_fd = fd;
        log_debug("Watching %s for new records.", m->queue_dir);
}

/* A degraded source whose connector reports no more skips becomes active again once the window
 * has passed: nothing else would tell (a quiet connector sends no report). */
static void manager_check_degraded(Manager *m) {
        uint64_t now = now_usec(CLOCK_REALTIME);

        for (Source *s = m->sources; s; s = s->sources_next) {
                if (s->state != SOURCE_DEGRADED)
                        continue;
                if (source_effective_state(SOURCE_ACTIVE, s->last_skip_usec, m->degraded_usec, now) == SOURCE_DEGRADED)
                        continue;
                if (source_set_state(s, SOURCE_ACTIVE, NULL, now)) {
                        log_source_info(s->name, "Source %s is active: no records skipped for %" PRIu64 " s.", s->name,
                                        m->degraded_usec / USEC_PER_SEC);
                        source_emit_state_changed(s);
                }
        }
}

static int queue_poll_handler(sd_event_source *es, uint64_t usec, void *userdata) {
        Manager *m = userdata;

        manager_check_degraded(m);

        /* A safety net beside inotify (and the only way before the queue directory exists). */
        manager_queue_watch_try(m);
        manager_pump_clients(m);
        (void) sd_event_source_set_time(es, usec + QUEUE_POLL_USEC);
        return 0;
}

static int manager_start_stream(Manager *m) {
        int r;

        r = stream_link_new(m, m->stream, m->stream_name, &m->stream_link);
        if (r < 0)
                return log_error_errno(r, "Failed to set up reading the stream %s from %s: %m", m->stream_name, m->stream);
        log_info("Serving clients from the stream %s at %s, not from a local queue.", m->stream_name, m->stream);
        r = manager_client_server_start(m);
        if (r < 0)
                return r;
        return manager_connect_bus(m);
}

static bool manager_writer_wanted(void *userdata) {
        Manager *m = userdata;

        return m->n_sources > 0;
}

int manager_start(Manager *m) {
        int metrics_fd, r;

        if (m->stream)
                return manager_start_stream(m);

        r = manager_load_registry(m);
        if (r < 0)
                return r;
        ReloadStats st;
        r = manager_load_sinks(m);
        if (r < 0)
                return r;
        /* The files after the registries: a file wins over the API's definition of its name. */
        for (const DefOps *const *ops = def_ops_all; *ops; ops++) {
                const char *what = (*ops)->file_kind->what;

                r = manager_load_def_files(m, *ops, NULL, &st);
                if (r < 0)
                        return r;
                if (st.added + st.failed > 0)
                        log_info("Loaded %u %s%s from %s files (%u with errors).", st.added, what,
                                 st.added == 1 ? "" : "s", what, st.failed);
        }

        manager_queue_watch_try(m);
        r = sd_event_add_time_relative(m->event, &m->queue_poll_timer, CLOCK_MONOTONIC, QUEUE_POLL_USEC,
                                       QUEUE_POLL_USEC / 10, queue_poll_handler, m);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the queue poll timer: %m");
        (void) sd_event_source_set_enabled(m->queue_poll_timer, SD_EVENT_ON);

        r = manager_client_server_start(m);
        if (r < 0)
                return r;
        /* A socket named "metrics" (dpiped-metrics.socket) is served whatever the options say: a
         * drop-in that replaces ExecStart= must not turn it into a client port or leave it dead. */
        metrics_fd = listen_fd_take_matching("metrics", m->metrics ? &m->metrics_address : NULL);
        if (m->metrics || metrics_fd >= 0) {
#if HAVE_METRICS
                r = metrics_server_new(m, metrics_fd, m->metrics ? &m->metrics_address : NULL, m->allow_plaintext,
                                       &m->metrics_server);
                if (r < 0)
                        return r;
                r = writer_link_new(m->event, m->runtime_dir, manager_writer_wanted, m, &m->writer_link);
                if (r < 0)
                        return log_error_errno(r, "Failed to set up the link to the writer: %m");
#else
                safe_close(metrics_fd);
                if (m->metrics)
                        return log_error_errno(EOPNOTSUPP, "dpiped was built without libmicrohttpd: --metrics is not available.");
                log_warning("dpiped was built without libmicrohttpd: not serving the metrics socket passed by systemd.");
#endif
        }
        return manager_connect_bus(m);
}
