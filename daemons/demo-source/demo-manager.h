/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "loader.h"
#include "socket-util.h"

typedef struct TcpServer TcpServer;
typedef struct HttpServer HttpServer;

typedef struct Manager {
        sd_event *event;

        /* options */
        char *path;
        LoaderOptions load_options;
        char *records_pointer;
        char *tcp_listen;
        char *http_listen;
        uint64_t rate;              /* rows per second per client, 0 = as fast as possible */
        bool loop;
        uint64_t heartbeat_usec;
        uint64_t timeout_usec;      /* silence after which a TCP peer is dropped */
        size_t max_clients;
        size_t client_buffer_max;   /* bytes of pending output per TCP client */
        size_t http_max_limit;
        size_t query_max_limit;

        Loader *loader;             /* the data being served */
        uint64_t generation;        /* bumped on every change of the data (reload, appended rows) */
        uint64_t reloads;
        uint64_t start_usec;

        sd_event_source *inotify_source;
        TcpServer *tcp;
        HttpServer *http;
} Manager;

Manager *manager_free(Manager *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(Manager *, manager_free);

int manager_new(Manager **ret);
int manager_load(Manager *m);
int manager_start(Manager *m);
int manager_reload(Manager *m);
void manager_update_status(Manager *m);

static inline const Dataset *manager_dataset(const Manager *m) {
        return m->loader->dataset;
}
