/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* bench-jitter: how late the machine itself wakes a sleeping process, measured beside bench/run's
 * latency run so that a slow moment of the machine can be told from a slow moment of dpipe. It
 * sleeps 1 ms at a time (clock_nanosleep, CLOCK_MONOTONIC) until SIGTERM or SIGINT and records by
 * how much each sleep overran. At the end it writes --output (one line per 10 ms slot: the slot's
 * start in CLOCK_MONOTONIC µs and the worst overrun in µs, the clock the bench records carry) and
 * prints one line of key=value statistics on stdout. It uses almost no CPU. */

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util.h"

#define SLOT_USEC 10000u
#define SLOTS_MAX (3600u * 100u) /* an hour of 10 ms slots */
#define SLEEP_USEC 1000u

static volatile sig_atomic_t stop;

static void on_signal(int sig) {
        (void) sig;
        stop = 1;
}

static int cmp_u32(const void *a, const void *b) {
        uint32_t x = *(const uint32_t *) a, y = *(const uint32_t *) b;
        return x < y ? -1 : x > y;
}

static void help(void) {
        printf("bench-jitter --output=PATH\n\n"
               "Sleeps 1 ms at a time until SIGTERM and records how late each wake-up was: the worst per\n"
               "10 ms slot goes to PATH, statistics to stdout.\n");
}

int main(int argc, char *argv[]) {
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "output", required_argument, NULL, 'o' },
                {}
        };
        const char *output = NULL;
        struct sigaction sa = { .sa_handler = on_signal };
        uint32_t *worst = NULL, *overruns = NULL;
        size_t n_overruns = 0, allocated = 0;
        uint64_t start, last_slot = 0;
        FILE *f;
        int c;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return EXIT_SUCCESS;
                case 'o':
                        output = optarg;
                        break;
                default:
                        return EXIT_FAILURE;
                }
        if (!output || optind < argc) {
                fprintf(stderr, "Usage: bench-jitter --output=PATH\n");
                return EXIT_FAILURE;
        }

        worst = calloc(SLOTS_MAX, sizeof(uint32_t));
        if (!worst) {
                fprintf(stderr, "Out of memory.\n");
                return EXIT_FAILURE;
        }
        /* No SA_RESTART: the signal ends the sleep at once. */
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGINT, &sa, NULL);

        start = now_usec(CLOCK_MONOTONIC) / SLOT_USEC * SLOT_USEC;
        while (!stop) {
                struct timespec ts = { .tv_sec = 0, .tv_nsec = SLEEP_USEC * 1000L };
                uint64_t before = now_usec(CLOCK_MONOTONIC), after, late, slot;

                if (clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL) != 0)
                        continue; /* interrupted: the signal, or a spurious one */
                after = now_usec(CLOCK_MONOTONIC);
                late = after - before > SLEEP_USEC ? after - before - SLEEP_USEC : 0;
                slot = (before - start) / SLOT_USEC;
                if (slot >= SLOTS_MAX)
                        break;
                if (late > worst[slot])
                        worst[slot] = (uint32_t) MIN(late, (uint64_t) UINT32_MAX);
                last_slot = slot;
                if (n_overruns == allocated) {
                        size_t a = allocated ? allocated * 2 : 65536;
                        uint32_t *p = realloc(overruns, a * sizeof(uint32_t));
                        if (!p)
                                break;
                        overruns = p;
                        allocated = a;
                }
                overruns[n_overruns++] = (uint32_t) MIN(late, (uint64_t) UINT32_MAX);
        }

        f = fopen(output, "we");
        if (!f) {
                fprintf(stderr, "Failed to open %s: %s\n", output, strerror(errno));
                return EXIT_FAILURE;
        }
        fprintf(f, "# worst overrun of a 1 ms sleep per 10 ms: CLOCK_MONOTONIC_us_of_the_slot overrun_us\n");
        for (uint64_t i = 0; n_overruns > 0 && i <= last_slot; i++)
                fprintf(f, "%" PRIu64 " %" PRIu32 "\n", start + i * SLOT_USEC, worst[i]);
        if (fclose(f) != 0) {
                fprintf(stderr, "Failed to write %s: %s\n", output, strerror(errno));
                return EXIT_FAILURE;
        }

        {
                unsigned over_1ms = 0, over_3ms = 0;

                for (uint64_t i = 0; n_overruns > 0 && i <= last_slot; i++) {
                        over_1ms += worst[i] > 1000;
                        over_3ms += worst[i] > 3000;
                }
                if (n_overruns > 0)
                        qsort(overruns, n_overruns, sizeof(uint32_t), cmp_u32);
                printf("sleeps=%zu p50_us=%" PRIu32 " p99_us=%" PRIu32 " p999_us=%" PRIu32 " max_us=%" PRIu32
                       " slots_over_1ms=%u slots_over_3ms=%u\n",
                       n_overruns, n_overruns ? overruns[n_overruns / 2] : 0,
                       n_overruns ? overruns[n_overruns * 99 / 100] : 0,
                       n_overruns ? overruns[n_overruns * 999 / 1000] : 0,
                       n_overruns ? overruns[n_overruns - 1] : 0, over_1ms, over_3ms);
        }
        free(overruns);
        free(worst);
        return EXIT_SUCCESS;
}
