/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <assert.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "dpiped-client.h"
#include "dpiped-connector.h"
#include "dpiped-metrics.h"
#include "dpiped-source.h"
#include "dpiped-subscription.h"
#include "dpiped-writer.h"
#include "json-util.h"
#include "log.h"
#include "prom.h"
#include "util.h"

#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define METRICS_CONNECTION_LIMIT 32
#define METRICS_CONNECTION_TIMEOUT_SEC 10
#define METRICS_SYNC_BUCKETS_MAX 32

struct MetricsServer {
        Manager *manager;
        struct MHD_Daemon *daemon;
        sd_event_source *io_event_source; /* MHD's epoll fd */
        sd_event_source *timer;           /* MHD_get_timeout() */
};

/* ---- the exposition --------------------------------------------------------------------------- */

static int family(Buffer *b, const char *name, PromType type, const char *help) {
        return prom_family(b, name, type, help);
}

static int gauge(Buffer *b, const char *name, const char *help, uint64_t v) {
        int r = family(b, name, PROM_GAUGE, help);
        return r < 0 ? r : prom_sample_u64(b, name, NULL, 0, v);
}

static int counter(Buffer *b, const char *name, const char *help, uint64_t v) {
        int r = family(b, name, PROM_COUNTER, help);
        return r < 0 ? r : prom_sample_u64(b, name, NULL, 0, v);
}

/* One family with a sample per source. */
typedef uint64_t (*SourceValue)(const Source *s);
static uint64_t source_records(const Source *s) { return s->records_received; }
static uint64_t source_bytes(const Source *s) { return s->bytes_received; }
static uint64_t source_skipped(const Source *s) { return s->records_skipped; }
static uint64_t source_reconnects(const Source *s) { return s->reconnects; }

static int per_source(Buffer *b, Manager *m, const char *name, PromType type, const char *help, SourceValue get) {
        int r = family(b, name, type, help);

        for (Source *s = m->sources; r >= 0 && s; s = s->sources_next)
                r = prom_sample_u64(b, name, &(PromLabel) { "source", s->name }, 1, get(s));
        return r;
}

/* A time in µs since the epoch (0: never) as seconds; absent while 0. */
static int per_source_time(Buffer *b, Manager *m, const char *name, const char *help, size_t offset) {
        int r = family(b, name, PROM_GAUGE, help);

        for (Source *s = m->sources; r >= 0 && s; s = s->sources_next) {
                uint64_t usec = *(const uint64_t *) ((const uint8_t *) s + offset);
                if (usec > 0)
                        r = prom_sample_double(b, name, &(PromLabel) { "source", s->name }, 1,
                                               (double) usec / (double) USEC_PER_SEC);
        }
        return r;
}

static int format_sources(Manager *m, Buffer *b) {
        int r;

        r = family(b, "dpipe_sources", PROM_GAUGE, "Registered sources.");
        if (r >= 0)
                r = prom_sample_u64(b, "dpipe_sources", NULL, 0, m->n_sources);
        if (r >= 0)
                r = family(b, "dpipe_source_info", PROM_GAUGE, "Each registered source, with its type (always 1).");
        for (Source *s = m->sources; r >= 0 && s; s = s->sources_next)
                r = prom_sample_u64(b, "dpipe_source_info",
                                    (PromLabel[]) { { "source", s->name }, { "type", s->type } }, 2, 1);
        if (r >= 0)
                r = family(b, "dpipe_source_state", PROM_GAUGE,
                           "State of each source: 1 for the state it is in, 0 for the others.");
        for (Source *s = m->sources; r >= 0 && s; s = s->sources_next)
                for (SourceState st = 0; r >= 0 && st < _SOURCE_STATE_MAX; st++)
                        r = prom_sample_u64(b, "dpipe_source_state",
                                            (PromLabel[]) { { "source", s->name }, { "state", source_state_to_string(st) } },
                                            2, s->state == st);
        if (r >= 0)
                r = per_source(b, m, "dpipe_source_records_total", PROM_COUNTER,
                               "Records received from each source and handed to the writer (since its connector started).",
                               source_records);
        if (r >= 0)
                r = per_source(b, m, "dpipe_source_bytes_total", PROM_COUNTER,
                               "Bytes of record data received from each source (since its connector started).",
                               source_bytes);
        if (r >= 0)
                r = per_source(b, m, "dpipe_source_records_skipped_total", PROM_COUNTER,
                               "Records of each source skipped: malformed, too long or refused by the writer.",
                               source_skipped);
        if (r >= 0)
                r = per_source(b, m, "dpipe_source_reconnects_total", PROM_COUNTER,
                               "Connections (re)made to each source by its connector.", source_reconnects);
        if (r >= 0)
                r = per_source_time(b, m, "dpipe_source_last_record_timestamp_seconds",
                                    "When each source last delivered a record (Unix time).",
                                    offsetof(Source, last_record_usec));
        if (r >= 0)
                r = per_source_time(b, m, "dpipe_source_last_error_timestamp_seconds",
                                    "When each source last reported an error (Unix time; absent if never).",
                                    offsetof(Source, last_error_usec));
        if (r >= 0)
                r = per_source_time(b, m, "dpipe_source_state_change_timestamp_seconds",
                                    "When each source entered its current state (Unix time).",
                                    offsetof(Source, state_change_usec));
        return r;
}

static int format_subscriptions(Manager *m, Buffer *b) {
        uint64_t first, next;
        int r;

        manager_queue_bounds(m, &first, &next);
        r = family(b, "dpipe_subscription_lag_records", PROM_GAUGE,
                   "Records in the queue after each subscription's acknowledged position (of every source).");
        for (Client *c = m->clients; r >= 0 && c; c = c->clients_next) {
                SubscriptionInfo i;
                if (!c->subscription)
                        continue;
                subscription_info(c->subscription, next, &i);
                r = prom_sample_u64(b, "dpipe_subscription_lag_records",
                                    (PromLabel[]) { { "subscription", i.label }, { "client", c->peer } }, 2, i.lag);
        }
        if (r >= 0)
                r = family(b, "dpipe_subscription_records_sent_total", PROM_COUNTER,
                           "Records sent to each subscription (since it subscribed).");
        for (Client *c = m->clients; r >= 0 && c; c = c->clients_next) {
                SubscriptionInfo i;
                if (!c->subscription)
                        continue;
                subscription_info(c->subscription, next, &i);
                r = prom_sample_u64(b, "dpipe_subscription_records_sent_total",
                                    (PromLabel[]) { { "subscription", i.label }, { "client", c->peer } }, 2,
                                    c->subscription->records_sent);
        }
        if (r >= 0)
                r = family(b, "dpipe_subscription_in_flight_records", PROM_GAUGE,
                           "Records sent to each subscription and not acknowledged yet.");
        for (Client *c = m->clients; r >= 0 && c; c = c->clients_next) {
                SubscriptionInfo i;
                if (!c->subscription)
                        continue;
                subscription_info(c->subscription, next, &i);
                r = prom_sample_u64(b, "dpipe_subscription_in_flight_records",
                                    (PromLabel[]) { { "subscription", i.label }, { "client", c->peer } }, 2,
                                    c->subscription->n_in_flight);
        }
        return r;
}

static uint64_t json_u64(struct json_object *o, const char *key) {
        uint64_t u = 0;

        (void) json_get_uint64(o, key, &u);
        return u;
}

static int format_writer(Manager *m, Buffer *b) {
        struct json_object *st = writer_link_status(m->writer_link), *le = NULL, *buckets = NULL;
        double bounds[METRICS_SYNC_BUCKETS_MAX];
        uint64_t counts[METRICS_SYNC_BUCKETS_MAX];
        size_t n = 0;
        int r;

        r = gauge(b, "dpipe_writer_up", "1 if dpipe-writer answered its last status request (its figures below are fresh).",
                  st ? 1 : 0);
        if (r < 0 || !st)
                return r;

        r = gauge(b, "dpipe_queue_bytes", "Bytes the queue's segment files take on disk.", json_u64(st, "disk_bytes"));
        if (r >= 0)
                r = gauge(b, "dpipe_queue_segments", "Segment files of the queue.", json_u64(st, "segments"));
        if (r >= 0)
                r = counter(b, "dpipe_writer_records_duplicate_total",
                            "Records the writer dropped as already stored (resent batches; since it started).",
                            json_u64(st, "duplicates"));
        if (r >= 0)
                r = counter(b, "dpipe_writer_batches_refused_total",
                            "Batches the writer refused for a record that is not valid (since it started).",
                            json_u64(st, "batches_refused"));
        if (r >= 0)
                r = counter(b, "dpipe_writer_bytes_written_total", "Bytes the writer appended to the queue, record headers included (since it started).",
                            json_u64(st, "bytes_written"));
        if (r >= 0)
                r = gauge(b, "dpipe_writer_connections", "Connections to the writer (connectors, and dpiped for these figures).",
                          json_u64(st, "connections"));
        if (r >= 0) {
                bool stalled = false;
                (void) json_get_bool(st, "stalled", &stalled);
                r = gauge(b, "dpipe_writer_stalled", "1 while the writer holds records back: disk or queue full.", stalled);
        }
        if (r >= 0)
                r = counter(b, "dpipe_writer_sync_failures_total", "Syncs of the queue that failed (since the writer started).",
                            json_u64(st, "sync_failures"));
        if (r < 0)
                return r;

        /* The histogram as the writer counted it: its bucket bounds come with the counts. */
        if (json_object_object_get_ex(st, "sync_le_us", &le) && json_object_object_get_ex(st, "sync_buckets", &buckets) &&
            json_object_is_type(le, json_type_array) && json_object_is_type(buckets, json_type_array) &&
            json_object_array_length(le) == json_object_array_length(buckets))
                n = MIN(json_object_array_length(le), (size_t) METRICS_SYNC_BUCKETS_MAX);
        for (size_t i = 0; i < n; i++) {
                bounds[i] = (double) json_object_get_int64(json_object_array_get_idx(le, i)) / (double) USEC_PER_SEC;
                counts[i] = (uint64_t) json_object_get_int64(json_object_array_get_idx(buckets, i));
        }
        r = family(b, "dpipe_writer_sync_duration_seconds", PROM_HISTOGRAM,
                   "How long each sync of the queue to disk took (fdatasync in the writer's sync thread).");
        if (r >= 0)
                r = prom_histogram(b, "dpipe_writer_sync_duration_seconds", NULL, 0, bounds, counts, n,
                                   json_u64(st, "sync_count"), (double) json_u64(st, "sync_sum_us") / (double) USEC_PER_SEC);
        return r;
}

static int format_connectors(Manager *m, Buffer *b) {
        int r = family(b, "dpipe_connector_up", PROM_GAUGE, "1 while dpiped's control connection to a connector type is up.");

        for (Connector *c = m->connectors; r >= 0 && c; c = c->next)
                r = prom_sample_u64(b, "dpipe_connector_up", &(PromLabel) { "type", c->type }, 1, connector_is_connected(c));
        return r;
}

static int format_disk(Manager *m, Buffer *b) {
        struct statvfs sv;
        int r;

        /* The file system of the queue: what "disk nearly full" means for dpipe. Absent until the
         * queue directory exists. */
        if (statvfs(m->queue_dir, &sv) < 0)
                return 0;
        r = gauge(b, "dpipe_writer_disk_free_bytes", "Bytes available to dpipe on the file system of the queue.",
                  (uint64_t) sv.f_bavail * sv.f_frsize);
        if (r >= 0)
                r = gauge(b, "dpipe_writer_disk_size_bytes", "Size of the file system of the queue.",
                          (uint64_t) sv.f_blocks * sv.f_frsize);
        return r;
}

static int format_process(Manager *m, Buffer *b) {
        uint64_t now_mono = now_usec(CLOCK_MONOTONIC), now_real = now_usec(CLOCK_REALTIME);
        unsigned long vsize_pages = 0, rss_pages = 0;
        struct rusage ru;
        struct rlimit rl;
        long page = sysconf(_SC_PAGESIZE);
        unsigned n_fds = 0;
        DIR *d;
        FILE *f;
        int r = 0;

        f = fopen("/proc/self/statm", "re");
        if (f) {
                if (fscanf(f, "%lu %lu", &vsize_pages, &rss_pages) != 2)
                        vsize_pages = rss_pages = 0;
                fclose(f);
        }
        if (rss_pages > 0) {
                r = gauge(b, "process_resident_memory_bytes", "Resident memory size in bytes.",
                          (uint64_t) rss_pages * (uint64_t) page);
                if (r >= 0)
                        r = gauge(b, "process_virtual_memory_bytes", "Virtual memory size in bytes.",
                                  (uint64_t) vsize_pages * (uint64_t) page);
        }
        if (r >= 0 && getrusage(RUSAGE_SELF, &ru) >= 0) {
                double cpu = (double) ru.ru_utime.tv_sec + (double) ru.ru_stime.tv_sec +
                             ((double) ru.ru_utime.tv_usec + (double) ru.ru_stime.tv_usec) / 1e6;
                r = family(b, "process_cpu_seconds_total", PROM_COUNTER, "Total user and system CPU time spent in seconds.");
                if (r >= 0)
                        r = prom_sample_double(b, "process_cpu_seconds_total", NULL, 0, cpu);
        }
        if (r >= 0) {
                r = family(b, "process_start_time_seconds", PROM_GAUGE, "Start time of the process since unix epoch in seconds.");
                if (r >= 0)
                        r = prom_sample_double(b, "process_start_time_seconds", NULL, 0,
                                               (double) (now_real - (now_mono - m->start_usec)) / (double) USEC_PER_SEC);
        }
        d = opendir("/proc/self/fd");
        if (d) {
                struct dirent *de;
                while ((de = readdir(d)))
                        if (de->d_name[0] != '.')
                                n_fds++;
                closedir(d);
                if (r >= 0)
                        r = gauge(b, "process_open_fds", "Number of open file descriptors.", n_fds > 0 ? n_fds - 1 : 0);
        }
        if (r >= 0 && getrlimit(RLIMIT_NOFILE, &rl) >= 0 && rl.rlim_cur != RLIM_INFINITY)
                r = gauge(b, "process_max_fds", "Maximum number of open file descriptors.", (uint64_t) rl.rlim_cur);
        return r;
}

int manager_metrics_format(Manager *m, Buffer *b) {
        uint64_t first, next;
        int r;

        manager_queue_bounds(m, &first, &next);
        r = family(b, "dpipe_build_info", PROM_GAUGE, "The version of dpiped (always 1).");
        if (r >= 0)
                r = prom_sample_u64(b, "dpipe_build_info", &(PromLabel) { "version", dpipe_version() }, 1, 1);
        /* The queue's own count: every record ever stored, the same figure as RecordsWritten on the
         * bus (it survives restarts of the writer, unlike the writer's own counters). */
        if (r >= 0)
                r = counter(b, "dpipe_records_written_total", "Records stored in the queue (its next offset).", next);
        if (r >= 0)
                r = gauge(b, "dpipe_queue_first_offset", "Offset of the oldest record the queue holds.", first);
        if (r >= 0)
                r = gauge(b, "dpipe_queue_next_offset", "Offset the next record stored will get.", next);
        if (r >= 0)
                r = gauge(b, "dpipe_clients", "Clients connected to dpiped's client protocol.", m->n_clients);
        if (r >= 0)
                r = format_sources(m, b);
        if (r >= 0)
                r = format_subscriptions(m, b);
        if (r >= 0)
                r = format_connectors(m, b);
        if (r >= 0)
                r = format_writer(m, b);
        if (r >= 0)
                r = format_disk(m, b);
        if (r >= 0)
                r = format_process(m, b);
        return r < 0 ? r : 0;
}

/* ---- HTTP ------------------------------------------------------------------------------------- */

/* libmicrohttpd is loaded when the endpoint is started, not linked: it brings GnuTLS and its
 * dependencies along, which made every dpiped bigger (RSS +2.5 MB at start, and more per client
 * in tests/integration/test-dpiped-limits.sh) whether it served metrics or not. */
static struct {
        void *handle;
        __typeof__(MHD_start_daemon) *start_daemon;
        __typeof__(MHD_stop_daemon) *stop_daemon;
        __typeof__(MHD_run) *run;
        __typeof__(MHD_get_timeout) *get_timeout;
        __typeof__(MHD_get_daemon_info) *get_daemon_info;
        __typeof__(MHD_create_response_from_buffer) *create_response_from_buffer;
        __typeof__(MHD_add_response_header) *add_response_header;
        __typeof__(MHD_queue_response) *queue_response;
        __typeof__(MHD_destroy_response) *destroy_response;
} mhd;

static int mhd_load(void) {
        void *h;

        if (mhd.handle)
                return 0;
        h = dlopen("libmicrohttpd.so.12", RTLD_NOW | RTLD_LOCAL);
        if (!h) {
                log_error("Failed to load libmicrohttpd for --metrics: %s", dlerror());
                return -EOPNOTSUPP;
        }
#define MHD_SYM(field, name)                                                                             \
        if (!(mhd.field = (__typeof__(mhd.field)) dlsym(h, #name))) {                                    \
                log_error("libmicrohttpd has no %s: %s", #name, dlerror());                              \
                dlclose(h);                                                                              \
                return -EOPNOTSUPP;                                                                      \
        }
        MHD_SYM(start_daemon, MHD_start_daemon);
        MHD_SYM(stop_daemon, MHD_stop_daemon);
        MHD_SYM(run, MHD_run);
        MHD_SYM(get_timeout, MHD_get_timeout);
        MHD_SYM(get_daemon_info, MHD_get_daemon_info);
        MHD_SYM(create_response_from_buffer, MHD_create_response_from_buffer);
        MHD_SYM(add_response_header, MHD_add_response_header);
        MHD_SYM(queue_response, MHD_queue_response);
        MHD_SYM(destroy_response, MHD_destroy_response);
#undef MHD_SYM
        mhd.handle = h;
        return 0;
}

static enum MHD_Result respond_text(struct MHD_Connection *conn, unsigned status, const char *text, const char *allow) {
        struct MHD_Response *resp;
        enum MHD_Result ret;

        resp = mhd.create_response_from_buffer(strlen(text), (void *) text, MHD_RESPMEM_PERSISTENT);
        if (!resp)
                return MHD_NO;
        (void) mhd.add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
        if (allow)
                (void) mhd.add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
        ret = mhd.queue_response(conn, status, resp);
        mhd.destroy_response(resp);
        return ret;
}

static enum MHD_Result metrics_handler(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                       const char *version, const char *upload_data, size_t *upload_data_size,
                                       void **con_cls) {
        MetricsServer *s = cls;
        _cleanup_(buffer_done) Buffer b = {};
        struct MHD_Response *resp;
        enum MHD_Result ret;
        int r;

        if (!streq(method, MHD_HTTP_METHOD_GET) && !streq(method, MHD_HTTP_METHOD_HEAD))
                return respond_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "Only GET and HEAD.\n", "GET, HEAD");
        if (*upload_data_size > 0)
                return respond_text(conn, MHD_HTTP_BAD_REQUEST, "No body expected.\n", NULL);
        if (!streq(url, "/metrics"))
                return respond_text(conn, MHD_HTTP_NOT_FOUND, "Not found: the metrics are at /metrics.\n", NULL);

        r = manager_metrics_format(s->manager, &b);
        if (r < 0) {
                log_warning_errno(r, "Failed to format the metrics: %m");
                return respond_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "Internal error.\n", NULL);
        }
        /* The buffer's storage becomes the response's (MHD frees it). */
        if (b.head > 0)
                memmove(b.data, b.data + b.head, buffer_size(&b));
        resp = mhd.create_response_from_buffer(buffer_size(&b), b.data, MHD_RESPMEM_MUST_FREE);
        if (!resp)
                return MHD_NO;
        b = (Buffer) {};
        (void) mhd.add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, METRICS_CONTENT_TYPE);
        (void) mhd.add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
        ret = mhd.queue_response(conn, MHD_HTTP_OK, resp);
        mhd.destroy_response(resp);
        return ret;
}

static void metrics_logger(void *cls, const char *fmt, va_list ap) {
        char buf[256];

        (void) vsnprintf(buf, sizeof(buf), fmt, ap);
        buf[strcspn(buf, "\n")] = 0;
        log_debug("Metrics server: %s", buf);
}

static void metrics_server_rearm(MetricsServer *s) {
        MHD_UNSIGNED_LONG_LONG timeout;

        if (mhd.get_timeout(s->daemon, &timeout) == MHD_YES) {
                (void) sd_event_source_set_time_relative(s->timer, (uint64_t) timeout * USEC_PER_MSEC);
                (void) sd_event_source_set_enabled(s->timer, SD_EVENT_ONESHOT);
        } else
                (void) sd_event_source_set_enabled(s->timer, SD_EVENT_OFF);
}

static void metrics_server_run(MetricsServer *s) {
        if (mhd.run(s->daemon) != MHD_YES)
                log_debug("Metrics server: mhd.run() failed.");
        metrics_server_rearm(s);
}

static int metrics_io_handler(sd_event_source *es, int fd, uint32_t revents, void *userdata) {
        metrics_server_run(userdata);
        return 0;
}

static int metrics_timer_handler(sd_event_source *es, uint64_t usec, void *userdata) {
        metrics_server_run(userdata);
        return 0;
}

MetricsServer *metrics_server_free(MetricsServer *s) {
        if (!s)
                return NULL;
        sd_event_source_disable_unref(s->io_event_source);
        sd_event_source_disable_unref(s->timer);
        if (s->daemon)
                mhd.stop_daemon(s->daemon);
        free(s);
        return NULL;
}

int metrics_server_new(Manager *m, int passed_fd, const SocketAddress *address, bool allow_plaintext,
                       MetricsServer **ret) {
        _cleanup_(metrics_server_freep) MetricsServer *s = NULL;
        _cleanup_close_ int fd = passed_fd;
        const union MHD_DaemonInfo *info;
        bool activated = fd >= 0;
        SocketAddress a = {};
        char buf[128];
        int r;

        assert(activated || address);
        if (activated) {
                r = socket_local_address(fd, &a);
                if (r < 0)
                        return log_error_errno(r, "Failed to learn the address of the metrics socket passed by systemd: %m");
                if (address && !socket_address_equal(&a, address)) {
                        char buf2[128];
                        log_notice("Serving metrics on %s, the socket systemd passed, not on --metrics=%s.",
                                   socket_address_format(&a, buf, sizeof(buf)),
                                   socket_address_format(address, buf2, sizeof(buf2)));
                }
        } else
                a = *address;
        if (!allow_plaintext && !socket_address_is_loopback(&a)) {
                log_error("Refusing to serve metrics on %s, which is not a loopback address: the endpoint has "
                          "neither TLS nor authentication. Give --allow-plaintext to serve it there anyway.",
                          socket_address_format(&a, buf, sizeof(buf)));
                return -EPERM;
        }
        if (!activated) {
                fd = socket_listen_tcp(&a, 64);
                if (fd < 0)
                        return log_error_errno(fd, "Failed to listen for metrics on %s: %m",
                                               socket_address_format(&a, buf, sizeof(buf)));
        }

        r = mhd_load();
        if (r < 0)
                return r;
        s = calloc(1, sizeof(MetricsServer));
        if (!s)
                return log_oom();
        s->manager = m;
        /* No thread: MHD_USE_EPOLL without MHD_USE_INTERNAL_POLLING_THREAD is "external polling",
         * driven by mhd.run() from our loop. */
        s->daemon = mhd.start_daemon(MHD_USE_EPOLL | MHD_USE_TURBO | MHD_USE_SUPPRESS_DATE_NO_CLOCK, 0, NULL, NULL,
                                     metrics_handler, s, MHD_OPTION_LISTEN_SOCKET, (MHD_socket) fd,
                                     MHD_OPTION_CONNECTION_LIMIT, (unsigned) METRICS_CONNECTION_LIMIT,
                                     MHD_OPTION_CONNECTION_TIMEOUT, (unsigned) METRICS_CONNECTION_TIMEOUT_SEC,
                                     MHD_OPTION_EXTERNAL_LOGGER, metrics_logger, NULL, MHD_OPTION_END);
        if (!s->daemon)
                return log_error_errno(EIO, "Failed to start the metrics server on %s.",
                                       socket_address_format(&a, buf, sizeof(buf)));
        TAKE_FD(fd); /* MHD closes it */
        info = mhd.get_daemon_info(s->daemon, MHD_DAEMON_INFO_EPOLL_FD);
        if (!info)
                return log_error_errno(EIO, "The metrics server has no epoll fd.");
        r = sd_event_add_io(m->event, &s->io_event_source, info->epoll_fd, EPOLLIN, metrics_io_handler, s);
        if (r < 0)
                return log_error_errno(r, "Failed to watch the metrics server: %m");
        r = sd_event_add_time_relative(m->event, &s->timer, CLOCK_MONOTONIC, 0, 0, metrics_timer_handler, s);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the metrics server's timer: %m");
        metrics_server_rearm(s);
        log_info("Serving metrics on http://%s/metrics%s.", socket_address_format(&a, buf, sizeof(buf)),
                 activated ? " (socket passed by systemd)" : "");
        *ret = TAKE_PTR(s);
        return 0;
}
