/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* dpiped --stream= (dpiped(8), STREAM MODE): the client protocol served from a NATS JetStream stream that
 * edge pipelines' nats sinks publish into, instead of the local queue. Offsets are the stream's
 * sequence numbers, a record's source is "<pipeline-id>/<source>" (from the message's Nats-Msg-Id
 * and Dpipe-Source headers), and the offsets of durable (named) subscriptions are kept in the
 * cluster, in the key-value bucket <stream>_SUBSCRIPTIONS (key: the subscription's name, value: the
 * offset after its last acked record, in decimal), so that any dpiped serving the same stream resumes
 * them.
 *
 * cnats runs threads of its own and its calls block, and it has no sd-event adapter. So the work
 * happens on threads and the results travel to the loop through one eventfd, as dpipe-sink-nats does:
 *
 *  - the StreamLink's thread connects (and cnats reconnects by itself), and reads the stream's
 *    bounds every second for the status op and the queue properties;
 *  - each subscription has a StreamReader thread: it finds where to start (the stream's bounds, or
 *    the committed offset from the bucket), reads the stream through an ephemeral pull consumer
 *    created at the next sequence it needs (recreated there after any failure: a lost consumer, a
 *    leader change, an outage), and formats record lines into a mailbox, never more than the
 *    client's window allows; it stores committed offsets in the bucket.
 *
 * The loop takes the lines with one lock per wakeup, hands them to the client as local records are,
 * and tells the reader about acks. Nothing here logs above debug except through the loop. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buffer.h"

typedef struct Manager Manager;
typedef struct StreamLink StreamLink;
typedef struct StreamReader StreamReader;

typedef enum StreamFrom {
        STREAM_FROM_EARLIEST,
        STREAM_FROM_LATEST,
        STREAM_FROM_OFFSET,
        STREAM_FROM_COMMITTED, /* the bucket's offset; earliest when there is none */
} StreamFrom;

/* Starts the link's thread; wake() runs on the loop whenever a reader has news. */
int stream_link_new(Manager *m, const char *servers, const char *stream, StreamLink **ret);
/* Stops every thread (bounded wait) and frees what the loop owns; readers still held are released. */
StreamLink *stream_link_free(StreamLink *l);
/* The stream's bounds as last read (first sequence, and the sequence after the last message); false
 * while unknown. */
bool stream_link_bounds(StreamLink *l, uint64_t *ret_first, uint64_t *ret_next);

/* A reader for one subscription; sources (n of them) filter on "<pipeline-id>/<source>". */
int stream_reader_new(StreamLink *l, const char *name, StreamFrom from, uint64_t offset, char **sources, size_t n_sources,
                      StreamReader **ret);
/* The loop lets go; the thread stores the last committed offset (bounded) and frees the reader. */
void stream_reader_release(StreamReader *r);
/* How many more records the client may have in flight (its window minus the unacked ones). */
void stream_reader_set_room(StreamReader *r, uint64_t room);
/* The offset after the last acked record of a named subscription: stored in the bucket. */
void stream_reader_commit(StreamReader *r, uint64_t committed);
/* Once the start is known: true with the start offset (once); or true with an error message (once)
 * when the subscription cannot start (ret_error malloc'ed). False while not known yet. */
bool stream_reader_take_start(StreamReader *r, uint64_t *ret_start, char **ret_error);
/* Moves record lines to out, while out holds less than out_max, and their offsets to *seqs
 * (reallocated, *allocated entries), *n of them. Returns 0 or -ENOMEM. */
int stream_reader_take(StreamReader *r, Buffer *out, size_t out_max, uint64_t **seqs, size_t *allocated, size_t *n);
/* A failure of the reader's thread the loop should log (once per failure), else NULL; malloc'ed. */
char *stream_reader_take_problem(StreamReader *r);

/* The loop side, in dpiped-client.c: every client with a stream subscription looks at its reader. */
void manager_stream_wake(Manager *m);
