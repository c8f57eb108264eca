/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Internals of the sink library, shared by its files; sink types use sink.h only.
 *
 * What sink daemons have the same as connectors is the service library's (daemons/lib/service.h):
 * the control server, the sink table, idle exit, SIGTERM, the common command line; the framing,
 * start-up, backoff, lists and option tables are common/'s. */

#include <json-c/json.h>
#include <json-c/linkhash.h>

#include "backoff.h"
#include "buffer.h"
#include "frame-conn.h"
#include "list.h"
#include "pipeline-id.h"
#include "service.h"
#include "sink-backlog.h"
#include "sink.h"
#include "util.h"

#define SINK_BACKOFF_MIN_USEC (200 * USEC_PER_MSEC)
#define SINK_BACKOFF_MAX_USEC (30 * USEC_PER_SEC)
/* On SIGTERM, wait this long at most for the targets to confirm what they were handed. */
#define SINK_DRAIN_TIMEOUT_USEC (5 * USEC_PER_SEC)
/* Records handed to deliver() per call. */
#define SINK_DELIVER_BATCH 1024u
/* The durable subscription of sink NAME is "sink-NAME" (1-64 characters, like every name). */
#define SINK_SUBSCRIPTION_PREFIX "sink-"
#define SINK_NAME_MAX (64 - (sizeof(SINK_SUBSCRIPTION_PREFIX) - 1))

typedef struct Manager Manager;
typedef struct SinkReader SinkReader;

/* Options every sink has, whatever its type; parsed from the same "options" object. */
typedef struct SinkCommonConfig {
        uint32_t window;
} SinkCommonConfig;

struct Sink {
        Manager *manager;
        char *name;
        char *subscription;
        char *pipeline_id;
        void *config;
        void *data;
        SinkCommonConfig common;
        json_object *options; /* as received, to tell an update from a repeat */
        char *pipeline_id_requested; /* as received (NULL: none), idem */

        ServiceInstance core; /* state, paused, error, reconnects, backoff (daemons/lib/service.h) */
        bool opened;       /* open() called and close() not yet */
        bool resume_known; /* the type called sink_opened() for this open() */
        bool blocked;      /* deliver() took less than offered: wait for sink_ready() */
        unsigned generation; /* bumped by every close(): callbacks notice they outlived their open */

        /* Where the stream stands. */
        bool have_resume;     /* resume_offset is known (else: the subscription's committed offset) */
        uint64_t resume_offset; /* the first offset the target does not have */
        uint64_t next_offset;   /* after the last record handed to deliver() (or received, while
                                 * nothing was) */
        uint64_t received_next;  /* after the last record received from dpiped */
        uint64_t offered_next;   /* during deliver(): after the last record offered, else 0 */
        uint64_t confirmed_next; /* after the last record the target confirmed */
        uint64_t acked_next;     /* after the last offset acked to dpiped */
        uint64_t queue_next_offset; /* dpiped's queue, from its status reply */

        SinkReader *reader;
        Backlog backlog;

        /* counters */
        uint64_t records_sent, lost, last_sent_us;

        sd_event_source *dispatch_defer; /* offers the backlog again after sink_ready() */
};

struct Manager {
        const SinkType *type;
        sd_event *event;
        Service service; /* the control socket, the sinks (instances), idle exit, SIGTERM */
        char *connect_address; /* dpiped's client protocol: a socket path or HOST:PORT */
        char *pipeline_id;     /* --pipeline-id=, or NULL */
};

/* sink-manager.c */
/* What the service library (daemons/lib/service.h) needs to know of sink daemons. */
extern const ServiceClass sink_service_class;
int manager_new(const SinkType *type, const char *runtime_dir, const char *connect_address, const char *pipeline_id,
                uint64_t idle_exit_usec, Manager **ret);
Manager *manager_free(Manager *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(Manager *, manager_free);
int manager_start(Manager *m);
Sink *manager_find_sink(Manager *m, const char *name);

/* sink-options.c */
extern const SinkOption sink_common_options[];
/* Parses an add request's options with the common table and the type's into common and config,
 * checks the common ones and has the type validate its config. Without CONFIG_PARSE_STRICT an
 * unknown name is logged and ignored (dpiped may pass options added later). */
int sink_options_configure(const SinkType *t, json_object *options, ConfigParseFlags flags, SinkCommonConfig *common,
                           void *config, char **ret_message);
/* Checks an add request's options as sink_new() would take them, strictly (an unknown option name is
 * refused), without adding anything: the "check" op. *ret_message says why not; *ret_typed (if
 * non-NULL) gets the options with the values of the table's types. */
int sink_check_options(const SinkType *t, json_object *options, json_object **ret_typed, char **ret_message);
void sink_options_free(const SinkOption *table, void *config);

/* sink.c: the Sink object and its state machine */
int sink_new(Manager *m, const char *name, json_object *options, const char *pipeline_id, bool paused,
             char **ret_message, Sink **ret);
Sink *sink_free(Sink *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(Sink *, sink_free);
int sink_update(Sink *s, json_object *options, const char *pipeline_id, bool paused, char **ret_message);
void sink_remove(Sink *s);
void sink_pause(Sink *s);
void sink_class_stop(void *instance);
void sink_class_begin(void *instance);
void sink_resume(Sink *s);
int sink_report(Sink *s);
json_object *sink_state_json(Sink *s);
/* Hands the type's flush() its end of batch; on SIGTERM, the last one. */
void sink_flush(Sink *s);
/* Records in flight: handed to the type, not yet confirmed. */
bool sink_in_flight(Sink *s);

/* Called by the reader (sink-reader.c). */
void sink_reader_subscribed(Sink *s, uint64_t offset);
int sink_reader_record(Sink *s, const SinkRecord *r);
void sink_reader_batch_end(Sink *s);
void sink_reader_lost(Sink *s, uint64_t first, uint64_t last);
void sink_reader_status(Sink *s, uint64_t queue_next_offset);
void sink_reader_failed(Sink *s, int error, const char *reason);

/* sink-reader.c: one connection to dpiped's client protocol per sink, holding its durable
 * subscription. */
int sink_reader_new(Sink *s, const char *address, SinkReader **ret);
SinkReader *sink_reader_free(SinkReader *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(SinkReader *, sink_reader_free);
/* Subscribes (after hello) from `from` (have_from) or from the subscription's committed offset. */
int sink_reader_start(SinkReader *r, const char *subscription, uint32_t window, bool have_from, uint64_t from);
int sink_reader_ack(SinkReader *r, uint64_t offset);
int sink_reader_request_status(SinkReader *r);
bool sink_reader_is_connected(const SinkReader *r);
