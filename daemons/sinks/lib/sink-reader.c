/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A sink's connection to dpiped's client protocol (dpiped(8), CLIENT PROTOCOL): over client.sock (an address
 * with a '/') or TCP (HOST:PORT). It says hello, subscribes with the sink's durable subscription
 * name, takes the pushed record lines apart without a JSON parse (sink-record.c), answers pings,
 * sends the acks the sink decides on, asks for dpiped's status once a second (for Lag), and
 * declares dpiped dead after DEAD_SERVER_HEARTBEATS heartbeats of silence.
 *
 * Everything it learns goes to the sink through the sink_reader_*() calls of sink-internal.h; any
 * of them may close the sink and free this reader, which the callbacks notice through the sink's
 * generation counter and then touch nothing of the reader any more. */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>

#include "frame.h"
#include "json-util.h"
#include "line.h"
#include "log.h"
#include "sink-internal.h"
#include "sink-record.h"
#include "socket-util.h"

/* Records may be large: what the queue accepts, plus the envelope. */
#define READER_LINE_MAX (FRAME_SIZE_MAX + 4096u)
#define READER_READ_ROOM (256u * 1024u)
#define READER_READS_PER_WAKEUP 16
#define READER_OUT_MAX (16u * 1024u * 1024u)
#define DEAD_SERVER_HEARTBEATS 3
#define DEFAULT_HEARTBEAT_USEC (5 * USEC_PER_SEC)
#define HELLO_TIMEOUT_USEC (10 * USEC_PER_SEC)

struct SinkReader {
        Sink *sink;
        char *address;
        int fd;
        bool connecting, connected;
        sd_event_source *io;
        sd_event_source *watchdog;
        Buffer in, out;
        Buffer scratch; /* the slow path's record text */

        bool hello_done;
        uint64_t heartbeat_usec;
        uint64_t last_rx_usec;

        /* What to subscribe to once connected. */
        char *subscription;
        uint32_t window;
        bool have_from;
        uint64_t from;
        bool subscribe_pending; /* sent, its reply not in yet */
        bool status_pending;
};

static uint64_t reader_deadline_usec(const SinkReader *r) {
        if (!r->connected || !r->hello_done)
                return HELLO_TIMEOUT_USEC;
        return DEAD_SERVER_HEARTBEATS * r->heartbeat_usec;
}

static int reader_update_io(SinkReader *r) {
        uint32_t events;

        if (r->connecting)
                events = EPOLLOUT;
        else
                events = EPOLLIN | (buffer_size(&r->out) > 0 ? EPOLLOUT : 0);
        return sd_event_source_set_io_events(r->io, events);
}

static int reader_flush(SinkReader *r) {
        while (r->connected && buffer_size(&r->out) > 0) {
                ssize_t n = buffer_write_fd(&r->out, r->fd);

                if (n < 0)
                        return (int) n;
                if (n == 0)
                        break;
        }
        return reader_update_io(r);
}

static int reader_send(SinkReader *r, const char *line) {
        int k;

        if (buffer_size(&r->out) > READER_OUT_MAX)
                return -ENOBUFS; /* dpiped does not read: the watchdog ends this */
        k = buffer_append_str(&r->out, line);
        if (k >= 0)
                k = buffer_append(&r->out, "\n", 1);
        if (k < 0)
                return k;
        if (r->connecting)
                return 0; /* goes out once connected */
        return reader_flush(r);
}

static int reader_send_json(SinkReader *r, json_object *o) {
        return reader_send(r, json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
}

int sink_reader_ack(SinkReader *r, uint64_t offset) {
        char line[64];

        if (!r->connected || r->subscribe_pending)
                return 0;
        (void) snprintf(line, sizeof(line), "{\"op\":\"ack\",\"offset\":%" PRIu64 "}", offset);
        return reader_send(r, line);
}

int sink_reader_request_status(SinkReader *r) {
        if (r->fd < 0 || r->status_pending)
                return 0;
        r->status_pending = true;
        return reader_send(r, "{\"op\":\"status\",\"id\":\"status\"}");
}

bool sink_reader_is_connected(const SinkReader *r) {
        return r && r->connected && r->hello_done && !r->subscribe_pending;
}

static int reader_subscribe(SinkReader *r) {
        _cleanup_json_ json_object *o = json_object_new_object();

        if (!o)
                return -ENOMEM;
        json_object_object_add(o, "op", json_object_new_string("subscribe"));
        json_object_object_add(o, "id", json_object_new_string("subscribe"));
        json_object_object_add(o, "name", json_object_new_string(r->subscription));
        json_object_object_add(o, "window", json_object_new_int64(r->window));
        if (r->have_from)
                json_object_object_add(o, "from", json_object_new_uint64(r->from));
        r->subscribe_pending = true;
        return reader_send_json(r, o);
}

/* Returns < 0 to fail the sink (after telling it), 0 to go on. */
static int reader_handle_message(SinkReader *r, const char *line, size_t len) {
        _cleanup_json_ json_object *msg = NULL;
        Sink *s = r->sink;
        const char *op, *id, *code;
        uint64_t u;
        int k;

        k = json_parse_n(line, len, &msg, NULL);
        if (k < 0 || !json_object_is_type(msg, json_type_object)) {
                sink_reader_failed(s, -EBADMSG, "dpiped sent a line that is not a JSON object");
                return -EBADMSG;
        }
        op = json_get_string(msg, "op");
        id = json_get_string(msg, "id");
        if (streq_ptr(op, "record")) {
                SinkRecord rec;

                k = sink_record_from_json(msg, &r->scratch, &rec);
                if (k < 0) {
                        sink_reader_failed(s, k, "dpiped sent a malformed record line");
                        return k;
                }
                return sink_reader_record(s, &rec);
        }
        if (streq_ptr(op, "ping"))
                return reader_send(r, "{\"op\":\"pong\"}");
        if (streq_ptr(op, "hello")) {
                if (json_get_uint64(msg, "heartbeat_ms", &u) && u > 0 && u < UINT64_MAX / USEC_PER_MSEC / 4)
                        r->heartbeat_usec = u * USEC_PER_MSEC;
                r->hello_done = true;
                log_debug("Sink %s: connected to %s (%s), heartbeat %" PRIu64 " ms", s->name, r->address,
                          json_get_string(msg, "server") ?: "unknown server", r->heartbeat_usec / USEC_PER_MSEC);
                return 0;
        }
        if (streq_ptr(op, "ok") && streq_ptr(id, "subscribe")) {
                if (!json_get_uint64(msg, "offset", &u)) {
                        sink_reader_failed(s, -EBADMSG, "dpiped's subscribe reply has no offset");
                        return -EBADMSG;
                }
                r->subscribe_pending = false;
                sink_reader_subscribed(s, u);
                return 0;
        }
        if (streq_ptr(op, "status")) {
                r->status_pending = false;
                if (json_get_uint64(msg, "queue_next_offset", &u))
                        sink_reader_status(s, u);
                return 0;
        }
        if (streq_ptr(op, "error")) {
                code = json_get_string(msg, "code");
                if (streq_ptr(code, "data_lost")) {
                        uint64_t first, last;

                        if (json_get_uint64(msg, "first", &first) && json_get_uint64(msg, "last", &last) && first <= last)
                                sink_reader_lost(s, first, last);
                        return 0;
                }
                if (streq_ptr(id, "status")) {
                        r->status_pending = false;
                        return 0;
                }
                /* The subscribe was refused, or dpiped closes us (timeout, too_long): say why. */
                sink_reader_failed(s, -EPROTO, json_get_string(msg, "message") ?: code ?: "dpiped sent an error");
                return -EPROTO;
        }
        return 0; /* pong, bye, replies we did not ask for */
}

static int reader_process(SinkReader *r) {
        Sink *s = r->sink;
        unsigned gen = s->generation;
        char *line;
        size_t len;
        int k;

        while ((k = line_next(&r->in, READER_LINE_MAX, &line, &len)) > 0) {
                SinkRecord rec;

                if (len == 0)
                        continue;
                if (sink_record_parse_fast(line, len, &rec))
                        k = sink_reader_record(s, &rec);
                else
                        k = reader_handle_message(r, line, len);
                if (s->generation != gen)
                        return -ECANCELED; /* closed by the sink: r is gone */
                if (k < 0)
                        return k;
        }
        if (k < 0) {
                sink_reader_failed(s, k, "dpiped sent a line longer than the largest record");
                return -ECANCELED;
        }
        return 0;
}

static int reader_watchdog(sd_event_source *es, uint64_t usec, void *userdata) {
        SinkReader *r = userdata;
        uint64_t now = now_usec(CLOCK_MONOTONIC), deadline = r->last_rx_usec + reader_deadline_usec(r);
        char reason[160];

        if (now < deadline) {
                int k = sd_event_source_set_time(es, deadline);
                if (k >= 0)
                        k = sd_event_source_set_enabled(es, SD_EVENT_ONESHOT);
                return k;
        }
        if (r->connected && r->hello_done)
                (void) snprintf(reason, sizeof(reason),
                                "dpiped at %s is not responding: nothing received for %" PRIu64 " ms", r->address,
                                (now - r->last_rx_usec) / USEC_PER_MSEC);
        else
                (void) snprintf(reason, sizeof(reason), "dpiped at %s did not answer hello", r->address);
        sink_reader_failed(r->sink, -ETIMEDOUT, reason);
        return 0;
}

static int reader_io(sd_event_source *es, int fd, uint32_t revents, void *userdata) {
        SinkReader *r = userdata;
        Sink *s = r->sink;
        char reason[256];
        int k;

        if (r->connecting) {
                k = socket_finish_connect(fd);
                if (k < 0) {
                        (void) snprintf(reason, sizeof(reason), "cannot connect to dpiped at %s", r->address);
                        sink_reader_failed(s, k, reason);
                        return 0;
                }
                r->connecting = false;
                r->connected = true;
                r->last_rx_usec = now_usec(CLOCK_MONOTONIC);
                k = reader_flush(r);
                if (k < 0)
                        goto fail_write;
                return 0;
        }

        if (revents & EPOLLOUT) {
                k = reader_flush(r);
                if (k < 0)
                        goto fail_write;
        }
        if (!(revents & (EPOLLIN | EPOLLHUP | EPOLLERR)))
                return 0;

        for (int i = 0; i < READER_READS_PER_WAKEUP; i++) {
                ssize_t n = buffer_read_fd(&r->in, fd, READER_READ_ROOM);

                if (n == -EAGAIN)
                        break;
                if (n <= 0) {
                        if (n == 0)
                                (void) snprintf(reason, sizeof(reason), "dpiped at %s closed the connection",
                                                r->address);
                        else
                                (void) snprintf(reason, sizeof(reason), "lost the connection to dpiped at %s",
                                                r->address);
                        sink_reader_failed(s, (int) n, reason);
                        return 0;
                }
                r->last_rx_usec = now_usec(CLOCK_MONOTONIC);
                if (reader_process(r) < 0)
                        return 0;
        }
        /* Everything the loop could read is in: the type gets its end of batch. */
        sink_reader_batch_end(s);
        return 0;

fail_write:
        (void) snprintf(reason, sizeof(reason), "cannot write to dpiped at %s", r->address);
        sink_reader_failed(s, k, reason);
        return 0;
}

SinkReader *sink_reader_free(SinkReader *r) {
        if (!r)
                return NULL;
        sd_event_source_disable_unref(r->io);
        sd_event_source_disable_unref(r->watchdog);
        safe_close(r->fd);
        buffer_done(&r->in);
        buffer_done(&r->out);
        buffer_done(&r->scratch);
        free(r->address);
        free(r->subscription);
        return mfree(r);
}

int sink_reader_new(Sink *s, const char *address, SinkReader **ret) {
        _cleanup_(sink_reader_freep) SinkReader *r = NULL;

        r = calloc(1, sizeof(SinkReader));
        if (!r)
                return -ENOMEM;
        r->sink = s;
        r->fd = -EBADF;
        r->heartbeat_usec = DEFAULT_HEARTBEAT_USEC;
        r->address = strdup(address);
        if (!r->address)
                return -ENOMEM;
        *ret = TAKE_PTR(r);
        return 0;
}

int sink_reader_start(SinkReader *r, const char *subscription, uint32_t window, bool have_from, uint64_t from) {
        sd_event *e = r->sink->manager->event;
        int k;

        free(r->subscription);
        r->subscription = strdup(subscription);
        if (!r->subscription)
                return -ENOMEM;
        r->window = window;
        r->have_from = have_from;
        r->from = from;

        if (strchr(r->address, '/'))
                r->fd = socket_connect_unix(r->address, true);
        else {
                SocketAddress a;

                k = socket_address_parse(r->address, &a);
                if (k < 0)
                        return k;
                r->fd = socket_connect_tcp(&a);
        }
        if (r->fd < 0)
                return r->fd;
        r->connecting = true;
        r->last_rx_usec = now_usec(CLOCK_MONOTONIC);

        k = sd_event_add_io(e, &r->io, r->fd, EPOLLOUT, reader_io, r);
        if (k < 0)
                return k;
        k = sd_event_add_time(e, &r->watchdog, CLOCK_MONOTONIC, r->last_rx_usec + HELLO_TIMEOUT_USEC, 0,
                              reader_watchdog, r);
        if (k < 0)
                return k;

        /* Queued now, sent once connected: dpiped answers them in order. */
        k = reader_send(r, "{\"op\":\"hello\",\"version\":1}");
        if (k >= 0)
                k = reader_subscribe(r);
        if (k >= 0)
                k = sink_reader_request_status(r);
        return k;
}
