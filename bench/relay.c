/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* bench-relay: one stage of the physical-limit baseline of bench/run. Three of them in a chain
 * mirror dpipe's three daemons without any of their work (no parsing, no queue, no acks):
 *
 *   producer --TCP--> relay --unix--> relay --unix--> relay --TCP--> consumer
 *                     (connector)     (writer)        (dpiped)
 *
 * Each stage listens on --listen (tcp:ADDR:PORT or unix:PATH), waits for its downstream peer, then
 * connects to --upstream and copies bytes with large blocking read()/write() calls (256 KiB), the
 * batched reads and writes every dpipe hop is meant to do. It exits 0 when the upstream closes and
 * everything has been written. */

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon-util.h"
#include "io-util.h"
#include "socket-util.h"
#include "util.h"

#define CHUNK (256u * 1024u)

static const char *arg_listen = NULL;
static const char *arg_upstream = NULL;

static int listen_on(const char *spec) {
        if (strncmp(spec, "unix:", 5) == 0)
                return socket_listen_unix(spec + 5, 4);
        if (strncmp(spec, "tcp:", 4) == 0) {
                SocketAddress a;
                int r = socket_address_parse(spec + 4, &a);
                return r < 0 ? r : socket_listen_tcp(&a, 4);
        }
        return -EINVAL;
}

static int connect_to(const char *spec) {
        int fd, r;

        if (strncmp(spec, "unix:", 5) == 0)
                fd = socket_connect_unix(spec + 5, false);
        else if (strncmp(spec, "tcp:", 4) == 0) {
                SocketAddress a;
                r = socket_address_parse(spec + 4, &a);
                if (r < 0)
                        return r;
                fd = socket_connect_tcp(&a);
                if (fd >= 0) {
                        struct pollfd p = { .fd = fd, .events = POLLOUT };
                        (void) poll(&p, 1, 5000);
                        r = socket_finish_connect(fd);
                        if (r < 0) {
                                safe_close(fd);
                                return r;
                        }
                }
        } else
                return -EINVAL;
        if (fd >= 0)
                (void) fd_set_nonblock(fd, false);
        return fd;
}

static void help(void *userdata) {
        printf("bench-relay --listen=tcp:ADDR:PORT|unix:PATH --upstream=tcp:ADDR:PORT|unix:PATH\n\n"
               "One stage of the relay baseline of bench/run: waits for a peer on --listen, then\n"
               "connects to --upstream and copies its bytes to the peer with batched reads/writes.\n\n"
               "  -h --help          Show this help\n"
               "     --version       Show the version\n");
}

static int parse_argv(int argc, char *argv[]) {
        enum { ARG_LISTEN = DAEMON_ARG_OWN, ARG_UPSTREAM };
        static const struct option options[] = {
                DAEMON_COMMON_OPTIONS,
                { "listen", required_argument, NULL, ARG_LISTEN },
                { "upstream", required_argument, NULL, ARG_UPSTREAM },
                {}
        };
        int c;

        while ((c = daemon_getopt(argc, argv, "h", options, "bench-relay", help, NULL)) >= 0)
                switch (c) {
                case ARG_LISTEN:
                        arg_listen = optarg;
                        break;
                case ARG_UPSTREAM:
                        arg_upstream = optarg;
                        break;
                default:
                        abort();
                }
        if (c != -1)
                return c == DAEMON_GETOPT_DONE ? 0 : -EINVAL;
        if (!arg_listen || !arg_upstream) {
                fprintf(stderr, "--listen= and --upstream= are required.\n");
                return -EINVAL;
        }
        return 1;
}

int main(int argc, char *argv[]) {
        _cleanup_close_ int lfd = -EBADF, down = -EBADF, up = -EBADF;
        _cleanup_free_ char *buf = NULL;
        struct pollfd p;
        int r;

        r = parse_argv(argc, argv);
        if (r <= 0)
                return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
        (void) signal(SIGPIPE, SIG_IGN);

        buf = malloc(CHUNK);
        if (!buf)
                return EXIT_FAILURE;
        lfd = listen_on(arg_listen);
        if (lfd < 0) {
                fprintf(stderr, "Failed to listen on %s: %s\n", arg_listen, strerror(-lfd));
                return EXIT_FAILURE;
        }
        p = (struct pollfd) { .fd = lfd, .events = POLLIN };
        for (;;) {
                if (poll(&p, 1, -1) < 0 && errno != EINTR)
                        return EXIT_FAILURE;
                down = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
                if (down >= 0)
                        break;
                if (errno != EAGAIN && errno != EINTR) {
                        fprintf(stderr, "accept failed: %m\n");
                        return EXIT_FAILURE;
                }
        }
        up = connect_to(arg_upstream);
        if (up < 0) {
                fprintf(stderr, "Failed to connect to %s: %s\n", arg_upstream, strerror(-up));
                return EXIT_FAILURE;
        }
        socket_set_buffers(up, 1024 * 1024);
        socket_set_buffers(down, 1024 * 1024);

        for (;;) {
                ssize_t n = read(up, buf, CHUNK);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        fprintf(stderr, "read failed: %m\n");
                        return EXIT_FAILURE;
                }
                if (n == 0)
                        break;
                r = loop_write(down, buf, (size_t) n);
                if (r < 0) {
                        fprintf(stderr, "write failed: %s\n", strerror(-r));
                        return EXIT_FAILURE;
                }
        }
        (void) shutdown(down, SHUT_WR);

        /* For bench/run's table: what this stage cost, like the daemons' VmHWM and CPU time. */
        struct rusage ru;
        if (getrusage(RUSAGE_SELF, &ru) >= 0)
                fprintf(stderr, "cpu_sec=%.2f peak_rss_kb=%ld\n",
                        (double) (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                                (double) (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6,
                        ru.ru_maxrss);
        return EXIT_SUCCESS;
}
