/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* See dpiped-stream.h. The threads never log: problems travel to the loop, which logs each once. */

#include <errno.h>
#include <inttypes.h>
#include <nats/nats.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <systemd/sd-event.h>
#include <time.h>
#include <unistd.h>

#include "dpiped-manager.h"
#include "dpiped-stream.h"
#include "json-scan.h"
#include "log.h"
#include "macro.h"
#include "nats-address.h"
#include "util.h"

#define STREAM_API_WAIT_MS 2000
#define STREAM_FETCH_TIMEOUT_MS 1000
/* Messages per pull request at most: each is a round trip to the server during which nothing flows
 * (bench/sink-bench.sh "stream": 256 read 15% slower). The client's window bounds it further. */
#define STREAM_FETCH_BATCH 1024
/* A consumer that delivers nothing this many fetches in a row while the stream holds more is
 * presumed lost (its server died, the cluster changed its leader) and created again. */
#define STREAM_STALE_FETCHES 3
#define STREAM_BOUNDS_INTERVAL_MS 1000
#define STREAM_STOP_WAIT_USEC (5 * USEC_PER_SEC)
#define STREAM_BUCKET_SUFFIX "_SUBSCRIPTIONS"

struct StreamLink {
        Manager *manager;
        int efd;
        sd_event_source *io;
        char **servers;
        int n_servers;
        char *stream;
        char *bucket;
        char logged_error[256]; /* the loop's: the link's last error it logged */

        pthread_t thread;
        bool thread_started;
        pthread_mutex_t lock;
        pthread_cond_t cond;

        /* Under lock. */
        bool stopping;
        bool wake_pending;
        natsConnection *nc;
        jsCtx *js;
        kvStore *kv;
        char *subject; /* the stream's one subject, the readers' consumer filter */
        bool have_bounds;
        uint64_t first, next;
        char error[256];
        unsigned n_readers; /* reader threads running */
};

typedef struct MailRecord {
        uint64_t seq;
        size_t len;
} MailRecord;

struct StreamReader {
        StreamLink *link;
        pthread_t thread;
        char *name;
        StreamFrom from;
        uint64_t offset;
        char **sources;
        size_t n_sources;

        /* Under link->lock. */
        bool released;
        uint64_t room;
        uint64_t fetched, taken;
        Buffer lines;
        MailRecord *records;
        size_t n_records, head, allocated_records;
        bool start_known, start_taken;
        uint64_t start;
        char *start_error;
        char *last_problem; /* the last one reported: each failure is reported once */
        bool commit_set;
        uint64_t commit_want;
        char *problem;
};

static void timespec_after_ms(struct timespec *ts, unsigned ms) {
        (void) clock_gettime(CLOCK_MONOTONIC, ts);
        ts->tv_sec += ms / 1000;
        ts->tv_nsec += (long) (ms % 1000) * 1000000L;
        if (ts->tv_nsec >= 1000000000L) {
                ts->tv_sec++;
                ts->tv_nsec -= 1000000000L;
        }
}

/* Under lock. */
static void link_wait_ms(StreamLink *l, unsigned ms) {
        struct timespec ts;

        timespec_after_ms(&ts, ms);
        (void) pthread_cond_timedwait(&l->cond, &l->lock, &ts);
}

/* Under lock. */
static void link_wake(StreamLink *l) {
        uint64_t one = 1;

        if (l->wake_pending || l->efd < 0)
                return;
        l->wake_pending = true;
        (void) !write(l->efd, &one, sizeof(one));
}

static int link_io(sd_event_source *es, int fd, uint32_t revents, void *userdata) {
        StreamLink *l = userdata;
        uint64_t n;

        char error[sizeof(l->error)];

        (void) !read(fd, &n, sizeof(n));
        pthread_mutex_lock(&l->lock);
        l->wake_pending = false;
        snprintf(error, sizeof(error), "%s", l->error);
        pthread_mutex_unlock(&l->lock);
        if (!streq(error, l->logged_error)) {
                if (error[0] == 0)
                        log_info("Reading the stream %s again.", l->stream);
                else
                        log_warning("Stream %s: %s; retrying.", l->stream, error);
                snprintf(l->logged_error, sizeof(l->logged_error), "%s", error);
        }
        manager_stream_wake(l->manager);
        return 0;
}

static void set_error(char *buf, size_t size, natsStatus s, jsErrCode jerr, const char *what) {
        const char *last = nats_GetLastError(NULL);

        if (isempty(last))
                last = NULL;
        if (jerr != 0)
                snprintf(buf, size, "%s: JetStream error %d (%s)", what, (int) jerr, last ?: natsStatus_GetText(s));
        else
                snprintf(buf, size, "%s: %s", what, last ?: natsStatus_GetText(s));
}

/* ---- the link's thread: connection, bucket, bounds ------------------------------------------------ */

static natsStatus link_connect(StreamLink *l, natsConnection **ret) {
        natsOptions *opts = NULL;
        natsStatus s;

        s = natsOptions_Create(&opts);
        if (s == NATS_OK)
                s = natsOptions_SetServers(opts, (const char **) l->servers, l->n_servers);
        if (s == NATS_OK)
                s = natsOptions_SetName(opts, "dpiped --stream");
        if (s == NATS_OK)
                s = natsOptions_SetMaxReconnect(opts, -1);
        if (s == NATS_OK)
                s = natsOptions_SetReconnectWait(opts, 250);
        if (s == NATS_OK)
                s = natsOptions_SetTimeout(opts, STREAM_API_WAIT_MS);
        if (s == NATS_OK)
                s = natsConnection_Connect(ret, opts);
        natsOptions_Destroy(opts);
        return s;
}

static void *link_thread(void *p) {
        StreamLink *l = p;
        natsConnection *nc = NULL;
        jsCtx *js = NULL;
        kvStore *kv = NULL;
        char error[256] = "";

        pthread_mutex_lock(&l->lock);
        while (!l->stopping) {
                jsStreamInfo *si = NULL;
                jsErrCode jerr = 0;
                natsStatus s;

                pthread_mutex_unlock(&l->lock);
                error[0] = 0;
                if (!nc) {
                        s = link_connect(l, &nc);
                        if (s == NATS_OK) {
                                jsOptions jo;

                                jsOptions_Init(&jo);
                                jo.Wait = STREAM_API_WAIT_MS;
                                s = natsConnection_JetStream(&js, nc, &jo);
                                if (s != NATS_OK) {
                                        natsConnection_Destroy(nc);
                                        nc = NULL;
                                }
                        }
                        if (s != NATS_OK)
                                set_error(error, sizeof(error), s, 0, "cannot connect");
                }
                if (js) {
                        s = js_GetStreamInfo(&si, js, l->stream, NULL, &jerr);
                        if (s != NATS_OK)
                                set_error(error, sizeof(error), s, jerr, "cannot read the stream's state");
                }
                if (si && !kv) {
                        s = js_KeyValue(&kv, js, l->bucket);
                        if (s == NATS_NOT_FOUND) {
                                kvConfig kc;

                                kvConfig_Init(&kc);
                                kc.Bucket = l->bucket;
                                kc.History = 1;
                                kc.Replicas = (int) MAX(si->Config->Replicas, 1);
                                s = js_CreateKeyValue(&kv, js, &kc);
                        }
                        if (s != NATS_OK) {
                                kv = NULL;
                                set_error(error, sizeof(error), s, 0, "cannot open the subscriptions bucket");
                        }
                }

                pthread_mutex_lock(&l->lock);
                if (js && !l->js) {
                        l->nc = nc;
                        l->js = js;
                }
                if (kv && !l->kv)
                        l->kv = kv;
                if (si) {
                        l->have_bounds = true;
                        l->next = si->State.LastSeq + 1;
                        l->first = si->State.Msgs > 0 ? si->State.FirstSeq : l->next;
                        if (!l->subject && si->Config->SubjectsLen == 1)
                                l->subject = strdup(si->Config->Subjects[0]);
                        else if (!l->subject)
                                snprintf(error, sizeof(error), "the stream %s has %d subjects: one is needed",
                                         l->stream, si->Config->SubjectsLen);
                        jsStreamInfo_Destroy(si);
                }
                if (!streq(error, l->error)) {
                        snprintf(l->error, sizeof(l->error), "%s", error);
                        link_wake(l);
                }
                pthread_cond_broadcast(&l->cond);
                link_wait_ms(l, STREAM_BOUNDS_INTERVAL_MS);
        }
        pthread_mutex_unlock(&l->lock);
        return NULL;
}

/* ---- the readers' threads --------------------------------------------------------------------------- */

static void reader_free(StreamReader *r) {
        if (!r)
                return;
        free(r->name);
        for (size_t i = 0; i < r->n_sources; i++)
                free(r->sources[i]);
        free(r->sources);
        buffer_done(&r->lines);
        free(r->records);
        free(r->start_error);
        free(r->problem);
        free(r->last_problem);
        free(r);
}

/* Under lock. */
static void reader_problem(StreamReader *r, const char *text) {
        if (r->last_problem && streq(r->last_problem, text))
                return;
        free(r->last_problem);
        r->last_problem = strdup(text);
        free(r->problem);
        r->problem = strdup(text);
        link_wake(r->link);
}

/* Under lock: things work again; the next failure is reported. */
static void reader_recovered(StreamReader *r) {
        free(r->last_problem);
        r->last_problem = NULL;
}

static bool reader_wants(StreamReader *r, const char *source, size_t len) {
        if (r->n_sources == 0)
                return true;
        for (size_t i = 0; i < r->n_sources; i++)
                if (strlen(r->sources[i]) == len && memcmp(r->sources[i], source, len) == 0)
                        return true;
        return false;
}

/* A decimal number that is all of p[0..n). */
static bool parse_u64_span(const char *p, size_t n, uint64_t *ret) {
        uint64_t v = 0;

        if (n == 0)
                return false;
        for (size_t i = 0; i < n; i++) {
                unsigned d = (unsigned) (p[i] - '0');

                if (d > 9 || v > (UINT64_MAX - d) / 10)
                        return false;
                v = v * 10 + d;
        }
        *ret = v;
        return true;
}

/* The stream sequence and the time stored (µs since the epoch) from a JetStream message's reply
 * subject, as cnats's natsMsg_GetMetaData() reads them but without its allocations:
 * $JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<ns>.<pending> (v1), or with
 * <domain>.<account hash>. before <stream> and more tokens after <pending> (v2). */
static bool reply_metadata(const char *reply, uint64_t *ret_seq, uint64_t *ret_ts_us) {
        const char *tok[12];
        size_t len[12], n = 0, base;
        uint64_t ns;

        if (!reply || strncmp(reply, "$JS.ACK.", 8) != 0)
                return false;
        for (const char *p = reply + 8;;) {
                const char *dot = strchr(p, '.');

                if (n == ELEMENTSOF(tok))
                        break;
                tok[n] = p;
                len[n++] = dot ? (size_t) (dot - p) : strlen(p);
                if (!dot)
                        break;
                p = dot + 1;
        }
        if (n == 7)
                base = 0;
        else if (n >= 9)
                base = 2;
        else
                return false;
        if (!parse_u64_span(tok[base + 3], len[base + 3], ret_seq) || !parse_u64_span(tok[base + 5], len[base + 5], &ns))
                return false;
        *ret_ts_us = ns / 1000;
        return true;
}

/* One message as a record line. Returns 0 (formatted), 1 (not wanted), or -ENOMEM. */
static int format_record(StreamReader *r, natsMsg *msg, uint64_t seq, uint64_t ts_us, Buffer *out) {
        const char *id = NULL, *source = NULL, *ts = NULL, *data = natsMsg_GetData(msg);
        size_t data_len = (size_t) MAX(natsMsg_GetDataLength(msg), 0);
        char src[512], num[24];
        int n, rr;

        (void) natsMsgHeader_Get(msg, "Nats-Msg-Id", &id);
        (void) natsMsgHeader_Get(msg, "Dpipe-Source", &source);
        (void) natsMsgHeader_Get(msg, "Dpipe-Ts", &ts);
        if (id && source && strrchr(id, ':')) {
                size_t a = MIN((size_t) (strrchr(id, ':') - id), sizeof(src) - 1), b = MIN(strlen(source), sizeof(src) - 1 - a);

                memcpy(src, id, a);
                if (a + 1 < sizeof(src)) {
                        src[a] = '/';
                        b = MIN(b, sizeof(src) - 2 - a);
                        memcpy(src + a + 1, source, b);
                        n = (int) (a + 1 + b);
                } else
                        n = (int) a;
                src[n] = 0;
        } else
                /* Not published by a dpipe sink: its subject says where it comes from. */
                n = snprintf(src, sizeof(src), "%s", natsMsg_GetSubject(msg) ?: "");
        if (n < 0 || (size_t) n >= sizeof(src))
                n = (int) strlen(src);
        if (!reader_wants(r, src, (size_t) n))
                return 1;
        if (ts)
                (void) safe_atou64(ts, &ts_us);

        /* No printf: it was a fifth of the reader's instructions per record. */
        rr = buffer_append_str(out, "{\"op\":\"record\",\"offset\":");
        if (rr >= 0)
                rr = buffer_append(out, num, format_u64(num, seq));
        if (rr >= 0)
                rr = buffer_append_str(out, ",\"source\":");
        if (rr >= 0)
                rr = buffer_append_json_string(out, src, (size_t) n);
        if (rr >= 0)
                rr = buffer_append_str(out, ",\"ts_us\":");
        if (rr >= 0)
                rr = buffer_append(out, num, format_u64(num, ts_us));
        if (rr >= 0)
                rr = buffer_append_str(out, ",\"data\":");
        if (rr >= 0) {
                /* Only valid JSON reaches a client (dpiped(8)): what a dpipe sink published is;
                 * anything else in the stream goes out as a JSON string. */
                if (data_len > 0 && json_scan_valid(data, data_len))
                        rr = buffer_append(out, data, data_len);
                else if (data_len == 0)
                        rr = buffer_append_str(out, "null");
                else
                        rr = buffer_append_json_string(out, data, data_len);
        }
        if (rr >= 0)
                rr = buffer_append_str(out, "}\n");
        return rr < 0 ? -ENOMEM : 0;
}

/* Finds the start; returns false (and a problem text) when it cannot be known yet. */
static bool reader_find_start(StreamReader *r, jsCtx *js, kvStore *kv, uint64_t *ret, char *err, size_t err_size) {
        StreamLink *l = r->link;
        uint64_t first, next;
        bool have;

        pthread_mutex_lock(&l->lock);
        have = l->have_bounds;
        first = l->first;
        next = l->next;
        pthread_mutex_unlock(&l->lock);
        if (!have) {
                snprintf(err, err_size, "the stream's state is not known yet");
                return false;
        }
        switch (r->from) {
        case STREAM_FROM_EARLIEST:
                *ret = first;
                return true;
        case STREAM_FROM_LATEST:
                *ret = next;
                return true;
        case STREAM_FROM_OFFSET:
                *ret = MAX(r->offset, first);
                return true;
        case STREAM_FROM_COMMITTED: {
                kvEntry *e = NULL;
                natsStatus s;

                if (!kv) {
                        snprintf(err, err_size, "the subscriptions bucket is not open yet");
                        return false;
                }
                s = kvStore_Get(&e, kv, r->name);
                if (s == NATS_NOT_FOUND) {
                        *ret = first;
                        return true;
                }
                if (s != NATS_OK) {
                        set_error(err, err_size, s, 0, "cannot read the subscription's offset");
                        return false;
                }
                if (safe_atou64(kvEntry_ValueString(e) ?: "", ret) < 0)
                        *ret = first;
                *ret = MAX(*ret, first);
                kvEntry_Destroy(e);
                return true;
        }}
        return false;
}

static natsStatus reader_subscribe(StreamReader *r, jsCtx *js, const char *subject, uint64_t next,
                                   natsSubscription **ret, jsErrCode *jerr) {
        jsSubOptions so;

        jsSubOptions_Init(&so);
        so.Stream = r->link->stream;
        so.Config.DeliverPolicy = js_DeliverByStartSequence;
        so.Config.OptStartSeq = next;
        so.Config.AckPolicy = js_AckAll;
        so.Config.AckWait = 30 * (int64_t) 1000000000;
        so.Config.MaxAckPending = 100000;
        /* An ephemeral consumer whose reader is gone is removed by the server. */
        so.Config.InactiveThreshold = 30 * (int64_t) 1000000000;
        return js_PullSubscribe(ret, js, subject, NULL, NULL, &so, jerr);
}

static void reader_store_commit(StreamReader *r, kvStore *kv, uint64_t want, uint64_t *stored) {
        char value[32];
        uint64_t rev;
        natsStatus s;

        snprintf(value, sizeof(value), "%" PRIu64, want);
        s = kvStore_PutString(&rev, kv, r->name, value);
        pthread_mutex_lock(&r->link->lock);
        if (s == NATS_OK) {
                *stored = want;
                reader_recovered(r);
        } else {
                char err[256];

                set_error(err, sizeof(err), s, 0, "cannot store the subscription's offset");
                reader_problem(r, err);
        }
        pthread_mutex_unlock(&r->link->lock);
}

static void *reader_thread(void *p) {
        StreamReader *r = p;
        StreamLink *l = r->link;
        natsSubscription *sub = NULL;
        _cleanup_(buffer_done) Buffer batch = {};
        MailRecord *local = NULL;
        size_t allocated_local = 0;
        uint64_t next = 0, stored = UINT64_MAX;
        unsigned stale = 0;
        bool started = false;
        char err[256];

        pthread_mutex_lock(&l->lock);
        for (;;) {
                jsCtx *js = l->js;
                kvStore *kv = l->kv;
                const char *subject = l->subject;
                uint64_t allowed, want = r->commit_want;
                bool commit = r->commit_set && r->commit_want != stored && kv && r->name;
                natsMsgList list = {};
                jsErrCode jerr = 0;
                natsStatus s;

                if (commit) {
                        pthread_mutex_unlock(&l->lock);
                        reader_store_commit(r, kv, want, &stored);
                        pthread_mutex_lock(&l->lock);
                        if (stored != want) {
                                if (r->released || l->stopping)
                                        break; /* tried once more on the way out */
                                link_wait_ms(l, 500);
                        }
                        continue;
                }
                if (r->released || l->stopping)
                        break;
                if (!js || !subject) {
                        link_wait_ms(l, 200);
                        continue;
                }
                if (!started) {
                        bool ok;

                        pthread_mutex_unlock(&l->lock);
                        ok = reader_find_start(r, js, kv, &next, err, sizeof(err));
                        pthread_mutex_lock(&l->lock);
                        if (!ok) {
                                link_wait_ms(l, 200);
                                continue;
                        }
                        started = true;
                        r->start = next;
                        r->start_known = true;
                        link_wake(l);
                        continue;
                }
                allowed = r->room > r->fetched - r->taken ? r->room - (r->fetched - r->taken) : 0;
                if (allowed == 0) {
                        link_wait_ms(l, 500);
                        continue;
                }
                pthread_mutex_unlock(&l->lock);

                if (!sub) {
                        s = reader_subscribe(r, js, subject, next, &sub, &jerr);
                        if (s != NATS_OK) {
                                sub = NULL;
                                set_error(err, sizeof(err), s, jerr, "cannot create a consumer");
                                pthread_mutex_lock(&l->lock);
                                reader_problem(r, err);
                                link_wait_ms(l, 500);
                                continue;
                        }
                        stale = 0;
                }
                s = natsSubscription_Fetch(&list, sub, (int) MIN(allowed, (uint64_t) STREAM_FETCH_BATCH),
                                           STREAM_FETCH_TIMEOUT_MS, &jerr);
                if (s == NATS_OK && list.Count > 0) {
                        size_t n = 0;
                        int rr = 0;

                        buffer_clear(&batch);
                        if (allocated_local < (size_t) list.Count) {
                                MailRecord *a = realloc(local, (size_t) list.Count * sizeof(MailRecord));
                                if (a) {
                                        local = a;
                                        allocated_local = (size_t) list.Count;
                                } else
                                        rr = -ENOMEM;
                        }
                        for (int i = 0; rr >= 0 && i < list.Count; i++) {
                                size_t before = buffer_size(&batch);
                                uint64_t seq, ts_us;

                                if (!reply_metadata(natsMsg_GetReply(list.Msgs[i]), &seq, &ts_us))
                                        continue;
                                if (seq < next)
                                        continue; /* a redelivery */
                                next = seq + 1;
                                rr = format_record(r, list.Msgs[i], seq, ts_us, &batch);
                                if (rr == 0)
                                        local[n++] = (MailRecord) { .seq = seq, .len = buffer_size(&batch) - before };
                                else if (rr > 0)
                                        rr = 0;
                        }
                        /* AckAll: one ack for the batch, so that the server does not send it again. */
                        (void) natsMsg_Ack(list.Msgs[list.Count - 1], NULL);
                        natsMsgList_Destroy(&list);
                        stale = 0;

                        pthread_mutex_lock(&l->lock);
                        if (rr < 0) {
                                reader_problem(r, "out of memory");
                                break;
                        }
                        reader_recovered(r);
                        if (n > 0) {
                                if (r->head > 0) {
                                        memmove(r->records, r->records + r->head,
                                                (r->n_records - r->head) * sizeof(MailRecord));
                                        r->n_records -= r->head;
                                        r->head = 0;
                                }
                                if (r->n_records + n > r->allocated_records) {
                                        size_t want_n = MAX(r->n_records + n, r->allocated_records * 2);
                                        MailRecord *a = realloc(r->records, want_n * sizeof(MailRecord));
                                        if (!a) {
                                                reader_problem(r, "out of memory");
                                                break;
                                        }
                                        r->records = a;
                                        r->allocated_records = want_n;
                                }
                                if (buffer_append(&r->lines, buffer_begin(&batch), buffer_size(&batch)) < 0) {
                                        reader_problem(r, "out of memory");
                                        break;
                                }
                                memcpy(r->records + r->n_records, local, n * sizeof(MailRecord));
                                r->n_records += n;
                                r->fetched += n;
                                link_wake(l);
                        }
                        continue;
                }
                natsMsgList_Destroy(&list);
                pthread_mutex_lock(&l->lock);
                if (s == NATS_TIMEOUT || (s == NATS_OK && list.Count == 0)) {
                        /* Nothing new, or a consumer that was lost with its server. */
                        if (l->have_bounds && l->next > next && ++stale >= STREAM_STALE_FETCHES) {
                                pthread_mutex_unlock(&l->lock);
                                (void) natsSubscription_Unsubscribe(sub);
                                natsSubscription_Destroy(sub);
                                sub = NULL;
                                pthread_mutex_lock(&l->lock);
                        }
                        continue;
                }
                set_error(err, sizeof(err), s, jerr, "cannot read the stream");
                reader_problem(r, err);
                pthread_mutex_unlock(&l->lock);
                natsSubscription_Destroy(sub);
                sub = NULL;
                pthread_mutex_lock(&l->lock);
                link_wait_ms(l, 500);
        }
        pthread_mutex_unlock(&l->lock);

        if (sub) {
                (void) natsSubscription_Unsubscribe(sub); /* deletes the ephemeral consumer */
                natsSubscription_Destroy(sub);
        }
        free(local);
        nats_ReleaseThreadMemory();

        pthread_mutex_lock(&l->lock);
        l->n_readers--;
        pthread_cond_broadcast(&l->cond);
        if (r->released) {
                pthread_mutex_unlock(&l->lock);
                reader_free(r);
                return NULL;
        }
        r->released = true; /* the loop frees it (thread gone) */
        pthread_mutex_unlock(&l->lock);
        return NULL;
}

/* ---- the loop's side ---------------------------------------------------------------------------------- */

int stream_link_new(Manager *m, const char *servers, const char *stream, StreamLink **ret) {
        StreamLink *l;
        const char *reason = NULL;
        int r;

        if (nats_Open(-1) != NATS_OK)
                return -EIO;
        l = calloc(1, sizeof(StreamLink));
        if (!l)
                return -ENOMEM;
        l->manager = m;
        l->efd = -EBADF;
        pthread_mutex_init(&l->lock, NULL);
        {
                pthread_condattr_t a;

                pthread_condattr_init(&a);
                pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
                pthread_cond_init(&l->cond, &a);
                pthread_condattr_destroy(&a);
        }
        r = nats_servers_parse(servers, &l->servers, &l->n_servers, &reason, NULL, NULL);
        if (r < 0)
                goto fail;
        l->stream = strdup(stream);
        if (!l->stream || asprintf(&l->bucket, "%s" STREAM_BUCKET_SUFFIX, stream) < 0) {
                l->bucket = NULL;
                r = -ENOMEM;
                goto fail;
        }
        l->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (l->efd < 0) {
                r = -errno;
                goto fail;
        }
        r = sd_event_add_io(m->event, &l->io, l->efd, EPOLLIN, link_io, l);
        if (r < 0)
                goto fail;
        r = -pthread_create(&l->thread, NULL, link_thread, l);
        if (r < 0)
                goto fail;
        l->thread_started = true;
        *ret = l;
        return 0;
fail:
        stream_link_free(l);
        return r;
}

StreamLink *stream_link_free(StreamLink *l) {
        struct timespec ts;
        bool idle;

        if (!l)
                return NULL;
        pthread_mutex_lock(&l->lock);
        l->stopping = true;
        pthread_cond_broadcast(&l->cond);
        pthread_mutex_unlock(&l->lock);
        if (l->thread_started)
                (void) pthread_join(l->thread, NULL);

        /* The readers store their last offsets (one try each) and go. */
        timespec_after_ms(&ts, (unsigned) (STREAM_STOP_WAIT_USEC / USEC_PER_MSEC));
        pthread_mutex_lock(&l->lock);
        while (l->n_readers > 0)
                if (pthread_cond_timedwait(&l->cond, &l->lock, &ts) != 0)
                        break;
        idle = l->n_readers == 0;
        /* A reader still running must not write into a closed (and maybe reused) descriptor. */
        int efd = l->efd;
        l->efd = -EBADF;
        pthread_mutex_unlock(&l->lock);

        sd_event_source_disable_unref(l->io);
        safe_close(efd);
        if (!idle)
                return NULL; /* a thread still in a blocking call: the exit ends it, nothing is freed under it */
        if (l->kv)
                kvStore_Destroy(l->kv);
        if (l->js)
                jsCtx_Destroy(l->js);
        if (l->nc)
                natsConnection_Destroy(l->nc);
        nats_servers_free(l->servers, l->n_servers);
        free(l->stream);
        free(l->bucket);
        free(l->subject);
        pthread_mutex_destroy(&l->lock);
        pthread_cond_destroy(&l->cond);
        free(l);
        nats_Close();
        return NULL;
}

bool stream_link_bounds(StreamLink *l, uint64_t *ret_first, uint64_t *ret_next) {
        bool have;

        pthread_mutex_lock(&l->lock);
        have = l->have_bounds;
        *ret_first = l->first;
        *ret_next = l->next;
        pthread_mutex_unlock(&l->lock);
        return have;
}

int stream_reader_new(StreamLink *l, const char *name, StreamFrom from, uint64_t offset, char **sources, size_t n_sources,
                      StreamReader **ret) {
        StreamReader *r;
        int e;

        r = calloc(1, sizeof(StreamReader));
        if (!r)
                return -ENOMEM;
        r->link = l;
        r->from = from;
        r->offset = offset;
        if (name && !(r->name = strdup(name)))
                goto oom;
        if (n_sources > 0) {
                r->sources = calloc(n_sources, sizeof(char *));
                if (!r->sources)
                        goto oom;
                for (size_t i = 0; i < n_sources; i++) {
                        r->sources[i] = strdup(sources[i]);
                        if (!r->sources[i]) {
                                r->n_sources = i;
                                goto oom;
                        }
                }
                r->n_sources = n_sources;
        }
        pthread_mutex_lock(&l->lock);
        l->n_readers++;
        pthread_mutex_unlock(&l->lock);
        e = pthread_create(&r->thread, NULL, reader_thread, r);
        if (e != 0) {
                pthread_mutex_lock(&l->lock);
                l->n_readers--;
                pthread_mutex_unlock(&l->lock);
                reader_free(r);
                return -e;
        }
        (void) pthread_detach(r->thread);
        *ret = r;
        return 0;
oom:
        reader_free(r);
        return -ENOMEM;
}

void stream_reader_release(StreamReader *r) {
        StreamLink *l;
        bool gone;

        if (!r)
                return;
        l = r->link;
        pthread_mutex_lock(&l->lock);
        gone = r->released; /* the thread ended by itself */
        r->released = true;
        pthread_cond_broadcast(&l->cond);
        pthread_mutex_unlock(&l->lock);
        if (gone)
                reader_free(r);
}

void stream_reader_set_room(StreamReader *r, uint64_t room) {
        pthread_mutex_lock(&r->link->lock);
        if (room > r->room)
                pthread_cond_broadcast(&r->link->cond);
        r->room = room;
        pthread_mutex_unlock(&r->link->lock);
}

void stream_reader_commit(StreamReader *r, uint64_t committed) {
        pthread_mutex_lock(&r->link->lock);
        if (!r->commit_set || r->commit_want != committed) {
                r->commit_set = true;
                r->commit_want = committed;
                pthread_cond_broadcast(&r->link->cond);
        }
        pthread_mutex_unlock(&r->link->lock);
}

bool stream_reader_take_start(StreamReader *r, uint64_t *ret_start, char **ret_error) {
        bool have = false;

        pthread_mutex_lock(&r->link->lock);
        if (r->start_known && !r->start_taken) {
                r->start_taken = true;
                *ret_start = r->start;
                *ret_error = TAKE_PTR(r->start_error);
                have = true;
        }
        pthread_mutex_unlock(&r->link->lock);
        return have;
}

int stream_reader_take(StreamReader *r, Buffer *out, size_t out_max, uint64_t **seqs, size_t *allocated, size_t *n) {
        size_t k = 0, bytes = 0;
        int rr = 0;

        *n = 0;
        pthread_mutex_lock(&r->link->lock);
        while (r->head + k < r->n_records && buffer_size(out) + bytes < out_max)
                bytes += r->records[r->head + k++].len;
        if (k > 0) {
                if (k > *allocated) {
                        uint64_t *a = realloc(*seqs, MAX(k, 2 * *allocated) * sizeof(uint64_t));
                        if (!a)
                                rr = -ENOMEM;
                        else {
                                *seqs = a;
                                *allocated = MAX(k, 2 * *allocated);
                        }
                }
                if (rr >= 0)
                        rr = buffer_append(out, buffer_begin(&r->lines), bytes);
                if (rr >= 0) {
                        for (size_t i = 0; i < k; i++)
                                (*seqs)[i] = r->records[r->head + i].seq;
                        *n = k;
                        buffer_consume(&r->lines, bytes);
                        r->head += k;
                        r->taken += k;
                        if (r->head == r->n_records)
                                r->head = r->n_records = 0;
                }
        }
        pthread_mutex_unlock(&r->link->lock);
        return rr;
}

char *stream_reader_take_problem(StreamReader *r) {
        char *p;

        pthread_mutex_lock(&r->link->lock);
        p = TAKE_PTR(r->problem);
        pthread_mutex_unlock(&r->link->lock);
        return p;
}
