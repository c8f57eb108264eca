/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* See nats-link.h. Nothing here logs: results travel to the loop, which decides. */

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "json-scan.h"
#include "macro.h"
#include "nats-link.h"
#include "util.h"

struct NatsLink {
        uint64_t id;
        unsigned refs; /* the loop's, the open thread's and its connection's; under nats_lock */
        bool released; /* the loop let go */
        int efd;
        sd_event_source *io;
        nats_link_cb_t cb;
        void *userdata;

        /* Under nats_lock: */
        bool wake_pending;
        bool open_done, open_taken;
        NatsOpenResult open;
        NatsAck *acks;
        size_t n_acks, allocated_acks;
        bool closed;
        char closed_reason[256];
        char ack_error[256];

        /* Publishes not yet acknowledged: added to by the loop (atomically), taken from by the ack
         * handler under nats_lock, which wakes nats_settle_cond when it reaches 0. */
        int64_t pending;
};

/* One lock for every link's mailbox and the registry of live links: few sinks per process, and a
 * publish ack holds it for an append. */
static pthread_mutex_t nats_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t nats_threads_cond = PTHREAD_COND_INITIALIZER;
static pthread_cond_t nats_settle_cond = PTHREAD_COND_INITIALIZER;
static NatsLink **registry;
static size_t n_registry, allocated_registry;
static uint64_t next_link_id = 1;
static unsigned threads_running;

/* Under nats_lock. */
static NatsLink *link_lookup(uint64_t id) {
        for (size_t i = 0; i < n_registry; i++)
                if (registry[i]->id == id)
                        return registry[i];
        return NULL;
}

/* Under nats_lock. */
static void link_wake(NatsLink *l) {
        uint64_t one = 1;

        if (l->wake_pending)
                return;
        l->wake_pending = true;
        (void) !write(l->efd, &one, sizeof(one));
}

/* Under nats_lock: drops a reference; returns the link if it is to be freed (outside the lock). */
static NatsLink *link_unref_locked(NatsLink *l) {
        if (--l->refs > 0)
                return NULL;
        for (size_t i = 0; i < n_registry; i++)
                if (registry[i] == l) {
                        registry[i] = registry[--n_registry];
                        break;
                }
        return l;
}

static void link_free(NatsLink *l) {
        if (!l)
                return;
        safe_close(l->efd);
        free(l->acks);
        free(l);
}

int nats_link_global_init(void) {
        natsStatus s = nats_Open(-1);

        return s == NATS_OK ? 0 : -EIO;
}

/* CLOCK_REALTIME (pthread_cond_timedwait()'s) timeout_us from now. */
static struct timespec deadline_after(uint64_t timeout_us) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += (time_t) (timeout_us / USEC_PER_SEC);
        ts.tv_nsec += (long) (timeout_us % USEC_PER_SEC) * 1000;
        if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
        }
        return ts;
}

void nats_link_global_done(uint64_t timeout_us) {
        struct timespec ts = deadline_after(timeout_us);
        bool idle;

        pthread_mutex_lock(&nats_lock);
        while (threads_running > 0)
                if (pthread_cond_timedwait(&nats_threads_cond, &nats_lock, &ts) != 0)
                        break;
        idle = threads_running == 0;
        pthread_mutex_unlock(&nats_lock);
        /* With a thread still in a blocking call, cnats cannot be closed under it: the exit ends it. */
        if (idle)
                nats_Close();
        free(registry);
        registry = NULL;
        n_registry = allocated_registry = 0;
}

static int link_io(sd_event_source *es, int fd, uint32_t revents, void *userdata) {
        NatsLink *l = userdata;
        uint64_t n;

        (void) !read(fd, &n, sizeof(n));
        pthread_mutex_lock(&nats_lock);
        l->wake_pending = false;
        pthread_mutex_unlock(&nats_lock);
        l->cb(l, l->userdata);
        return 0;
}

int nats_link_new(sd_event *e, nats_link_cb_t cb, void *userdata, NatsLink **ret) {
        NatsLink *l;
        int r;

        l = calloc(1, sizeof(NatsLink));
        if (!l)
                return -ENOMEM;
        l->refs = 1;
        l->cb = cb;
        l->userdata = userdata;
        l->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (l->efd < 0) {
                r = -errno;
                link_free(l);
                return r;
        }
        r = sd_event_add_io(e, &l->io, l->efd, EPOLLIN, link_io, l);
        if (r < 0) {
                link_free(l);
                return r;
        }
        pthread_mutex_lock(&nats_lock);
        if (n_registry == allocated_registry) {
                size_t a = allocated_registry ? allocated_registry * 2 : 8;
                NatsLink **p = reallocarray(registry, a, sizeof(NatsLink *));
                if (!p) {
                        pthread_mutex_unlock(&nats_lock);
                        sd_event_source_disable_unref(l->io);
                        link_free(l);
                        return -ENOMEM;
                }
                registry = p;
                allocated_registry = a;
        }
        l->id = next_link_id++;
        registry[n_registry++] = l;
        pthread_mutex_unlock(&nats_lock);
        *ret = l;
        return 0;
}

void nats_link_release(NatsLink *l) {
        NatsLink *dead;

        if (!l)
                return;
        l->io = sd_event_source_disable_unref(l->io);
        pthread_mutex_lock(&nats_lock);
        l->released = true;
        dead = link_unref_locked(l);
        pthread_mutex_unlock(&nats_lock);
        link_free(dead);
}

bool nats_link_take_open(NatsLink *l, NatsOpenResult *ret) {
        bool done;

        pthread_mutex_lock(&nats_lock);
        done = l->open_done && !l->open_taken;
        if (done) {
                l->open_taken = true;
                *ret = l->open;
                l->open.conn = NULL;
        }
        pthread_mutex_unlock(&nats_lock);
        return done;
}

void nats_link_take_acks(NatsLink *l, NatsAck **acks, size_t *allocated, size_t *n) {
        NatsAck *a;
        size_t al;

        pthread_mutex_lock(&nats_lock);
        a = l->acks;
        al = l->allocated_acks;
        *n = l->n_acks;
        l->acks = *acks;
        l->allocated_acks = *allocated;
        l->n_acks = 0;
        pthread_mutex_unlock(&nats_lock);
        *acks = a;
        *allocated = al;
}

const char *nats_link_closed(NatsLink *l) {
        const char *r;

        pthread_mutex_lock(&nats_lock);
        r = l->closed ? l->closed_reason : NULL;
        pthread_mutex_unlock(&nats_lock);
        return r;
}

const char *nats_link_ack_error(NatsLink *l) {
        return l->ack_error; /* written once, before the ack that reports it is taken */
}

void nats_conn_published(NatsConn *c, size_t n) {
        (void) __atomic_add_fetch(&c->link->pending, (int64_t) n, __ATOMIC_RELAXED);
}

/* ---- cnats's threads ---------------------------------------------------------------------------- */

static bool parse_offset(const char *s, uint64_t *ret) {
        return s && safe_atou64(s, ret) >= 0;
}

/* A JetStream pub ack: {"stream":"S","seq":N[,"duplicate":true]} or {"error":{"code":C,"err_code":E,
 * "description":"..."}} (nats-server's JSPubAckResponse). */
static void parse_pub_ack(const char *data, size_t len, NatsAck *ack, char *text, size_t text_size) {
        JsonScanField f[] = { { .key = "seq" }, { .key = "duplicate" }, { .key = "error" } };

        if (json_scan(data, len, f, ELEMENTSOF(f), NULL) != JSON_SCAN_OBJECT) {
                ack->status = NATS_PROTOCOL_ERROR;
                (void) snprintf(text, text_size, "the publish ack is not a JSON object: '%.*s'", (int) MIN(len, (size_t) 100), data);
                return;
        }
        if (f[2].type == JSON_SCAN_OBJECT) {
                JsonScanField e[] = { { .key = "err_code" }, { .key = "description" } };
                uint64_t code = 0;

                ack->status = NATS_ERR;
                (void) json_scan(f[2].value, f[2].value_len, e, ELEMENTSOF(e), NULL);
                if (e[0].type == JSON_SCAN_NUMBER && json_scan_uint64(e[0].value, e[0].value_len, &code) >= 0 && code <= INT32_MAX)
                        ack->error_code = (int) code;
                if (e[1].type != JSON_SCAN_STRING || json_scan_string_unescape(e[1].value, e[1].value_len, text, text_size) == -EBADMSG)
                        (void) snprintf(text, text_size, "%.*s", (int) MIN(f[2].value_len, (size_t) 200), f[2].value);
                return;
        }
        if (f[0].type != JSON_SCAN_NUMBER || json_scan_uint64(f[0].value, f[0].value_len, &ack->seq) < 0) {
                ack->status = NATS_PROTOCOL_ERROR;
                (void) snprintf(text, text_size, "the publish ack has no sequence: '%.*s'", (int) MIN(len, (size_t) 100), data);
                return;
        }
        ack->ok = true;
        ack->duplicate = f[1].type == JSON_SCAN_TRUE;
}

static void on_ack(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure) {
        uint64_t id = (uint64_t) (uintptr_t) closure;
        const char *subject = natsMsg_GetSubject(msg), *dot = subject ? strrchr(subject, '.') : NULL;
        NatsAck ack = {};
        char text[256] = "";
        NatsLink *l;

        if (!parse_offset(dot ? dot + 1 : NULL, &ack.offset)) {
                natsMsg_Destroy(msg);
                return;
        }
        if (natsMsg_IsNoResponders(msg))
                ack.status = NATS_NO_RESPONDERS;
        else
                parse_pub_ack(natsMsg_GetData(msg), (size_t) MAX(natsMsg_GetDataLength(msg), 0), &ack, text, sizeof(text));
        natsMsg_Destroy(msg);

        pthread_mutex_lock(&nats_lock);
        l = link_lookup(id);
        if (l) {
                if (__atomic_sub_fetch(&l->pending, 1, __ATOMIC_RELAXED) <= 0)
                        pthread_cond_broadcast(&nats_settle_cond);
        }
        if (l && !l->released) {
                if (!ack.ok && !l->ack_error[0])
                        memcpy(l->ack_error, text, sizeof(l->ack_error));
                if (l->n_acks == l->allocated_acks) {
                        size_t a = l->allocated_acks ? l->allocated_acks * 2 : 1024;
                        NatsAck *p = reallocarray(l->acks, a, sizeof(NatsAck));
                        if (p) {
                                l->acks = p;
                                l->allocated_acks = a;
                        }
                }
                if (l->n_acks < l->allocated_acks)
                        l->acks[l->n_acks++] = ack;
                else if (!l->closed) {
                        /* Out of memory: the loop must not wait for an ack that got lost. */
                        l->closed = true;
                        (void) snprintf(l->closed_reason, sizeof(l->closed_reason), "out of memory for publish acks");
                }
                link_wake(l);
        }
        pthread_mutex_unlock(&nats_lock);
}

static void on_closed(natsConnection *nc, void *closure) {
        uint64_t id = (uint64_t) (uintptr_t) closure;
        const char *err = NULL;
        NatsLink *l;

        (void) natsConnection_GetLastError(nc, &err);
        pthread_mutex_lock(&nats_lock);
        l = link_lookup(id);
        if (l && !l->released && !l->closed) {
                l->closed = true;
                (void) snprintf(l->closed_reason, sizeof(l->closed_reason), "the connection to NATS was closed%s%s",
                                isempty(err) ? "" : ": ", isempty(err) ? "" : err);
                link_wake(l);
        }
        pthread_mutex_unlock(&nats_lock);
}

/* ---- the open and retire threads ---------------------------------------------------------------- */

typedef struct OpenJob {
        NatsLink *link;     /* NULL for a retire job */
        NatsConn *previous;
        NatsOpenParams params;
} OpenJob;

static void conn_teardown(NatsConn *c, int64_t settle_ms) {
        NatsLink *dead = NULL;

        if (!c)
                return;
        if (c->link && c->nc && !natsConnection_IsClosed(c->nc) && settle_ms > 0) {
                /* Let what the old connection published settle first: the lookup after this sees it,
                 * and a resend of it is a duplicate the stream's window drops. */
                struct timespec ts = deadline_after((uint64_t) settle_ms * USEC_PER_MSEC);

                pthread_mutex_lock(&nats_lock);
                while (__atomic_load_n(&c->link->pending, __ATOMIC_RELAXED) > 0)
                        if (pthread_cond_timedwait(&nats_settle_cond, &nats_lock, &ts) != 0)
                                break;
                pthread_mutex_unlock(&nats_lock);
        }
        if (c->acks)
                natsSubscription_Destroy(c->acks);
        if (c->js)
                jsCtx_Destroy(c->js);
        if (c->nc)
                natsConnection_Destroy(c->nc);
        if (c->link) {
                pthread_mutex_lock(&nats_lock);
                dead = link_unref_locked(c->link);
                pthread_mutex_unlock(&nats_lock);
                link_free(dead);
        }
        free(c);
}

static void result_error(NatsOpenResult *r, natsStatus s, jsErrCode jerr, bool permanent, const char *fmt, ...)
        _printf_(5, 6);
static void result_error(NatsOpenResult *r, natsStatus s, jsErrCode jerr, bool permanent, const char *fmt, ...) {
        const char *detail = nats_GetLastError(NULL);
        size_t n;
        va_list ap;

        va_start(ap, fmt);
        (void) vsnprintf(r->message, sizeof(r->message), fmt, ap);
        va_end(ap);
        n = strlen(r->message);
        /* cnats prefixes "(file.c:123): ", which says nothing to a user. */
        if (detail && detail[0] == '(') {
                const char *e = strstr(detail, "): ");
                if (e)
                        detail = e + 3;
        }
        (void) snprintf(r->message + n, sizeof(r->message) - n, ": %s", isempty(detail) ? natsStatus_GetText(s) : detail);
        n = strlen(r->message);
        if (jerr)
                (void) snprintf(r->message + n, sizeof(r->message) - n, " (JetStream error %d)", (int) jerr);
        r->error = s == NATS_TIMEOUT ? -ETIMEDOUT : -EIO;
        r->permanent = permanent;
}

/* How often the lookup is repeated at most until it is stable (see do_open()). */
#define RECHECK_ROUNDS_MAX 10u

static uint64_t msg_seq(natsMsg *m) {
        return m ? natsMsg_GetSequence(m) : 0;
}

static void do_open(const NatsOpenParams *p, uint64_t link_id, NatsOpenResult *r) {
        natsOptions *opts = NULL;
        jsStreamInfo *si = NULL;
        natsMsg *last = NULL;
        jsErrCode jerr = 0;
        jsOptions jo;
        NatsConn *c;
        natsStatus s;

        c = calloc(1, sizeof(NatsConn));
        if (!c) {
                r->error = -ENOMEM;
                (void) snprintf(r->message, sizeof(r->message), "out of memory");
                return;
        }
        s = natsOptions_Create(&opts);
        if (s == NATS_OK)
                s = natsOptions_SetServers(opts, (const char **) p->servers, p->n_servers);
        if (s == NATS_OK)
                s = natsOptions_SetTimeout(opts, p->timeout_ms);
        if (s == NATS_OK)
                s = natsOptions_SetName(opts, p->name);
        /* No reconnect: cnats would resend from its buffer after a reconnect, behind the sink's
         * back and possibly after a gap. A lost connection fails the sink, which looks up where the
         * stream stands and resumes from there. */
        if (s == NATS_OK)
                s = natsOptions_SetAllowReconnect(opts, false);
        if (s == NATS_OK)
                s = natsOptions_SetPingInterval(opts, 5000);
        if (s == NATS_OK)
                s = natsOptions_SetMaxPingsOut(opts, 3);
        if (s == NATS_OK)
                s = natsOptions_SetIOBufSize(opts, 256 * 1024);
        if (s == NATS_OK)
                s = natsOptions_SetClosedCB(opts, on_closed, (void *) (uintptr_t) link_id);
        if (s != NATS_OK) {
                result_error(r, s, 0, false, "cannot set up the NATS options");
                goto finish;
        }
        s = natsConnection_Connect(&c->nc, opts);
        if (s != NATS_OK) {
                result_error(r, s, 0, false, "cannot connect to %s%s", p->servers[0], p->n_servers > 1 ? " (or the others)" : "");
                goto finish;
        }

        jsOptions_Init(&jo);
        jo.Wait = p->timeout_ms;
        s = natsConnection_JetStream(&c->js, c->nc, &jo);
        if (s != NATS_OK) {
                result_error(r, s, 0, false, "cannot use JetStream");
                goto finish;
        }

        /* The acks' subscription (see nats-link.h), before anything is published: the server has
         * it before the first publish. No pending limit: the sink bounds what is in flight. */
        {
                natsInbox *inbox = NULL;
                char filter[sizeof(c->reply) + 1];
                int n = -1;

                s = natsInbox_Create(&inbox);
                if (s == NATS_OK) {
                        n = snprintf(c->reply, sizeof(c->reply), "%s.", (const char *) inbox);
                        natsInbox_Destroy(inbox);
                        if (n < 0 || (size_t) n >= sizeof(c->reply))
                                s = NATS_INVALID_SUBJECT;
                }
                if (s == NATS_OK) {
                        c->reply_len = (size_t) n;
                        (void) snprintf(filter, sizeof(filter), "%s*", c->reply);
                        s = natsConnection_Subscribe(&c->acks, c->nc, filter, on_ack, (void *) (uintptr_t) link_id);
                }
                if (s == NATS_OK)
                        s = natsSubscription_SetPendingLimits(c->acks, -1, -1);
                if (s != NATS_OK) {
                        result_error(r, s, 0, false, "cannot subscribe to the publish acks");
                        goto finish;
                }
        }

        s = js_GetStreamInfo(&si, c->js, p->stream, NULL, &jerr);
        if (s == NATS_NOT_FOUND || jerr == JSStreamNotFoundErr) {
                jsStreamConfig cfg;
                const char *subjects[1];

                if (p->replicas == 0 || !p->stream_subject) {
                        result_error(r, s, jerr, true, "stream %s does not exist%s", p->stream,
                                     p->replicas == 0 ? " and replicas=0 says not to create it"
                                                      : " and the subject has no literal prefix to create it for");
                        goto finish;
                }
                jsStreamConfig_Init(&cfg);
                subjects[0] = p->stream_subject;
                cfg.Name = p->stream;
                cfg.Subjects = subjects;
                cfg.SubjectsLen = 1;
                cfg.Storage = js_FileStorage;
                cfg.Replicas = p->replicas;
                jerr = 0;
                s = js_AddStream(&si, c->js, &cfg, NULL, &jerr);
                if (s != NATS_OK && jerr != JSStreamNameExistErr) {
                        result_error(r, s, jerr,
                                     jerr == JSStreamReplicasNotSupportedErr || jerr == JSInsufficientResourcesErr ||
                                             jerr == JSClusterNoPeersErr || jerr == JSStreamSubjectOverlapErr,
                                     "cannot create stream %s with %" PRIu32 " replicas for %s", p->stream,
                                     p->replicas, p->stream_subject);
                        goto finish;
                }
        } else if (s != NATS_OK) {
                result_error(r, s, jerr, false, "cannot get the state of stream %s", p->stream);
                goto finish;
        }

        /* A publish that a server took before an outage may be stored only when the stream has its
         * quorum back, just after the lookup below first succeeds: a message of an earlier
         * connection (or of a sink process killed meanwhile) landing after the resume point would
         * be stored twice once the duplicate window has forgotten its id. So the lookup is repeated
         * until this pipeline's last message stays the same for recheck_ms (only this sink publishes
         * on these subjects). */
        for (unsigned round = 0;; round++) {
                uint64_t seen = msg_seq(last);
                natsMsg *again = NULL;

                if (round > 0 && p->recheck_ms > 0)
                        nats_Sleep(p->recheck_ms);
                jerr = 0;
                s = js_GetLastMsg(&again, c->js, p->stream, p->last_subject, NULL, &jerr);
                if (s != NATS_OK && s != NATS_NOT_FOUND && jerr != JSNoMessageFoundErr)
                        break;
                natsMsg_Destroy(last);
                last = s == NATS_OK ? again : NULL;
                if (p->recheck_ms <= 0 || (round > 0 && msg_seq(last) == seen) ||
                    round >= RECHECK_ROUNDS_MAX)
                        break;
        }
        if (s == NATS_OK) {
                const char *v = NULL;

                if (natsMsgHeader_Get(last, "Dpipe-Offset", &v) != NATS_OK || !parse_offset(v, &r->last_offset)) {
                        result_error(r, NATS_ERR, 0, true,
                                     "the last message on %s in stream %s (sequence %" PRIu64
                                     ") has no Dpipe-Offset header: another publisher uses this pipeline's subjects",
                                     p->last_subject, p->stream, natsMsg_GetSequence(last));
                        goto finish;
                }
                r->have_last = true;
                r->last_seq = natsMsg_GetSequence(last);
        } else if (s != NATS_NOT_FOUND && jerr != JSNoMessageFoundErr) {
                result_error(r, s, jerr, false, "cannot look up the last message on %s in stream %s", p->last_subject,
                             p->stream);
                goto finish;
        }
        r->conn = TAKE_PTR(c);
        r->error = 0;

finish:
        natsMsg_Destroy(last);
        jsStreamInfo_Destroy(si);
        natsOptions_Destroy(opts);
        conn_teardown(c, 0);
}

static void *open_thread(void *userdata) {
        OpenJob *j = userdata;
        NatsOpenResult result = {};
        NatsLink *dead = NULL;
        bool deliver = false;

        conn_teardown(j->previous, j->params.settle_ms);
        if (j->link) {
                do_open(&j->params, j->link->id, &result);
                pthread_mutex_lock(&nats_lock);
                if (!j->link->released) {
                        if (result.conn) {
                                result.conn->link = j->link; /* a reference of its own */
                                j->link->refs++;
                        }
                        j->link->open = result;
                        j->link->open_done = true;
                        link_wake(j->link);
                        deliver = true;
                }
                dead = link_unref_locked(j->link);
                pthread_mutex_unlock(&nats_lock);
                if (!deliver)
                        conn_teardown(result.conn, 0);
                link_free(dead);
        }
        nats_open_params_done(&j->params);
        free(j);

        pthread_mutex_lock(&nats_lock);
        threads_running--;
        pthread_cond_broadcast(&nats_threads_cond);
        pthread_mutex_unlock(&nats_lock);
        return NULL;
}

static int params_copy(NatsOpenParams *d, const NatsOpenParams *p) {
        *d = (NatsOpenParams) {
                .n_servers = p->n_servers,
                .replicas = p->replicas,
                .timeout_ms = p->timeout_ms,
                .settle_ms = p->settle_ms,
        };
        if (p->n_servers > 0) {
                d->servers = calloc((size_t) p->n_servers, sizeof(char *));
                if (!d->servers)
                        return -ENOMEM;
                for (int i = 0; i < p->n_servers; i++)
                        if (!(d->servers[i] = strdup(p->servers[i])))
                                return -ENOMEM;
        }
        if ((p->name && !(d->name = strdup(p->name))) || (p->stream && !(d->stream = strdup(p->stream))) ||
            (p->stream_subject && !(d->stream_subject = strdup(p->stream_subject))) ||
            (p->last_subject && !(d->last_subject = strdup(p->last_subject))))
                return -ENOMEM;
        return 0;
}

void nats_open_params_done(NatsOpenParams *p) {
        for (int i = 0; p->servers && i < p->n_servers; i++)
                free(p->servers[i]);
        free(p->servers);
        free(p->name);
        free(p->stream);
        free(p->stream_subject);
        free(p->last_subject);
        *p = (NatsOpenParams) {};
}

static int start_job(NatsLink *l, NatsConn *previous, const NatsOpenParams *p) {
        pthread_attr_t attr;
        pthread_t t;
        OpenJob *j;
        int r;

        j = calloc(1, sizeof(OpenJob));
        if (!j) {
                conn_teardown(previous, 0);
                return -ENOMEM;
        }
        j->previous = previous;
        r = params_copy(&j->params, p);
        if (r < 0) {
                nats_open_params_done(&j->params);
                conn_teardown(previous, 0);
                free(j);
                return r;
        }
        pthread_mutex_lock(&nats_lock);
        if (l) {
                l->refs++;
                j->link = l;
        }
        threads_running++;
        pthread_mutex_unlock(&nats_lock);

        (void) pthread_attr_init(&attr);
        (void) pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        r = -pthread_create(&t, &attr, open_thread, j);
        (void) pthread_attr_destroy(&attr);
        if (r < 0) {
                NatsLink *dead = NULL;

                pthread_mutex_lock(&nats_lock);
                threads_running--;
                if (l)
                        dead = link_unref_locked(l);
                pthread_mutex_unlock(&nats_lock);
                link_free(dead);
                conn_teardown(previous, 0);
                nats_open_params_done(&j->params);
                free(j);
        }
        return r;
}

int nats_link_open_async(NatsLink *l, NatsConn *previous, const NatsOpenParams *p) {
        return start_job(l, previous, p);
}

int nats_conn_retire_async(NatsConn *c, int64_t settle_ms) {
        NatsOpenParams p = { .settle_ms = settle_ms };

        if (!c)
                return 0;
        return start_job(NULL, c, &p);
}
