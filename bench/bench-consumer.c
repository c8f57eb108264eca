/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* bench-consumer: the measuring end of bench/run. Connects to dpiped's client port (or, with --raw,
 * to the last stage of the relay), subscribes from the earliest offset with a large window, acks in
 * batches (inline "ack N" every window/4 records and when the stream pauses), answers pings, and for
 * every record reads the source index, record index and generation time the producer embedded:
 *   {"s":k,"i":i,"t":<CLOCK_MONOTONIC µs>,...}
 * It counts each (k, i) once in a bitmap, so lost and duplicated records are exact, and keeps a
 * log-linear histogram of now - t (end-to-end latency; producer and consumer share the clock).
 *
 * It stops when all --sources × --records records arrived (plus a short grace period that catches
 * late duplicates), or after --idle-timeout seconds without a new record, and prints one line of
 * key=value statistics on stdout. --hist=PATH writes the latency distribution (µs, cumulative
 * fraction) for plotting. Exit status: 0 if every record arrived exactly once, 1 otherwise. */

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "buffer.h"
#include "daemon-util.h"
#include "io-util.h"
#include "line.h"
#include "socket-util.h"
#include "util.h"

/* Histogram: values < 2^SUB_BITS exactly; above, 2^SUB_BITS buckets per power of two (< 1% error). */
#define SUB_BITS 7
#define SUB (1u << SUB_BITS)
#define N_BUCKETS ((64 - SUB_BITS) * SUB + SUB)

static const char *arg_connect = "127.0.0.1:7600";
static unsigned arg_sources = 1;
static uint64_t arg_records = 100000;
static uint64_t arg_window = 100000;
static uint64_t arg_idle_timeout_sec = 20;
static uint64_t arg_skip = 0;
static const char *arg_hist = NULL;
static const char *arg_timeline = NULL;

/* --timeline: the worst latency among the records generated in each 10 ms, to tie the tail of the
 * distribution to what the daemons did at that moment (a sync, a segment roll). */
#define TIMELINE_SLOT_USEC 10000u
#define TIMELINE_SLOTS 60000u /* 10 minutes */
static uint32_t *timeline;
static bool arg_raw = false;

static uint64_t hist[N_BUCKETS];

static unsigned bucket_of(uint64_t v) {
        if (v < SUB)
                return (unsigned) v;
        unsigned msb = 63 - (unsigned) __builtin_clzll(v);
        unsigned shift = msb - SUB_BITS;
        return (shift + 1) * SUB + (unsigned) ((v >> shift) - SUB);
}

static uint64_t bucket_value(unsigned b) {
        if (b < SUB)
                return b;
        unsigned shift = b / SUB - 1;
        return ((uint64_t) (b % SUB) + SUB) << shift;
}

static uint64_t percentile(uint64_t total, double q) {
        uint64_t want = (uint64_t) (q * (double) total), acc = 0;

        if (total == 0)
                return 0;
        for (unsigned b = 0; b < N_BUCKETS; b++) {
                acc += hist[b];
                if (acc > want || acc == total)
                        return bucket_value(b);
        }
        return 0;
}

/* Reads the unsigned number after key (e.g. "\"i\":") in p..end; false if absent. */
static bool scan_u64(const char *p, const char *end, const char *key, size_t key_len, uint64_t *ret) {
        const char *k = memmem(p, (size_t) (end - p), key, key_len);
        uint64_t v = 0;

        if (!k)
                return false;
        k += key_len;
        while (k < end && *k == ' ')
                k++;
        if (k >= end || *k < '0' || *k > '9')
                return false;
        while (k < end && *k >= '0' && *k <= '9')
                v = v * 10 + (uint64_t) (*k++ - '0');
        *ret = v;
        return true;
}

typedef struct Stats {
        uint8_t *seen;
        uint64_t received, unique, duplicates, malformed, bytes;
        uint64_t first_t, last_recv_usec, first_recv_usec;
        uint64_t last_offset;
        bool have_offset;
        uint64_t since_ack;
        uint64_t latency_n;
} Stats;

/* Reads the digits at *p, which must start with the literal lit; advances *p past them. */
static bool expect_u64(const char **p, const char *end, const char *lit, size_t lit_len, uint64_t *ret) {
        const char *k = *p;
        uint64_t v = 0;

        if ((size_t) (end - k) <= lit_len || memcmp(k, lit, lit_len) != 0)
                return false;
        k += lit_len;
        if (*k < '0' || *k > '9')
                return false;
        while (k < end && *k >= '0' && *k <= '9')
                v = v * 10 + (uint64_t) (*k++ - '0');
        *ret = v;
        *p = k;
        return true;
}

#define LIT(s) s, sizeof(s) - 1

/* The line exactly as dpiped and bench-producer write it, read without a search (memmem() here
 * cost more CPU than some daemons): {"op":"record","offset":O,"source":"NAME","ts_us":T,"data":
 * {"s":S,"i":I,"t":T,...}}. False for anything else, which then takes the general path. */
static bool parse_fast(const char *line, const char *end, uint64_t *offset, uint64_t *s, uint64_t *i, uint64_t *t) {
        const char *p = line;
        uint64_t ts;

        if (!arg_raw) {
                if (!expect_u64(&p, end, LIT("{\"op\":\"record\",\"offset\":"), offset))
                        return false;
                if ((size_t) (end - p) < 11 || memcmp(p, ",\"source\":\"", 11) != 0)
                        return false;
                p = memchr(p + 11, '"', (size_t) (end - p - 11)); /* source names need no escapes */
                if (!p || !expect_u64(&p, end, LIT("\",\"ts_us\":"), &ts) ||
                    (size_t) (end - p) < 8 || memcmp(p, ",\"data\":", 8) != 0)
                        return false;
                p += 8;
        }
        return expect_u64(&p, end, LIT("{\"s\":"), s) && expect_u64(&p, end, LIT(",\"i\":"), i) &&
                expect_u64(&p, end, LIT(",\"t\":"), t);
}

static int handle_record(Stats *st, const char *line, size_t len, uint64_t now) {
        const char *end = line + len, *data = line;
        uint64_t s, i, t, offset = 0;

        if (parse_fast(line, end, &offset, &s, &i, &t)) {
                if (!arg_raw) {
                        st->last_offset = offset;
                        st->have_offset = true;
                }
                if (s >= arg_sources || i >= arg_records)
                        goto bad;
                goto good;
        }
        if (!arg_raw) {
                /* dpiped writes "op" first and no blanks; accept other orders and ": " too. */
                if (!memmem(line, len, "\"op\":\"record\"", 13) && !memmem(line, len, "\"op\": \"record\"", 14)) {
                        if (memmem(line, len, "\"op\":\"error\"", 12))
                                fprintf(stderr, "server: %.*s\n", (int) len, line);
                        return 0; /* ping and replies are handled by the caller */
                }
                if (!scan_u64(line, end, "\"offset\":", 9, &offset))
                        goto bad;
                st->last_offset = offset;
                st->have_offset = true;
                data = memmem(line, len, "\"data\":", 7);
                if (!data)
                        goto bad;
        }
        if (!scan_u64(data, end, "\"s\":", 4, &s) || !scan_u64(data, end, "\"i\":", 4, &i) ||
            !scan_u64(data, end, "\"t\":", 4, &t) || s >= arg_sources || i >= arg_records)
                goto bad;
good:
        st->received++;
        st->since_ack++;
        st->bytes += len + 1;
        if (st->first_recv_usec == 0)
                st->first_recv_usec = now;
        uint64_t bit = s * arg_records + i;
        if (st->seen[bit / 8] & (1u << (bit % 8)))
                st->duplicates++;
        else {
                st->seen[bit / 8] |= (uint8_t) (1u << (bit % 8));
                st->unique++;
                st->last_recv_usec = now;
        }
        if (st->first_t == 0 || t < st->first_t)
                st->first_t = t;
        if (st->received > arg_skip) {
                hist[bucket_of(now > t ? now - t : 0)]++;
                if (timeline && t >= st->first_t) {
                        uint64_t slot = (t - st->first_t) / TIMELINE_SLOT_USEC, lat = now > t ? now - t : 0;
                        if (slot < TIMELINE_SLOTS && lat > timeline[slot])
                                timeline[slot] = (uint32_t) MIN(lat, (uint64_t) UINT32_MAX);
                }
                st->latency_n++;
        }
        return 1;
bad:
        st->malformed++;
        if (st->malformed <= 3)
                fprintf(stderr, "Unexpected line: %.*s\n", (int) MIN(len, (size_t) 300), line);
        return 0;
}

static int send_ack(int fd, Stats *st) {
        char line[64];
        int n;

        if (arg_raw || !st->have_offset || st->since_ack == 0)
                return 0;
        n = snprintf(line, sizeof(line), "ack %" PRIu64 "\n", st->last_offset);
        st->since_ack = 0;
        return loop_write(fd, line, (size_t) n);
}

static void help(void *userdata) {
        printf("bench-consumer [OPTIONS...]\n\n"
               "Subscribes to dpiped, acks in batches, checks every bench record arrives once\n"
               "and measures end-to-end latency, for bench/run.\n\n"
               "  -h --help              Show this help\n"
               "     --version           Show the version\n"
               "     --connect=ADDR:PORT dpiped's client address (default: 127.0.0.1:7600)\n"
               "     --sources=N         Sources the producer serves (default: 1)\n"
               "     --records=N         Records per source (default: 100000)\n"
               "     --window=N          Subscription window (default: 100000)\n"
               "     --skip=N            Leave the first N records out of the latency histogram\n"
               "     --idle-timeout=SEC  Give up after SEC s without a new record (default: 20)\n"
               "     --hist=PATH         Write the latency distribution here\n"
               "     --timeline=PATH     Write the worst latency per 10 ms of generation time here\n"
               "     --raw               Bare data lines, no protocol (relay baseline)\n");
}

static int parse_argv(int argc, char *argv[]) {
        enum { ARG_CONNECT = DAEMON_ARG_OWN, ARG_SOURCES, ARG_RECORDS, ARG_WINDOW, ARG_SKIP, ARG_IDLE, ARG_HIST, ARG_TIMELINE, ARG_RAW };
        static const struct option options[] = {
                DAEMON_COMMON_OPTIONS,
                { "connect", required_argument, NULL, ARG_CONNECT },
                { "sources", required_argument, NULL, ARG_SOURCES },
                { "records", required_argument, NULL, ARG_RECORDS },
                { "window", required_argument, NULL, ARG_WINDOW },
                { "skip", required_argument, NULL, ARG_SKIP },
                { "idle-timeout", required_argument, NULL, ARG_IDLE },
                { "hist", required_argument, NULL, ARG_HIST },
                { "timeline", required_argument, NULL, ARG_TIMELINE },
                { "raw", no_argument, NULL, ARG_RAW },
                {}
        };
        uint64_t v;
        int c;

        while ((c = daemon_getopt(argc, argv, "h", options, "bench-consumer", help, NULL)) >= 0)
                switch (c) {
                case ARG_CONNECT:
                        arg_connect = optarg;
                        break;
                case ARG_SOURCES:
                        if (daemon_parse_u64_arg("sources", optarg, 1, 100000, &v) < 0)
                                return -EINVAL;
                        arg_sources = (unsigned) v;
                        break;
                case ARG_RECORDS:
                        if (daemon_parse_u64_arg("records", optarg, 0, (UINT64_C(1) << 36), &arg_records) < 0)
                                return -EINVAL;
                        break;
                case ARG_WINDOW:
                        if (daemon_parse_u64_arg("window", optarg, 4, 1000000, &arg_window) < 0)
                                return -EINVAL;
                        break;
                case ARG_SKIP:
                        if (daemon_parse_u64_arg("skip", optarg, 0, UINT64_MAX, &arg_skip) < 0)
                                return -EINVAL;
                        break;
                case ARG_IDLE:
                        if (daemon_parse_u64_arg("idle-timeout", optarg, 1, UINT64_MAX, &arg_idle_timeout_sec) < 0)
                                return -EINVAL;
                        break;
                case ARG_HIST:
                        arg_hist = optarg;
                        break;
                case ARG_TIMELINE:
                        arg_timeline = optarg;
                        break;
                case ARG_RAW:
                        arg_raw = true;
                        break;
                default:
                        abort();
                }
        if (c != -1)
                return c == DAEMON_GETOPT_DONE ? 0 : -EINVAL;
        return 1;
}

int main(int argc, char *argv[]) {
        _cleanup_(buffer_done) Buffer in = {};
        _cleanup_close_ int fd = -EBADF;
        Stats st = {};
        SocketAddress a;
        uint64_t expected, last_progress, done_usec = 0;
        int r;

        r = parse_argv(argc, argv);
        if (r <= 0)
                return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;

        expected = (uint64_t) arg_sources * arg_records;
        st.seen = calloc(expected / 8 + 1, 1);
        if (arg_timeline)
                timeline = calloc(TIMELINE_SLOTS, sizeof(uint32_t));
        if (!st.seen || (arg_timeline && !timeline)) {
                fprintf(stderr, "Out of memory.\n");
                return EXIT_FAILURE;
        }

        r = socket_address_parse(arg_connect, &a);
        if (r < 0) {
                fprintf(stderr, "Invalid address %s: %s\n", arg_connect, strerror(-r));
                return EXIT_FAILURE;
        }
        for (int attempt = 0;; attempt++) {
                fd = socket_connect_tcp(&a);
                if (fd >= 0) {
                        struct pollfd p = { .fd = fd, .events = POLLOUT };
                        (void) poll(&p, 1, 5000);
                        r = socket_finish_connect(fd);
                        if (r >= 0)
                                break;
                        fd = safe_close(fd);
                } else
                        r = fd;
                if (attempt >= 100) {
                        fprintf(stderr, "Failed to connect to %s: %s\n", arg_connect, strerror(-r));
                        return EXIT_FAILURE;
                }
                usleep(50000);
        }
        int one = 1;
        (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        socket_set_buffers(fd, 4 * 1024 * 1024);

        if (!arg_raw) {
                char line[128];
                int n = snprintf(line, sizeof(line), "{\"op\":\"subscribe\",\"from\":\"earliest\",\"window\":%" PRIu64 "}\n",
                                 arg_window);
                r = loop_write(fd, line, (size_t) n);
                if (r < 0) {
                        fprintf(stderr, "Failed to subscribe: %s\n", strerror(-r));
                        return EXIT_FAILURE;
                }
        }

        last_progress = now_usec(CLOCK_MONOTONIC);
        for (;;) {
                struct pollfd p = { .fd = fd, .events = POLLIN };
                uint64_t now = now_usec(CLOCK_MONOTONIC);
                bool eof = false;

                if (done_usec != 0 && now >= done_usec + 300 * USEC_PER_MSEC)
                        break;
                if (now >= last_progress + arg_idle_timeout_sec * USEC_PER_SEC)
                        break;

                r = poll(&p, 1, 100);
                if (r < 0 && errno != EINTR) {
                        fprintf(stderr, "poll failed: %m\n");
                        return EXIT_FAILURE;
                }
                if (r <= 0) {
                        /* The stream paused: ack what we have, the window may be what holds it. */
                        if (send_ack(fd, &st) < 0)
                                break;
                        continue;
                }
                for (int k = 0; k < 16; k++) {
                        ssize_t n = buffer_read_fd(&in, fd, 256 * 1024);
                        char *line;
                        size_t len;

                        if (n == -EAGAIN)
                                break;
                        if (n <= 0) {
                                eof = true;
                                break;
                        }
                        now = now_usec(CLOCK_MONOTONIC);
                        while ((r = line_next(&in, LINE_MAX_DEFAULT, &line, &len)) > 0) {
                                if (handle_record(&st, line, len, now) > 0)
                                        continue;
                                if (!arg_raw && memmem(line, len, "\"ping\"", 6) &&
                                    loop_write(fd, "pong\n", 5) < 0)
                                        eof = true;
                        }
                        if (r < 0) {
                                fprintf(stderr, "Line too long from server.\n");
                                eof = true;
                                break;
                        }
                        if (st.since_ack >= arg_window / 4 && send_ack(fd, &st) < 0) {
                                eof = true;
                                break;
                        }
                }
                if (st.received > 0)
                        last_progress = MAX(last_progress, st.last_recv_usec);
                if (st.unique >= expected && done_usec == 0) {
                        done_usec = now_usec(CLOCK_MONOTONIC);
                        (void) send_ack(fd, &st);
                }
                if (eof)
                        break;
        }
        (void) send_ack(fd, &st);

        uint64_t lost = expected - st.unique;
        double secs = st.last_recv_usec > st.first_t && st.first_t > 0 ? (double) (st.last_recv_usec - st.first_t) / 1e6 : 0;
        double rate = secs > 0 ? (double) st.unique / secs : 0;
        /* From the first record received: the reading alone, when the records were generated
         * before (bench/sink-bench.sh reads a stream filled beforehand). */
        double recv_secs = st.last_recv_usec > st.first_recv_usec ? (double) (st.last_recv_usec - st.first_recv_usec) / 1e6 : 0;

        printf("expected=%" PRIu64 " received=%" PRIu64 " unique=%" PRIu64 " lost=%" PRIu64 " duplicates=%" PRIu64
               " malformed=%" PRIu64 " seconds=%.3f records_per_sec=%.0f mb_per_sec=%.1f wire_mb_per_sec=%.1f"
               " p50_us=%" PRIu64 " p99_us=%" PRIu64 " p999_us=%" PRIu64 " max_us=%" PRIu64
               " recv_seconds=%.3f recv_per_sec=%.0f\n",
               expected, st.received, st.unique, lost, st.duplicates, st.malformed, secs, rate,
               rate * 100.0 / 1e6, secs > 0 ? (double) st.bytes / secs / 1e6 : 0.0,
               percentile(st.latency_n, 0.50), percentile(st.latency_n, 0.99), percentile(st.latency_n, 0.999),
               percentile(st.latency_n, 1.0), recv_secs, recv_secs > 0 ? (double) st.unique / recv_secs : 0.0);

        if (arg_hist) {
                FILE *f = fopen(arg_hist, "we");
                uint64_t acc = 0;

                if (!f)
                        fprintf(stderr, "Failed to open %s: %m\n", arg_hist);
                else {
                        for (unsigned b = 0; b < N_BUCKETS; b++) {
                                if (hist[b] == 0)
                                        continue;
                                acc += hist[b];
                                fprintf(f, "%" PRIu64 " %.6f\n", bucket_value(b), (double) acc / (double) st.latency_n);
                        }
                        fclose(f);
                }
        }
        if (arg_timeline && timeline) {
                FILE *f = fopen(arg_timeline, "we");
                uint64_t last = st.last_recv_usec > st.first_t ? (st.last_recv_usec - st.first_t) / TIMELINE_SLOT_USEC : 0;

                if (!f)
                        fprintf(stderr, "Failed to open %s: %m\n", arg_timeline);
                else {
                        fprintf(f, "# first record generated at CLOCK_MONOTONIC %" PRIu64 " us\n"
                                   "# ms_since_first_record worst_latency_us\n", st.first_t);
                        for (uint64_t k = 0; k <= last && k < TIMELINE_SLOTS; k++)
                                fprintf(f, "%" PRIu64 " %" PRIu32 "\n", k * TIMELINE_SLOT_USEC / 1000, timeline[k]);
                        fclose(f);
                }
        }
        free(timeline);
        free(st.seen);
        return lost == 0 && st.duplicates == 0 && st.malformed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
