/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "dpiped-subscription.h"
#include "util.h"

Subscription *subscription_free(Subscription *s) {
        if (!s)
                return NULL;
        queue_reader_free(s->reader);
        free(s->in_flight);
        for (size_t i = 0; i < s->n_sources; i++)
                free(s->sources[i]);
        free(s->sources);
        free(s->name);
        free(s);
        return NULL;
}

int subscription_new(uint64_t from, uint32_t window, Subscription **ret) {
        Subscription *s;

        if (window == 0 || window > SUBSCRIPTION_WINDOW_MAX)
                return -EINVAL;
        s = calloc(1, sizeof(Subscription));
        if (!s)
                return -ENOMEM;
        s->next_offset = from;
        s->window = window;
        *ret = s;
        return 0;
}

int subscription_add_source(Subscription *s, const char *name) {
        char **l;

        if (!source_name_is_valid(name))
                return -EINVAL;
        if (s->n_sources >= SUBSCRIPTION_SOURCES_MAX)
                return -E2BIG;
        l = realloc(s->sources, (s->n_sources + 1) * sizeof(char *));
        if (!l)
                return -ENOMEM;
        s->sources = l;
        s->sources[s->n_sources] = strdup(name);
        if (!s->sources[s->n_sources])
                return -ENOMEM;
        s->n_sources++;
        return 0;
}

bool subscription_wants(const Subscription *s, const char *source, size_t source_len) {
        if (s->n_sources == 0)
                return true;
        for (size_t i = 0; i < s->n_sources; i++)
                if (strlen(s->sources[i]) == source_len && memcmp(s->sources[i], source, source_len) == 0)
                        return true;
        return false;
}

int subscription_sent(Subscription *s, uint64_t offset) {
        if (s->n_in_flight >= s->window)
                return -ENOBUFS;
        if (s->n_in_flight == s->in_flight_allocated) {
                size_t a = MIN(MAX(s->in_flight_allocated * 2, (size_t) 64), (size_t) s->window);
                uint64_t *p = malloc(a * sizeof(uint64_t));

                if (!p)
                        return -ENOMEM;
                /* Unwrap the ring into the new array. */
                for (size_t i = 0; i < s->n_in_flight; i++)
                        p[i] = s->in_flight[(s->in_flight_head + i) % s->in_flight_allocated];
                free(s->in_flight);
                s->in_flight = p;
                s->in_flight_allocated = a;
                s->in_flight_head = 0;
        }
        s->in_flight[(s->in_flight_head + s->n_in_flight) % s->in_flight_allocated] = offset;
        s->n_in_flight++;
        s->records_sent++;
        return 0;
}

void subscription_info(const Subscription *s, uint64_t queue_next, SubscriptionInfo *ret) {
        uint64_t position = s->n_in_flight > 0 ? s->in_flight[s->in_flight_head] : s->next_offset;

        if (s->name)
                (void) snprintf(ret->label, sizeof(ret->label), "%s", s->name);
        else
                (void) snprintf(ret->label, sizeof(ret->label), "anonymous-%" PRIu64, s->serial);
        ret->position = position;
        ret->lag = queue_next > position ? queue_next - position : 0;
}

static void subscription_commit(Subscription *s, uint64_t offset) {
        if (s->name && offset > s->committed) {
                s->committed = offset;
                s->commit_dirty = true;
        }
}

size_t subscription_ack(Subscription *s, uint64_t offset) {
        size_t n = 0;

        while (s->n_in_flight > 0 && s->in_flight[s->in_flight_head] <= offset) {
                s->in_flight_head = (s->in_flight_head + 1) % s->in_flight_allocated;
                s->n_in_flight--;
                n++;
        }
        subscription_commit(s, offset + 1);
        if (s->n_in_flight == 0)
                subscription_commit(s, s->lost_end);
        return n;
}

void subscription_lost(Subscription *s, uint64_t last) {
        s->lost_end = MAX(s->lost_end, last + 1);
        if (s->n_in_flight == 0)
                subscription_commit(s, s->lost_end);
}

/* <dir>/<name>.offset: the suffix keeps names like ".." plain file names. */
static char *committed_path(const char *dir, const char *name) {
        char *p;

        if (asprintf(&p, "%s/%s.offset", dir, name) < 0)
                return NULL;
        return p;
}

int subscription_load_committed(const char *dir, const char *name, uint64_t *ret) {
        _cleanup_free_ char *path = NULL, *text = NULL;
        int r;

        path = committed_path(dir, name);
        if (!path)
                return -ENOMEM;
        r = read_file(path, 64, &text, NULL);
        if (r < 0)
                return r;
        text[strcspn(text, "\n")] = 0;
        return safe_atou64(text, ret) < 0 ? -EBADMSG : 0;
}

int subscription_save_committed(const char *dir, const char *name, uint64_t offset) {
        _cleanup_free_ char *path = NULL;
        char text[32];
        int r, n;

        r = mkdir_p(dir, 0755);
        if (r < 0)
                return r;
        path = committed_path(dir, name);
        if (!path)
                return -ENOMEM;
        n = snprintf(text, sizeof(text), "%" PRIu64 "\n", offset);
        return write_file_atomic(path, text, (size_t) n);
}
