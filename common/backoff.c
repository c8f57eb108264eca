/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <sys/random.h>

#include "backoff.h"
#include "macro.h"

uint64_t backoff_delay(const Backoff *b, unsigned attempt) {
        uint64_t d = b->min_usec;

        for (unsigned i = 0; i < attempt && d < b->max_usec; i++)
                d *= 2;
        return MIN(d, b->max_usec);
}

uint64_t backoff_next(Backoff *b) {
        uint64_t d = backoff_delay(b, b->attempt), r = 0;

        /* Past the cap the count no longer matters; keep it from ever wrapping to 0. */
        if (b->attempt < 64)
                b->attempt++;
        if (!b->jitter)
                return d;
        (void) getrandom(&r, sizeof(r), GRND_NONBLOCK);
        return d / 2 + r % (d / 2 + 1);
}
