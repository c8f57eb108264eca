/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "batch.h"
#include "macro.h"
#include "queue.h"
#include "writer-sync.h"

typedef struct Conn Conn;

typedef struct WriterOptions {
        char *runtime_dir;
        char *state_dir;
        QueueSync sync;
        uint64_t sync_interval_usec;
        QueueOptions queue;
        uint64_t idle_exit_usec; /* 0 = never */
} WriterOptions;

/* Upper bounds of the sync duration histogram's buckets, in µs (the status reply carries them). */
#define WRITER_SYNC_BUCKETS 12
extern const uint64_t writer_sync_bucket_usec[WRITER_SYNC_BUCKETS];

/* An ack that waits until its batch is durable under the sync policy. */
typedef struct PendingAck {
        Conn *conn; /* NULL once the connection is gone */
        uint64_t gen; /* the write generation that wrote its records (set when written) */
        BatchAck ack;
} PendingAck;

typedef struct Manager {
        sd_event *event;
        WriterOptions opts;
        char *queue_dir;
        char *socket_path;

        Queue *queue;

        int listen_fd;
        bool socket_activated;
        sd_event_source *listen_source;
        sd_event_source *commit_source;      /* post: write + sync + ack what this iteration read */
        sd_event_source *sync_timer;         /* --sync=interval */
        sd_event_source *retry_timer;        /* stalled: try again */
        sd_event_source *idle_timer;         /* --idle-exit-sec */
        sd_event_source *maintenance_timer;  /* retention by age, STATUS= */

        Conn *conns;
        unsigned n_conns;
        uint64_t next_conn_id;

        /* In order: acks[0..n_acks_written) are written and (--sync=batch) wait for a sync that
         * started after their write, acks[n_acks_written..n_acks) are appended, not yet written. */
        PendingAck *acks;
        size_t n_acks, n_acks_written, allocated_acks;
        QueueAppend *scratch; /* reused for every batch: no allocation per record */
        size_t allocated_scratch;

        /* Group commit: every write that stored something bumps write_gen; a sync covers what was
         * written up to the generation it started at (sync_gen). The fdatasync() itself runs in
         * sync_thread, never on the loop (except for hello, at exit, and at a second roll while the
         * segment closed at the first is not durable yet). */
        SyncThread *sync_thread;
        uint64_t write_gen;
        uint64_t sync_gen;
        bool stalled;        /* not accepting records: disk or queue full */
        bool stall_reported; /* logged; cleared once records flow again */
        int stall_error;
        bool stall_at_limit; /* the batch that stalled would take the queue above --max-bytes */

        uint64_t records_written, duplicates, batches, bytes_written, batches_refused;
        uint64_t last_status_records;

        /* How long each sync job took (from the hand-over to the thread to its completion on the
         * loop), as a histogram for dpiped's metrics: counted per sync, never per record. */
        uint64_t sync_started_usec;
        uint64_t sync_buckets[WRITER_SYNC_BUCKETS];
        uint64_t sync_count, sync_sum_usec, sync_failures;
} Manager;

int manager_new(const WriterOptions *opts, Manager **ret);
Manager *manager_free(Manager *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(Manager *, manager_free);
int manager_start(Manager *m);

/* For the connections: */
int manager_handle_batch(Manager *m, Conn *c, const uint8_t *payload, uint32_t size);
int manager_handle_control(Manager *m, Conn *c, const uint8_t *payload, uint32_t size);
void manager_stall(Manager *m, int error);
/* Writes and syncs what was appended, then sends every pending ack (called once per loop
 * iteration, or earlier when a lot is pending). */
int manager_commit(Manager *m);
bool manager_accepting(Manager *m);
void manager_conn_added(Manager *m, Conn *c);
void manager_conn_removed(Manager *m, Conn *c);
void manager_update_status(Manager *m);
/* Counts one sync job of usec in the histogram (a failed one only in sync_failures). */
void manager_sync_observe(Manager *m, uint64_t usec, int error);
