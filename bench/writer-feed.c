/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* writer-feed: a minimal connector for tests and benchmarks. Streams --count records of one source
 * to dpipe-writer over writer.sock with the binary framing (FRAME_BATCH, pipelined up to --window
 * batches), and exits 0 once every record is acked. With --reconnect it survives the writer being
 * killed: it reconnects and sends every unacked batch again, exactly like a real connector, so the
 * writer's duplicate detection is what keeps the queue exactly-once.
 *
 * Record data is JSON: {"s":"<source>","q":<seq>,"p":"xxx..."} padded to --size bytes.
 * At the end it prints one JSON line of statistics on stdout. */

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "batch.h"
#include "buffer.h"
#include "io-util.h"
#include "frame.h"
#include "json-util.h"
#include "socket-util.h"
#include "util.h"

typedef struct InFlight {
        uint64_t batch_id;
        uint64_t first_seq, n;
        uint64_t sent_usec;
        Buffer frame;
} InFlight;

static const char *arg_socket = NULL;
static const char *arg_source = "feed";
static uint64_t arg_count = 100000;
static uint64_t arg_batch = 500;
static uint64_t arg_window = 16;
static uint64_t arg_size = 100;
static bool arg_reconnect = false;
static bool arg_resume = false;
static uint64_t arg_connect_timeout_sec = 30;
static bool arg_raw = false;
static uint64_t arg_rate = 0; /* records/s at most, 0: as fast as the writer takes them */
static int build_batch(InFlight *b, uint64_t id, uint64_t first_seq, uint64_t n);
static const char *arg_sink = NULL;

/* --sink=PATH: accept one connection, read and discard until EOF, print the throughput.
 * --raw: send the batches without waiting for acks (against a sink), for the raw socket speed. */
static int run_sink(void) {
        static char buf[1 << 20];
        uint64_t bytes = 0, start = 0;
        int lfd, fd;

        lfd = socket_listen_unix(arg_sink, 1);
        if (lfd < 0) {
                fprintf(stderr, "writer-feed: failed to listen on %s: %s\n", arg_sink, strerror(-lfd));
                return 1;
        }
        (void) fd_set_nonblock(lfd, false);
        fd = accept(lfd, NULL, NULL);
        if (fd < 0)
                return 1;
        socket_set_buffers(fd, 4 * 1024 * 1024);
        for (;;) {
                ssize_t n = read(fd, buf, sizeof(buf));
                if (n <= 0)
                        break;
                if (start == 0)
                        start = now_usec(CLOCK_MONOTONIC);
                bytes += (uint64_t) n;
        }
        {
                double sec = (double) (now_usec(CLOCK_MONOTONIC) - start) / 1e6;
                printf("{\"sink_bytes\":%" PRIu64 ",\"seconds\":%.3f,\"mb_per_sec\":%.1f}\n", bytes, sec,
                       sec > 0 ? (double) bytes / sec / 1e6 : 0.0);
        }
        safe_close(fd);
        safe_close(lfd);
        (void) unlink(arg_sink);
        return 0;
}

static int run_raw(void) {
        InFlight b = {};
        uint64_t start, sent = 0;
        int fd, r;

        fd = socket_connect_unix(arg_socket, false);
        if (fd < 0) {
                fprintf(stderr, "writer-feed: failed to connect to %s: %s\n", arg_socket, strerror(-fd));
                return 1;
        }
        socket_set_buffers(fd, 4 * 1024 * 1024);
        r = build_batch(&b, 1, 1, arg_batch);
        if (r < 0)
                return 1;
        start = now_usec(CLOCK_MONOTONIC);
        while (sent < arg_count) {
                r = loop_write(fd, buffer_begin(&b.frame), buffer_size(&b.frame));
                if (r < 0)
                        return 1;
                sent += arg_batch;
        }
        safe_close(fd);
        {
                double sec = (double) (now_usec(CLOCK_MONOTONIC) - start) / 1e6;
                printf("{\"records\":%" PRIu64 ",\"seconds\":%.3f,\"records_per_sec\":%.0f,\"mb_per_sec\":%.1f}\n",
                       sent, sec, sec > 0 ? (double) sent / sec : 0.0,
                       sec > 0 ? (double) sent * (double) arg_size / sec / 1e6 : 0.0);
        }
        buffer_done(&b.frame);
        return 0;
}

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
        return x < y ? -1 : x > y;
}

static int build_batch(InFlight *b, uint64_t id, uint64_t first_seq, uint64_t n) {
        static char data[65536];
        size_t prefix_len, src_len = strlen(arg_source);
        uint64_t ts = now_usec(CLOCK_REALTIME);
        BatchBuilder bb;
        int r;

        /* {"s":"<source>","q":<seq>,"p":"xxx..."}: built without printf, the feeder should cost
         * less than the writer it measures. */
        if (src_len + 40 > sizeof(data))
                return -EINVAL;
        prefix_len = 0;
        memcpy(data, "{\"s\":\"", 6);
        prefix_len = 6;
        memcpy(data + prefix_len, arg_source, src_len);
        prefix_len += src_len;
        memcpy(data + prefix_len, "\",\"q\":", 6);
        prefix_len += 6;

        buffer_clear(&b->frame);
        r = batch_begin(&bb, &b->frame, id, arg_source, src_len);
        if (r < 0)
                return r;
        for (uint64_t seq = first_seq; seq < first_seq + n; seq++) {
                size_t len = prefix_len + format_u64(data + prefix_len, seq), want;

                memcpy(data + len, ",\"p\":\"", 6);
                len += 6;
                want = MIN(MAX((size_t) arg_size, len + 2), sizeof(data));
                memset(data + len, 'x', want - 2 - len);
                memcpy(data + want - 2, "\"}", 2);
                r = batch_add(&bb, seq, ts, data, (uint32_t) want);
                if (r < 0)
                        return r;
        }
        b->batch_id = id;
        b->first_seq = first_seq;
        b->n = n;
        return batch_end(&bb);
}

static int connect_writer(void) {
        uint64_t deadline = now_usec(CLOCK_MONOTONIC) + arg_connect_timeout_sec * USEC_PER_SEC;

        for (;;) {
                int fd = socket_connect_unix(arg_socket, false);
                if (fd >= 0)
                        return fd;
                if (!arg_reconnect || now_usec(CLOCK_MONOTONIC) > deadline)
                        return fd;
                usleep(20000);
        }
}

/* Reads one frame (blocking). */
static int read_frame(int fd, Buffer *in, Frame *ret) {
        for (;;) {
                int r = frame_peek(in, FRAME_SIZE_MAX, ret);
                if (r != 0)
                        return r;
                ssize_t n = buffer_read_fd(in, fd, 65536);
                if (n == -EAGAIN)
                        continue;
                if (n < 0)
                        return (int) n;
                if (n == 0)
                        return -ECONNRESET;
        }
}

static int hello(int fd, Buffer *in, bool *ret_have, uint64_t *ret_last) {
        _cleanup_json_ struct json_object *o = NULL, *reply = NULL;
        Buffer out = {};
        Frame f;
        int r;

        o = json_object_new_object();
        json_object_object_add(o, "op", json_object_new_string("hello"));
        json_object_object_add(o, "source", json_object_new_string(arg_source));
        r = frame_append_json(&out, o);
        if (r >= 0)
                r = loop_write(fd, buffer_begin(&out), buffer_size(&out));
        buffer_done(&out);
        if (r < 0)
                return r;
        r = read_frame(fd, in, &f);
        if (r < 0)
                return r;
        if (f.type != FRAME_CONTROL)
                return -EBADMSG;
        r = frame_parse_json(&f, &reply);
        buffer_consume(in, FRAME_HEADER_SIZE + f.size);
        if (r < 0)
                return r;
        if (!streq_ptr(json_get_string(reply, "op"), "hello"))
                return -EBADMSG;
        *ret_have = json_get_uint64(reply, "last_seq", ret_last);
        return 0;
}

static void help(void) {
        printf("writer-feed --socket=PATH [--source=NAME] [--count=N] [--batch=N] [--window=N] [--size=BYTES]\n"
               "            [--reconnect] [--resume] [--connect-timeout=SEC] [--rate=RECORDS_PER_SEC] [--raw]\n"
               "writer-feed --sink=PATH\n"
               "Streams records of one source to dpipe-writer and waits for every ack.\n");
}

int main(int argc, char *argv[]) {
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "socket", required_argument, NULL, 'S' },
                { "source", required_argument, NULL, 's' },
                { "count", required_argument, NULL, 'n' },
                { "batch", required_argument, NULL, 'b' },
                { "window", required_argument, NULL, 'w' },
                { "size", required_argument, NULL, 'z' },
                { "reconnect", no_argument, NULL, 'r' },
                { "resume", no_argument, NULL, 'R' },
                { "connect-timeout", required_argument, NULL, 't' },
                { "raw", no_argument, NULL, 'A' },
                { "rate", required_argument, NULL, 'T' },
                { "sink", required_argument, NULL, 'K' },
                {}
        };
        InFlight *ring = NULL;
        uint64_t head = 0, tail = 0; /* ring indexes: [tail, head) are in flight */
        uint64_t next_seq = 1, acked = 0, stored = 0, dups = 0, reconnects = 0, batch_id = 0, first_seq = 1;
        uint64_t *lat = NULL, n_lat = 0, start, elapsed, last_acked_seq = 0;
        Buffer in = {};
        struct rusage ru;
        int fd = -EBADF, c, r = 0;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case 'S':
                        arg_socket = optarg;
                        break;
                case 's':
                        arg_source = optarg;
                        break;
                case 'n':
                        r = safe_atou64(optarg, &arg_count);
                        break;
                case 'b':
                        r = safe_atou64(optarg, &arg_batch);
                        break;
                case 'w':
                        r = safe_atou64(optarg, &arg_window);
                        break;
                case 'z':
                        r = safe_atou64(optarg, &arg_size);
                        break;
                case 'r':
                        arg_reconnect = true;
                        break;
                case 'R':
                        arg_resume = true;
                        break;
                case 't':
                        r = safe_atou64(optarg, &arg_connect_timeout_sec);
                        break;
                case 'A':
                        arg_raw = true;
                        break;
                case 'T':
                        r = safe_atou64(optarg, &arg_rate);
                        break;
                case 'K':
                        arg_sink = optarg;
                        break;
                default:
                        return 2;
                }
                if (r < 0) {
                        fprintf(stderr, "writer-feed: invalid value '%s'\n", optarg);
                        return 2;
                }
        }
        if (arg_sink)
                return run_sink();
        if (!arg_socket || arg_batch == 0 || arg_window == 0) {
                fprintf(stderr, "writer-feed: --socket is required, --batch and --window must be > 0\n");
                return 2;
        }

        if (arg_raw)
                return run_raw();

        ring = calloc(arg_window, sizeof(InFlight));
        lat = calloc(arg_count / arg_batch + 2 + arg_count, sizeof(uint64_t));
        if (!ring || !lat)
                return 3;

        signal(SIGPIPE, SIG_IGN);
        start = now_usec(CLOCK_MONOTONIC);
        for (;;) {
                bool have_last = false;
                uint64_t last = 0;

                fd = connect_writer();
                if (fd < 0) {
                        fprintf(stderr, "writer-feed: failed to connect to %s: %s\n", arg_socket, strerror(-fd));
                        return 1;
                }
                buffer_clear(&in);
                r = hello(fd, &in, &have_last, &last);
                if (r < 0)
                        goto disconnected;
                if (arg_resume && have_last && head == tail && last + 1 > next_seq) {
                        /* Start where the queue stands: a second run continues the first. */
                        next_seq = last + 1;
                        first_seq = next_seq;
                        acked = last;
                }

                /* Everything unacked goes again, in order; the writer drops what it already has. */
                for (uint64_t i = tail; i < head; i++) {
                        InFlight *b = ring + i % arg_window;
                        b->sent_usec = now_usec(CLOCK_MONOTONIC);
                        r = loop_write(fd, buffer_begin(&b->frame), buffer_size(&b->frame));
                        if (r < 0)
                                goto disconnected;
                }

                while (acked < arg_count) {
                        Frame f;
                        BatchAck ack;

                        while (head - tail < arg_window && next_seq <= arg_count) {
                                InFlight *b = ring + head % arg_window;
                                uint64_t n = MIN(arg_batch, arg_count - next_seq + 1);

                                if (arg_rate > 0) {
                                        /* --rate: a batch leaves no earlier than its records are due, so a
                                         * test's faults land while records flow however fast the machine. */
                                        uint64_t due = start + (next_seq - first_seq) * USEC_PER_SEC / arg_rate,
                                                 t = now_usec(CLOCK_MONOTONIC);
                                        if (due > t)
                                                usleep(due - t);
                                }
                                r = build_batch(b, ++batch_id, next_seq, n);
                                if (r < 0) {
                                        fprintf(stderr, "writer-feed: failed to build a batch: %s\n", strerror(-r));
                                        return 1;
                                }
                                b->sent_usec = now_usec(CLOCK_MONOTONIC);
                                r = loop_write(fd, buffer_begin(&b->frame), buffer_size(&b->frame));
                                head++;
                                next_seq += n;
                                if (r < 0)
                                        goto disconnected;
                        }

                        r = read_frame(fd, &in, &f);
                        if (r < 0)
                                goto disconnected;
                        if (f.type != FRAME_ACK || batch_ack_parse(&f, &ack) < 0) {
                                buffer_consume(&in, FRAME_HEADER_SIZE + f.size);
                                continue;
                        }
                        buffer_consume(&in, FRAME_HEADER_SIZE + f.size);
                        if (tail == head || ring[tail % arg_window].batch_id != ack.batch_id) {
                                fprintf(stderr, "writer-feed: unexpected ack for batch %" PRIu64 "\n", ack.batch_id);
                                return 1;
                        }
                        if (ack.error != 0) {
                                fprintf(stderr, "writer-feed: batch %" PRIu64 " refused: %s, reconnecting\n",
                                        ack.batch_id, strerror(-ack.error));
                                usleep(100000);
                                goto disconnected;
                        }
                        {
                                InFlight *b = ring + tail % arg_window;
                                if (ack.stored + ack.duplicates != b->n) {
                                        fprintf(stderr, "writer-feed: ack for batch %" PRIu64 " covers %u+%u records, sent %" PRIu64 "\n",
                                                ack.batch_id, ack.stored, ack.duplicates, b->n);
                                        return 1;
                                }
                                lat[n_lat++] = now_usec(CLOCK_MONOTONIC) - b->sent_usec;
                                acked += b->n;
                                last_acked_seq = b->first_seq + b->n - 1;
                        }
                        stored += ack.stored;
                        dups += ack.duplicates;
                        tail++;
                }
                break;

        disconnected:
                fd = safe_close(fd);
                if (!arg_reconnect) {
                        fprintf(stderr, "writer-feed: lost the connection to the writer: %s\n", strerror(-r));
                        return 1;
                }
                reconnects++;
        }
        elapsed = now_usec(CLOCK_MONOTONIC) - start;
        safe_close(fd);

        qsort(lat, n_lat, sizeof(uint64_t), cmp_u64);
        getrusage(RUSAGE_SELF, &ru);
        {
                uint64_t records = arg_count - (first_seq - 1);
                double sec = (double) elapsed / 1e6;
                printf("{\"source\":\"%s\",\"records\":%" PRIu64 ",\"stored\":%" PRIu64 ",\"duplicates\":%" PRIu64
                       ",\"reconnects\":%" PRIu64 ",\"last_seq\":%" PRIu64 ",\"seconds\":%.3f,\"records_per_sec\":%.0f,"
                       "\"mb_per_sec\":%.1f,\"ack_latency_us\":{\"p50\":%" PRIu64 ",\"p99\":%" PRIu64 ",\"max\":%" PRIu64
                       "},\"peak_rss_kb\":%ld}\n",
                       arg_source, records, stored, dups, reconnects, last_acked_seq, sec,
                       sec > 0 ? (double) records / sec : 0.0, sec > 0 ? (double) records * (double) arg_size / sec / 1e6 : 0.0,
                       n_lat ? lat[n_lat / 2] : 0, n_lat ? lat[n_lat * 99 / 100] : 0, n_lat ? lat[n_lat - 1] : 0,
                       ru.ru_maxrss);
        }
        for (uint64_t i = 0; i < arg_window; i++)
                buffer_done(&ring[i].frame);
        free(ring);
        free(lat);
        buffer_done(&in);
        return 0;
}
