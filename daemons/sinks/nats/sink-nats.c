/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* dpipe-sink-nats: the queue into a NATS JetStream stream, exactly once (man:dpipe-sink-nats(8)).
 *
 * Every record is one message on dpipe.<pipeline-id>.<source> (the `subject` template), with the
 * headers Nats-Msg-Id: <pipeline-id>:<offset> (the stream's duplicate window drops a resend; the
 * pipeline id is its part before the colon), Dpipe-Source, Dpipe-Offset and Dpipe-Ts. Every header
 * costs cnats a hash entry and allocations per message, so there are no more than these. Publishes
 * are asynchronous, core NATS publishes with the reply subject <inbox>.<offset> (nats-link.h), at
 * most max_in_flight of them unacknowledged; the pub acks come back on cnats's thread and reach the
 * loop through a NatsLink (nats-link.c). A record is confirmed to the library, and acked to dpiped,
 * only once the stream acknowledged it and everything before it.
 *
 * Where to resume comes from the stream itself, not only from its duplicate window (minutes): every
 * open looks up the last message on dpipe.<pipeline-id>.> and reads its Dpipe-Offset. Any error
 * (a refused or timed-out publish, a lost connection) fails the sink: it stops publishing at once,
 * so that nothing it sends after a lost message can land behind a gap, lets the old connection's
 * publishes settle, and looks up again. One case the lookup cannot see: the stream acknowledging a
 * later message while an earlier one is still unacknowledged (a message lost in a leader change or a
 * partition while the following ones reached the new leader). Then the sink resumes at the earliest
 * unacknowledged offset instead: nothing is lost, the resent records that did land are duplicates
 * the window drops, and the one that did not lands after its successors (dpipe-sink(7)). */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "nats-link.h"
#include "nats-address.h"
#include "nats-subject.h"
#include "pipeline-id.h"
#include "sink.h"
#include "util.h"

/* Before a lookup, wait at most this long for the previous connection's publishes: an ack that takes
 * longer belongs to a message that is lost, or that the duplicate window catches when resent. */
#define SETTLE_MAX_MS 2000u

/* Before resuming, this pipeline's last message in the stream must stay the same this long: a
 * publish the servers took before an outage is stored when the stream's quorum is back, maybe just
 * after the first lookup. A second per (re)connect; far longer than such a store takes. */
#define RECHECK_MS 1000

typedef struct NatsConfig {
        char *address;
        char *stream;
        char *subject;
        uint32_t replicas;
        uint32_t max_in_flight;
        uint32_t ack_timeout_ms;
        uint32_t timeout_ms;
} NatsConfig;

static const SinkOption nats_options[] = {
        SINK_OPTION_STRING("address", NatsConfig, address, NULL, true,
                           "nats://HOST:PORT[,nats://HOST:PORT...], the servers to try"),
        SINK_OPTION_STRING("stream", NatsConfig, stream, "DPIPE", false, "the JetStream stream"),
        SINK_OPTION_STRING("subject", NatsConfig, subject, "dpipe." PIPELINE_TOKEN "." SOURCE_TOKEN, false,
                           "subject template: " PIPELINE_TOKEN " (required) and " SOURCE_TOKEN " (last token)"),
        SINK_OPTION_U32("replicas", NatsConfig, replicas, "3",
                        "replicas of the stream when it is created (0: never create it)"),
        SINK_OPTION_U32("max_in_flight", NatsConfig, max_in_flight, "1024",
                        "publishes not yet acknowledged by the stream, at most"),
        SINK_OPTION_U32("ack_timeout_ms", NatsConfig, ack_timeout_ms, "10000",
                        "a publish not acknowledged within this fails the sink"),
        SINK_OPTION_U32("timeout_ms", NatsConfig, timeout_ms, "5000", "connect and JetStream API timeout"),
        {}
};

typedef struct InFlight {
        uint64_t offset;
        uint64_t sent_usec;
        bool acked;
} InFlight;

typedef struct NatsSink {
        char **servers;
        int n_servers;
        char *subject_prefix; /* the subject up to the source name (the whole subject without one) */
        bool per_source;
        char *last_subject;   /* this pipeline's messages, for the lookup */
        char *stream_subject; /* for a stream we create, or NULL */

        NatsLink *link;       /* of the current open */
        NatsConn *conn;       /* adopted from the open thread */
        NatsConn *retired;    /* of the previous open: torn down by the next open thread */

        InFlight *ring;       /* published, in offset order, until the head is acknowledged */
        size_t ring_size, head, n;
        bool blocked;
        NatsAck *acks;        /* swapped with the link's */
        size_t acks_allocated;
        sd_event_source *timeout_timer;

        bool have_floor;      /* resume no later than floor: a gap was seen */
        uint64_t floor;
} NatsSink;

static int servers_parse(const char *address, char ***ret, int *ret_n, char **ret_message) {
        const char *reason = NULL, *bad = "";
        int bad_len = 0, r;

        r = nats_servers_parse(address, ret, ret_n, &reason, &bad, &bad_len);
        if (r == -EINVAL && asprintf(ret_message, "address: '%.*s' is not nats://HOST:PORT (%s)", bad_len, bad, reason) < 0)
                *ret_message = NULL;
        return r;
}

static int nats_validate(const void *config, char **ret_message) {
        const NatsConfig *c = config;
        int r;

        r = servers_parse(c->address, NULL, NULL, ret_message);
        if (r < 0)
                return r;
        if (!nats_token_is_plain(c->stream, strlen(c->stream)) || strpbrk(c->stream, "./\\")) {
                *ret_message = strdup("stream: a name without blanks, dots, slashes or wildcards");
                return -EINVAL;
        }
        r = nats_subject_parse(c->subject, NULL, ret_message, NULL);
        if (r < 0)
                return r;
        if (c->replicas > 5) {
                *ret_message = strdup("replicas: JetStream keeps 1-5 replicas (0: never create the stream)");
                return -EINVAL;
        }
        if (c->max_in_flight < 1 || c->max_in_flight > 1000000) {
                *ret_message = strdup("max_in_flight must be 1-1000000");
                return -EINVAL;
        }
        if (c->ack_timeout_ms < 100 || c->timeout_ms < 100) {
                *ret_message = strdup("ack_timeout_ms and timeout_ms must be at least 100");
                return -EINVAL;
        }
        return 0;
}

static int nats_setup(sd_event *e, void **ret_userdata) {
        static int dummy;
        int r;

        r = nats_link_global_init();
        if (r < 0)
                return r;
        *ret_userdata = &dummy; /* non-NULL: teardown is called */
        return 0;
}

static void nats_teardown(void *userdata) {
        nats_link_global_done(3 * USEC_PER_SEC);
}

static int nats_timeout_fire(sd_event_source *es, uint64_t usec, void *userdata);

static int nats_init(Sink *s) {
        NatsSink *n = sink_data(s);
        NatsConfig *c = sink_config(s);
        _cleanup_free_ char *message = NULL;
        NatsSubjects subjects;
        int r;

        r = servers_parse(c->address, &n->servers, &n->n_servers, &message);
        if (r < 0)
                return r;
        r = nats_subject_parse(c->subject, sink_pipeline_id(s), &message, &subjects);
        if (r < 0)
                return r;
        n->subject_prefix = subjects.prefix;
        n->per_source = subjects.per_source;
        n->last_subject = subjects.last;
        n->stream_subject = subjects.stream;
        n->ring_size = c->max_in_flight;
        n->ring = calloc(n->ring_size, sizeof(InFlight));
        if (!n->ring)
                return -ENOMEM;
        r = sd_event_add_time(sink_get_event(s), &n->timeout_timer, CLOCK_MONOTONIC, UINT64_MAX, 0,
                              nats_timeout_fire, s);
        if (r >= 0)
                r = sd_event_source_set_enabled(n->timeout_timer, SD_EVENT_OFF);
        return r;
}

static void nats_done(Sink *s) {
        NatsSink *n = sink_data(s);
        NatsConfig *c = sink_config(s);

        nats_link_release(n->link);
        if (n->conn)
                (void) nats_conn_retire_async(n->conn, 0);
        if (n->retired)
                (void) nats_conn_retire_async(n->retired, MIN(c->ack_timeout_ms, SETTLE_MAX_MS));
        for (int i = 0; n->servers && i < n->n_servers; i++)
                free(n->servers[i]);
        free(n->servers);
        free(n->subject_prefix);
        free(n->last_subject);
        free(n->stream_subject);
        free(n->ring);
        free(n->acks);
        sd_event_source_disable_unref(n->timeout_timer);
}

static InFlight *ring_at(NatsSink *n, size_t i) {
        return &n->ring[(n->head + i) % n->ring_size];
}

/* The entry of offset, by binary search (offsets increase along the ring), or -1. */
static ssize_t ring_find(NatsSink *n, uint64_t offset) {
        size_t lo = 0, hi = n->n;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                uint64_t o = ring_at(n, mid)->offset;

                if (o == offset)
                        return (ssize_t) mid;
                if (o < offset)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return -1;
}

static void nats_arm_timeout(Sink *s) {
        NatsSink *n = sink_data(s);
        NatsConfig *c = sink_config(s);

        if (n->n == 0) {
                (void) sd_event_source_set_enabled(n->timeout_timer, SD_EVENT_OFF);
                return;
        }
        (void) sd_event_source_set_time(n->timeout_timer, ring_at(n, 0)->sent_usec + c->ack_timeout_ms * USEC_PER_MSEC);
        (void) sd_event_source_set_enabled(n->timeout_timer, SD_EVENT_ONESHOT);
}

static int nats_timeout_fire(sd_event_source *es, uint64_t usec, void *userdata) {
        Sink *s = userdata;
        NatsSink *n = sink_data(s);
        NatsConfig *c = sink_config(s);

        if (n->n == 0)
                return 0;
        (void) sink_fail(s, -ETIMEDOUT, "stream %s did not acknowledge offset %" PRIu64 " within %" PRIu32 " ms", c->stream,
                         ring_at(n, 0)->offset, c->ack_timeout_ms);
        return 0;
}

static const char *ack_error_text(const NatsAck *a, const char *what, const char *subject, char *buf, size_t size) {
        if (a->status == NATS_NO_RESPONDERS)
                (void) snprintf(buf, size, "no JetStream stream takes subject %s (does the stream's subject list cover it?)",
                                subject);
        else if (a->error_code != 0)
                (void) snprintf(buf, size, "%s (JetStream error %d)", isempty(what) ? natsStatus_GetText(a->status) : what,
                                a->error_code);
        else
                (void) snprintf(buf, size, "%s", isempty(what) ? natsStatus_GetText(a->status) : what);
        return buf;
}

static void nats_take_acks(Sink *s, NatsLink *l) {
        NatsSink *n = sink_data(s);
        NatsConfig *c = sink_config(s);
        bool advanced = false;
        uint64_t confirmed = 0;
        size_t count;
        char text[512];

        nats_link_take_acks(l, &n->acks, &n->acks_allocated, &count);
        for (size_t i = 0; i < count; i++) {
                const NatsAck *a = &n->acks[i];
                ssize_t k = ring_find(n, a->offset);

                if (k < 0)
                        continue; /* not ours any more */
                if (!a->ok) {
                        (void) sink_fail(s, 0, "stream %s did not take offset %" PRIu64 ": %s", c->stream, a->offset,
                                         ack_error_text(a, nats_link_ack_error(l), n->subject_prefix, text, sizeof(text)));
                        return;
                }
                if (k > 0 && !a->duplicate) {
                        /* A later message stored while an earlier one is unacknowledged: that one may be
                         * lost. Resume at it, whatever the lookup says. */
                        n->have_floor = true;
                        n->floor = ring_at(n, 0)->offset;
                        (void) sink_fail(s, 0,
                                         "stream %s stored offset %" PRIu64 " (sequence %" PRIu64 ") before offset %" PRIu64
                                         " was acknowledged; resuming at %" PRIu64,
                                         c->stream, a->offset, a->seq, n->floor, n->floor);
                        return;
                }
                ring_at(n, (size_t) k)->acked = true;
                while (n->n > 0 && ring_at(n, 0)->acked) {
                        confirmed = ring_at(n, 0)->offset;
                        n->head = (n->head + 1) % n->ring_size;
                        n->n--;
                        advanced = true;
                }
        }
        if (advanced)
                sink_confirm(s, confirmed);
        nats_arm_timeout(s);
        if (n->blocked && n->n <= n->ring_size / 2) {
                n->blocked = false;
                sink_ready(s);
        }
}

static void nats_link_event(NatsLink *l, void *userdata) {
        Sink *s = userdata;
        NatsSink *n = sink_data(s);
        NatsConfig *c = sink_config(s);
        NatsOpenResult res;
        const char *closed;

        if (l != n->link)
                return;
        if (nats_link_take_open(l, &res)) {
                if (res.error < 0) {
                        if (res.permanent)
                                (void) sink_fail_permanently(s, 0, "%s", res.message);
                        else
                                (void) sink_fail(s, 0, "%s", res.message);
                        return;
                }
                n->conn = res.conn;
                if (res.have_last)
                        log_info("Sink %s: stream %s holds offset %" PRIu64 " of pipeline %s at sequence %" PRIu64,
                                 sink_name(s), c->stream, res.last_offset, sink_pipeline_id(s), res.last_seq);
                if (n->have_floor && (!res.have_last || res.last_offset >= n->floor)) {
                        log_warning("Sink %s: resuming at offset %" PRIu64 ", where a message may have been lost, "
                                    "rather than after the stream's last one (%s%" PRIu64 ")",
                                    sink_name(s), n->floor, res.have_last ? "" : "none, ", res.last_offset);
                        res.have_last = n->floor > 0;
                        res.last_offset = n->floor > 0 ? n->floor - 1 : 0;
                }
                n->have_floor = false;
                sink_opened(s, res.have_last, res.last_offset);
                if (n->link != l)
                        return;
        }
        if (!n->conn)
                return;
        nats_take_acks(s, l);
        if (n->link != l)
                return;
        closed = nats_link_closed(l);
        if (closed)
                (void) sink_fail(s, 0, "%s", closed);
}

static void nats_open(Sink *s) {
        NatsSink *n = sink_data(s);
        NatsConfig *c = sink_config(s);
        _cleanup_free_ char *name = NULL;
        NatsOpenParams p;
        int r;

        r = nats_link_new(sink_get_event(s), nats_link_event, s, &n->link);
        if (r < 0) {
                (void) sink_fail(s, r, "cannot set up the NATS connection");
                return;
        }
        if (asprintf(&name, "dpipe-sink-nats %s/%s", sink_pipeline_id(s), sink_name(s)) < 0)
                name = NULL;
        p = (NatsOpenParams) {
                .servers = n->servers,
                .n_servers = n->n_servers,
                .name = name,
                .stream = c->stream,
                .stream_subject = n->stream_subject,
                .last_subject = n->last_subject,
                .replicas = c->replicas,
                .timeout_ms = c->timeout_ms,
                .settle_ms = MIN(c->ack_timeout_ms, SETTLE_MAX_MS),
                .recheck_ms = RECHECK_MS,
        };
        r = nats_link_open_async(n->link, TAKE_PTR(n->retired), &p);
        if (r < 0)
                (void) sink_fail(s, r, "cannot start connecting to NATS");
}

static void nats_close(Sink *s) {
        NatsSink *n = sink_data(s);
        NatsConfig *c = sink_config(s);

        (void) sd_event_source_set_enabled(n->timeout_timer, SD_EVENT_OFF);
        nats_link_release(n->link);
        n->link = NULL;
        if (n->conn) {
                /* Stop publishing now; the teardown waits for what is in flight before the next
                 * lookup. */
                if (n->retired)
                        (void) nats_conn_retire_async(n->retired, MIN(c->ack_timeout_ms, SETTLE_MAX_MS));
                n->retired = n->conn;
                n->conn = NULL;
        }
        n->head = n->n = 0;
        n->blocked = false;
}

static int nats_deliver(Sink *s, const SinkRecord *rec, size_t count) {
        NatsSink *n = sink_data(s);
        NatsConfig *c = sink_config(s);
        const char *pid = sink_pipeline_id(s);
        size_t prefix_len = strlen(n->subject_prefix), pid_len = strlen(pid);
        char subject[NATS_SUBJECT_MAX + PIPELINE_ID_MAX + SOURCE_NAME_MAX + 2], source[SOURCE_NAME_MAX + 1];
        char id[PIPELINE_ID_MAX + 22], offset[21], ts[21], reply[NATS_REPLY_MAX];
        size_t reply_len = n->conn->reply_len, published = 0;
        uint64_t now;
        size_t i;

        (void) sd_event_now(sink_get_event(s), CLOCK_MONOTONIC, &now);
        memcpy(subject, n->subject_prefix, prefix_len + 1);
        memcpy(id, pid, pid_len);
        id[pid_len] = ':';
        memcpy(reply, n->conn->reply, reply_len);

        for (i = 0; i < count; i++) {
                const SinkRecord *r = &rec[i];
                natsMsg *m = NULL;
                size_t offset_len;
                natsStatus st;
                InFlight *f;

                if (n->n >= n->ring_size) {
                        n->blocked = true;
                        break;
                }
                if (r->source_len > SOURCE_NAME_MAX || r->data_len > INT32_MAX) {
                        nats_conn_published(n->conn, published);
                        return sink_fail_permanently(s, -EMSGSIZE, "record %" PRIu64 " cannot be published (source or data too long)",
                                                     r->offset);
                }
                memcpy(source, r->source, r->source_len);
                source[r->source_len] = 0;
                if (n->per_source)
                        memcpy(subject + prefix_len, source, r->source_len + 1);
                offset_len = format_u64(offset, r->offset);
                offset[offset_len] = 0;
                ts[format_u64(ts, r->ts_us)] = 0;
                memcpy(id + pid_len + 1, offset, offset_len + 1);
                memcpy(reply + reply_len, offset, offset_len + 1);

                st = natsMsg_Create(&m, subject, reply, r->data, (int) r->data_len);
                if (st == NATS_OK)
                        st = natsMsgHeader_Set(m, "Nats-Msg-Id", id);
                if (st == NATS_OK)
                        st = natsMsgHeader_Set(m, "Dpipe-Source", source);
                if (st == NATS_OK)
                        st = natsMsgHeader_Set(m, "Dpipe-Offset", offset);
                if (st == NATS_OK)
                        st = natsMsgHeader_Set(m, "Dpipe-Ts", ts);
                if (st == NATS_OK)
                        st = natsConnection_PublishMsg(n->conn->nc, m);
                natsMsg_Destroy(m);
                if (st != NATS_OK)
                        nats_conn_published(n->conn, published);
                if (st == NATS_MAX_PAYLOAD)
                        return sink_fail_permanently(s, -EMSGSIZE,
                                                     "record %" PRIu64 " (%zu bytes) is larger than the NATS server's max_payload",
                                                     r->offset, r->data_len);
                if (st != NATS_OK)
                        return sink_fail(s, 0, "cannot publish offset %" PRIu64 " to stream %s: %s", r->offset, c->stream,
                                         natsStatus_GetText(st));

                published++;
                f = ring_at(n, n->n++);
                *f = (InFlight) { .offset = r->offset, .sent_usec = now };
        }
        nats_conn_published(n->conn, published);
        if (n->n > 0 && sd_event_source_get_enabled(n->timeout_timer, NULL) == 0)
                nats_arm_timeout(s);
        return (int) i;
}

static const SinkType nats_sink = {
        .name = "nats",
        .description = "Publishes the queue into a NATS JetStream stream, exactly once.",
        .config_size = sizeof(NatsConfig),
        .options = nats_options,
        .data_size = sizeof(NatsSink),
        .setup = nats_setup,
        .teardown = nats_teardown,
        .validate = nats_validate,
        .init = nats_init,
        .done = nats_done,
        .open = nats_open,
        .deliver = nats_deliver,
        .close = nats_close,
};

SINK_DEFINE_MAIN(nats_sink);
