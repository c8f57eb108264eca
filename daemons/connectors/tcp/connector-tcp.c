/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* dpipe-connector-tcp: real-time sources over persistent TCP connections.
 *
 * format=dpipe (the default, also for "auto") speaks the dpipe-source protocol: after connecting it
 * sends "subscribe N" with N = the seq after the last one the writer stored (or we handed over), so
 * a reconnect neither skips nor repeats; it pings every heartbeat_ms and answers pings. jsonl, csv
 * and lines read any peer's byte stream, with our own seq numbering. A peer that sends nothing for
 * timeout_ms (dpipe: 3 x heartbeat_ms; others: 60 s) is taken as hung: the connection is dropped and
 * retried with jittered exponential backoff. */

#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "connector-format.h"
#include "connector.h"
#include "json-scan.h"
#include "json-util.h"
#include "log.h"
#include "socket-util.h"
#include "util.h"

#define READ_CHUNK (64u * 1024u)
#define READS_PER_WAKEUP 8

typedef struct TcpConfig {
        char *address;
        char *format;
        char *query;
        char *csv_header;
        uint32_t heartbeat_ms;
        uint32_t timeout_ms;
        uint32_t connect_timeout_ms;
        uint64_t max_record_bytes;
        bool keepalive;
} TcpConfig;

static const ConnectorOption tcp_options[] = {
        CONNECTOR_OPTION_STRING("address", TcpConfig, address, NULL, true, "HOST:PORT or [IPV6]:PORT"),
        CONNECTOR_OPTION_STRING("format", TcpConfig, format, "dpipe", false,
                                "dpipe (auto means the same), jsonl, csv or lines"),
        CONNECTOR_OPTION_STRING("query", TcpConfig, query, NULL, false,
                                "jsonl/csv/lines: a line sent to the peer after connecting"),
        CONNECTOR_OPTION_STRING("csv_header", TcpConfig, csv_header, NULL, false,
                                "comma-separated field names for header-less CSV"),
        CONNECTOR_OPTION_U32("heartbeat_ms", TcpConfig, heartbeat_ms, "5000", "ping interval for dpipe peers in ms"),
        CONNECTOR_OPTION_U32("timeout_ms", TcpConfig, timeout_ms, "0",
                             "silence in ms after which the peer is taken as hung (0: by format)"),
        CONNECTOR_OPTION_U32("connect_timeout_ms", TcpConfig, connect_timeout_ms, "5000", "connect timeout in ms"),
        CONNECTOR_OPTION_U64("max_record_bytes", TcpConfig, max_record_bytes, "1048576",
                             "longer records are skipped"),
        CONNECTOR_OPTION_BOOL("keepalive", TcpConfig, keepalive, "yes", "TCP keepalive on the connection"),
        {}
};

typedef struct TcpSource {
        Source *source;
        TcpConfig *config;
        RecordFormat format;
        SocketAddress address;
        uint64_t heartbeat_usec, timeout_usec;

        int fd;
        bool connected, got_data;
        sd_event_source *io, *timer;
        Buffer in, out;
        RecordReader reader;
        uint64_t last_rx_usec, last_ping_usec, connect_deadline_usec;
} TcpSource;

static RecordFormat tcp_format(const TcpConfig *c) {
        RecordFormat f = record_format_from_string(c->format);
        return f == RECORD_FORMAT_AUTO ? RECORD_FORMAT_DPIPE : f;
}

static int tcp_validate(const void *config, char **ret_message) {
        const TcpConfig *c = config;
        SocketAddress a;
        RecordFormat f = tcp_format(c);

        if (f < 0 || f == RECORD_FORMAT_JSON)
                return asprintf(ret_message, "unknown format '%s' (auto, dpipe, jsonl, csv, lines)", c->format) < 0
                               ? -ENOMEM
                               : -EINVAL;
        if (socket_address_parse(c->address, &a) < 0)
                return asprintf(ret_message, "invalid address '%s' (host:port)", c->address) < 0 ? -ENOMEM : -EINVAL;
        if (c->heartbeat_ms == 0)
                return (*ret_message = strdup("heartbeat_ms must be positive")) ? -EINVAL : -ENOMEM;
        if (c->max_record_bytes == 0 || c->max_record_bytes > 64 * 1024 * 1024)
                return (*ret_message = strdup("max_record_bytes must be 1..67108864")) ? -EINVAL : -ENOMEM;
        return 0;
}

static int tcp_init(Source *s) {
        TcpSource *t = source_data(s);
        TcpConfig *c = source_config(s);
        int r;

        t->source = s;
        t->config = c;
        t->fd = -EBADF;
        t->format = tcp_format(c);
        r = socket_address_parse(c->address, &t->address);
        if (r < 0)
                return r;
        t->heartbeat_usec = (uint64_t) c->heartbeat_ms * USEC_PER_MSEC;
        if (c->timeout_ms > 0)
                t->timeout_usec = (uint64_t) c->timeout_ms * USEC_PER_MSEC;
        else if (t->format == RECORD_FORMAT_DPIPE)
                t->timeout_usec = 3 * t->heartbeat_usec;
        else
                t->timeout_usec = 60 * USEC_PER_SEC;
        return record_reader_init(&t->reader, t->format, (size_t) c->max_record_bytes, c->csv_header);
}

static void tcp_stop(Source *s) {
        TcpSource *t = source_data(s);

        t->io = sd_event_source_disable_unref(t->io);
        t->timer = sd_event_source_disable_unref(t->timer);
        t->fd = safe_close(t->fd);
        t->connected = t->got_data = false;
        buffer_clear(&t->in);
        buffer_clear(&t->out);
}

static void tcp_done(Source *s) {
        TcpSource *t = source_data(s);

        tcp_stop(s);
        buffer_done(&t->in);
        buffer_done(&t->out);
        record_reader_done(&t->reader);
}

static uint64_t tcp_now(TcpSource *t) {
        uint64_t now;

        if (sd_event_now(source_get_event(t->source), CLOCK_MONOTONIC, &now) < 0)
                now = now_usec(CLOCK_MONOTONIC);
        return now;
}

static int tcp_flush(TcpSource *t) {
        ssize_t n = buffer_write_fd(&t->out, t->fd);

        if (n < 0)
                return source_fail(t->source, (int) n, "write to %s failed", t->config->address);
        return sd_event_source_set_io_events(t->io, EPOLLIN | (buffer_size(&t->out) > 0 ? EPOLLOUT : 0));
}

static int tcp_send_line(TcpSource *t, const char *line) {
        int r = buffer_append_str(&t->out, line);

        if (r >= 0)
                r = buffer_append(&t->out, "\n", 1);
        if (r < 0)
                return r;
        return tcp_flush(t);
}

static void tcp_arm_timer(TcpSource *t) {
        uint64_t next;

        if (!t->connected)
                next = t->connect_deadline_usec;
        else {
                next = t->last_rx_usec + t->timeout_usec;
                if (t->format == RECORD_FORMAT_DPIPE)
                        next = MIN(next, t->last_ping_usec + t->heartbeat_usec);
        }
        (void) sd_event_source_set_time(t->timer, next);
        (void) sd_event_source_set_enabled(t->timer, SD_EVENT_ONESHOT);
}

static int tcp_handle_dpipe_line(TcpSource *t, char *line, size_t len) {
        Source *s = t->source;
        char pos[32], reason[160];
        JsonScanMembers *mt;
        uint64_t line_no;
        DpipeLine l;
        int r;

        if (len == 0)
                return 0;
        line_no = t->reader.line++;
        /* With a transform, the one pass over the line also lists the members of its data. */
        mt = source_members(s, 1);
        r = mt ? dpipe_line_parse_listed(line, len, mt, &l, reason, sizeof(reason))
               : dpipe_line_parse(line, len, &l, reason, sizeof(reason));
        if (r == -ENOMEM)
                return source_fail(s, r, "failed to parse line");
        if (r < 0) {
                (void) snprintf(pos, sizeof(pos), "line %" PRIu64, line_no);
                source_skip_record(s, pos, "%s", reason);
                return 0;
        }
        if (!t->got_data) {
                t->got_data = true;
                source_active(s);
        }
        switch (l.kind) {
        case DPIPE_LINE_RECORD:
                if (l.seq == SOURCE_SEQ_INVALID)
                        /* Nothing could follow it: the next seq would wrap to 0 and everything after
                         * would look like a duplicate. Refused, and the peer must be fixed. */
                        return source_fail(s, 0,
                                           "peer sent seq %" PRIu64 " at line %" PRIu64 ", which no record can follow "
                                           "(the largest seq accepted is %" PRIu64 ")",
                                           l.seq, line_no, SOURCE_SEQ_MAX);
                if (l.seq > source_next_seq(s))
                        log_notice("Source %s: peer skipped from seq %" PRIu64 " to %" PRIu64, source_name(s),
                                   source_next_seq(s), l.seq);
                if (l.data_member >= 0)
                        r = source_emit_listed(s, l.seq, l.data, l.data_len, mt, l.data_member, "seq", l.seq);
                else
                        r = source_emit_seq(s, l.seq, l.data, l.data_len);
                if (r < 0)
                        return source_fail(s, r, "failed to queue record");
                source_backoff_reset(s);
                return 0;
        case DPIPE_LINE_PING:
                source_heartbeat(s);
                return tcp_send_line(t, "{\"op\":\"pong\"}");
        case DPIPE_LINE_PONG:
                source_heartbeat(s);
                return 0;
        case DPIPE_LINE_ERROR:
                return source_fail(s, 0, "peer reported an error: %s", l.text[0] ? l.text : "(no message)");
        default:
                log_debug("Source %s: ignoring '%s' from peer", source_name(s), l.text[0] ? l.text : "?");
                return 0;
        }
}

static int tcp_process(TcpSource *t, bool eof) {
        Source *s = t->source;
        int r;

        if (t->format != RECORD_FORMAT_DPIPE) {
                r = record_reader_feed(&t->reader, s, &t->in, eof);
                if (r > 0)
                        source_backoff_reset(s);
                return r < 0 ? source_fail(s, r, "failed to process input") : 0;
        }
        for (;;) {
                char *line;
                size_t len;

                r = record_reader_next(&t->reader, &t->in, eof, &line, &len);
                if (r == 0)
                        return 0;
                if (r == -E2BIG) {
                        char pos[64];
                        (void) snprintf(pos, sizeof(pos), "line %" PRIu64, t->reader.skipped_line);
                        source_skip_record(s, pos, "line longer than %zu bytes", t->reader.max_record);
                        continue;
                }
                if (r < 0)
                        return source_fail(s, r, "failed to process input");
                r = tcp_handle_dpipe_line(t, line, len);
                if (r < 0)
                        return r;
                if (!t->connected)
                        return -ECONNRESET; /* the line made us drop the connection */
        }
}

static int tcp_on_connected(TcpSource *t) {
        Source *s = t->source;
        char line[64];
        int one = 1, r;

        t->connected = true;
        t->last_rx_usec = t->last_ping_usec = tcp_now(t);
        if (t->config->keepalive) {
                int idle = (int) MAX(t->timeout_usec / USEC_PER_SEC / 2, (uint64_t) 1), intvl = MAX(idle / 3, 1),
                    cnt = 3;
                (void) setsockopt(t->fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
                (void) setsockopt(t->fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
                (void) setsockopt(t->fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
                (void) setsockopt(t->fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
        }
        record_reader_reset(&t->reader, 0);
        log_info("Source %s: connected to %s", source_name(s), t->config->address);

        if (t->format == RECORD_FORMAT_DPIPE) {
                /* Resume exactly after the last record handed over; the ping makes a live peer answer at
                 * once, so "active" means the peer really talks, not just that the kernel accepted. */
                (void) snprintf(line, sizeof(line), "subscribe %" PRIu64, source_next_seq(s));
                r = tcp_send_line(t, line);
                if (r >= 0)
                        r = tcp_send_line(t, "{\"op\":\"ping\"}");
                if (r < 0)
                        return r;
        } else {
                if (t->config->query) {
                        r = tcp_send_line(t, t->config->query);
                        if (r < 0)
                                return r;
                }
                source_active(s);
        }
        if (!t->connected)
                return -ECONNRESET;
        if (source_is_throttled(s))
                (void) sd_event_source_set_enabled(t->io, SD_EVENT_OFF);
        tcp_arm_timer(t);
        return 0;
}

/* Keeps no big read buffer between wake-ups: with a thousand sources they would add up to 64+ MB.
 * What is left is at most a partial line, moved to an allocation of just its size (or none at
 * all): even buffer_reserve()'s 4 KiB minimum would be 4 MB with a thousand sources. */
static void tcp_shrink_input(TcpSource *t) {
        Buffer small = {};
        size_t n = buffer_size(&t->in);

        if (t->in.allocated <= MAX(n, (size_t) 64) || n > 1024)
                return;
        if (n > 0) {
                small.data = malloc(n);
                if (!small.data)
                        return; /* keep the big one */
                memcpy(small.data, buffer_begin(&t->in), n);
                small.allocated = small.tail = n;
        }
        buffer_done(&t->in);
        t->in = small;
}

static int tcp_io(sd_event_source *es, int fd, uint32_t revents, void *userdata) {
        TcpSource *t = userdata;
        Source *s = t->source;
        int r;

        if (!t->connected) {
                r = socket_finish_connect(fd);
                if (r < 0)
                        return source_fail(s, r, "connect to %s failed", t->config->address), 0;
                r = tcp_on_connected(t);
                if (r < 0 || !t->connected)
                        return 0;
                revents &= ~EPOLLOUT;
        }

        if (revents & EPOLLOUT) {
                r = tcp_flush(t);
                if (r < 0 || !t->connected)
                        return 0;
        }

        if (!(revents & (EPOLLIN | EPOLLHUP | EPOLLERR)))
                return 0;

        for (int i = 0; i < READS_PER_WAKEUP; i++) {
                ssize_t n = buffer_read_fd(&t->in, fd, READ_CHUNK);

                if (n == -EAGAIN)
                        break;
                if (n < 0)
                        return source_fail(s, (int) n, "read from %s failed", t->config->address), 0;
                if (n == 0) {
                        /* A finished stream's last line counts even without a newline. */
                        if (tcp_process(t, true) < 0 || !t->connected)
                                return 0;
                        return source_fail(s, 0, "connection closed by %s", t->config->address), 0;
                }
                t->last_rx_usec = tcp_now(t);
                if (t->format != RECORD_FORMAT_DPIPE)
                        source_heartbeat(s);
                if (tcp_process(t, false) < 0 || !t->connected)
                        return 0;
                if (source_is_throttled(s) || (size_t) n < READ_CHUNK)
                        break;
        }
        tcp_shrink_input(t);
        return 0;
}

static int tcp_timer(sd_event_source *es, uint64_t usec, void *userdata) {
        TcpSource *t = userdata;
        Source *s = t->source;
        uint64_t now = tcp_now(t);

        if (!t->connected) {
                if (now >= t->connect_deadline_usec)
                        return source_fail(s, ETIMEDOUT, "connect to %s", t->config->address), 0;
        } else if (source_is_throttled(s)) {
                t->last_rx_usec = now; /* we are not reading: silence is ours, not the peer's */
        } else if (now >= t->last_rx_usec + t->timeout_usec) {
                return source_fail(s, 0, "no data from %s for %" PRIu64 " ms, peer hung", t->config->address,
                                   (now - t->last_rx_usec) / USEC_PER_MSEC),
                       0;
        } else if (t->format == RECORD_FORMAT_DPIPE && now >= t->last_ping_usec + t->heartbeat_usec) {
                t->last_ping_usec = now;
                if (tcp_send_line(t, "{\"op\":\"ping\"}") < 0 || !t->connected)
                        return 0;
        }
        tcp_arm_timer(t);
        return 0;
}

static void tcp_start(Source *s) {
        TcpSource *t = source_data(s);
        char buf[128];
        int r;

        log_debug("Source %s: connecting to %s", source_name(s),
                  socket_address_format(&t->address, buf, sizeof(buf)));
        t->fd = socket_connect_tcp(&t->address);
        if (t->fd < 0) {
                r = t->fd;
                t->fd = -EBADF;
                source_fail(s, r, "connect to %s failed", t->config->address);
                return;
        }
        socket_set_buffers(t->fd, 1024 * 1024);
        r = sd_event_add_io(source_get_event(s), &t->io, t->fd, EPOLLOUT | EPOLLIN, tcp_io, t);
        if (r < 0) {
                source_fail(s, r, "failed to watch socket");
                return;
        }
        t->connect_deadline_usec = tcp_now(t) + (uint64_t) t->config->connect_timeout_ms * USEC_PER_MSEC;
        r = sd_event_add_time(source_get_event(s), &t->timer, CLOCK_MONOTONIC, t->connect_deadline_usec,
                              10 * USEC_PER_MSEC, tcp_timer, t);
        if (r < 0) {
                source_fail(s, r, "failed to arm timer");
                return;
        }
}

static void tcp_throttle(Source *s, bool throttled) {
        TcpSource *t = source_data(s);

        if (!t->io || !t->connected)
                return;
        (void) sd_event_source_set_enabled(t->io, throttled ? SD_EVENT_OFF : SD_EVENT_ON);
        if (!throttled)
                t->last_rx_usec = tcp_now(t);
}

static const ConnectorType tcp_connector = {
        .name = "tcp",
        .description = "Real-time dpipe connector: persistent TCP connections to sources.",
        .config_size = sizeof(TcpConfig),
        .options = tcp_options,
        .data_size = sizeof(TcpSource),
        .validate = tcp_validate,
        .init = tcp_init,
        .done = tcp_done,
        .start = tcp_start,
        .stop = tcp_stop,
        .throttle = tcp_throttle,
};

CONNECTOR_DEFINE_MAIN(tcp_connector);
