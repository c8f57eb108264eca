/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Retention: whole segments only, oldest first, never the active one. The first offset moves up; the
 * next offset never moves down. See docs/queue-format.md, "Retention". */

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <unistd.h>

#include "queue-internal.h"
#include "util.h"

int queue_apply_retention(Queue *q) {
        uint64_t now = now_usec(CLOCK_REALTIME);
        int removed = 0, r;

        assert(q);

        /* A whole active segment that is older than the retention is closed, so that it can go. */
        if (q->opts.retention_usec > 0 && q->active_size > QUEUE_SEGMENT_HEADER_SIZE &&
            buffer_size(&q->pending) == 0 && q->last_write_usec + q->opts.retention_usec < now) {
                r = queue_roll(q);
                if (r < 0)
                        return r;
        }

        while (q->n_segments > 1) {
                const SegmentRef *s = q->segments;
                bool by_size = q->opts.retention_bytes > 0 && q->disk_bytes > q->opts.retention_bytes;
                bool by_age = q->opts.retention_usec > 0 && s->mtime_usec + q->opts.retention_usec < now;
                char name[32], iname[32];

                if (!by_size && !by_age)
                        break;
                segment_name(name, s->first, "seg");
                segment_name(iname, s->first, "idx");
                if (unlinkat(q->dir_fd, name, 0) < 0 && errno != ENOENT)
                        return -errno;
                (void) unlinkat(q->dir_fd, iname, 0);
                q->disk_bytes -= s->size;
                q->n_segments--;
                memmove(q->segments, q->segments + 1, q->n_segments * sizeof(SegmentRef));
                removed++;
                queue_event(q, QUEUE_EVENT_REMOVED,
                            "Retention removed segment %s (%s); the queue now starts at offset %" PRIu64, name,
                            by_size ? "total size above the limit" : "older than the retention time",
                            q->segments[0].first);
        }
        if (removed > 0)
                q->need_dir_sync = true;
        return removed;
}

