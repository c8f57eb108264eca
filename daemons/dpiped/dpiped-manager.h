/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The Manager: one per dpiped process. It owns the source registry, the control connections to the
 * connectors, the D-Bus connection and the client TCP server, all on one sd_event loop. */

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "bus-names.h"
#include "dpiped-option-check.h"
#include "macro.h"
#include "queue.h"
#include "socket-util.h"

typedef struct Manager Manager;
typedef struct Source Source;
typedef struct Sink Sink;
typedef struct Connector Connector;
typedef struct Client Client;
typedef struct Actor Actor;
typedef struct Listener Listener;
typedef struct TokenSet TokenSet;
typedef struct TlsContext TlsContext;
typedef struct MetricsServer MetricsServer;
typedef struct WriterLink WriterLink;

/* Where dpipe.source(5) and dpipe.sink(5) files are looked for, highest precedence first. */
#define SOURCE_DIRS_DEFAULT "/etc/dpipe/sources.d:/run/dpipe/sources.d:/usr/lib/dpipe/sources.d"
#define SINK_DIRS_DEFAULT "/etc/dpipe/sinks.d:/run/dpipe/sinks.d:/usr/lib/dpipe/sinks.d"

#define DPIPED_HEARTBEAT_USEC_DEFAULT (5 * USEC_PER_SEC)

typedef struct ManagerConfig {
        const char *runtime_dir;
        const char *state_dir;
        SocketAddress listen_address;
        bool listen_tcp;        /* --listen is not "none" */
        uint64_t heartbeat_usec;
        uint64_t client_timeout_usec;
        bool user_bus;
        bool read_only_clients; /* no client may change the pipeline through the client protocol */
        TokenSet *tokens;       /* taken over by the manager; NULL without --tokens */
        TlsContext *tls;        /* taken over; NULL: the TCP listeners speak plain text */
        bool allow_plaintext;   /* plain text also on addresses that are not loopback */
        const char *admin_group; /* members of this group may change the pipeline over client.sock */
        bool have_admin_gid;
        gid_t admin_gid;
        uint64_t max_client_memory;
        unsigned max_clients;
        const char *source_dirs; /* DIR[:DIR...], highest precedence first; "" for none */
        const char *sink_dirs;   /* the same for dpipe.sink(5) */
        const char *pipeline_id; /* --pipeline-id=; NULL: derived from /etc/machine-id */
        const char *stream;      /* --stream=: serve the client protocol from this JetStream cluster */
        const char *stream_name; /* --stream-name= */
        bool metrics;               /* --metrics= given */
        SocketAddress metrics_address;
        uint64_t degraded_usec;     /* a source that skipped records stays degraded this long */
} ManagerConfig;

struct Manager {
        sd_event *event;
        sd_bus *bus;

        char *runtime_dir;
        char *state_dir;
        char *queue_dir;
        char *sources_dir;
        char *subscriptions_dir;
        char **source_dirs; /* dpipe.source(5) directories, NULL-terminated */
        char *sinks_dir;
        char **sink_dirs; /* dpipe.sink(5) directories, NULL-terminated */
        char *pipeline_id; /* handed to the sinks; NULL when none could be derived */
        char *stream;      /* --stream=, NULL: the local queue */
        char *stream_name;
        struct StreamLink *stream_link; /* with --stream= (dpiped-stream.h) */
        SocketAddress listen_address;
        bool listen_tcp;
        uint64_t heartbeat_usec;
        uint64_t client_timeout_usec;
        bool user_bus;
        bool read_only_clients;
        uint64_t start_usec;

        /* Client access (dpiped(8), ACCESS). */
        TokenSet *tokens;
        TlsContext *tls;
        bool allow_plaintext;
        char *admin_group;
        bool have_admin_gid;
        gid_t admin_gid;

        /* Sources, in registration order. */
        Source *sources;
        Source *sources_tail;
        unsigned n_sources;

        /* Sinks, in registration order. */
        Sink *sinks;
        Sink *sinks_tail;
        unsigned n_sinks;

        /* Control links to the connectors and the sink daemons. */
        Connector *connectors;

        /* The client server (dpiped-listen.c, dpiped-client*.c). */
        Listener *listeners;
        Client *clients;
        unsigned n_clients;
        unsigned max_clients;
        unsigned n_clients_refused;
        uint64_t last_refusal_log_usec;
        unsigned n_clients_overloaded;
        uint64_t last_overload_log_usec;
        uint64_t client_memory;     /* all clients' partial lines (their allocations) */
        uint64_t max_client_memory;
        char *read_buffer;          /* CLIENT_READ_SIZE: every client's input is read here first */
        sd_event_source *heartbeat_timer;
        sd_event_source *commit_timer;
        sd_event_source *pump_event;

        /* New records in the queue. */
        int queue_watch_fd;
        sd_event_source *queue_watch_event_source;
        sd_event_source *queue_poll_timer;
        /* The last records lost to damage that were logged (dpiped-client-stream.c): each loss is logged
         * once, however many clients pass it. */
        QueueLoss losses_logged[8];
        unsigned n_losses_logged;

        /* Observability (dpiped-metrics.c, dpiped-writer.c): GET /metrics, and the writer's
         * figures it shows. Both NULL without --metrics. */
        bool metrics;
        SocketAddress metrics_address;
        MetricsServer *metrics_server;
        WriterLink *writer_link;
        uint64_t degraded_usec;
        uint64_t subscription_serial; /* the last one given to a subscription */

        /* Outstanding polkit queries (see dpiped-polkit.c). */
        struct PolkitQuery *polkit_queries;
        /* Outstanding checks of options by connectors (dpiped-option-check.c). */
        struct OptionCheck *option_checks;
};

int manager_new(const ManagerConfig *config, Manager **ret);
Manager *manager_free(Manager *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(Manager *, manager_free);

int manager_start(Manager *m);
void manager_update_status(Manager *m);

/* The operations behind both the D-Bus methods and the client protocol. They fill error with a
 * named D-Bus error and return a negative errno on failure. options is a JSON object (the a{sv}).
 * Each change made is logged once, with the actor who asked for it (dpiped-audit.h).
 *
 * Adding a source is two steps, because the type's connector checks the options (its option table
 * is the only schema): manager_add_source_check() validates what dpiped can alone (a named error in
 * *error, < 0) and starts the connector's check: 1 = pending, handler(userdata) gets the answer;
 * 0 = the result is in *ret_result at once. Then manager_add_source() with the answer. */
int manager_add_source_check(Manager *m, const char *name, const char *type, struct json_object *options,
                             option_check_handler_t handler, void *userdata, OptionCheck **ret_check,
                             OptionCheckResult *ret_result, sd_bus_error *error);
int manager_add_source(Manager *m, const char *name, const char *type, struct json_object *options,
                       const OptionCheckAnswer *check,
                       const Actor *actor, Source **ret, sd_bus_error *error);
int manager_remove_source(Manager *m, const char *name, const Actor *actor, sd_bus_error *error);
int manager_pause_source(Manager *m, const char *name, bool pause, const Actor *actor, sd_bus_error *error);
Source *manager_find_source(Manager *m, const char *name);

/* Makes s (new, not linked yet) one of the pipeline's sources: linked, announced on the bus, sent
 * to its connector. On failure s is freed. */
int manager_source_start(Manager *m, Source *s);
/* Stops s and forgets it at run time (the registry is the caller's business); frees s. */
void manager_source_stop(Manager *m, Source *s);

/* dpiped-reload.c: (re)reads the dpipe.source(5) or dpipe.sink(5) files and applies the difference.
 * Each change is logged with actor (NULL: at start-up, or SIGHUP). */
typedef struct ReloadStats {
        unsigned added, changed, removed, unchanged, failed;
} ReloadStats;
typedef struct DefFile DefFile;
typedef struct DefFiles DefFiles;
typedef struct DefFileKind DefFileKind;
/* What the reload (and the bus's Add/Remove/Get/List) needs of the manager's objects of one kind
 * (Source, Sink), as void *. */
typedef struct DefOps {
        const DefFileKind *file_kind;
        char **(*dirs)(Manager *m);
        void *(*first)(Manager *m);
        void *(*next)(void *o);
        void *(*find)(Manager *m, const char *name);
        const char *(*name)(void *o);
        const char *(*type)(void *o);
        const char *(*state)(void *o);
        const char *(*object_path)(void *o);
        struct json_object *(*options)(void *o);
        DefFiles *(*files)(void *o);
        bool (*paused)(void *o); /* NULL: the kind has no pause */
        /* A new object for f, started: linked, announced on the bus, sent to its daemon. */
        int (*start)(Manager *m, const DefFile *f, bool paused);
        /* Stops o and forgets it at run time (the registry is untouched); frees o. */
        void (*stop)(Manager *m, void *o);
        void (*emit_files_changed)(void *o);
        /* Starts the registry's definition of name, if there is one: > 0 if it did. */
        int (*restore)(Manager *m, const char *name);
} DefOps;
extern const DefOps def_ops_source, def_ops_sink;
extern const DefOps *const def_ops_all[]; /* both, NULL-terminated: sources first */
int manager_load_def_files(Manager *m, const DefOps *ops, const Actor *actor, ReloadStats *ret);
int manager_reload(Manager *m, const Actor *actor, sd_bus_error *error);
int manager_refuse_stream_change(Manager *m, sd_bus_error *error);
bool manager_type_is_known(Manager *m, const char *type);

/* dpiped-sink-manager.c: the same for sinks (dpipe-sink(7)), also in two steps: the type's sink
 * daemon checks the options. */
int manager_add_sink_check(Manager *m, const char *name, const char *type, struct json_object *options,
                           option_check_handler_t handler, void *userdata, OptionCheck **ret_check,
                           OptionCheckResult *ret_result, sd_bus_error *error);
int manager_add_sink(Manager *m, const char *name, const char *type, struct json_object *options,
                     const OptionCheckAnswer *check, const Actor *actor, Sink **ret, sd_bus_error *error);
int manager_remove_sink(Manager *m, const char *name, const Actor *actor, sd_bus_error *error);
Sink *manager_find_sink(Manager *m, const char *name);
bool manager_sink_type_is_known(Manager *m, const char *type);
int manager_load_sinks(Manager *m);
/* Makes s (new, not linked yet) one of the pipeline's sinks: linked, announced on the bus, sent to
 * its sink daemon. On failure s is freed. */
int manager_sink_start(Manager *m, Sink *s);
/* Stops s and forgets it at run time (the registry is the caller's business); frees s. */
void manager_sink_stop(Manager *m, Sink *s);
void manager_sinks_free(Manager *m);

/* Queue bounds for the properties and the status op (0, 0 while there is no queue). */
void manager_queue_bounds(Manager *m, uint64_t *ret_first, uint64_t *ret_next);

/* How long a source that skipped records stays degraded (--degraded-sec). */
#define DPIPED_DEGRADED_USEC_DEFAULT (60 * USEC_PER_SEC)

/* dpiped-bus.c */
int manager_connect_bus(Manager *m);
/* Registers the Manager and Source objects of m on bus (also the private one of --bus-introspect). */
int bus_add_objects(sd_bus *bus, Manager *m);
void manager_emit_source_added(Manager *m, Source *s);
void manager_emit_source_removed(Manager *m, const char *name, const char *path);
void manager_emit_clients_changed(Manager *m);
void manager_emit_sink_added(Manager *m, Sink *s);
void manager_emit_sink_removed(Manager *m, const char *name, const char *path);


/* dpiped-introspect.c */
int bus_introspect_print(void);

/* dpiped-polkit.c */
void manager_polkit_queries_free(Manager *m);

/* dpiped-source-bus.c */
extern const sd_bus_vtable source_vtable[];
int source_object_find(sd_bus *bus, const char *path, const char *interface, void *userdata, void **found,
                       sd_bus_error *error);
int source_node_enumerator(sd_bus *bus, const char *path, void *userdata, char ***nodes, sd_bus_error *error);
void source_emit_state_changed(Source *s);
void source_emit_files_changed(Source *s);
/* Manager.ListSubscriptions (dpiped-subscription-bus.c) */
int method_list_subscriptions(sd_bus_message *message, void *userdata, sd_bus_error *error);
