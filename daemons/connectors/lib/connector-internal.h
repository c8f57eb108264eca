/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Internals of the connector library, shared by its files; connector types use connector.h only. */

#include <json-c/json.h>
#include <json-c/linkhash.h>

#include "backoff.h"
#include "batch.h"
#include "transform.h"
#include "connector.h"
#include "frame-conn.h"
#include "list.h"
#include "service.h"
#include "util.h"

/* Flush a source's open batch at this size or count, or at the end of the loop iteration. All open
 * batches together stay under BATCH_OPEN_BUDGET bytes: above it the oldest open batches are flushed
 * first, so that with many sources the ones that are being read still make big batches and open
 * batches stay bounded whatever the number of sources. */
#define BATCH_FLUSH_BYTES (256u * 1024u)
#define BATCH_OPEN_BUDGET (2u * 1024u * 1024u)
#define BATCH_FLUSH_RECORDS 2048u
/* Batches are written to the writer at the end of the loop iteration, or at once above this. */
#define WRITER_OUT_FLUSH_BYTES (256u * 1024u)
/* Throttle a source above this many unacked bytes, and everybody above the global bound: one
 * memory budget for all sources (with the open batches and spare buffers the connector stays
 * under ~16 MB whatever the number of sources), still many batches in flight to the writer. */
#define SOURCE_UNACKED_MAX (8u * 1024u * 1024u)
#define MANAGER_UNACKED_MAX (4u * 1024u * 1024u)

/* Skipped records are logged one line each up to this many per source and second, then summed up
 * once a second: a peer sending nothing but garbage must not flood the journal. */
#define SKIPS_LOGGED_PER_SEC 10u

/* On SIGTERM, wait this long at most for the writer to ack what was read. */
#define DRAIN_TIMEOUT_USEC (3 * USEC_PER_SEC)

#define BACKOFF_MIN_USEC (200 * USEC_PER_MSEC)
#define BACKOFF_MAX_USEC (30 * USEC_PER_SEC)

typedef struct Batch Batch;
struct Batch {
        LIST_FIELDS(Batch, batches);
        uint64_t id;
        char source[SOURCE_NAME_MAX + 1];
        uint64_t first_seq, last_seq;
        uint32_t count;
        Buffer frame;          /* the whole FRAME_BATCH, ready to send again */
        char *position;        /* cursor position reached with this batch, or NULL */
        char *refusal;         /* the writer's reason for refusing it (before the ack), or NULL */
        uint64_t position_seq; /* next_seq belonging to position */
};

struct Source {
        Manager *manager;
        char *name;
        void *config;
        SourceCommonConfig common; /* the rows of connector_common_options */
        void *data;
        json_object *options; /* as received, to tell an update from a repeat */

        ServiceInstance core; /* state, paused, error, reconnects, backoff (daemons/lib/service.h) */
        bool removed;
        bool started;          /* start() called and not yet stop() */
        bool resume_known;     /* the writer told us its last seq */
        bool hello_pending;    /* hello sent, answer outstanding */
        bool throttled;

        uint64_t next_seq;
        char *position;        /* last acked (persisted) position */
        uint64_t cursor_seq;   /* next_seq at the last acked batch */
        bool cursor_dirty;
        bool cursor_save_due;  /* stopped: the cursor is written once the loop is idle */

        /* the transform option, compiled (NULL without one) */
        Transform *transform;
        char host[65];        /* $host */
        JsonScanMembers members; /* source_members(): a record's members, listed where it is parsed */

        /* counters */
        uint64_t records, bytes, skipped, filtered, last_record_us, last_heartbeat_us;
        char skip_reason[256]; /* why the last record was skipped, with its position ("" if none was) */
        unsigned skips_logged; /* skip lines logged since the last report: a flood is summarised */
        uint64_t skips_unlogged;

        /* the open batch */
        Buffer *open_frame;
        Batch *open_batch;
        BatchBuilder builder;
        LIST_FIELDS(Source, flush);
        bool in_flush_list;

        uint64_t unacked_bytes;
        unsigned unacked_batches;
        uint64_t last_batch_id;
        char *pending_position; /* set while batches were in flight: adopted once they are acked */
        uint64_t pending_position_seq, pending_after_batch;

};

/* What a batch holds of memory until it is acked: the unit of the connector's memory budget. */
static inline uint64_t batch_memory(const Batch *b) {
        return (uint64_t) b->frame.allocated + sizeof(Batch);
}

typedef struct WriterClient {
        Manager *manager;
        char *path;
        FrameConn conn; /* to writer.sock, reconnecting with backoff */
        Batch *batches_head, *batches_tail; /* unacked, in send order */
        uint64_t next_batch_id;
        uint64_t unacked_bytes;
        Batch *free_batches; /* recycled through batches_next */
} WriterClient;

struct Manager {
        const ConnectorType *type;
        sd_event *event;
        Service service; /* the control socket, the sources (instances), idle exit, SIGTERM */
        char *state_dir, *cursor_dir;

        WriterClient writer;

        Source *flush_head, *flush_tail; /* sources with an open batch, oldest first */
        size_t open_bytes;                /* what the open batches hold */
        sd_event_source *flush_defer;
        sd_event_source *cursor_defer; /* writes the due cursors when the loop is idle */
        bool throttled_all;

        /* The receive time of records: the loop iteration's CLOCK_REALTIME timestamp, read from
         * sd-event once per iteration (now_valid is cleared by a prepare callback before each). */
        uint64_t now_realtime;
        bool now_valid;
        bool now_cacheable; /* the prepare callback is in place */
};

/* connector-manager.c */
/* What the service library (daemons/lib/service.h) needs to know of connectors. */
extern const ServiceClass connector_service_class;
int manager_new(const ConnectorType *type, const char *runtime_dir, const char *state_dir, uint64_t idle_exit_usec,
                Manager **ret);
Manager *manager_free(Manager *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(Manager *, manager_free);
int manager_start(Manager *m);
void manager_schedule_flush(Manager *m, Source *s);
/* Writes what the writer client buffered at the end of this loop iteration. */
void manager_schedule_write(Manager *m);
void manager_schedule_cursor_save(Manager *m);
Source *manager_find_source(Manager *m, const char *name);
void manager_update_throttle(Manager *m);
/* CLOCK_REALTIME of the current event loop iteration, in µs: no clock read per record. */
uint64_t manager_now(Manager *m);

/* connector-writer.c */
int writer_client_init(WriterClient *w, Manager *m, const char *path);
void writer_client_done(WriterClient *w);
int writer_client_connect(WriterClient *w);
Batch *writer_client_new_batch(WriterClient *w);
void writer_client_recycle_batch(WriterClient *w, Batch *b);
int writer_client_submit(WriterClient *w, Batch *b);
void writer_client_write(WriterClient *w);
int writer_client_hello(WriterClient *w, Source *s);

/* connector-source.c */
int source_new(Manager *m, const char *name, json_object *options, bool paused, char **ret_message, Source **ret);
Source *source_free(Source *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(Source *, source_free);
int source_update(Source *s, json_object *options, bool paused, char **ret_message);
void source_remove(Source *s);
void source_pause(Source *s);
void source_class_stop(void *instance);
void source_class_begin(void *instance);
void source_resume(Source *s);
void source_flush(Source *s);
void source_resume_known(Source *s, bool have_last_seq, uint64_t last_seq);
void source_batch_acked(Source *s, Batch *b);
/* The writer refused the batch for good (a record it does not take): its records count as skipped. */
void source_batch_refused(Source *s, Batch *b, const char *reason);
/* Logs the summary of skips that were not logged one by one (the once-a-second report). */
void source_log_skips(Source *s);
void source_set_throttled(Source *s, bool throttled);
int source_report(Source *s);
json_object *source_state_json(Source *s);
int source_save_cursor(Source *s);
typedef enum CursorSelection {
        CURSORS_ALL,           /* every changed cursor (exit) */
        CURSORS_WITH_POSITION, /* those that carry a position, and those due (the 1 s report) */
        CURSORS_DUE,           /* those of stopped sources, not written since */
} CursorSelection;
/* Saves the selected changed cursors with one syncfs() and one directory fsync() for all of them
 * (one alone: write_file_atomic()). */
int source_save_cursors(Manager *m, CursorSelection which);

/* Checks an add request's options as source_new() would take them, strictly (an unknown option name
 * is refused), without adding anything: the "check" op. *ret_message says why not; *ret_typed (if
 * non-NULL) gets the options with the values of the table's types. */
int connector_check_options(const ConnectorType *t, json_object *options, json_object **ret_typed, char **ret_message);
