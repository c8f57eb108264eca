/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The message queue's writer-side object: queue_open() as a list of start-up phases, queue_free(),
 * and what the writer asks about the queue. Format: docs/queue-format.md; the files that do the
 * work are listed in queue-internal.h.
 *
 * The writer appends into memory (queue_append: one memcpy and one CRC per record, no syscall, no
 * allocation in the steady state), writes everything with one write() per queue_flush(), and
 * makes it durable with one fdatasync() per queue_sync(). */

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "queue-internal.h"
#include "util.h"

void queue_event(Queue *q, QueueEvent ev, const char *fmt, ...) {
        char buf[768];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);
        log_debug("queue %s: %s", q->dir, buf);
        if (q->opts.on_event)
                q->opts.on_event(ev, buf, q->opts.userdata);
}

static int queue_new(const char *dir, const QueueOptions *opts, Queue **ret) {
        _cleanup_(queue_freep) Queue *q = NULL;

        q = calloc(1, sizeof(Queue));
        if (!q)
                return -ENOMEM;
        q->dir_fd = q->lock_fd = q->active_fd = q->index_fd = q->sealed_fd = q->spare_fd = -EBADF;
        if (opts)
                q->opts = *opts;
        if (q->opts.segment_size == 0)
                q->opts.segment_size = QUEUE_SEGMENT_SIZE_DEFAULT;
        q->dir = strdup(dir);
        if (!q->dir)
                return -ENOMEM;
        *ret = TAKE_PTR(q);
        return 0;
}

/* Start-up is a list of phases, each a function of queue-recover.c, run in this order (the shape of
 * nats-server's file store: recover state, recover messages, then go on): nothing is appended before
 * every segment was verified, and nothing verified is trusted before it is durable. */
int queue_open(const char *dir, const QueueOptions *opts, Queue **ret) {
        _cleanup_(queue_freep) Queue *q = NULL;
        _cleanup_(queue_recovery_done) QueueRecovery rec = {};
        int r;

        r = queue_new(dir, opts, &q);
        if (r < 0)
                return r;
        r = queue_recover_lock(q);
        if (r < 0)
                return r;
        r = queue_recover_state(q, &rec);
        if (r < 0)
                return r;
        r = queue_recover_segments(q, &rec);
        if (r < 0)
                return r;
        r = queue_recover_active(q, &rec);
        if (r < 0)
                return r;
        r = queue_recover_commit(q);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(q);
        return 0;
}

Queue *queue_free(Queue *q) {
        if (!q)
                return NULL;
        if (q->active_fd >= 0 && queue_sync(q) >= 0)
                (void) queue_persist_next_offset(q);
        safe_close(q->active_fd);
        safe_close(q->index_fd);
        safe_close(q->sealed_fd);
        if (q->spare_state != SPARE_NONE)
                (void) unlinkat(q->dir_fd, SPARE_FILE, 0);
        safe_close(q->spare_fd);
        safe_close(q->lock_fd);
        safe_close(q->dir_fd);
        buffer_done(&q->pending);
        buffer_done(&q->index_pending);
        source_table_done(&q->sources);
        free(q->segments);
        free(q->dir);
        free(q);
        return NULL;
}

bool queue_last_seq(Queue *q, const char *source, size_t source_len, uint64_t *ret) {
        return source_table_get(&q->sources, source, source_len, ret);
}

uint64_t queue_first_offset(Queue *q) {
        return q->n_segments > 0 ? q->segments[0].first : q->next_offset;
}

uint64_t queue_next_offset(Queue *q) {
        return q->next_offset;
}

uint64_t queue_disk_bytes(Queue *q) {
        return q->disk_bytes;
}

size_t queue_n_segments(Queue *q) {
        return q->n_segments;
}
