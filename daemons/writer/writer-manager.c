/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The writer's core: accepts connectors, appends their batches to the queue, and acks each batch
 * once it is durable under the --sync policy.
 *
 * Batching: connections only parse and append into the queue's memory buffer during an event loop
 * iteration; a post event source (lower priority than the connections) then writes everything with
 * one write() and acks it. The same happens earlier when a lot is pending.
 *
 * Syncing: fdatasync() runs in the sync thread (writer-sync.c), so that the loop goes on reading and
 * writing while the disk flushes. With --sync=interval the timer starts a sync every interval and
 * acks go out after the write. With --sync=batch acks are group-committed: each write bumps a
 * generation, and a sync that started at generation G releases the acks of every write up to G
 * when it completes; the next sync then starts at once for what was written meanwhile. */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <systemd/sd-daemon.h>

#include "daemon-util.h"
#include "frame.h"
#include "json-scan.h"
#include "json-util.h"
#include "log.h"
#include "socket-util.h"
#include "util.h"
#include "writer-conn.h"
#include "writer-manager.h"

#define COMMIT_PENDING_BYTES (8u * 1024u * 1024u)
#define COMMIT_PENDING_ACKS 4096u
#define STALL_RETRY_USEC (1 * USEC_PER_SEC)
#define MAINTENANCE_USEC (5 * USEC_PER_SEC)

static void queue_event_log(QueueEvent ev, const char *message, void *userdata) {
        switch (ev) {
        case QUEUE_EVENT_QUARANTINED:
                log_error("Queue recovery: %s", message);
                break;
        case QUEUE_EVENT_TRUNCATED:
        case QUEUE_EVENT_SALVAGED:
                log_warning("Queue recovery: %s", message);
                break;
        case QUEUE_EVENT_PROGRESS:
                /* Verifying a large queue takes a while: tell systemd we are alive. */
                log_debug("Queue recovery: %s", message);
                (void) sd_notifyf(false, "STATUS=%s\nEXTEND_TIMEOUT_USEC=%" PRIu64, message, 30 * USEC_PER_SEC);
                break;
        default:
                log_info("Queue: %s", message);
        }
}

bool manager_accepting(Manager *m) {
        return !m->stalled;
}

void manager_update_status(Manager *m) {
        if (m->stalled)
                (void) sd_notifyf(false,
                                  "STATUS=Stalled (%s): holding acks; %u connection(s), next offset %" PRIu64,
                                  strerror(m->stall_error), m->n_conns, queue_next_offset(m->queue));
        else
                (void) sd_notifyf(false,
                                  "STATUS=Accepting records: %u connection(s), queue offsets %" PRIu64 "..%" PRIu64
                                  ", %" PRIu64 " records written since start",
                                  m->n_conns, queue_first_offset(m->queue), queue_next_offset(m->queue),
                                  m->records_written);
}

static int manager_commit_internal(Manager *m);
static int manager_send_acks(Manager *m, uint64_t gen);

static int manager_add_ack(Manager *m, Conn *c, const BatchAck *ack) {
        if (m->n_acks == m->allocated_acks) {
                size_t a = m->allocated_acks ? m->allocated_acks * 2 : 256;
                PendingAck *p = reallocarray(m->acks, a, sizeof(PendingAck));
                if (!p)
                        return -ENOMEM;
                m->acks = p;
                m->allocated_acks = a;
        }
        m->acks[m->n_acks++] = (PendingAck) { .conn = c, .ack = *ack };
        c->pending++;
        return 0;
}

static int conn_reply(Conn *c, struct json_object *o);

/* A batch with a record the queue must not hold: nothing of it is stored, the connector learns which
 * record and why (a control message, then the ack with the error), and the connection goes on. */
static int manager_refuse_batch(Manager *m, Conn *c, const BatchView *v, uint32_t index, const BatchRecord *rec,
                                int error, size_t error_offset) {
        _cleanup_json_ struct json_object *o = NULL;
        _cleanup_free_ char *msg = NULL;
        BatchAck ack = { .batch_id = v->batch_id, .first_offset = queue_next_offset(m->queue), .error = error, .record = index };
        int r;

        if (error == -ERANGE)
                r = asprintf(&msg, "record %" PRIu32 " has seq %" PRIu64 ", which no record can follow", index, rec->seq);
        else
                r = asprintf(&msg, "record %" PRIu32 " (seq %" PRIu64 ") is not one JSON value on one line: %s at byte %zu",
                             index, rec->seq, json_scan_error_reason(rec->data, rec->len, error_offset), error_offset + 1);
        if (r < 0)
                return log_oom();
        log_warning("Refused batch %" PRIu64 " of source %.*s from %s, nothing of it stored: %s.", v->batch_id,
                    (int) v->source_len, v->source, c->peer, msg);
        m->batches_refused++;

        o = json_object_new_object();
        if (!o)
                return log_oom();
        json_object_object_add(o, "op", json_object_new_string("refused"));
        json_object_object_add(o, "batch_id", json_object_new_uint64(v->batch_id));
        json_object_object_add(o, "source", json_object_new_string_len(v->source, v->source_len));
        json_object_object_add(o, "record", json_object_new_uint64(index));
        json_object_object_add(o, "seq", json_object_new_uint64(rec->seq));
        json_object_object_add(o, "error", json_object_new_string(error == -ERANGE ? "seq" : "data"));
        json_object_object_add(o, "message", json_object_new_string(msg));
        r = conn_reply(c, o);
        if (r < 0)
                return r == -ENOMEM ? log_oom() : -EBADMSG;
        /* The ack goes with the others, in order. */
        r = manager_add_ack(m, c, &ack);
        if (r < 0)
                return log_oom();
        return 0;
}

int manager_handle_batch(Manager *m, Conn *c, const uint8_t *payload, uint32_t size) {
        Frame f = { .size = size, .type = FRAME_BATCH, .payload = payload };
        BatchAck ack = {};
        BatchRecord rec;
        BatchView v;
        uint64_t last = 0, bytes = 0;
        size_t pos = 0, n = 0;
        bool have;
        int r;

        r = batch_parse(&f, &v);
        if (r < 0) {
                log_warning("Connection %s sent a malformed batch (%" PRIu32 " bytes), closing it.", c->peer, size);
                return -EBADMSG;
        }
        if (v.count > m->allocated_scratch) {
                QueueAppend *p = reallocarray(m->scratch, v.count, sizeof(QueueAppend));
                if (!p)
                        return log_oom();
                m->scratch = p;
                m->allocated_scratch = v.count;
        }

        /* Idempotence: what the queue already holds of this source is dropped, so a batch sent
         * again after a crash is stored once. */
        have = queue_last_seq(m->queue, v.source, v.source_len, &last);
        for (uint32_t i = 0; batch_next(&v, &pos, &rec) > 0; i++) {
                size_t at = 0;

                /* Only valid JSON on one line reaches the queue, whoever wrote the batch: dpiped
                 * puts the bytes into its clients' lines as they are. */
                r = batch_record_check(&rec, &at);
                if (r < 0)
                        return manager_refuse_batch(m, c, &v, i, &rec, r, at);
                if (have && rec.seq <= last) {
                        ack.duplicates++;
                        continue;
                }
                m->scratch[n++] = (QueueAppend) { .seq = rec.seq, .ts_us = rec.ts_us, .data = rec.data, .data_len = rec.len };
                bytes += QUEUE_RECORD_HEADER_SIZE + v.source_len + rec.len;
                last = rec.seq;
                have = true;
        }

        ack.batch_id = v.batch_id;
        ack.first_offset = queue_next_offset(m->queue);
        if (n > 0) {
                r = queue_append(m->queue, v.source, v.source_len, m->scratch, n, &ack.first_offset);
                if (r == -ENOSPC || r == -EDQUOT) {
                        uint64_t limit = m->opts.queue.max_bytes;

                        m->stall_at_limit = limit > 0 &&
                                queue_disk_bytes(m->queue) + queue_pending_bytes(m->queue) + bytes > limit;
                        return r; /* the caller stalls; this frame is processed again later */
                }
                if (r < 0) {
                        log_warning_errno(r, "Failed to append batch %" PRIu64 " of source %.*s from %s: %m",
                                          v.batch_id, (int) v.source_len, v.source, c->peer);
                        ack = (BatchAck) { .batch_id = v.batch_id, .error = r };
                } else
                        ack.stored = (uint32_t) n;
        }
        if (ack.stored > 0 && m->stall_reported) {
                log_notice("The queue has room again, accepting records.");
                m->stall_reported = false;
                manager_update_status(m);
        }
        m->records_written += ack.stored;
        m->duplicates += ack.duplicates;
        m->batches++;
        if (ack.stored > 0)
                m->bytes_written += bytes; /* per batch: the metrics' figure costs one add */
        if (ack.duplicates > 0)
                log_debug("Batch %" PRIu64 " of source %.*s from %s: %" PRIu32 " stored, %" PRIu32 " duplicates dropped",
                          v.batch_id, (int) v.source_len, v.source, c->peer, ack.stored, ack.duplicates);

        r = manager_add_ack(m, c, &ack);
        if (r < 0)
                return log_oom();

        /* Do not let one iteration pile up without bound (see the comment at the top). */
        if (queue_pending_bytes(m->queue) >= COMMIT_PENDING_BYTES || m->n_acks - m->n_acks_written >= COMMIT_PENDING_ACKS)
                (void) manager_commit(m);
        return 0;
}

static int conn_reply(Conn *c, struct json_object *o) {
        int r;

        r = frame_append_json(&c->conn.out, o);
        if (r < 0)
                return r;
        return conn_flush(c);
}

int manager_handle_control(Manager *m, Conn *c, const uint8_t *payload, uint32_t size) {
        Frame f = { .size = size, .type = FRAME_CONTROL, .payload = payload };
        _cleanup_json_ struct json_object *o = NULL, *reply = NULL;
        const char *op, *source;
        uint64_t last;
        int r;

        r = frame_parse_json(&f, &o);
        if (r < 0) {
                log_warning("Connection %s sent a malformed control message, closing it.", c->peer);
                return -EBADMSG;
        }
        op = json_get_string(o, "op");
        reply = json_object_new_object();
        if (!reply)
                return log_oom();

        if (streq_ptr(op, "hello")) {
                source = json_get_string(o, "source");
                if (!source_name_is_valid(source)) {
                        json_object_object_add(reply, "op", json_object_new_string("error"));
                        json_object_object_add(reply, "message", json_object_new_string("invalid source name"));
                } else {
                        /* The last_seq we report must be durable under the policy, like an ack: a
                         * connector may skip what it names. While stalled with records not yet
                         * written, the hello waits like a batch. */
                        if (m->stalled && queue_pending_bytes(m->queue) > 0)
                                return -m->stall_error;
                        (void) manager_commit(m);
                        if (m->stalled && queue_pending_bytes(m->queue) > 0)
                                return -m->stall_error;
                        if (m->opts.sync == QUEUE_SYNC_BATCH) {
                                /* Rare (once per connection and source): sync right here rather
                                 * than hold the reply, and ack what that made durable. */
                                r = queue_sync(m->queue);
                                if (r == -ENOSPC || r == -EDQUOT)
                                        return r;
                                if (r < 0) {
                                        log_error_errno(r, "Failed to sync the queue in %s, exiting: %m", m->queue_dir);
                                        (void) sd_event_exit(m->event, r);
                                        return r;
                                }
                                r = manager_send_acks(m, m->write_gen);
                                if (r < 0)
                                        return r;
                        }
                        json_object_object_add(reply, "op", json_object_new_string("hello"));
                        json_object_object_add(reply, "source", json_object_new_string(source));
                        if (queue_last_seq(m->queue, source, strlen(source), &last))
                                json_object_object_add(reply, "last_seq", json_object_new_uint64(last));
                        log_debug("Connection %s: hello for source %s", c->peer, source);
                }
        } else if (streq_ptr(op, "status")) {
                json_object_object_add(reply, "op", json_object_new_string("status"));
                json_object_object_add(reply, "first_offset", json_object_new_uint64(queue_first_offset(m->queue)));
                json_object_object_add(reply, "next_offset", json_object_new_uint64(queue_next_offset(m->queue)));
                json_object_object_add(reply, "disk_bytes", json_object_new_uint64(queue_disk_bytes(m->queue)));
                json_object_object_add(reply, "records_written", json_object_new_uint64(m->records_written));
                json_object_object_add(reply, "duplicates", json_object_new_uint64(m->duplicates));
                json_object_object_add(reply, "batches_refused", json_object_new_uint64(m->batches_refused));
                json_object_object_add(reply, "connections", json_object_new_uint64(m->n_conns));
                json_object_object_add(reply, "stalled", json_object_new_boolean(m->stalled));
                json_object_object_add(reply, "syncing",
                                       json_object_new_boolean(m->sync_thread && sync_thread_busy(m->sync_thread)));
                json_object_object_add(reply, "bytes_written", json_object_new_uint64(m->bytes_written));
                json_object_object_add(reply, "batches", json_object_new_uint64(m->batches));
                json_object_object_add(reply, "segments", json_object_new_uint64(queue_n_segments(m->queue)));
                struct json_object *le = json_object_new_array(), *buckets = json_object_new_array();
                for (size_t i = 0; le && buckets && i < WRITER_SYNC_BUCKETS; i++) {
                        (void) json_object_array_add(le, json_object_new_uint64(writer_sync_bucket_usec[i]));
                        (void) json_object_array_add(buckets, json_object_new_uint64(m->sync_buckets[i]));
                }
                json_object_object_add(reply, "sync_le_us", le);
                json_object_object_add(reply, "sync_buckets", buckets);
                json_object_object_add(reply, "sync_count", json_object_new_uint64(m->sync_count));
                json_object_object_add(reply, "sync_sum_us", json_object_new_uint64(m->sync_sum_usec));
                json_object_object_add(reply, "sync_failures", json_object_new_uint64(m->sync_failures));
        } else {
                log_debug("Connection %s sent unknown control op '%s'.", c->peer, op ?: "(none)");
                json_object_object_add(reply, "op", json_object_new_string("error"));
                json_object_object_add(reply, "message", json_object_new_string("unknown op"));
        }

        r = conn_reply(c, reply);
        if (r < 0)
                return r == -ENOMEM ? log_oom() : -EBADMSG;
        return 0;
}

/* Sends the acks of everything written up to generation gen. */
static int manager_send_acks(Manager *m, uint64_t gen) {
        size_t k;
        int r;

        for (k = 0; k < m->n_acks_written && m->acks[k].gen <= gen; k++) {
                PendingAck *a = m->acks + k;
                if (!a->conn)
                        continue;
                a->conn->pending--;
                r = batch_ack_append(&a->conn->conn.out, &a->ack);
                if (r < 0)
                        return log_oom();
        }
        if (k == 0)
                return 0;
        memmove(m->acks, m->acks + k, (m->n_acks - k) * sizeof(PendingAck));
        m->n_acks -= k;
        m->n_acks_written -= k;

        LIST_FOREACH(conns, c, m->conns) {
                if (buffer_size(&c->conn.out) == 0)
                        continue;
                if (conn_flush(c) < 0) {
                        /* This may run from inside a connection's own callback: do not free it
                         * here. Shut it down; its callback sees the hangup and frees it. */
                        buffer_clear(&c->conn.out);
                        (void) shutdown(c->conn.fd, SHUT_RDWR);
                        c->conn.held = false;
                        (void) conn_update_events(c);
                }
        }
        return 0;
}

/* Maps an error of writing or syncing the queue: -ENOSPC/-EDQUOT stall; anything else is fatal (the
 * state of the file is unknown: restart and let recovery verify it). */
static int manager_queue_error(Manager *m, int r, const char *what) {
        if (r == -ENOSPC || r == -EDQUOT) {
                manager_stall(m, r);
                return r;
        }
        log_error_errno(r, "Failed to %s the queue in %s, exiting: %m", what, m->queue_dir);
        (void) sd_event_exit(m->event, r);
        return r;
}

/* Writes what was appended (one write()) and gives the acks appended so far a new generation.
 * Returns 1 if there was anything, 0 if not. */
static int manager_write(Manager *m) {
        int r;

        if (m->n_acks == m->n_acks_written && queue_pending_bytes(m->queue) == 0)
                return 0;
        r = queue_flush(m->queue);
        if (r < 0)
                return manager_queue_error(m, r, "write to");
        m->write_gen++;
        for (size_t i = m->n_acks_written; i < m->n_acks; i++)
                m->acks[i].gen = m->write_gen;
        m->n_acks_written = m->n_acks;
        return 1;
}

const uint64_t writer_sync_bucket_usec[WRITER_SYNC_BUCKETS] = {
        100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 1000000,
};

void manager_sync_observe(Manager *m, uint64_t usec, int error) {
        size_t i;

        if (error < 0) {
                m->sync_failures++;
                return;
        }
        for (i = 0; i < WRITER_SYNC_BUCKETS && usec > writer_sync_bucket_usec[i]; i++)
                ;
        if (i < WRITER_SYNC_BUCKETS)
                m->sync_buckets[i]++;
        m->sync_count++;
        m->sync_sum_usec += usec;
}

/* Hands a sync of what was written so far to the sync thread, unless one runs already (its
 * completion starts the next one). */
static int manager_sync_start(Manager *m) {
        int fds[3] = { -EBADF, -EBADF, -EBADF }, r;

        if (!m->sync_thread || sync_thread_busy(m->sync_thread))
                return 0;
        /* The job covers the segment closed at the last roll, if that is not durable yet, before
         * the active one: an ack under --sync=batch never gets ahead of the old segment's tail. */
        r = queue_sync_begin(m->queue, fds);
        if (r < 0)
                return manager_queue_error(m, r, "write to");
        if (r == 0) {
                /* Everything written is durable already (queue_sync() for a hello did it). */
                if (m->opts.sync == QUEUE_SYNC_BATCH)
                        return manager_send_acks(m, m->write_gen);
                return 0;
        }
        m->sync_gen = m->write_gen;
        m->sync_started_usec = now_usec(CLOCK_MONOTONIC);
        r = sync_thread_start(m->sync_thread, fds[0], fds[1], fds[2]);
        if (r < 0) {
                queue_sync_end(m->queue, r);
                return manager_queue_error(m, r, "sync");
        }
        return 0;
}

static void on_sync_done(SyncThread *t, int error, void *userdata) {
        Manager *m = userdata;

        queue_sync_end(m->queue, error);
        manager_sync_observe(m, now_usec(CLOCK_MONOTONIC) - m->sync_started_usec, error);
        if (error < 0) {
                /* On -ENOSPC the need to sync came back: the retry (batch) or the timer
                 * (interval) syncs again. */
                (void) manager_queue_error(m, error, "sync");
                return;
        }
        if (m->opts.sync == QUEUE_SYNC_BATCH && manager_send_acks(m, m->sync_gen) < 0) {
                (void) sd_event_exit(m->event, -ENOMEM);
                return;
        }
        /* Group commit: what was written while this sync ran gets the next one, right away. */
        (void) manager_commit(m);
}

static void on_spare_reserved(SyncThread *t, int error, void *userdata) {
        Manager *m = userdata;

        if (error < 0)
                log_debug_errno(error, "Could not reserve the next segment ahead, the roll will: %m");
        queue_spare_end(m->queue, error);
}

/* Work for the sync thread that keeps the disk off the loop: the next segment's space, reserved
 * while the active one fills, and (--sync=interval) the early writeback of what was written. */
static void manager_prepare_ahead(Manager *m) {
        uint64_t offset, length;
        int fd;

        if (!m->sync_thread)
                return;
        if (queue_spare_begin(m->queue, &fd, &length) > 0 && sync_thread_reserve(m->sync_thread, fd, length) < 0)
                queue_spare_end(m->queue, -EBUSY);
        if (m->opts.sync == QUEUE_SYNC_INTERVAL && queue_writeback_begin(m->queue, &fd, &offset, &length) > 0)
                sync_thread_writeback(m->sync_thread, fd, offset, length);
}

/* Makes what was appended durable under the sync policy and acks it (--sync=batch: once the sync
 * it starts, or the one after the running one, completed). */
static int manager_commit_internal(Manager *m) {
        int r;

        r = manager_write(m);
        if (r < 0)
                return r;
        if (m->opts.sync == QUEUE_SYNC_BATCH)
                r = m->n_acks_written > 0 ? manager_sync_start(m) : 0;
        else if (r > 0)
                r = manager_send_acks(m, m->write_gen);
        /* After the sync job: the thread takes that first. */
        manager_prepare_ahead(m);
        return r;
}

int manager_commit(Manager *m) {
        if (m->stalled)
                return 0; /* the retry timer takes care of it */
        return manager_commit_internal(m);
}

static int on_commit(sd_event_source *s, void *userdata) {
        (void) manager_commit(userdata);
        return 0;
}

void manager_stall(Manager *m, int error) {
        int r;

        error = error < 0 ? -error : error;
        if (!m->stalled) {
                m->stalled = true;
                m->stall_error = error;
                r = sd_event_source_set_time_relative(m->retry_timer, STALL_RETRY_USEC);
                if (r >= 0)
                        r = sd_event_source_set_enabled(m->retry_timer, SD_EVENT_ONESHOT);
                if (r < 0)
                        log_warning_errno(r, "Failed to arm the retry timer: %m");
        }
        if (!m->stall_reported) {
                if (m->stall_at_limit)
                        log_warning("The queue reached its limit (--max-bytes=%" PRIu64 "): holding acks and not reading "
                                    "from connectors until retention or an operator frees space.",
                                    m->opts.queue.max_bytes);
                else
                        log_warning_errno(error, "Cannot write to the queue in %s: %m. Holding acks and not reading "
                                          "from connectors until there is room again; retrying every second.",
                                          m->queue_dir);
                m->stall_reported = true;
                manager_update_status(m);
        }
        m->stall_at_limit = false;
}

static int on_retry(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;
        int r;

        (void) queue_apply_retention(m->queue);
        r = manager_commit_internal(m);
        if (r < 0) {
                if (r == -ENOSPC || r == -EDQUOT)
                        (void) sd_event_source_set_time_relative(s, STALL_RETRY_USEC),
                                (void) sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
                return 0;
        }

        /* Written: try the frames that were held. If they do not fit yet, we stall again. */
        m->stalled = false;
        LIST_FOREACH_SAFE(conns, c, next, m->conns) {
                if (conn_process(c) < 0) {
                        conn_free(c);
                        continue;
                }
        }
        LIST_FOREACH(conns, c, m->conns)
                (void) conn_update_events(c);
        if (!m->stalled && m->stall_reported && m->n_acks == 0) {
                log_notice("The queue has room again, accepting records.");
                m->stall_reported = false;
        }
        manager_update_status(m);
        return 0;
}

static int on_sync_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;
        int r;

        /* Acks went out after the write; this only bounds what a power loss can take. A sync still
         * running from the last tick is left alone. */
        if (!m->stalled)
                (void) manager_sync_start(m);
        r = sd_event_source_set_time_relative(s, m->opts.sync_interval_usec);
        if (r < 0)
                return log_error_errno(r, "Failed to re-arm the sync timer: %m");
        return sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
}

static int on_idle(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;

        if (m->n_conns > 0)
                return 0;
        log_info("No connection for %" PRIu64 " s, exiting.", m->opts.idle_exit_usec / USEC_PER_SEC);
        return sd_event_exit(m->event, 0);
}

static int on_maintenance(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;
        int r;

        if (!m->stalled && queue_pending_bytes(m->queue) == 0) {
                r = queue_apply_retention(m->queue);
                if (r < 0)
                        log_warning_errno(r, "Failed to apply retention, ignoring: %m");
        }
        if (m->records_written != m->last_status_records) {
                m->last_status_records = m->records_written;
                manager_update_status(m);
        }
        r = sd_event_source_set_time_relative(s, MAINTENANCE_USEC);
        if (r < 0)
                return r;
        return sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
}

void manager_conn_added(Manager *m, Conn *c) {
        if (m->idle_timer)
                (void) sd_event_source_set_enabled(m->idle_timer, SD_EVENT_OFF);
        log_debug("Connection %s accepted.", c->peer);
        manager_update_status(m);
}

void manager_conn_removed(Manager *m, Conn *c) {
        if (c->pending > 0)
                for (size_t i = 0; i < m->n_acks; i++)
                        if (m->acks[i].conn == c)
                                m->acks[i].conn = NULL;
        if (m->n_conns == 0 && m->idle_timer) {
                (void) sd_event_source_set_time_relative(m->idle_timer, m->opts.idle_exit_usec);
                (void) sd_event_source_set_enabled(m->idle_timer, SD_EVENT_ONESHOT);
        }
        if (m->queue)
                manager_update_status(m);
}

static int on_accept(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Manager *m = userdata;

        for (;;) {
                Conn *c;
                int cfd, r;

                cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (cfd < 0) {
                        if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED)
                                return 0;
                        log_warning_errno(errno, "Failed to accept a connection: %m");
                        return 0;
                }
                r = conn_new(m, cfd, &c);
                if (r < 0)
                        log_warning_errno(r, "Failed to set up a connection, closing it: %m");
        }
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Manager *m = userdata;

        log_info("Received %s, exiting.", strsignal((int) si->ssi_signo));
        return sd_event_exit(m->event, 0);
}

int manager_new(const WriterOptions *opts, Manager **ret) {
        _cleanup_(manager_freep) Manager *m = NULL;
        int r;

        m = calloc(1, sizeof(Manager));
        if (!m)
                return log_oom();
        m->listen_fd = -EBADF;
        m->opts = *opts;
        m->opts.runtime_dir = m->opts.state_dir = NULL;
        m->opts.runtime_dir = strdup(opts->runtime_dir);
        m->opts.state_dir = strdup(opts->state_dir);
        if (!m->opts.runtime_dir || !m->opts.state_dir)
                return log_oom();
        m->opts.queue.on_event = queue_event_log;
        /* No fdatasync() on the loop when a segment rolls: the old segment is synced by the next
         * job of the sync thread (see roll_when_synced in queue.h). */
        m->opts.queue.roll_when_synced = m->opts.sync != QUEUE_SYNC_NONE;
        m->opts.queue.userdata = m;
        m->queue_dir = path_join(m->opts.state_dir, "queue");
        m->socket_path = path_join(m->opts.runtime_dir, "writer.sock");
        if (!m->queue_dir || !m->socket_path)
                return log_oom();

        r = sd_event_default(&m->event);
        if (r < 0)
                return log_error_errno(r, "Failed to allocate the event loop: %m");
        r = event_add_exit_signals(m->event, on_signal, m);
        if (r < 0)
                return log_error_errno(r, "Failed to install signal handlers: %m");
        r = sd_event_set_watchdog(m->event, true);
        if (r < 0)
                log_warning_errno(r, "Failed to enable the watchdog, ignoring: %m");

        *ret = TAKE_PTR(m);
        return 0;
}

int manager_start(Manager *m) {
        int r;

        r = queue_open(m->queue_dir, &m->opts.queue, &m->queue);
        if (r == -EBUSY)
                return log_error_errno(r, "Failed to open the queue in %s: another dpipe-writer is using it.",
                                       m->queue_dir);
        if (r < 0)
                return log_error_errno(r, "Failed to open the queue in %s: %m", m->queue_dir);
        log_info("Queue %s: offsets %" PRIu64 "..%" PRIu64 ", %" PRIu64 " bytes.", m->queue_dir,
                 queue_first_offset(m->queue), queue_next_offset(m->queue), queue_disk_bytes(m->queue));

        r = mkdir_p(m->opts.runtime_dir, 0755);
        if (r < 0)
                return log_error_errno(r, "Failed to create %s: %m", m->opts.runtime_dir);
        m->listen_fd = socket_listen_unix_or_activated(m->socket_path, "writer", &m->socket_activated);
        if (m->listen_fd == -EADDRINUSE)
                return log_error_errno(m->listen_fd, "Failed to listen on %s: another process is listening there.",
                                       m->socket_path);
        if (m->listen_fd < 0)
                return log_error_errno(m->listen_fd, "Failed to listen on %s: %m", m->socket_path);

        r = sd_event_add_io(m->event, &m->listen_source, m->listen_fd, EPOLLIN, on_accept, m);
        if (r < 0)
                return log_error_errno(r, "Failed to watch the listening socket: %m");

        r = sd_event_add_post(m->event, &m->commit_source, on_commit, m);
        if (r >= 0)
                r = sd_event_source_set_priority(m->commit_source, SD_EVENT_PRIORITY_NORMAL + 10);
        if (r >= 0)
                r = sd_event_add_time_relative(m->event, &m->retry_timer, CLOCK_MONOTONIC, STALL_RETRY_USEC, 0,
                                               on_retry, m);
        if (r >= 0)
                r = sd_event_source_set_enabled(m->retry_timer, SD_EVENT_OFF);
        if (r >= 0)
                r = sd_event_add_time_relative(m->event, &m->maintenance_timer, CLOCK_MONOTONIC, MAINTENANCE_USEC,
                                               0, on_maintenance, m);
        if (r >= 0 && m->opts.sync == QUEUE_SYNC_INTERVAL)
                r = sd_event_add_time_relative(m->event, &m->sync_timer, CLOCK_MONOTONIC,
                                               m->opts.sync_interval_usec, 0, on_sync_timer, m);
        if (r >= 0 && m->opts.sync != QUEUE_SYNC_NONE)
                r = sync_thread_new(m->event, on_sync_done, on_spare_reserved, m, &m->sync_thread);
        if (r >= 0 && m->opts.idle_exit_usec > 0)
                r = sd_event_add_time_relative(m->event, &m->idle_timer, CLOCK_MONOTONIC, m->opts.idle_exit_usec,
                                               0, on_idle, m);
        if (r < 0)
                return log_error_errno(r, "Failed to set up event sources: %m");

        log_info("Listening on %s%s, --sync=%s.", m->socket_path, m->socket_activated ? " (socket-activated)" : "",
                 m->opts.sync == QUEUE_SYNC_BATCH ? "batch" : m->opts.sync == QUEUE_SYNC_INTERVAL ? "interval" : "none");
        return 0;
}

Manager *manager_free(Manager *m) {
        int r;

        if (!m)
                return NULL;

        /* Whatever was appended is written and synced; acks go out to whoever still listens. */
        if (m->queue) {
                if (m->sync_thread)
                        queue_sync_end(m->queue, sync_thread_wait(m->sync_thread));
                if (!m->stalled)
                        (void) manager_write(m);
                r = queue_sync(m->queue);
                if (r < 0)
                        log_warning_errno(r, "Failed to sync the queue at exit: %m");
                else
                        (void) manager_send_acks(m, m->write_gen);
        }
        while (m->conns)
                conn_free(m->conns);
        sync_thread_free(m->sync_thread);

        sd_event_source_disable_unref(m->listen_source);
        sd_event_source_disable_unref(m->commit_source);
        sd_event_source_disable_unref(m->sync_timer);
        sd_event_source_disable_unref(m->retry_timer);
        sd_event_source_disable_unref(m->idle_timer);
        sd_event_source_disable_unref(m->maintenance_timer);
        if (m->listen_fd >= 0 && !m->socket_activated)
                (void) unlink(m->socket_path);
        safe_close(m->listen_fd);
        queue_free(m->queue);
        sd_event_unref(m->event);
        free(m->acks);
        free(m->scratch);
        free(m->queue_dir);
        free(m->socket_path);
        free(m->opts.runtime_dir);
        free(m->opts.state_dir);
        free(m);
        return NULL;
}
