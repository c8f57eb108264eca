/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "filter.h"
#include "json-util.h"
#include "log.h"
#include "demo-http.h"
#include "demo-tcp.h"
#include "util.h"

/* Longer request targets get our JSON 414. A request head longer than the per-connection memory
 * (128 KiB, which bounds memory to 64 MiB over 512 connections) is refused by libmicrohttpd. */
#define HTTP_URI_MAX 8192u
#define HTTP_DEFAULT_LIMIT 100u
#define HTTP_CONNECTION_LIMIT 512u
#define HTTP_CONNECTION_TIMEOUT_SEC 60u

struct HttpServer {
        Manager *manager;
        struct MHD_Daemon *daemon;
        int fd;
        sd_event_source *io;
        sd_event_source *timer;
};

static int respond(struct MHD_Connection *conn, unsigned status, Buffer *body, const char *etag,
                   const char *allow) {
        struct MHD_Response *resp;
        enum MHD_Result ret;

        if (body && buffer_size(body) > 0) {
                /* The buffer is never consumed from the head here, so data is the body. */
                resp = MHD_create_response_from_buffer(buffer_size(body), body->data, MHD_RESPMEM_MUST_FREE);
                if (resp)
                        *body = (Buffer) {};
        } else
                resp = MHD_create_response_from_buffer(0, (void *) "", MHD_RESPMEM_PERSISTENT);
        if (!resp)
                return MHD_NO;
        if (body)
                (void) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
        if (etag)
                (void) MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, etag);
        if (allow)
                (void) MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
        ret = MHD_queue_response(conn, status, resp);
        MHD_destroy_response(resp);
        return ret;
}

static const char *status_code_name(unsigned status) {
        switch (status) {
        case 400:
                return "bad_request";
        case 404:
                return "not_found";
        case 405:
                return "method_not_allowed";
        case 414:
                return "uri_too_long";
        default:
                return "internal";
        }
}

static int respond_error(struct MHD_Connection *conn, unsigned status, const char *message, const char *allow) {
        Buffer b = {};
        int r;

        r = buffer_printf(&b, "{\"error\":\"%s\",\"status\":%u,\"message\":", status_code_name(status), status);
        if (r >= 0)
                r = buffer_append_json_string(&b, message, strlen(message));
        if (r >= 0)
                r = buffer_append(&b, "}\n", 2);
        if (r < 0) {
                buffer_done(&b);
                return MHD_NO;
        }
        r = respond(conn, status, &b, NULL, allow);
        buffer_done(&b);
        return r;
}

typedef struct RequestArgs {
        struct MHD_Connection *conn;
        uint64_t hash;      /* FNV-1a over the arguments, for the ETag */
        size_t length;      /* approximate length of the request target */
        const char *offset;
        const char *limit;
        struct json_object *where;
        bool oom;
} RequestArgs;

static uint64_t fnv1a(uint64_t h, const void *p, size_t n) {
        const unsigned char *s = p;
        for (size_t i = 0; i < n; i++) {
                h ^= s[i];
                h *= UINT64_C(0x100000001b3);
        }
        return h;
}

static enum MHD_Result collect_arg(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
        RequestArgs *a = cls;

        a->length += strlen(key) + (value ? strlen(value) : 0) + 2;
        a->hash = fnv1a(a->hash, key, strlen(key) + 1);
        a->hash = fnv1a(a->hash, value ?: "", strlen(value ?: "") + 1);

        if (streq(key, "offset"))
                a->offset = value ?: "";
        else if (streq(key, "limit"))
                a->limit = value ?: "";
        else {
                struct json_object *v = json_object_new_string(value ?: "");
                if (!v || json_object_object_add(a->where, key, v) < 0)
                        a->oom = true;
        }
        return MHD_YES;
}

static void format_etag(Manager *m, uint64_t hash, char *buf, size_t size) {
        hash = fnv1a(hash, &m->generation, sizeof(m->generation));
        snprintf(buf, size, "\"%" PRIx64 "-%016" PRIx64 "\"", m->generation, hash);
}

/* If-None-Match: "*" or a list of entity tags, one of which may be ours. */
static bool etag_matches(struct MHD_Connection *conn, const char *etag) {
        const char *inm = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_NONE_MATCH);

        if (!inm)
                return false;
        if (strstr(inm, etag))
                return true;
        inm += strspn(inm, " \t");
        return inm[0] == '*';
}

static int handle_records(HttpServer *s, struct MHD_Connection *conn, RequestArgs *a, const char *etag) {
        Manager *m = s->manager;
        const Dataset *d = manager_dataset(m);
        _cleanup_(filter_freep) Filter *f = NULL;
        uint64_t offset = 0, limit = HTTP_DEFAULT_LIMIT, next, count = 0, i;
        Buffer b = {};
        int r;

        if (a->offset && safe_atou64(a->offset, &offset) < 0)
                return respond_error(conn, 400, "offset must be a non-negative integer", NULL);
        if (a->limit && safe_atou64(a->limit, &limit) < 0)
                return respond_error(conn, 400, "limit must be a non-negative integer", NULL);
        limit = MIN(limit, (uint64_t) m->http_max_limit);
        r = filter_new(a->where, &f);
        if (r < 0)
                return MHD_NO;

        r = buffer_append_str(&b, "{\"records\":[");
        next = offset;
        for (i = offset; r >= 0 && i < d->n_rows && count < limit; i++) {
                size_t len;
                const char *row = dataset_row(d, (size_t) i, &len);

                r = filter_match(f, row, len);
                if (r <= 0)
                        continue;
                if (count > 0)
                        r = buffer_append(&b, ",", 1);
                if (r >= 0)
                        r = buffer_append(&b, row, len);
                count++;
                next = i + 1;
        }
        /* With a filter, the scan went up to i: nothing matched in between. */
        if (!filter_is_empty(f) && count < limit)
                next = MAX(next, MIN(i, (uint64_t) d->n_rows));
        if (r >= 0)
                r = buffer_printf(&b, "],\"next_offset\":%" PRIu64 ",\"total\":%zu}\n", MAX(next, offset), d->n_rows);
        if (r < 0) {
                buffer_done(&b);
                return MHD_NO;
        }
        r = respond(conn, 200, &b, etag, NULL);
        buffer_done(&b);
        return r;
}

static int handle_record(HttpServer *s, struct MHD_Connection *conn, const char *index, const char *etag) {
        const Dataset *d = manager_dataset(s->manager);
        const char *row;
        uint64_t i;
        size_t len;
        Buffer b = {};
        int r;

        if (safe_atou64(index, &i) < 0)
                return respond_error(conn, 400, "record index must be a non-negative integer", NULL);
        if (i >= d->n_rows)
                return respond_error(conn, 404, "no such record", NULL);
        row = dataset_row(d, (size_t) i, &len);
        r = buffer_append(&b, row, len);
        if (r >= 0)
                r = buffer_append(&b, "\n", 1);
        if (r < 0) {
                buffer_done(&b);
                return MHD_NO;
        }
        r = respond(conn, 200, &b, etag, NULL);
        buffer_done(&b);
        return r;
}

static int handle_health(HttpServer *s, struct MHD_Connection *conn) {
        Manager *m = s->manager;
        Buffer b = {};
        int r;

        r = buffer_printf(&b,
                          "{\"status\":\"ok\",\"rows\":%zu,\"generation\":%" PRIu64 ",\"reloads\":%" PRIu64
                          ",\"tcp_clients\":%zu,\"uptime_sec\":%" PRIu64 ",\"file\":",
                          manager_dataset(m)->n_rows, m->generation, m->reloads, tcp_server_n_clients(m->tcp),
                          (now_usec(CLOCK_MONOTONIC) - m->start_usec) / USEC_PER_SEC);
        if (r >= 0)
                r = buffer_append_json_string(&b, m->path, strlen(m->path));
        if (r >= 0)
                r = buffer_append(&b, "}\n", 2);
        if (r < 0) {
                buffer_done(&b);
                return MHD_NO;
        }
        r = respond(conn, 200, &b, NULL, NULL);
        buffer_done(&b);
        return r;
}

static enum MHD_Result http_handler(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                    const char *version, const char *upload_data, size_t *upload_data_size,
                                    void **con_cls) {
        HttpServer *s = cls;
        Manager *m = s->manager;
        _cleanup_json_ struct json_object *where = NULL;
        RequestArgs a = { .conn = conn, .hash = UINT64_C(0xcbf29ce484222325) };
        bool is_records, is_record, is_health;
        char etag[64];
        int r;

        where = json_object_new_object();
        if (!where)
                return MHD_NO;
        a.where = where;
        a.length = strlen(url);
        a.hash = fnv1a(a.hash, url, strlen(url) + 1);
        (void) MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, collect_arg, &a);
        if (a.oom)
                return MHD_NO;

        log_debug("HTTP %s %s", method, url);

        if (a.length > HTTP_URI_MAX)
                return respond_error(conn, 414, "request target too long", NULL);

        is_records = streq(url, "/records") || streq(url, "/records/");
        is_record = !is_records && strncmp(url, "/records/", 9) == 0;
        is_health = streq(url, "/health");
        if (!is_records && !is_record && !is_health)
                return respond_error(conn, 404, "no such resource (try /records, /records/<i>, /health)", NULL);
        if (!streq(method, MHD_HTTP_METHOD_GET) && !streq(method, MHD_HTTP_METHOD_HEAD))
                return respond_error(conn, 405, "only GET and HEAD are allowed", "GET, HEAD");

        if (is_health)
                return handle_health(s, conn);

        format_etag(m, a.hash, etag, sizeof(etag));
        if (etag_matches(conn, etag))
                return respond(conn, MHD_HTTP_NOT_MODIFIED, NULL, etag, NULL);

        if (is_record)
                r = handle_record(s, conn, url + 9, etag);
        else
                r = handle_records(s, conn, &a, etag);
        return r;
}

static void http_logger(void *cls, const char *fmt, va_list ap) {
        char buf[512];

        vsnprintf(buf, sizeof(buf), fmt, ap);
        buf[strcspn(buf, "\n")] = 0;
        log_debug("libmicrohttpd: %s", buf);
}

static void http_run(HttpServer *s) {
        MHD_UNSIGNED_LONG_LONG timeout;

        (void) MHD_run(s->daemon);
        if (MHD_get_timeout(s->daemon, &timeout) == MHD_YES) {
                (void) sd_event_source_set_time(s->timer, now_usec(CLOCK_MONOTONIC) + timeout * USEC_PER_MSEC);
                (void) sd_event_source_set_enabled(s->timer, SD_EVENT_ONESHOT);
        } else
                (void) sd_event_source_set_enabled(s->timer, SD_EVENT_OFF);
}

static int http_io(sd_event_source *es, int fd, uint32_t revents, void *userdata) {
        http_run(userdata);
        return 0;
}

static int http_timer(sd_event_source *es, uint64_t usec, void *userdata) {
        http_run(userdata);
        return 0;
}

HttpServer *http_server_free(HttpServer *s) {
        if (!s)
                return NULL;
        sd_event_source_disable_unref(s->io);
        sd_event_source_disable_unref(s->timer);
        if (s->daemon)
                MHD_stop_daemon(s->daemon);
        safe_close(s->fd);
        free(s);
        return NULL;
}

int http_server_new(Manager *m, const char *listen, HttpServer **ret) {
        _cleanup_(http_server_freep) HttpServer *s = NULL;
        const union MHD_DaemonInfo *info;
        SocketAddress a;
        int r;

        s = calloc(1, sizeof(HttpServer));
        if (!s)
                return log_oom();
        s->manager = m;
        s->fd = -EBADF;

        r = listen_fd_take("http", AF_UNSPEC);
        if (r >= 0)
                s->fd = r;
        else {
                r = socket_address_parse(listen, &a);
                if (r < 0)
                        return log_error_errno(r, "Invalid --http= address '%s': %m", listen);
                r = socket_listen_tcp(&a, 1024);
                if (r < 0)
                        return log_error_errno(r, "Failed to listen on HTTP %s: %m", listen);
                s->fd = r;
        }

        s->daemon = MHD_start_daemon(MHD_USE_EPOLL | MHD_USE_ERROR_LOG, 0, NULL, NULL, http_handler, s,
                                     MHD_OPTION_EXTERNAL_LOGGER, http_logger, NULL,
                                     MHD_OPTION_LISTEN_SOCKET, s->fd,
                                     MHD_OPTION_CONNECTION_LIMIT, HTTP_CONNECTION_LIMIT,
                                     MHD_OPTION_CONNECTION_TIMEOUT, HTTP_CONNECTION_TIMEOUT_SEC,
                                     MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t) (128 * 1024),
                                     MHD_OPTION_END);
        if (!s->daemon)
                return log_error_errno(EIO, "Failed to start the HTTP server on %s.", listen);
        /* MHD closes the listening socket when stopped. */
        s->fd = -EBADF;

        info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_EPOLL_FD);
        if (!info)
                return log_error_errno(EIO, "Failed to get the HTTP server's epoll fd.");
        r = sd_event_add_io(m->event, &s->io, info->epoll_fd, EPOLLIN, http_io, s);
        if (r < 0)
                return log_error_errno(r, "Failed to watch the HTTP server: %m");
        r = sd_event_add_time(m->event, &s->timer, CLOCK_MONOTONIC, 0, 0, http_timer, s);
        if (r < 0)
                return log_error_errno(r, "Failed to add the HTTP timer: %m");
        http_run(s);

        *ret = TAKE_PTR(s);
        return 0;
}
