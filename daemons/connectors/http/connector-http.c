/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* dpipe-connector-http: batch sources polled over HTTP(S) every interval_ms, with libcurl's multi
 * interface driven by the process's one sd_event loop (CURLMOPT_SOCKETFUNCTION/TIMERFUNCTION):
 * no call ever blocks.
 *
 * Two kinds of resources:
 *  - pages (format=dpipe, or auto when the body is {"records":[...],"next_offset":K}): dpipe-source's
 *    GET /records?offset=N&limit=M. A record's seq is its offset at the source, so the next request
 *    asks for offset = next seq: the writer's last seq decides where to resume, nothing is skipped
 *    or sent twice, and no cursor beyond the seq is needed.
 *  - documents (json array, jsonl, csv): the whole resource each time, with If-None-Match/ETag and
 *    If-Modified-Since/Last-Modified. The cursor remembers how many records of the document were
 *    handed over (and the validators), so a growing document only yields its new records.
 * Bodies are read by http-body.c as they arrive: jsonl and csv record by record, arrays and pages
 * held whole up to max_body_bytes. All sources together hold at most --max-response-memory bytes
 * of bodies; a response that would take a source or the process over its limit is cut off, with
 * the limit in LastError. HTTP errors, transport errors and bodies that are not the declared format
 * become the source's LastError and state (backoff, retried with jittered exponential backoff). */

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>

#include "config.h"
#include "connector-format.h"
#include "connector.h"
#include "http-body.h"
#include "json-util.h"
#include "log.h"
#include "util.h"

/* Allocations from this size on are mmap()ed: see http_setup(). */
#define MMAP_THRESHOLD_BYTES (256 * 1024)

/* Of a response with an error status, only the start is kept (for its message). */
#define ERROR_BODY_MAX 4096u

typedef struct HttpSettings {
        uint64_t max_response_memory;
} HttpSettings;

static HttpSettings http_settings;

static const ConnectorOption http_daemon_options[] = {
        CONNECTOR_OPTION_U64("max-response-memory", HttpSettings, max_response_memory, "134217728",
                             "bytes all response bodies together may hold"),
        {}
};

typedef struct HttpConfig {
        char *address;
        char *format;
        char *query;
        char *csv_header;
        uint32_t interval_ms;
        uint32_t timeout_ms;
        uint32_t connect_timeout_ms;
        uint32_t limit;
        uint64_t max_record_bytes;
        uint64_t max_body_bytes;
} HttpConfig;

static const ConnectorOption http_options[] = {
        CONNECTOR_OPTION_STRING("address", HttpConfig, address, NULL, true, "the URL, http:// or https://"),
        CONNECTOR_OPTION_STRING("format", HttpConfig, format, "auto", false,
                                "auto (by Content-Type), dpipe, json, jsonl or csv"),
        CONNECTOR_OPTION_STRING("query", HttpConfig, query, NULL, false, "added to the URL's query string"),
        CONNECTOR_OPTION_STRING("csv_header", HttpConfig, csv_header, NULL, false,
                                "comma-separated field names for header-less CSV"),
        CONNECTOR_OPTION_U32("interval_ms", HttpConfig, interval_ms, "5000", "polling period in ms"),
        CONNECTOR_OPTION_U32("timeout_ms", HttpConfig, timeout_ms, "10000", "whole-request timeout in ms"),
        CONNECTOR_OPTION_U32("connect_timeout_ms", HttpConfig, connect_timeout_ms, "5000", "connect timeout in ms"),
        CONNECTOR_OPTION_U32("limit", HttpConfig, limit, "1000", "page size for dpipe-source"),
        CONNECTOR_OPTION_U64("max_record_bytes", HttpConfig, max_record_bytes, "1048576",
                             "longer records are skipped"),
        CONNECTOR_OPTION_U64("max_body_bytes", HttpConfig, max_body_bytes, "33554432",
                             "the most a response body may hold (1024-17179869184)"),
        {}
};

static inline char *mfree_str(char *p) {
        free(p);
        return NULL;
}

typedef struct HttpSource HttpSource;

typedef struct HttpMulti {
        sd_event *event;
        CURLM *multi;
        sd_event_source *timer;
        uint64_t held;             /* bytes of response bodies all sources hold, see --max-response-memory */
        HttpSource *transfers;     /* the sources with a request in flight */
} HttpMulti;

typedef enum HttpAbort {
        ABORT_NONE,
        ABORT_ERROR_BODY, /* an error status: its body was read far enough for the message */
        ABORT_REFUSED,    /* the body broke a limit or is not the declared format: abort_reason */
        ABORT_PAUSED,     /* (not an abort) the transfer is paused while the source is throttled */
} HttpAbort;

struct HttpSource {
        HttpSource *transfers_next, *transfers_prev;
        Source *source;
        HttpConfig *config;
        HttpMulti *hm;
        RecordFormat format; /* as configured; AUTO decides per response */
        bool pages;          /* the resource is dpipe-source's paginated /records */

        CURL *easy;
        bool in_flight;
        struct curl_slist *headers;
        char *url;
        HttpBody body;
        size_t held;                                  /* what this source counts in hm->held */
        long status;                                  /* of the response being received, 0 until known */
        HttpAbort abort;
        char abort_reason[600];
        bool paused;
        sd_event_source *unpause;
        Buffer error_body;                            /* the start of a response with an error status */
        char *etag, *last_modified, *content_type;   /* of the response being received */
        char *cur_etag, *cur_last_modified;           /* of the document the cursor refers to */
        uint64_t doc_index;                           /* records of that document handed over */
        uint64_t page_offset;                         /* pages: the offset to ask for next */
        uint64_t requested_offset;                    /* pages: the offset the request in flight asked for */
        char error[CURL_ERROR_SIZE];

        sd_event_source *poll_timer;
        RecordReader reader;
};

/* ---- libcurl <-> sd-event ---- */

static void http_multi_check(HttpMulti *hm);

static int http_multi_io(sd_event_source *es, int fd, uint32_t revents, void *userdata) {
        HttpMulti *hm = userdata;
        int action = 0, running;

        if (revents & EPOLLIN)
                action |= CURL_CSELECT_IN;
        if (revents & EPOLLOUT)
                action |= CURL_CSELECT_OUT;
        if (revents & (EPOLLERR | EPOLLHUP))
                action |= CURL_CSELECT_ERR;
        (void) curl_multi_socket_action(hm->multi, fd, action, &running);
        http_multi_check(hm);
        return 0;
}

static int http_multi_socket_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp) {
        HttpMulti *hm = userp;
        sd_event_source *es = socketp;
        uint32_t events = 0;

        if (what == CURL_POLL_REMOVE) {
                if (es) {
                        sd_event_source_disable_unref(es);
                        curl_multi_assign(hm->multi, s, NULL);
                }
                return 0;
        }
        if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
                events |= EPOLLIN;
        if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
                events |= EPOLLOUT;
        if (es) {
                if (sd_event_source_set_io_events(es, events) < 0)
                        return -1;
                return 0;
        }
        if (sd_event_add_io(hm->event, &es, s, events, http_multi_io, hm) < 0)
                return -1;
        curl_multi_assign(hm->multi, s, es);
        return 0;
}

static int http_multi_timer_fire(sd_event_source *es, uint64_t usec, void *userdata) {
        HttpMulti *hm = userdata;
        int running;

        (void) curl_multi_socket_action(hm->multi, CURL_SOCKET_TIMEOUT, 0, &running);
        http_multi_check(hm);
        return 0;
}

static int http_multi_timer_cb(CURLM *multi, long timeout_ms, void *userp) {
        HttpMulti *hm = userp;

        if (timeout_ms < 0)
                return sd_event_source_set_enabled(hm->timer, SD_EVENT_OFF) < 0 ? -1 : 0;
        if (sd_event_source_set_time_relative(hm->timer, (uint64_t) timeout_ms * USEC_PER_MSEC) < 0 ||
            sd_event_source_set_enabled(hm->timer, SD_EVENT_ONESHOT) < 0)
                return -1;
        return 0;
}

static int http_setup(sd_event *e, void **ret_userdata) {
        HttpMulti *hm;
        int r;

        /* Bodies are large buffers that grow and go. glibc would raise its mmap threshold to the
         * size of the largest one freed and serve the next ones from the heap: growing them then
         * copies (twice the memory for a moment) and freeing them does not give the memory back.
         * A fixed threshold keeps them mmap()ed (grown by mremap(), returned at free()), so the
         * limits bound the RSS and not just what is in use. */
        if (mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 0)
                log_debug("mallopt(M_MMAP_THRESHOLD) failed, ignoring");
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
                return -EIO;
        hm = calloc(1, sizeof(HttpMulti));
        if (!hm)
                return -ENOMEM;
        hm->event = sd_event_ref(e);
        hm->multi = curl_multi_init();
        if (!hm->multi) {
                free(hm);
                return -ENOMEM;
        }
        r = sd_event_add_time_relative(e, &hm->timer, CLOCK_MONOTONIC, 0, 0, http_multi_timer_fire, hm);
        if (r >= 0)
                r = sd_event_source_set_enabled(hm->timer, SD_EVENT_OFF);
        if (r < 0) {
                curl_multi_cleanup(hm->multi);
                sd_event_unref(hm->event);
                free(hm);
                return r;
        }
        curl_multi_setopt(hm->multi, CURLMOPT_SOCKETFUNCTION, http_multi_socket_cb);
        curl_multi_setopt(hm->multi, CURLMOPT_SOCKETDATA, hm);
        curl_multi_setopt(hm->multi, CURLMOPT_TIMERFUNCTION, http_multi_timer_cb);
        curl_multi_setopt(hm->multi, CURLMOPT_TIMERDATA, hm);
        *ret_userdata = hm;
        return 0;
}

static void http_teardown(void *userdata) {
        HttpMulti *hm = userdata;

        curl_multi_cleanup(hm->multi);
        sd_event_source_disable_unref(hm->timer);
        sd_event_unref(hm->event);
        free(hm);
        curl_global_cleanup();
}

/* ---- one source ---- */

static RecordFormat http_format(const HttpConfig *c) {
        return record_format_from_string(c->format);
}

static int http_validate(const void *config, char **ret_message) {
        const HttpConfig *c = config;
        RecordFormat f = http_format(c);

        if (f < 0 || f == RECORD_FORMAT_LINES)
                return asprintf(ret_message, "unknown format '%s' (auto, dpipe, json, jsonl, csv)", c->format) < 0
                               ? -ENOMEM
                               : -EINVAL;
        if (strncmp(c->address, "http://", 7) != 0 && strncmp(c->address, "https://", 8) != 0)
                return asprintf(ret_message, "invalid address '%s' (http:// or https:// URL)", c->address) < 0
                               ? -ENOMEM
                               : -EINVAL;
        if (c->interval_ms == 0 || c->limit == 0)
                return (*ret_message = strdup("interval_ms and limit must be positive")) ? -EINVAL : -ENOMEM;
        if (c->max_record_bytes == 0 || c->max_record_bytes > 64 * 1024 * 1024)
                return (*ret_message = strdup("max_record_bytes must be 1..67108864")) ? -EINVAL : -ENOMEM;
        if (c->max_body_bytes < 1024 || c->max_body_bytes > (uint64_t) 16 * 1024 * 1024 * 1024)
                return (*ret_message = strdup("max_body_bytes must be 1024..17179869184")) ? -EINVAL : -ENOMEM;
        return 0;
}

static bool url_has_path(const char *url) {
        const char *p = strstr(url, "://");

        p = p ? strchr(p + 3, '/') : NULL;
        return p && p[1] && p[1] != '?';
}

static int http_init(Source *s) {
        HttpSource *h = source_data(s);
        HttpConfig *c = source_config(s);

        h->source = s;
        h->config = c;
        h->hm = source_type_userdata(s);
        h->format = http_format(c);
        /* dpipe-source's REST root: a bare host:port means its /records collection. */
        h->pages = h->format == RECORD_FORMAT_DPIPE || (h->format == RECORD_FORMAT_AUTO && !url_has_path(c->address));
        return record_reader_init(&h->reader, h->format == RECORD_FORMAT_CSV ? RECORD_FORMAT_CSV : RECORD_FORMAT_JSONL,
                                  (size_t) c->max_record_bytes, c->csv_header);
}

static void http_set_in_flight(HttpSource *h, bool b) {
        HttpMulti *hm = h->hm;

        if (h->in_flight == b)
                return;
        h->in_flight = b;
        if (b) {
                h->transfers_prev = NULL;
                h->transfers_next = hm->transfers;
                if (hm->transfers)
                        hm->transfers->transfers_prev = h;
                hm->transfers = h;
                return;
        }
        if (h->transfers_prev)
                h->transfers_prev->transfers_next = h->transfers_next;
        else
                hm->transfers = h->transfers_next;
        if (h->transfers_next)
                h->transfers_next->transfers_prev = h->transfers_prev;
        h->transfers_next = h->transfers_prev = NULL;
}

/* Brings the source's share of hm->held up to date with what its body holds now. */
static void http_account(HttpSource *h) {
        size_t now = http_body_held(&h->body);

        h->hm->held = h->hm->held - MIN(h->hm->held, (uint64_t) h->held) + now;
        h->held = now;
}

/* Forgets the response: its memory goes back and out of the global count. */
static void http_release(HttpSource *h) {
        http_body_release(&h->body);
        buffer_done(&h->error_body);
        http_account(h);
}

static void http_cancel(HttpSource *h) {
        if (h->in_flight) {
                curl_multi_remove_handle(h->hm->multi, h->easy);
                http_set_in_flight(h, false);
        }
        h->paused = false;
        h->unpause = sd_event_source_disable_unref(h->unpause);
        curl_slist_free_all(h->headers);
        h->headers = NULL;
        http_release(h);
}

static void http_stop(Source *s) {
        HttpSource *h = source_data(s);

        http_cancel(h);
        h->poll_timer = sd_event_source_disable_unref(h->poll_timer);
}

static void http_done(Source *s) {
        HttpSource *h = source_data(s);

        http_stop(s);
        if (h->easy)
                curl_easy_cleanup(h->easy);
        http_body_done(&h->body);
        http_account(h);
        free(h->url);
        free(h->etag);
        free(h->last_modified);
        free(h->content_type);
        free(h->cur_etag);
        free(h->cur_last_modified);
        record_reader_done(&h->reader);
}

static size_t http_refuse(HttpSource *h, const char *fmt, ...) _printf_(2, 3);
static size_t http_refuse(HttpSource *h, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        (void) vsnprintf(h->abort_reason, sizeof(h->abort_reason), fmt, ap);
        va_end(ap);
        h->abort = ABORT_REFUSED;
        return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
}

static int http_unpause_fire(sd_event_source *es, void *userdata);

/* All sources together would hold more than --max-response-memory: the response that holds the
 * most is cut off, so that a source that behaves (a small response) is not refused because others
 * do not. Returns whether it was another source's (then there may be room for h now). */
static bool http_cut_largest(HttpSource *h) {
        HttpSource *hog = h;

        for (HttpSource *i = h->hm->transfers; i; i = i->transfers_next)
                if (i->abort == ABORT_NONE && i->held > hog->held)
                        hog = i;
        if (hog == h)
                return false;
        (void) http_refuse(hog,
                           "all sources together hold more than %" PRIu64 " bytes of responses "
                           "(--max-response-memory), this one the most (%zu)",
                           http_settings.max_response_memory, hog->held);
        /* Its body goes now; its transfer ends at its next write (or at once if it is paused). */
        http_release(hog);
        if (hog->paused && !hog->unpause &&
            sd_event_add_defer(source_get_event(hog->source), &hog->unpause, http_unpause_fire, hog) < 0)
                hog->unpause = NULL;
        return true;
}

static size_t http_write_cb(char *ptr, size_t size, size_t nmemb, void *userdata) {
        HttpSource *h = userdata;
        Source *s = h->source;
        size_t n = size * nmemb;
        uint64_t max = h->config->max_body_bytes, global = http_settings.max_response_memory;
        int r;

        if (h->abort == ABORT_REFUSED)
                return 0; /* cut off by http_cut_largest() */
        if (h->status == 0) {
                /* The headers are in: the first look at what the response is. */
                curl_easy_getinfo(h->easy, CURLINFO_RESPONSE_CODE, &h->status);
                if (h->status >= 200 && h->status < 300 &&
                    http_body_check_content_type(&h->body, h->content_type) < 0)
                        return http_refuse(h, "%s", h->body.error);
        }
        if (h->status < 200 || h->status >= 300) {
                /* An error page: enough of it for its message, then the status is all we need. */
                size_t k = MIN(n, ERROR_BODY_MAX - MIN(buffer_size(&h->error_body), ERROR_BODY_MAX));

                if (buffer_append(&h->error_body, ptr, k) < 0 || buffer_size(&h->error_body) >= ERROR_BODY_MAX) {
                        h->abort = ABORT_ERROR_BODY;
                        return 0;
                }
                return n;
        }
        if (source_is_throttled(s) && h->body.streaming) {
                /* Records leave as they arrive: wait for the writer instead of piling them up.
                 * curl hands the same bytes again once unpaused. */
                h->paused = true;
                return CURL_WRITEFUNC_PAUSE;
        }
        /* The limits apply to what is held after these bytes: the whole body of an array or a page,
         * the unfinished record of a stream. */
        if (http_body_held(&h->body) + n > max)
                return http_refuse(h, "response body larger than %" PRIu64 " bytes (max_body_bytes)", max);
        if (h->hm->held + n > global && (!http_cut_largest(h) || h->hm->held + n > global))
                return http_refuse(h,
                                   "all sources together hold more than %" PRIu64 " bytes of responses "
                                   "(--max-response-memory), this one %zu",
                                   global, http_body_held(&h->body));
        r = http_body_feed(&h->body, s, h->content_type, ptr, n);
        http_account(h);
        if (r == -ENOMEM)
                return http_refuse(h, "out of memory");
        if (r < 0)
                return http_refuse(h, "%s", h->body.error);
        if (h->body.emitted > 0 && source_get_state(s) != SOURCE_ACTIVE)
                source_active(s); /* a stream delivers before it ends (or never ends) */
        return n;
}

static int http_unpause_fire(sd_event_source *es, void *userdata) {
        HttpSource *h = userdata;

        h->unpause = sd_event_source_disable_unref(h->unpause);
        if (!h->paused || !h->in_flight || (source_is_throttled(h->source) && h->abort != ABORT_REFUSED))
                return 0;
        h->paused = false;
        /* May call http_write_cb() right here, with the bytes it paused on. */
        (void) curl_easy_pause(h->easy, CURLPAUSE_CONT);
        return 0;
}

static void http_throttle(Source *s, bool throttled) {
        HttpSource *h = source_data(s);

        if (throttled || !h->paused || h->unpause)
            return;
        /* Not from inside the ack that unthrottled us: curl may deliver records at once. */
        if (sd_event_add_defer(source_get_event(s), &h->unpause, http_unpause_fire, h) < 0)
                (void) http_unpause_fire(NULL, h);
}

static void set_header_value(char **field, const char *v, size_t n) {
        while (n > 0 && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' '))
                n--;
        while (n > 0 && *v == ' ')
                v++, n--;
        free(*field);
        *field = strndup(v, n);
}

static size_t http_header_cb(char *buf, size_t size, size_t nitems, void *userdata) {
        HttpSource *h = userdata;
        size_t n = size * nitems;

        if (n >= 5 && strncmp(buf, "HTTP/", 5) == 0) {
                /* A new response (after a redirect or 100-continue): forget earlier headers. */
                h->etag = mfree_str(h->etag);
                h->last_modified = mfree_str(h->last_modified);
                h->content_type = mfree_str(h->content_type);
        } else if (n > 5 && strncasecmp(buf, "ETag:", 5) == 0)
                set_header_value(&h->etag, buf + 5, n - 5);
        else if (n > 14 && strncasecmp(buf, "Last-Modified:", 14) == 0)
                set_header_value(&h->last_modified, buf + 14, n - 14);
        else if (n > 13 && strncasecmp(buf, "Content-Type:", 13) == 0)
                set_header_value(&h->content_type, buf + 13, n - 13);
        return n;
}

static int http_build_url(HttpSource *h) {
        const char *base = h->config->address, *q = h->config->query;
        char sep;
        int r;

        h->url = mfree_str(h->url);
        if (h->pages) {
                bool add_records = !url_has_path(base);
                sep = strchr(base, '?') ? '&' : '?';
                r = asprintf(&h->url, "%s%s%s%coffset=%" PRIu64 "&limit=%" PRIu32 "%s%s",
                             base, add_records && base[strlen(base) - 1] != '/' ? "/" : "", add_records ? "records" : "",
                             add_records ? '?' : sep, h->page_offset, h->config->limit, q ? "&" : "", q ?: "");
                h->requested_offset = h->page_offset;
        } else if (q) {
                r = asprintf(&h->url, "%s%c%s", base, strchr(base, '?') ? '&' : '?', q);
                h->requested_offset = 0;
        }
        else {
                r = asprintf(&h->url, "%s", base);
                h->requested_offset = 0; /* a page found by "auto" without asking for an offset */
        }
        return r < 0 ? -ENOMEM : 0;
}

static int http_poll_fire(sd_event_source *es, uint64_t usec, void *userdata);

static void http_schedule(HttpSource *h, uint64_t delay) {
        int r;

        if (h->poll_timer) {
                r = sd_event_source_set_time_relative(h->poll_timer, delay);
                if (r >= 0)
                        r = sd_event_source_set_enabled(h->poll_timer, SD_EVENT_ONESHOT);
        } else
                r = sd_event_add_time_relative(source_get_event(h->source), &h->poll_timer, CLOCK_MONOTONIC, delay,
                                               10 * USEC_PER_MSEC, http_poll_fire, h);
        if (r < 0)
                source_fail(h->source, r, "failed to arm poll timer");
}

static void http_request(HttpSource *h) {
        Source *s = h->source;
        CURLMcode mc;
        int r;

        if (source_is_throttled(s)) {
                http_schedule(h, 100 * USEC_PER_MSEC);
                return;
        }
        r = http_build_url(h);
        if (r < 0) {
                source_fail(s, r, "out of memory");
                return;
        }
        if (!h->easy) {
                h->easy = curl_easy_init();
                if (!h->easy) {
                        source_fail(s, ENOMEM, "curl_easy_init failed");
                        return;
                }
        } else
                curl_easy_reset(h->easy);
        http_release(h);
        /* Pages without a filter number their records by offset; documents skip what the cursor
         * says was handed over already. */
        http_body_begin(&h->body, h->format, h->pages, &h->reader, h->pages ? 0 : h->doc_index, !h->config->query,
                        h->requested_offset);
        h->status = 0;
        h->abort = ABORT_NONE;
        h->abort_reason[0] = 0;
        h->paused = false;
        curl_slist_free_all(h->headers);
        h->headers = NULL;
        if (!h->pages) {
                char *line = NULL;
                if (h->cur_etag && asprintf(&line, "If-None-Match: %s", h->cur_etag) >= 0) {
                        h->headers = curl_slist_append(h->headers, line);
                        free(line);
                }
                if (h->cur_last_modified && asprintf(&line, "If-Modified-Since: %s", h->cur_last_modified) >= 0) {
                        h->headers = curl_slist_append(h->headers, line);
                        free(line);
                }
        }
        curl_easy_setopt(h->easy, CURLOPT_URL, h->url);
        curl_easy_setopt(h->easy, CURLOPT_PRIVATE, h);
        curl_easy_setopt(h->easy, CURLOPT_WRITEFUNCTION, http_write_cb);
        curl_easy_setopt(h->easy, CURLOPT_WRITEDATA, h);
        curl_easy_setopt(h->easy, CURLOPT_HEADERFUNCTION, http_header_cb);
        curl_easy_setopt(h->easy, CURLOPT_HEADERDATA, h);
        curl_easy_setopt(h->easy, CURLOPT_ERRORBUFFER, h->error);
        curl_easy_setopt(h->easy, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h->easy, CURLOPT_FOLLOWLOCATION, 1L);
        curl_easy_setopt(h->easy, CURLOPT_MAXREDIRS, 5L);
        curl_easy_setopt(h->easy, CURLOPT_TIMEOUT_MS, (long) h->config->timeout_ms);
        curl_easy_setopt(h->easy, CURLOPT_CONNECTTIMEOUT_MS, (long) h->config->connect_timeout_ms);
        curl_easy_setopt(h->easy, CURLOPT_USERAGENT, "dpipe-connector-http/" PROJECT_VERSION);
        curl_easy_setopt(h->easy, CURLOPT_ACCEPT_ENCODING, "");
        curl_easy_setopt(h->easy, CURLOPT_PROTOCOLS_STR, "http,https");
        if (h->headers)
                curl_easy_setopt(h->easy, CURLOPT_HTTPHEADER, h->headers);
        h->error[0] = 0;
        log_debug("Source %s: GET %s", source_name(s), h->url);
        mc = curl_multi_add_handle(h->hm->multi, h->easy);
        if (mc != CURLM_OK) {
                source_fail(s, 0, "cannot start request: %s", curl_multi_strerror(mc));
                return;
        }
        http_set_in_flight(h, true);
}

static int http_poll_fire(sd_event_source *es, uint64_t usec, void *userdata) {
        HttpSource *h = userdata;

        if (!h->in_flight)
                http_request(h);
        return 0;
}

static void http_start(Source *s) {
        HttpSource *h = source_data(s);
        const char *pos = source_position(s);

        /* Pages without a filter: seq = the row's offset at the source, so the next seq is the offset
         * to ask for. With a filter (query) rows are skipped, so the records get our own seqs and
         * the cursor's position remembers the source offset reached. */
        h->page_offset = h->config->query ? 0 : source_next_seq(s);
        if (pos) {
                _cleanup_json_ json_object *o = json_tokener_parse(pos);
                const char *v;

                if (o && h->config->query)
                        (void) json_get_uint64(o, "offset", &h->page_offset);
                if (o && json_object_object_get_ex(o, "index", NULL)) {
                        (void) json_get_uint64(o, "index", &h->doc_index);
                        v = json_get_string(o, "etag");
                        free(h->cur_etag);
                        h->cur_etag = v ? strdup(v) : NULL;
                        v = json_get_string(o, "last_modified");
                        free(h->cur_last_modified);
                        h->cur_last_modified = v ? strdup(v) : NULL;
                }
        }
        http_request(h);
}

static int http_set_document_position(HttpSource *h) {
        _cleanup_json_ json_object *o = json_object_new_object();

        if (!o)
                return -ENOMEM;
        json_object_object_add(o, "index", json_object_new_uint64(h->doc_index));
        if (h->cur_etag)
                json_object_object_add(o, "etag", json_object_new_string(h->cur_etag));
        if (h->cur_last_modified)
                json_object_object_add(o, "last_modified", json_object_new_string(h->cur_last_modified));
        return source_set_position(h->source, json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
}

/* After a page: where the next one starts. Returns 1 if more pages wait, 0 if not, negative errno
 * on error. */
static int http_page_done(HttpSource *h) {
        Source *s = h->source;
        HttpBody *b = &h->body;
        uint64_t next, offset = h->requested_offset, n = b->elements;
        bool filtered = h->config->query;
        char pos[64];
        int r;

        next = b->have_next_offset ? b->next_offset : 0;
        if (!b->have_next_offset || (!filtered && next < offset + n))
                next = offset + n;
        next = MAX(next, offset);
        h->page_offset = next;
        if (filtered) {
                (void) snprintf(pos, sizeof(pos), "{\"offset\":%" PRIu64 "}", next);
                r = source_set_position(s, pos);
                if (r < 0)
                        return r;
        }
        if (next == offset)
                return 0; /* no progress: wait for the interval */
        return b->have_total && b->total > 0 ? next < b->total : n > 0;
}

/* After a document, or the part of it read before the transfer broke off: the cursor moves past
 * what was handed over. complete: the whole document was read (its validators become the cursor's). */
static int http_document_done(HttpSource *h, bool complete) {
        Source *s = h->source;
        HttpBody *b = &h->body;

        if (!complete) {
                if (b->index <= h->doc_index)
                        return 0;
                h->doc_index = b->index;
                return http_set_document_position(h);
        }
        if (b->shrank)
                log_notice("Source %s: document shrank from %" PRIu64 " to %" PRIu64 " records, reading it anew",
                           source_name(s), h->doc_index, b->index);
        else if (b->index < h->doc_index)
                log_notice("Source %s: document shrank from %" PRIu64 " to %" PRIu64 " records", source_name(s),
                           h->doc_index, b->index);
        h->doc_index = b->index;
        if (!streq_ptr(h->etag, h->cur_etag) || !streq_ptr(h->last_modified, h->cur_last_modified)) {
                free(h->cur_etag);
                free(h->cur_last_modified);
                h->cur_etag = h->etag ? strdup(h->etag) : NULL;
                h->cur_last_modified = h->last_modified ? strdup(h->last_modified) : NULL;
        }
        return http_set_document_position(h);
}

static void http_complete(HttpSource *h, CURLcode code) {
        Source *s = h->source;
        int r, more = 0;

        http_set_in_flight(h, false);
        h->paused = false;
        h->unpause = sd_event_source_disable_unref(h->unpause);
        curl_multi_remove_handle(h->hm->multi, h->easy);
        curl_slist_free_all(h->headers);
        h->headers = NULL;

        if (code == CURLE_WRITE_ERROR && h->abort == ABORT_REFUSED) {
                /* Records of a stream read before the limit or the refusal stay handed over. */
                if (!h->pages && h->body.streaming)
                        (void) http_document_done(h, false);
                http_release(h);
                source_fail(s, 0, "GET %s: %s", h->url, h->abort_reason);
                return;
        }
        if (code != CURLE_OK && !(code == CURLE_WRITE_ERROR && h->abort == ABORT_ERROR_BODY)) {
                if (!h->pages && h->body.streaming)
                        (void) http_document_done(h, false);
                http_release(h);
                source_fail(s, 0, "GET %s: %s", h->url, h->error[0] ? h->error : curl_easy_strerror(code));
                return;
        }
        curl_easy_getinfo(h->easy, CURLINFO_RESPONSE_CODE, &h->status);
        source_heartbeat(s);
        if (h->status == 304) {
                log_debug("Source %s: %s not modified", source_name(s), h->url);
                http_release(h);
                source_active(s);
                http_schedule(h, (uint64_t) h->config->interval_ms * USEC_PER_MSEC);
                return;
        }
        if (h->status < 200 || h->status >= 300) {
                /* Keep the server's JSON error message, if any, in LastError. */
                _cleanup_json_ json_object *o = NULL;
                const char *msg = NULL;

                if (json_parse_n(buffer_begin(&h->error_body), buffer_size(&h->error_body), &o, NULL) >= 0 &&
                    json_object_is_type(o, json_type_object))
                        msg = json_get_string(o, "message") ?: json_get_string(o, "error");
                source_fail(s, 0, "GET %s: HTTP %ld%s%s", h->url, h->status, msg ? ": " : "", msg ?: "");
                http_release(h);
                return;
        }

        r = http_body_end(&h->body, s, h->content_type);
        http_account(h);
        if (r < 0) {
                if (!h->pages && h->body.streaming)
                        (void) http_document_done(h, false);
                source_fail(s, r == -ENOMEM ? ENOMEM : 0, "GET %s: %s", h->url,
                            r == -ENOMEM ? "out of memory" : h->body.error);
                http_release(h);
                return;
        }
        if (h->body.format == RECORD_FORMAT_DPIPE) {
                if (!h->pages) {
                        /* Found dpipe-source's page format where a document was expected: from now
                         * on it is asked for page by page (the records of this one were read by
                         * offset already). */
                        h->pages = true;
                        log_info("Source %s: %s is a paginated dpipe-source collection", source_name(s), h->url);
                }
                more = http_page_done(h);
        } else
                more = http_document_done(h, true);
        http_release(h);
        if (more < 0) {
                source_fail(s, more, "failed to record position");
                return;
        }
        source_active(s);
        source_backoff_reset(s);
        http_schedule(h, more > 0 ? 0 : (uint64_t) h->config->interval_ms * USEC_PER_MSEC);
}

static void http_multi_check(HttpMulti *hm) {
        CURLMsg *msg;
        int left;

        while ((msg = curl_multi_info_read(hm->multi, &left))) {
                HttpSource *h = NULL;

                if (msg->msg != CURLMSG_DONE)
                        continue;
                curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &h);
                if (h && h->in_flight)
                        http_complete(h, msg->data.result);
        }
}

static const ConnectorType http_connector = {
        .name = "http",
        .description = "Batch dpipe connector: polls REST/HTTP sources on an interval.",
        .config_size = sizeof(HttpConfig),
        .options = http_options,
        .data_size = sizeof(HttpSource),
        .setup = http_setup,
        .teardown = http_teardown,
        .validate = http_validate,
        .init = http_init,
        .done = http_done,
        .start = http_start,
        .stop = http_stop,
        /* A throttled source does not start its next request, and a stream in flight pauses. */
        .throttle = http_throttle,
        .daemon_options = http_daemon_options,
        .daemon_settings = &http_settings,
};

CONNECTOR_DEFINE_MAIN(http_connector);
