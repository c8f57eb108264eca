/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* queue-dump: reads a dpipe queue directory with QueueReader (common/queue.h), for tests and the
 * read benchmark.
 *
 *     queue-dump DIR [--from=N]             one line per record: offset TAB source TAB seq TAB data;
 *                                           records lost to damage as a line on stderr:
 *                                           "lost FIRST..LAST SEGMENT [damaged at byte POS]"
 *     queue-dump DIR --bounds               "first next" as queue_bounds() sees them
 *     queue-dump DIR --bench [--from=N]     reads everything, prints one JSON line of throughput
 *     queue-dump DIR --wait-next=N          waits (inotify) until the queue's next offset reaches N
 *     queue-dump DIR --follow-until=N       follows the queue like dpiped does (reader + inotify)
 *                                           until offset N-1 was read; fails on a gap or a bad
 *                                           record; prints the number of records read */

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "queue.h"
#include "util.h"

int main(int argc, char *argv[]) {
        static const struct option options[] = {
                { "from", required_argument, NULL, 'f' },
                { "bounds", no_argument, NULL, 'b' },
                { "bench", no_argument, NULL, 'B' },
                { "wait-next", required_argument, NULL, 'w' },
                { "timeout", required_argument, NULL, 't' },
                { "follow-until", required_argument, NULL, 'F' },
                {}
        };
        _cleanup_(queue_reader_freep) QueueReader *r = NULL;
        uint64_t from = 0, wait_next = 0, timeout_sec = 60, follow_until = 0;
        bool bounds = false, bench = false, wait = false, follow = false;
        const char *dir;
        QueueRecord rec;
        int c, k;

        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (c) {
                case 'f':
                        if (safe_atou64(optarg, &from) < 0)
                                return 2;
                        break;
                case 'b':
                        bounds = true;
                        break;
                case 'B':
                        bench = true;
                        break;
                case 'w':
                        if (safe_atou64(optarg, &wait_next) < 0)
                                return 2;
                        wait = true;
                        break;
                case 't':
                        if (safe_atou64(optarg, &timeout_sec) < 0)
                                return 2;
                        break;
                case 'F':
                        if (safe_atou64(optarg, &follow_until) < 0)
                                return 2;
                        follow = true;
                        break;
                default:
                        return 2;
                }
        if (optind + 1 != argc) {
                fprintf(stderr, "usage: queue-dump DIR [--from=N] [--bounds] [--bench] [--wait-next=N]\n");
                return 2;
        }
        dir = argv[optind];

        if (bounds) {
                uint64_t first, next;
                k = queue_bounds(dir, &first, &next);
                if (k < 0) {
                        fprintf(stderr, "queue-dump: %s: %s\n", dir, strerror(-k));
                        return 1;
                }
                printf("%" PRIu64 " %" PRIu64 "\n", first, next);
                return 0;
        }

        if (wait) {
                uint64_t deadline = now_usec(CLOCK_MONOTONIC) + timeout_sec * USEC_PER_SEC, first, next;
                int fd;

                k = queue_watch_open(dir, &fd);
                if (k < 0) {
                        fprintf(stderr, "queue-dump: failed to watch %s: %s\n", dir, strerror(-k));
                        return 1;
                }
                for (;;) {
                        if (queue_bounds(dir, &first, &next) >= 0 && next >= wait_next)
                                break;
                        if (now_usec(CLOCK_MONOTONIC) > deadline) {
                                fprintf(stderr, "queue-dump: next offset is %" PRIu64 ", waited for %" PRIu64 "\n",
                                        next, wait_next);
                                return 1;
                        }
                        (void) poll(&(struct pollfd) { .fd = fd, .events = POLLIN }, 1, 1000);
                        queue_watch_drain(fd);
                }
                safe_close(fd);
                return 0;
        }

        if (follow) {
                uint64_t deadline = now_usec(CLOCK_MONOTONIC) + timeout_sec * USEC_PER_SEC, n = 0, expect = from;
                int fd = -EBADF;

                while (fd < 0) {
                        if (queue_watch_open(dir, &fd) >= 0)
                                break;
                        if (now_usec(CLOCK_MONOTONIC) > deadline)
                                return 1;
                        usleep(10000);
                }
                k = queue_reader_open(dir, from, &r);
                if (k < 0) {
                        fprintf(stderr, "queue-dump: failed to open %s: %s\n", dir, strerror(-k));
                        return 1;
                }
                while (expect < follow_until) {
                        k = queue_reader_next(r, &rec);
                        if (k < 0) {
                                fprintf(stderr, "queue-dump: read error after offset %" PRIu64 ": %s\n", expect, strerror(-k));
                                return 1;
                        }
                        if (k == QUEUE_READER_LOST) {
                                fprintf(stderr, "queue-dump: offsets %" PRIu64 "..%" PRIu64 " lost, expected %" PRIu64 "\n",
                                        queue_reader_loss(r)->first, queue_reader_loss(r)->last, expect);
                                return 1;
                        }
                        if (k > 0) {
                                if (rec.offset != expect) {
                                        fprintf(stderr, "queue-dump: read offset %" PRIu64 ", expected %" PRIu64 "\n",
                                                rec.offset, expect);
                                        return 1;
                                }
                                expect++;
                                n++;
                                continue;
                        }
                        if (now_usec(CLOCK_MONOTONIC) > deadline) {
                                fprintf(stderr, "queue-dump: timed out at offset %" PRIu64 "\n", expect);
                                return 1;
                        }
                        /* Wait for inotify; a short timeout as the safety net dpiped has too. */
                        (void) poll(&(struct pollfd) { .fd = fd, .events = POLLIN }, 1, 500);
                        queue_watch_drain(fd);
                }
                safe_close(fd);
                printf("%" PRIu64 "\n", n);
                return 0;
        }

        k = queue_reader_open(dir, from, &r);
        if (k < 0) {
                fprintf(stderr, "queue-dump: failed to open %s: %s\n", dir, strerror(-k));
                return 1;
        }

        if (bench) {
                uint64_t start = now_usec(CLOCK_MONOTONIC), n = 0, bytes = 0, elapsed;
                struct rusage ru;
                double sec;

                while ((k = queue_reader_next(r, &rec)) > 0)
                        if (k == QUEUE_READER_RECORD) {
                                n++;
                                bytes += rec.data_len;
                        }
                elapsed = now_usec(CLOCK_MONOTONIC) - start;
                getrusage(RUSAGE_SELF, &ru);
                sec = (double) elapsed / 1e6;
                printf("{\"records\":%" PRIu64 ",\"data_bytes\":%" PRIu64 ",\"seconds\":%.3f,\"records_per_sec\":%.0f,"
                       "\"mb_per_sec\":%.1f,\"peak_rss_kb\":%ld}\n",
                       n, bytes, sec, sec > 0 ? (double) n / sec : 0.0, sec > 0 ? (double) bytes / sec / 1e6 : 0.0,
                       ru.ru_maxrss);
        } else
                while ((k = queue_reader_next(r, &rec)) > 0) {
                        const QueueLoss *l = queue_reader_loss(r);

                        if (k == QUEUE_READER_RECORD)
                                printf("%" PRIu64 "\t%.*s\t%" PRIu64 "\t%.*s\n", rec.offset, (int) rec.source_len,
                                       rec.source, rec.seq, (int) rec.data_len, rec.data);
                        else if (l->damaged)
                                fprintf(stderr, "lost %" PRIu64 "..%" PRIu64 " %s damaged at byte %" PRIu64 "\n", l->first,
                                        l->last, l->segment, l->position);
                        else
                                fprintf(stderr, "lost %" PRIu64 "..%" PRIu64 " %s\n", l->first, l->last, l->segment);
                }
        if (k < 0) {
                fprintf(stderr, "queue-dump: read error at offset %" PRIu64 ": %s\n", queue_reader_offset(r), strerror(-k));
                return 1;
        }
        return 0;
}
