/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>

/* Exponential backoff between attempts to reach something: the first retry after min_usec, each
 * further one after twice the previous, at most max_usec; back to min_usec after backoff_reset()
 * (a success). With jitter, a delay is taken at random between half and all of that ("equal
 * jitter"), so that many that failed together (a restarting peer) do not come back in lockstep.
 * The one backoff of the tree: connectors' sources, the connectors' writer link, dpiped's links
 * to the connectors, the sinks. */
typedef struct Backoff {
        uint64_t min_usec;
        uint64_t max_usec;
        bool jitter;
        unsigned attempt; /* failed attempts since the last reset */
} Backoff;

#define BACKOFF_INIT(min, max, j) ((Backoff) { .min_usec = (min), .max_usec = (max), .jitter = (j) })

/* The delay before retry number attempt (0: the first retry), without jitter. */
uint64_t backoff_delay(const Backoff *b, unsigned attempt);
/* The delay to wait now (jittered if asked for), and counts the attempt. */
uint64_t backoff_next(Backoff *b);
static inline void backoff_reset(Backoff *b) {
        b->attempt = 0;
}
