/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* libdpipe-service: what a dpipe daemon that runs named instances for dpiped has the same whether it
 * is a connector (instances: sources, man:dpipe-connector(7)) or a sink daemon (instances: sinks,
 * man:dpipe-sink(7)). The connector and sink libraries keep only what differs and plug it in through
 * a ServiceClass:
 *
 *   - the control server: the socket <runtime-dir>/<kind>-<type>.sock (socket-activated, or bound and
 *     removed again by the daemon), its connections (common/frame-conn.h), the hello and the state of
 *     every instance on accept, and the dispatch of hello/ping/list/check/add/remove/pause/resume;
 *   - the instance table: names -> instances, looked up, inserted and deleted here;
 *   - the process around it: SIGTERM/SIGINT with a drain and its time limit, the watchdog, the
 *     once-a-second report timer, the idle exit (--idle-exit-sec), and the command line every such
 *     daemon shares (--help, --version, --runtime-dir=, --idle-exit-sec=) with sd_notify around the
 *     loop.
 *
 * Library code in the manner of common/: what fails is returned, logged by the daemon's code; the
 * control server logs what a peer did wrong, as both libraries always did. */

#include <getopt.h>
#include <json-c/json.h>
#include <json-c/linkhash.h>
#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include <stdarg.h>

#include "backoff.h"
#include "frame-conn.h"
#include "list.h"

typedef struct Service Service;
typedef struct ServiceControl ServiceControl;

/* The states of an instance; SourceState and SinkState (the types' view) have the same values. */
typedef enum ServiceState {
        SERVICE_CONNECTING,
        SERVICE_ACTIVE,
        SERVICE_BACKOFF,
        SERVICE_PAUSED,
        SERVICE_FAILED,
        _SERVICE_STATE_MAX,
} ServiceState;

const char *service_state_to_string(int state);

/* What every instance has for its life cycle, whatever its kind, embedded in it (Source, Sink) as
 * `core` and driven by service-instance.c with the class's stop() and begin(). */
typedef struct ServiceInstance {
        Service *service;
        void *owner;      /* the Source or Sink */
        const char *name; /* the owner's */
        int state;        /* ServiceState */
        bool paused;
        bool state_dirty; /* counters moved since the last report */
        char *error;      /* the last failure, for the state reports */
        uint64_t reconnects;
        Backoff backoff;
        sd_event_source *backoff_timer;
} ServiceInstance;

typedef enum ServiceAct {
        SERVICE_REMOVE, /* stop and forget */
        SERVICE_PAUSE,
        SERVICE_RESUME,
} ServiceAct;

typedef struct ServiceClass {
        const char *kind;          /* "connector": socket connector-<type>.sock, executable dpipe-connector-<type> */
        const char *instance;      /* "source": one instance, in replies and log lines */
        const char *instances;     /* "sources": the list reply's op and its array, log lines */
        size_t name_max;           /* the longest instance name, at most SOURCE_NAME_MAX */
        const char *invalid_name;  /* the error reply for a bad name */
        size_t table_size;         /* the instance table's initial size */
        uint64_t drain_timeout_usec; /* how long SIGTERM waits for drain() */
        /* logged when that time ran out: "<unconfirmed> within N s, exiting anyway<note>" */
        const char *drain_unconfirmed, *drain_timeout_note;

        /* Every callback gets the Service's userdata (the daemon's Manager) or an instance. */

        /* add: start instance `name` (instance NULL) or update it, with the request's "options" and
         * "paused" (req: the whole request, for what else the kind takes); returns a negative errno
         * with a malloc'ed message for the reply in *ret_message, which the service logs. -ENOMEM
         * ends the connection. */
        int (*add)(void *userdata, void *instance, const char *name, json_object *options, bool paused,
                   json_object *req, char **ret_message);
        /* check: would the request's options make a valid instance? Nothing is added. Like add;
         * *ret_typed: the options as they would be taken. */
        int (*check)(void *userdata, json_object *req, json_object **ret_typed, char **ret_message);
        void (*act)(void *instance, ServiceAct act);
        /* A new {"op":"state",...} object of the instance, or NULL when out of memory. */
        json_object *(*state)(void *instance);
        /* Log lines about an instance carry DPIPE_SOURCE=<name> (log_source_*()). */
        bool log_source_field;
        const char *title; /* "Source": log lines about an instance begin "<title> <name>: " */
        /* The instance's life cycle (service-instance.c): stop what runs (timers, connections, the
         * type's side), and begin again (state connecting). */
        void (*stop)(void *instance);
        void (*begin)(void *instance);
        /* Once a second. */
        void (*report)(void *userdata);
        /* SIGTERM: stop taking records and hand over what was taken; > 0 if the daemon must wait
         * for that to be confirmed (service_check_drained() then ends the loop), 0 to exit now. */
        int (*drain)(void *userdata);
        /* Whether records are still on their way out: no idle exit, and no end of the drain. */
        bool (*pending)(void *userdata);
} ServiceClass;

struct ServiceControl {
        LIST_FIELDS(ServiceControl, controls);
        Service *service;
        FrameConn conn;
        bool peer_gone; /* a reply met the peer's hang-up: its last requests are still read */
};

/* The type's optional once-per-process hooks (ConnectorType, SinkType): setup() runs in
 * service_start() once the loop exists, teardown() in service_done() if setup() ran. */
typedef struct ServiceTypeHooks {
        const char *name; /* "tcp", "file": the type's name, not copied */
        int (*setup)(sd_event *e, void **ret_userdata);
        void (*teardown)(void *userdata);
} ServiceTypeHooks;

struct Service {
        const ServiceClass *class;
        void *userdata;
        ServiceTypeHooks type;
        void *type_userdata; /* what the type's setup() returned */
        sd_event *event;       /* the daemon's, not owned */
        char *runtime_dir;
        uint64_t idle_exit_usec;

        int listen_fd;
        char *socket_path; /* <runtime-dir>/<kind>-<type>.sock */
        bool activated;    /* the socket came from systemd */
        bool bound;        /* the socket file is ours (not socket-activated): removed at exit */
        sd_event_source *listen_io;
        ServiceControl *controls_head, *controls_tail;
        unsigned n_controls;

        struct lh_table *instances; /* name -> instance */
        unsigned n_instances;

        sd_event_source *report_timer; /* once a second: class->report() */
        sd_event_source *idle_timer;
        sd_event_source *drain_timer;
        bool exiting; /* SIGTERM: draining */
};

int service_init(Service *s, const ServiceClass *class, void *userdata, const ServiceTypeHooks *type, sd_event *event,
                 const char *runtime_dir, uint64_t idle_exit_usec);
/* Closes the control connections and the socket (removing a socket file it bound) and frees the
 * table; the instances in it are the caller's to free before. Accepts a zeroed Service. */
void service_done(Service *s);
/* The type's setup(), signals, watchdog, the control socket, the report timer, the idle timer; logs
 * its failure. */
int service_start(Service *s);
/* Runs the loop between READY=1 (with status) and STOPPING=1; the process's exit status. */
int service_run(Service *s, const char *status);

void *service_find(Service *s, const char *name);
/* name must stay valid while the instance is in the table (the instance's own copy). */
int service_insert(Service *s, const char *name, void *instance);
void service_delete(Service *s, const char *name);
#define service_foreach(s, e) lh_foreach((s)->instances, e)

/* To every control connection (a state report). Send errors are noticed by the connection's own
 * io callback, which closes it. */
void service_broadcast(Service *s, json_object *msg);
/* Arms or disarms the idle exit: no control connection, no instance, nothing pending. */
void service_check_idle(Service *s);
/* After SIGTERM: ends the loop once nothing is pending. */
void service_check_drained(Service *s);

/* service-instance.c: the life cycle that sources and sinks share. */
void service_instance_init(ServiceInstance *i, Service *s, void *owner, const char *name, Backoff backoff);
void service_instance_done(ServiceInstance *i);
/* Sends the instance's state object to every control connection. */
int service_instance_report(ServiceInstance *i);
void service_instance_set_state(ServiceInstance *i, int state);
void service_instance_pause(ServiceInstance *i);
/* Begins again if paused or failed and configured (a failed configuration stays failed until a
 * valid add). */
void service_instance_resume(ServiceInstance *i, bool configured);
/* Transient failure: stop(), state backoff with the error text ("<fmt's text>: <strerror of
 * error>"), begin() again after the next backoff delay (not while the daemon drains). Returns
 * -abs(error). */
int service_instance_fail(ServiceInstance *i, int error, const char *fmt, va_list ap) _printf_(3, 0);
/* Permanent failure: stop(), state failed, until resumed or added again. */
int service_instance_fail_permanently(ServiceInstance *i, int error, const char *fmt, va_list ap) _printf_(3, 0);

/* service-control.c */
int service_control_new(Service *s, int fd);
ServiceControl *service_control_free(ServiceControl *c);
int service_control_send(ServiceControl *c, json_object *msg);

/* service-main.c: the command line every such daemon shares. */
typedef struct ServiceArgs {
        const char *runtime_dir; /* NULL: not given */
        uint64_t idle_exit_usec;
} ServiceArgs;

typedef struct ServiceArgsParser {
        const struct option *options; /* the daemon's own long options, with val >= SERVICE_ARG_OWN */
        size_t n_options;
        /* One of them: 0 to go on, > 0 to exit 0 now (it printed what was asked), < 0 to exit 1
         * (it printed why). */
        int (*parse)(int c, const char *arg, void *userdata);
        /* --help: after the lines of --help and --version, the rest. */
        void (*help)(const void *userdata);
        const char *description; /* one line for --help */
        void *userdata;
} ServiceArgsParser;

#define SERVICE_ARG_OWN 0x200

/* The start of main(): daemon_setup(), then getopt over the common options and the parser's. > 0 to
 * go on, 0 to exit 0 (--help, --version), < 0 to exit 1 (the reason was printed or logged). */
int service_setup(const ServiceClass *class, const char *type_name, const ServiceArgsParser *p, int argc,
                  char *argv[], ServiceArgs *ret);
