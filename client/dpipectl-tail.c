/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* tail: follow records through dpiped's client protocol (not D-Bus: records do not belong on the
 * bus). Human output is "OFFSET TIME SOURCE: DATA"; --json prints each record line as the server
 * sent it. Acks after printing, like dpipe-client.
 *
 * Like tail -n N -f: -n begins N records before the end of the queue, --no-follow stops at the
 * end the queue had when we started; both learn where that is from the QueueNextOffset property. */

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client-proto.h"
#include "dpipectl.h"
#include "json-util.h"
#include "log.h"
#include "output.h"
#include "util.h"

typedef struct Tail {
        sd_event *event;
        ClientConn *conn;
        Output *output;
        Buffer *out;
        SubscribeFrom from;
        bool stop_at_end;   /* --no-follow: exit after the record at end - 1 */
        uint64_t end;
        bool filter_here;   /* --no-follow with --source: filter ourselves, to see every offset */
        int exit_code;
        bool done;
} Tail;

static void tail_exit(Tail *t, int code) {
        if (t->done)
                return;
        t->done = true;
        t->exit_code = code;
        (void) sd_event_exit(t->event, code);
}

static void on_output_done(Output *o, int error, void *userdata) {
        Tail *t = userdata;

        if (error == -EPIPE)
                return tail_exit(t, EXIT_SUCCESS);
        if (error < 0) {
                log_error_errno(error, "Failed to write to standard output: %m");
                return tail_exit(t, EXIT_FAILURE);
        }
        (void) client_conn_ack(t->conn);
}

static int on_connected(ClientConn *c, void *userdata) {
        _cleanup_json_ struct json_object *o = json_object_new_object();
        Tail *t = userdata;
        uint64_t last;

        if (!o)
                return -ENOMEM;
        (void) json_object_object_add(o, "op", json_object_new_string("subscribe"));
        if (client_conn_last_offset(c, &last))
                (void) json_object_object_add(o, "from", json_object_new_uint64(last + 1));
        else if (t->from.kind == SUBSCRIBE_FROM_OFFSET)
                (void) json_object_object_add(o, "from", json_object_new_uint64(t->from.offset));
        else
                (void) json_object_object_add(o, "from", json_object_new_string(t->from.kind == SUBSCRIBE_FROM_EARLIEST ? "earliest" : "latest"));
        if (arg_n_sources > 0 && !t->filter_here) {
                struct json_object *a = json_object_new_array();

                (void) json_object_object_add(o, "sources", a);
                for (size_t i = 0; i < arg_n_sources; i++)
                        (void) json_object_array_add(a, json_object_new_string(arg_sources[i]));
        }
        return client_conn_send_json(c, o);
}

static int append_human(Tail *t, const char *line, size_t len, uint64_t offset) {
        _cleanup_json_ struct json_object *rec = NULL;
        struct json_object *data = NULL;
        char ts[64] = "-";
        uint64_t us;

        if (json_parse_n(line, len, &rec, NULL) < 0)
                return buffer_printf(t->out, "%" PRIu64 " %.*s\n", offset, (int) len, line);
        if (json_get_uint64(rec, "ts_us", &us)) {
                time_t s = (time_t) (us / USEC_PER_SEC);
                struct tm tm;

                if (localtime_r(&s, &tm))
                        snprintf(ts + strftime(ts, sizeof(ts) - 8, "%Y-%m-%d %H:%M:%S", &tm), 8, ".%06" PRIu64,
                                 us % USEC_PER_SEC);
        }
        (void) json_object_object_get_ex(rec, "data", &data);
        return buffer_printf(t->out, "%s%" PRIu64 "%s %s %s%s%s: %s\n", ansi(ANSI_GREY), offset, ansi(ANSI_NORMAL), ts,
                             ansi(ANSI_HIGHLIGHT), json_get_string(rec, "source") ?: "?", ansi(ANSI_NORMAL),
                             json_object_to_json_string_ext(data, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
}

static bool source_wanted(const char *line, size_t len) {
        _cleanup_json_ struct json_object *rec = NULL;
        const char *source;

        if (json_parse_n(line, len, &rec, NULL) < 0)
                return false;
        source = json_get_string(rec, "source");
        for (size_t i = 0; i < arg_n_sources; i++)
                if (streq_ptr(source, arg_sources[i]))
                        return true;
        return false;
}

static int on_record(ClientConn *c, const char *line, size_t len, uint64_t offset, void *userdata) {
        Tail *t = userdata;
        int r = 0;

        if (t->done)
                return 0;
        if (!t->filter_here || source_wanted(line, len)) {
                if (arg_json) {
                        r = buffer_append(t->out, line, len);
                        if (r >= 0)
                                r = buffer_append(t->out, "\n", 1);
                } else
                        r = append_human(t, line, len, offset);
                if (r < 0)
                        return r;
        }
        if (t->stop_at_end && offset + 1 >= t->end)
                tail_exit(t, EXIT_SUCCESS);
        return 0;
}

static int on_reply(ClientConn *c, const char *line, size_t len, struct json_object *msg, void *userdata) {
        Tail *t = userdata;

        if (streq_ptr(json_get_string(msg, "op"), "error")) {
                log_error("Failed to follow records: %s", json_get_string(msg, "message") ?: line);
                tail_exit(t, EXIT_FAILURE);
        }
        return 0;
}

/* Records the server could not read from its queue: a warning, and on with the ones after them. */
static int on_lost(ClientConn *c, uint64_t first, uint64_t last, const char *message, void *userdata) {
        Tail *t = userdata;

        if (t->done)
                return 0;
        if (first == last)
                log_warning("The record at offset %" PRIu64 " was lost: %s", first, message);
        else
                log_warning("The records at offsets %" PRIu64 "..%" PRIu64 " were lost: %s", first, last, message);
        if (t->stop_at_end && last + 1 >= t->end)
                tail_exit(t, EXIT_SUCCESS);
        return 0;
}

static int on_flush(ClientConn *c, void *userdata) {
        Tail *t = userdata;
        int r = output_flush(t->output);

        if (r == -EPIPE)
                tail_exit(t, EXIT_SUCCESS);
        else if (r < 0) {
                log_error_errno(r, "Failed to write to standard output: %m");
                tail_exit(t, EXIT_FAILURE);
        }
        return r;
}

static void on_disconnected(ClientConn *c, int error, const char *reason, void *userdata) {
        Tail *t = userdata;

        (void) output_flush(t->output);
        if (t->done)
                return;
        if (error < 0) {
                log_error("%s", reason);
                tail_exit(t, EXIT_FAILURE);
                return;
        }
        tail_exit(t, EXIT_SUCCESS);
}

int verb_tail(sd_bus *bus, int argc, char **argv) {
        static const ClientConnCallbacks callbacks = {
                .on_connected = on_connected,
                .on_record = on_record,
                .on_reply = on_reply,
                .on_lost = on_lost,
                .on_flush = on_flush,
                .on_disconnected = on_disconnected,
        };
        Tail t = { .from = arg_from };
        sigset_t mask;
        int r;

        if (arg_lines_set || arg_no_follow) {
                _cleanup_(sd_bus_flush_close_unrefp) sd_bus *b = NULL;
                _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
                uint64_t first = 0, end = 0, start;

                if (bus_connect(&b) < 0)
                        return EXIT_FAILURE;
                r = sd_bus_get_property_trivial(b, BUS_NAME, BUS_PATH, BUS_MANAGER_IFACE, "QueueFirstOffset", &error, 't', &first);
                if (r >= 0)
                        r = sd_bus_get_property_trivial(b, BUS_NAME, BUS_PATH, BUS_MANAGER_IFACE, "QueueNextOffset", &error, 't', &end);
                if (r < 0) {
                        log_error("Failed to read where the queue ends: %s", bus_error_text(&error, r));
                        return EXIT_FAILURE;
                }
                if (arg_lines_set)
                        t.from = (SubscribeFrom) { .kind = SUBSCRIBE_FROM_OFFSET,
                                                   .offset = MAX(first, end > arg_lines ? end - arg_lines : 0) };
                start = t.from.kind == SUBSCRIBE_FROM_OFFSET ? MAX(t.from.offset, first) :
                        t.from.kind == SUBSCRIBE_FROM_EARLIEST ? first : end;
                if (arg_no_follow) {
                        if (start >= end)
                                return EXIT_SUCCESS; /* nothing there to show */
                        t.stop_at_end = true;
                        t.end = end;
                        t.filter_here = arg_n_sources > 0;
                }
        }

        (void) signal(SIGPIPE, SIG_IGN);
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        (void) sigprocmask(SIG_BLOCK, &mask, NULL);

        r = sd_event_default(&t.event);
        if (r >= 0)
                r = sd_event_add_signal(t.event, NULL, SIGTERM, NULL, NULL);
        if (r >= 0)
                r = sd_event_add_signal(t.event, NULL, SIGINT, NULL, NULL);
        if (r < 0) {
                log_error_errno(r, "Failed to set up the event loop: %m");
                goto finish;
        }
        r = output_new(t.event, STDOUT_FILENO, on_output_done, &t, &t.output);
        if (r < 0) {
                log_oom();
                goto finish;
        }
        t.out = output_buffer(t.output);
        r = client_conn_new(t.event, arg_connect, &arg_conn, &callbacks, &t, &t.conn);
        if (r < 0) {
                if (r == -ENOMEM)
                        log_oom();
                else if (!(r == -EINVAL && arg_conn.tls)) /* a TLS set-up error was logged */
                        log_error("Invalid address --connect=%s: expected HOST:PORT or the path of a socket.",
                                  arg_connect);
                output_free(t.output);
                sd_event_unref(t.event);
                return EXIT_USAGE;
        }
        r = client_conn_connect(t.conn);
        if (r < 0) {
                log_error_errno(r, "Failed to connect to %s: %m", arg_connect);
                goto finish;
        }
        r = sd_event_loop(t.event);
        if (r < 0 && !t.done)
                log_error_errno(r, "Event loop failed: %m");
        else if (!t.done)
                t.exit_code = EXIT_SUCCESS; /* a signal */
        else
                r = 0;
finish:
        if (t.output)
                (void) output_flush_blocking(t.output, 2000);
        client_conn_free(t.conn);
        output_free(t.output);
        sd_event_unref(t.event);
        return r < 0 ? EXIT_FAILURE : t.exit_code;
}
