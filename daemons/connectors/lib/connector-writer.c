/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The writer client: one connection to <runtime-dir>/writer.sock carrying FRAME_BATCH frames,
 * pipelined. Every batch stays in memory until its FRAME_ACK arrives; when the connection drops
 * (the writer crashed or was restarted), the client reconnects (socket activation brings the
 * writer back) and sends every unacked batch again, in order. The writer drops records whose seq it
 * already stored, so a resent batch is not stored twice. */

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "connector-internal.h"
#include "frame.h"
#include "json-util.h"
#include "log.h"
#include "socket-util.h"

#define WRITER_RETRY_MIN_USEC (100 * USEC_PER_MSEC)
#define WRITER_RETRY_MAX_USEC (5 * USEC_PER_SEC)
/* Spare batch buffers kept for reuse (each up to ~4 x BATCH_FLUSH_BYTES): a few, not one per source. */
#define BATCH_FREE_LIST_MAX 4

static void writer_client_disconnect(WriterClient *w, bool retry);
static const FrameConnOps writer_client_ops;

int writer_client_init(WriterClient *w, Manager *m, const char *path) {
        *w = (WriterClient) {
                .manager = m,
                .next_batch_id = 1,
        };
        frame_conn_init(&w->conn, m->event,
                        &(FrameConnConfig) {
                                .frame_max = FRAME_SIZE_MAX,
                                .read_min = 64 * 1024,
                                .socket_buffers = 4 * 1024 * 1024,
                                .backoff = BACKOFF_INIT(WRITER_RETRY_MIN_USEC, WRITER_RETRY_MAX_USEC, false),
                        },
                        &writer_client_ops, w);
        w->path = strdup(path);
        return w->path ? 0 : -ENOMEM;
}

static void batch_free(Batch *b) {
        buffer_done(&b->frame);
        free(b->position);
        free(b->refusal);
        free(b);
}

void writer_client_done(WriterClient *w) {
        Batch *b;

        writer_client_disconnect(w, false);
        while ((b = w->batches_head)) {
                LIST_REMOVE_TAIL(batches, w->batches_head, w->batches_tail, b);
                batch_free(b);
        }
        while ((b = w->free_batches)) {
                w->free_batches = b->batches_next;
                batch_free(b);
        }
        frame_conn_done(&w->conn);
        w->path = mfree(w->path);
}

Batch *writer_client_new_batch(WriterClient *w) {
        Batch *b = w->free_batches;

        if (b) {
                w->free_batches = b->batches_next;
                b->batches_next = b->batches_prev = NULL;
                return b;
        }
        return calloc(1, sizeof(Batch));
}

void writer_client_recycle_batch(WriterClient *w, Batch *b) {
        unsigned n = 0;

        for (Batch *i = w->free_batches; i && n < BATCH_FREE_LIST_MAX; i = i->batches_next)
                n++;
        if (n >= BATCH_FREE_LIST_MAX || b->frame.allocated > 4 * BATCH_FLUSH_BYTES) {
                batch_free(b);
                return;
        }
        /* Keep the storage: the steady state allocates no batches. */
        buffer_clear(&b->frame);
        b->position = mfree(b->position);
        b->refusal = mfree(b->refusal);
        b->count = 0;
        b->batches_prev = NULL;
        b->batches_next = w->free_batches;
        w->free_batches = b;
}

static int writer_client_flush_out(WriterClient *w) {
        int r;

        r = frame_conn_flush(&w->conn);
        if (r < 0) {
                log_warning_errno(r, "Failed to write to the writer: %m");
                writer_client_disconnect(w, true);
        }
        return r;
}

static bool writer_client_has_work(WriterClient *w) {
        struct lh_entry *e;

        if (w->batches_head)
                return true;
        service_foreach(&w->manager->service, e) {
                Source *s = (Source *) lh_entry_v(e);
                if (!s->resume_known && s->core.state == SOURCE_CONNECTING)
                        return true;
        }
        return false;
}

static int writer_client_send_hello(WriterClient *w, Source *s) {
        _cleanup_json_ json_object *o = json_object_new_object();
        int r;

        if (!o)
                return -ENOMEM;
        json_object_object_add(o, "op", json_object_new_string("hello"));
        json_object_object_add(o, "source", json_object_new_string(s->name));
        r = frame_append_json(&w->conn.out, o);
        if (r < 0)
                return r;
        s->hello_pending = true;
        return 0;
}

static int writer_client_on_connected(FrameConn *conn) {
        WriterClient *w = conn->userdata;
        struct lh_entry *e;
        unsigned n = 0;
        int r;

        service_foreach(&w->manager->service, e) {
                Source *s = (Source *) lh_entry_v(e);
                if (!s->resume_known && s->core.state == SOURCE_CONNECTING) {
                        r = writer_client_send_hello(w, s);
                        if (r < 0)
                                return r;
                }
        }
        for (Batch *b = w->batches_head; b; b = b->batches_next, n++) {
                r = buffer_append(&w->conn.out, buffer_begin(&b->frame), buffer_size(&b->frame));
                if (r < 0)
                        return r;
        }
        if (n > 0)
                log_info("Connected to the writer, sending %u unacked batches again", n);
        else
                log_debug("Connected to the writer at %s", w->path);
        return writer_client_flush_out(w);
}

static Batch *writer_client_find_batch(WriterClient *w, uint64_t id) {
        for (Batch *b = w->batches_head; b; b = b->batches_next)
                if (b->id == id)
                        return b;
        return NULL;
}

/* The batch is done with: acked, or refused for good (reason != NULL). */
static void writer_client_retire_batch(WriterClient *w, Batch *b, const char *refusal) {
        Source *s;

        LIST_REMOVE_TAIL(batches, w->batches_head, w->batches_tail, b);
        w->unacked_bytes -= MIN(w->unacked_bytes, batch_memory(b));
        s = manager_find_source(w->manager, b->source);
        if (s && refusal)
                source_batch_refused(s, b, refusal);
        else if (s)
                source_batch_acked(s, b);
        writer_client_recycle_batch(w, b);
        manager_update_throttle(w->manager);
        if (!w->batches_head) {
                service_check_idle(&w->manager->service);
                service_check_drained(&w->manager->service);
        }
}

static int writer_client_handle_ack(WriterClient *w, const Frame *f) {
        BatchAck ack;
        Batch *b;
        int r;

        r = batch_ack_parse(f, &ack);
        if (r < 0)
                return log_warning_errno(r, "Malformed ack from the writer: %m");
        b = writer_client_find_batch(w, ack.batch_id);
        if (!b) {
                log_debug("Ack for unknown batch %" PRIu64 ", ignoring.", ack.batch_id);
                return 0;
        }
        if (batch_ack_refused(&ack)) {
                /* A record the writer does not take (not one JSON value on one line, an impossible
                 * seq): the connector let through what it should not have. Sending it again can not
                 * help, so its records are skipped and the stream goes on. */
                const char *why = b->refusal ?: strerror(-ack.error);

                log_error("The writer refused batch %" PRIu64 " of source %s (%u records): %s", ack.batch_id, b->source,
                          b->count, why);
                writer_client_retire_batch(w, b, why);
                return 0;
        }
        if (ack.error != 0) {
                /* Nothing of it was stored (e.g. disk full): try again later, everything from here. */
                log_warning_errno(ack.error, "The writer refused batch %" PRIu64 " of source %s, retrying: %m",
                                  ack.batch_id, b->source);
                return -EAGAIN;
        }
        log_debug("Batch %" PRIu64 " of %s acked: %u stored at offset %" PRIu64 ", %u duplicates", ack.batch_id,
                  b->source, ack.stored, ack.first_offset, ack.duplicates);
        writer_client_retire_batch(w, b, NULL);
        return 0;
}

static int writer_client_handle_control(WriterClient *w, const Frame *f) {
        _cleanup_json_ json_object *o = NULL;
        const char *op, *name;
        uint64_t last_seq = 0;
        bool have;
        Source *s;
        int r;

        r = frame_parse_json(f, &o);
        if (r < 0)
                return log_warning_errno(r, "Malformed control message from the writer, ignoring.");
        op = json_get_string(o, "op");
        if (streq_ptr(op, "refused")) {
                /* Comes before the ack that refuses the batch: keep the reason for it. */
                const char *msg = json_get_string(o, "message");
                uint64_t id;
                Batch *b;

                if (!msg || !json_get_uint64(o, "batch_id", &id) || !(b = writer_client_find_batch(w, id)))
                        return 0;
                free(b->refusal);
                b->refusal = strdup(msg);
                return 0;
        }
        if (!streq_ptr(op, "hello")) {
                log_debug("Control message '%s' from the writer, ignoring.", op ?: "?");
                return 0;
        }
        name = json_get_string(o, "source");
        s = name ? manager_find_source(w->manager, name) : NULL;
        if (!s)
                return 0;
        have = json_get_uint64(o, "last_seq", &last_seq);
        source_resume_known(s, have, last_seq);
        return 0;
}

static void writer_client_on_retry(FrameConn *conn) {
        WriterClient *w = conn->userdata;

        if (writer_client_has_work(w))
                (void) writer_client_connect(w);
}

static void writer_client_schedule_retry(WriterClient *w) {
        (void) frame_conn_schedule_retry(&w->conn);
}

static void writer_client_disconnect(WriterClient *w, bool retry) {
        struct lh_entry *e;

        frame_conn_disconnect(&w->conn);
        if (!retry) {
                frame_conn_cancel_retry(&w->conn);
                return;
        }
        if (w->manager->service.instances)
                service_foreach(&w->manager->service, e) {
                        Source *s = (Source *) lh_entry_v(e);
                        s->hello_pending = false;
                }
        if (writer_client_has_work(w))
                writer_client_schedule_retry(w);
}

static int writer_client_on_frame(FrameConn *conn, const Frame *f) {
        WriterClient *w = conn->userdata;
        int r = 0;

        if (f->type == FRAME_ACK)
                r = writer_client_handle_ack(w, f);
        else if (f->type == FRAME_CONTROL)
                r = writer_client_handle_control(w, f);
        /* -EAGAIN: a batch the writer could not store yet, resent after a reconnect. Any other
         * error was a malformed frame, logged and skipped. */
        return r == -EAGAIN ? r : 0;
}

/* The connection ended under us: everything unacked goes again after a reconnect. */
static void writer_client_on_closed(FrameConn *conn, int reason) {
        WriterClient *w = conn->userdata;

        if (reason == 0)
                log_warning("The writer closed the connection%s",
                            w->batches_head ? ", reconnecting to resend unacked batches" : "");
        else if (reason == -EMSGSIZE || reason == -EBADMSG)
                log_warning_errno(reason, "Bad frame from the writer: %m");
        else if (reason != -EAGAIN) /* a batch the writer could not store yet: resent */
                log_warning_errno(reason, "Lost the connection to the writer at %s: %m", w->path);
        writer_client_disconnect(w, true);
}

static const FrameConnOps writer_client_ops = {
        .connected = writer_client_on_connected,
        .frame = writer_client_on_frame,
        .closed = writer_client_on_closed,
        .retry = writer_client_on_retry,
};

int writer_client_connect(WriterClient *w) {
        int r;

        if (frame_conn_is_open(&w->conn) || frame_conn_retry_pending(&w->conn))
                return 0;
        r = frame_conn_connect(&w->conn, w->path);
        if (r < 0) {
                log_full_errno(w->conn.backoff.attempt == 0 ? LOG_WARNING : LOG_DEBUG, r,
                               "Failed to connect to the writer at %s, will retry: %m", w->path);
                writer_client_schedule_retry(w);
        }
        return 0;
}

int writer_client_submit(WriterClient *w, Batch *b) {
        int r;

        LIST_APPEND_TAIL(batches, w->batches_head, w->batches_tail, b);
        w->unacked_bytes += batch_memory(b);
        if (!frame_conn_is_connected(&w->conn))
                return writer_client_connect(w);
        r = buffer_append(&w->conn.out, buffer_begin(&b->frame), buffer_size(&b->frame));
        if (r < 0)
                return r;
        /* Small batches (many sources) go out together at the end of the iteration. */
        if (buffer_size(&w->conn.out) < WRITER_OUT_FLUSH_BYTES) {
                manager_schedule_write(w->manager);
                return 0;
        }
        return writer_client_flush_out(w);
}

void writer_client_write(WriterClient *w) {
        if (frame_conn_is_connected(&w->conn) && buffer_size(&w->conn.out) > 0)
                (void) writer_client_flush_out(w);
}

int writer_client_hello(WriterClient *w, Source *s) {
        int r;

        if (!frame_conn_is_connected(&w->conn))
                return writer_client_connect(w); /* sent from writer_client_on_connected() */
        r = writer_client_send_hello(w, s);
        if (r < 0)
                return r;
        return writer_client_flush_out(w);
}
