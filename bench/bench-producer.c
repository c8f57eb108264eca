/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* bench-producer: the load generator of bench/run. Plays --sources dpipe-source servers at once in
 * one process: it listens on that many TCP ports (ephemeral, written to --ports-file as
 * "<index> <port>" lines) and serves --records records per source in the dpipe-source TCP protocol
 * (dpipe-source(1)): on "subscribe N" it streams {"op":"record","seq":S,"data":{...}} lines from
 * seq N on, as fast as the socket takes them or at --rate records/s per source, answers pings, and
 * keeps the connection open afterwards (a connector that reconnects resumes where it says).
 *
 * The data of record i of source k is one JSON object of exactly --size bytes:
 *   {"s":k,"i":i,"t":<CLOCK_MONOTONIC µs when generated>,"p":"xxx..."}
 * so the consumer can tell loss and repetition per source and measure latency end to end.
 *
 * --raw serves the bare data lines instead, no handshake, to one peer per port (the relay baseline),
 * and exits once every source has been sent and its peer closed. With --keep-open as well it is a
 * JSON Lines source for a connector (format=jsonl): the connection stays open after the last record,
 * a peer that reconnects gets nothing twice, and it runs until SIGTERM.
 *
 * With --barrier no source sends before all of them subscribed, so the measured time of a run with
 * many sources does not include adding them one by one. */

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "buffer.h"
#include "daemon-util.h"
#include "line.h"
#include "socket-util.h"
#include "util.h"

#define OUT_HIGH (256u * 1024u)
#define RATE_TICK_USEC 1000u

typedef struct Conn Conn;

typedef struct Port {
        unsigned index;
        int listen_fd;
        Conn *conn;
} Port;

struct Conn {
        Port *port;
        int fd;
        Buffer in, out;
        bool streaming, done, want_out, closed;
        uint64_t next_seq;
        uint64_t sent;       /* records generated since streaming began (for the rate) */
        uint64_t start_usec;
};

static unsigned arg_sources = 1;
static uint64_t arg_records = 100000;
static uint64_t arg_rate = 0;
static unsigned arg_size = 100;
static const char *arg_ports_file = NULL;
static bool arg_raw = false;
static bool arg_keep_open = false;
static bool arg_barrier = false;

static int epfd = -1;
static size_t out_high = OUT_HIGH; /* per connection; smaller with many sources */
static unsigned n_subscribed = 0, n_finished = 0;
static bool barrier_open = false;
static volatile sig_atomic_t stop = 0;

static void on_signal(int sig) {
        (void) sig;
        stop = 1;
}

/* Appends one record (wire line) to c->out. No allocation once the buffer has grown. */
static int conn_append_record(Conn *c, uint64_t now) {
        char *p, *start, *pad;
        size_t data_len;
        int r;

        r = buffer_reserve(&c->out, arg_size + 64);
        if (r < 0)
                return r;
        p = start = buffer_tail(&c->out);
        if (!arg_raw) {
                static const char prefix[] = "{\"op\":\"record\",\"seq\":";
                memcpy(p, prefix, sizeof(prefix) - 1);
                p += sizeof(prefix) - 1;
                p += format_u64(p, c->next_seq);
                memcpy(p, ",\"data\":", 8);
                p += 8;
        }
        pad = p;
        memcpy(p, "{\"s\":", 5);
        p += 5;
        p += format_u64(p, c->port->index);
        memcpy(p, ",\"i\":", 5);
        p += 5;
        p += format_u64(p, c->next_seq);
        memcpy(p, ",\"t\":", 5);
        p += 5;
        p += format_u64(p, now);
        memcpy(p, ",\"p\":\"", 6);
        p += 6;
        data_len = (size_t) (p - pad) + 2;
        if (data_len < arg_size) {
                memset(p, 'x', arg_size - data_len);
                p += arg_size - data_len;
        }
        *p++ = '"';
        *p++ = '}';
        if (!arg_raw)
                *p++ = '}';
        *p++ = '\n';
        buffer_advance(&c->out, (size_t) (p - start));
        c->next_seq++;
        c->sent++;
        return 0;
}

static void conn_update_events(Conn *c) {
        struct epoll_event ev = { .events = EPOLLIN | (c->want_out ? EPOLLOUT : 0), .data.ptr = c };

        (void) epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static void conn_close(Conn *c) {
        if (c->closed)
                return;
        (void) epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
        c->closed = true;
        if (c->streaming && !c->done)
                c->streaming = false;
        buffer_clear(&c->in);
        buffer_clear(&c->out);
}

/* Generates what the rate allows and writes; returns < 0 when the connection is gone. */
static int conn_pump(Conn *c, uint64_t now) {
        ssize_t n;
        int r;

        if (c->closed)
                return 0;
        if (c->streaming && !c->done && (!arg_barrier || barrier_open)) {
                uint64_t allowed = UINT64_MAX;

                if (c->start_usec == 0)
                        c->start_usec = now;
                if (arg_rate > 0)
                        allowed = (now - c->start_usec) * arg_rate / USEC_PER_SEC + 1;
                while (c->next_seq < arg_records && c->sent < allowed && buffer_size(&c->out) < out_high) {
                        r = conn_append_record(c, now);
                        if (r < 0)
                                return r;
                }
                if (c->next_seq >= arg_records) {
                        c->done = true;
                        n_finished++;
                }
        }
        while (buffer_size(&c->out) > 0) {
                n = buffer_write_fd(&c->out, c->fd);
                if (n < 0)
                        return (int) n;
                if (n == 0)
                        break;
        }
        /* Level-triggered EPOLLOUT while there is more to send right now; rate-limited sources are
         * woken by the clock instead. */
        bool want = buffer_size(&c->out) > 0 ||
                (c->streaming && !c->done && arg_rate == 0 && (!arg_barrier || barrier_open));
        if (want != c->want_out) {
                c->want_out = want;
                conn_update_events(c);
        }
        return 0;
}

static int conn_handle_line(Conn *c, char *line, size_t len) {
        uint64_t from = 0;

        if (len == 0)
                return 0;
        if (strstr(line, "\"ping\"") || streq(line, "ping"))
                return buffer_append_str(&c->out, "{\"op\":\"pong\"}\n");
        if (strncmp(line, "subscribe", 9) == 0 || strstr(line, "\"subscribe\"")) {
                const char *p = strncmp(line, "subscribe", 9) == 0 ? line + 9 : strstr(line, "\"from\":");

                if (p) {
                        p += strspn(p, " \"from:");
                        from = strtoull(p, NULL, 10);
                }
                c->next_seq = from;
                c->sent = 0;
                c->start_usec = 0;
                if (!c->streaming) {
                        c->streaming = true;
                        n_subscribed++;
                        if (n_subscribed >= arg_sources)
                                barrier_open = true;
                }
                c->done = from >= arg_records;
                return 0;
        }
        return 0; /* pong and anything else */
}

static int conn_read(Conn *c) {
        for (;;) {
                ssize_t n = buffer_read_fd(&c->in, c->fd, 4096);
                char *line;
                size_t len;
                int r;

                if (n == -EAGAIN)
                        return 0;
                if (n <= 0)
                        return n == 0 ? -ECONNRESET : (int) n;
                while ((r = line_next(&c->in, LINE_MAX_DEFAULT, &line, &len)) > 0) {
                        r = conn_handle_line(c, line, len);
                        if (r < 0)
                                return r;
                }
                if (r < 0)
                        return r;
        }
}

static int conn_accept(Port *port) {
        Conn *c;
        int fd, one = 1;

        fd = accept4(port->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
                return errno == EAGAIN ? 0 : -errno;
        if (port->conn && !port->conn->closed) {
                /* One peer per source: a new connection replaces the old one (a reconnect). */
                conn_close(port->conn);
        }
        c = port->conn;
        if (!c) {
                c = calloc(1, sizeof(Conn));
                if (!c) {
                        close(fd);
                        return -ENOMEM;
                }
                port->conn = c;
                c->port = port;
        }
        bool was_streaming = c->streaming;
        c->fd = fd;
        c->closed = false;
        c->want_out = false;
        c->streaming = was_streaming; /* keeps the barrier count right on reconnects */
        (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
                return -errno;
        if (arg_raw) {
                if (!arg_keep_open || !was_streaming)
                        c->next_seq = 0;
                if (!c->streaming) {
                        c->streaming = true;
                        n_subscribed++;
                        if (n_subscribed >= arg_sources)
                                barrier_open = true;
                }
                return conn_pump(c, now_usec(CLOCK_MONOTONIC));
        }
        return 0;
}

static void help(void *userdata) {
        printf("bench-producer [OPTIONS...]\n\n"
               "Serves records in the dpipe-source TCP protocol on N ephemeral ports, for bench/run.\n\n"
               "  -h --help             Show this help\n"
               "     --version          Show the version\n"
               "     --sources=N        Number of sources, one port each (default: 1)\n"
               "     --records=N        Records per source (default: 100000)\n"
               "     --size=BYTES       Size of each record's data (default: 100)\n"
               "     --rate=N           Records/s per source, 0 = as fast as possible (default)\n"
               "     --ports-file=PATH  Write \"<index> <port>\" lines here once listening\n"
               "     --barrier          Start sending only once every source subscribed\n"
               "     --raw              Bare data lines, no protocol (relay baseline)\n"
               "     --keep-open        With --raw: keep the connections open after the last\n"
               "                        record, replay nothing (a JSON Lines source), run until SIGTERM\n");
}

static int parse_argv(int argc, char *argv[]) {
        enum { ARG_SOURCES = DAEMON_ARG_OWN, ARG_RECORDS, ARG_SIZE, ARG_RATE, ARG_PORTS_FILE, ARG_BARRIER, ARG_RAW, ARG_KEEP_OPEN };
        static const struct option options[] = {
                DAEMON_COMMON_OPTIONS,
                { "sources", required_argument, NULL, ARG_SOURCES },
                { "records", required_argument, NULL, ARG_RECORDS },
                { "size", required_argument, NULL, ARG_SIZE },
                { "rate", required_argument, NULL, ARG_RATE },
                { "ports-file", required_argument, NULL, ARG_PORTS_FILE },
                { "barrier", no_argument, NULL, ARG_BARRIER },
                { "raw", no_argument, NULL, ARG_RAW },
                { "keep-open", no_argument, NULL, ARG_KEEP_OPEN },
                {}
        };
        uint64_t v;
        int c;

        while ((c = daemon_getopt(argc, argv, "h", options, "bench-producer", help, NULL)) >= 0)
                switch (c) {
                case ARG_SOURCES:
                        if (daemon_parse_u64_arg("sources", optarg, 1, 100000, &v) < 0)
                                return -EINVAL;
                        arg_sources = (unsigned) v;
                        break;
                case ARG_RECORDS:
                        if (daemon_parse_u64_arg("records", optarg, 0, UINT64_MAX, &arg_records) < 0)
                                return -EINVAL;
                        break;
                case ARG_SIZE:
                        if (daemon_parse_u64_arg("size", optarg, 0, 65536, &v) < 0)
                                return -EINVAL;
                        arg_size = (unsigned) v;
                        break;
                case ARG_RATE:
                        if (daemon_parse_u64_arg("rate", optarg, 0, UINT64_MAX, &arg_rate) < 0)
                                return -EINVAL;
                        break;
                case ARG_PORTS_FILE:
                        arg_ports_file = optarg;
                        break;
                case ARG_BARRIER:
                        arg_barrier = true;
                        break;
                case ARG_RAW:
                        arg_raw = true;
                        break;
                case ARG_KEEP_OPEN:
                        arg_keep_open = true;
                        break;
                default:
                        abort();
                }
        if (c != -1)
                return c == DAEMON_GETOPT_DONE ? 0 : -EINVAL;
        return 1;
}

int main(int argc, char *argv[]) {
        _cleanup_free_ Port *ports = NULL;
        struct epoll_event events[256];
        SocketAddress a;
        FILE *f = NULL;
        int r;

        r = parse_argv(argc, argv);
        if (r <= 0)
                return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;

        (void) signal(SIGPIPE, SIG_IGN);
        (void) signal(SIGTERM, on_signal);
        (void) signal(SIGINT, on_signal);

        out_high = MAX((size_t) 16384, MIN((size_t) OUT_HIGH, (size_t) (16u * 1024u * 1024u) / arg_sources));
        epfd = epoll_create1(EPOLL_CLOEXEC);
        ports = calloc(arg_sources, sizeof(Port));
        if (epfd < 0 || !ports) {
                fprintf(stderr, "Out of resources.\n");
                return EXIT_FAILURE;
        }
        r = socket_address_parse("127.0.0.1:0", &a);
        if (r < 0)
                return EXIT_FAILURE;
        if (arg_ports_file) {
                f = fopen(arg_ports_file, "we");
                if (!f) {
                        fprintf(stderr, "Failed to open %s: %m\n", arg_ports_file);
                        return EXIT_FAILURE;
                }
        }
        for (unsigned i = 0; i < arg_sources; i++) {
                struct sockaddr_in sin;
                socklen_t len = sizeof(sin);

                ports[i].index = i;
                ports[i].listen_fd = socket_listen_tcp(&a, 16);
                if (ports[i].listen_fd < 0) {
                        fprintf(stderr, "Failed to listen on a TCP port: %s\n", strerror(-ports[i].listen_fd));
                        return EXIT_FAILURE;
                }
                if (getsockname(ports[i].listen_fd, (struct sockaddr *) &sin, &len) < 0)
                        return EXIT_FAILURE;
                struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &ports[i] };
                /* Tag listeners by pointing into the ports array: told apart from Conn by address. */
                if (epoll_ctl(epfd, EPOLL_CTL_ADD, ports[i].listen_fd, &ev) < 0)
                        return EXIT_FAILURE;
                if (f)
                        fprintf(f, "%u %u\n", i, ntohs(sin.sin_port));
        }
        if (f && fclose(f) != 0) {
                fprintf(stderr, "Failed to write %s.\n", arg_ports_file);
                return EXIT_FAILURE;
        }

        while (!stop) {
                bool rate_limited = arg_rate > 0 && n_finished < n_subscribed;
                int n = epoll_wait(epfd, events, ELEMENTSOF(events), rate_limited ? 1 : 200);
                uint64_t now;

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        fprintf(stderr, "epoll_wait failed: %m\n");
                        return EXIT_FAILURE;
                }
                now = now_usec(CLOCK_MONOTONIC);
                for (int i = 0; i < n; i++) {
                        void *p = events[i].data.ptr;

                        if ((Port *) p >= ports && (Port *) p < ports + arg_sources) {
                                r = conn_accept(p);
                                if (r < 0)
                                        fprintf(stderr, "accept failed: %s\n", strerror(-r));
                                continue;
                        }
                        Conn *c = p;
                        if (c->closed)
                                continue;
                        if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                                r = conn_read(c);
                                if (r < 0) {
                                        conn_close(c);
                                        continue;
                                }
                        }
                        if (conn_pump(c, now) < 0)
                                conn_close(c);
                }
                /* Rate-limited or barrier-released sources produce on the clock, not on socket events. */
                if (rate_limited || (arg_barrier && barrier_open)) {
                        for (unsigned i = 0; i < arg_sources; i++) {
                                Conn *c = ports[i].conn;
                                if (c && !c->closed && c->streaming && !c->done && !c->want_out && conn_pump(c, now) < 0)
                                        conn_close(c);
                        }
                }
                if (arg_raw && !arg_keep_open && n_finished == arg_sources) {
                        bool all_closed = true;
                        for (unsigned i = 0; i < arg_sources; i++)
                                if (ports[i].conn && !ports[i].conn->closed && buffer_size(&ports[i].conn->out) == 0) {
                                        (void) shutdown(ports[i].conn->fd, SHUT_WR);
                                        all_closed = false;
                                } else if (ports[i].conn && !ports[i].conn->closed)
                                        all_closed = false;
                        if (all_closed)
                                break;
                }
        }

        for (unsigned i = 0; i < arg_sources; i++) {
                if (ports[i].conn) {
                        conn_close(ports[i].conn);
                        buffer_done(&ports[i].conn->in);
                        buffer_done(&ports[i].conn->out);
                        free(ports[i].conn);
                }
                close(ports[i].listen_fd);
        }
        close(epfd);
        return EXIT_SUCCESS;
}
