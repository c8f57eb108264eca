/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A discarding subscriber for the dpipe-source benchmark: connects, sends "subscribe", reads and
 * throws away lines until N records have arrived, answers nothing else, and prints the rate.
 *
 *   source-sink HOST:PORT N */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "socket-util.h"
#include "util.h"

int main(int argc, char *argv[]) {
        static char buf[1 << 20];
        SocketAddress a;
        uint64_t n, lines = 0, bytes = 0, start, usec;
        int fd;

        if (argc != 3 || socket_address_parse(argv[1], &a) < 0 || safe_atou64(argv[2], &n) < 0) {
                fprintf(stderr, "usage: source-sink HOST:PORT N\n");
                return 2;
        }
        fd = socket(a.sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *) &a.sa, a.len) < 0) {
                fprintf(stderr, "source-sink: connect %s: %s\n", argv[1], strerror(errno));
                return 1;
        }
        socket_set_buffers(fd, 4 << 20);
        start = now_usec(CLOCK_MONOTONIC);
        if (write(fd, "subscribe\n", 10) != 10)
                return 1;
        /* The first line is the subscribe reply: one more line than records. */
        while (lines < n + 1) {
                ssize_t k = read(fd, buf, sizeof(buf));
                if (k <= 0) {
                        fprintf(stderr, "source-sink: connection ended after %" PRIu64 " lines\n", lines);
                        return 1;
                }
                bytes += (uint64_t) k;
                for (char *p = buf, *e = buf + k; (p = memchr(p, '\n', (size_t) (e - p))); p++)
                        lines++;
        }
        usec = now_usec(CLOCK_MONOTONIC) - start;
        printf("stream: %" PRIu64 " rows in %.3f s = %.0f rows/s (%.1f MB/s)\n", n, usec / 1e6,
               n * 1e6 / (double) (usec ?: 1), bytes / (double) (usec ?: 1));
        close(fd);
        return 0;
}
