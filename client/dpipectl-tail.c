/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* tail: follow records through dpiped's client protocol (not D-Bus: records do not belong on the
 * bus). Human output is "OFFSET TIME SOURCE: DATA"; --json prints each record line as the server
 * sent it. Acks after printing, like dpipe-client.
 *
 * Like tail -n N -f: -n begins N records before the end of the queue (10 when neither -n nor --from
 * is given, as tail(1) and journalctl -f do), --no-follow stops at the end the queue had when we
 * started. Both learn where the queue stands from the server we read from (the "status" op), not
 * from a local bus: --connect may name another machine. */

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
        bool need_status;   /* where to begin depends on the queue's bounds: ask first */
        bool subscribed;
        uint64_t printed;
        int exit_code;
        bool done;
} Tail;

static void tail_exit(Tail *t, int code) {
        if (t->done)
                return;
        /* Never silently nothing: say so, as journalctl says "-- No entries --". */
        if (code == EXIT_SUCCESS && t->stop_at_end && t->printed == 0 && !arg_json && !arg_quiet)
                (void) buffer_append_str(t->out, "-- No records --\n");
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

static int tail_subscribe(Tail *t, ClientConn *c) {
        _cleanup_json_ struct json_object *o = json_object_new_object();
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
        t->subscribed = true;
        return client_conn_send_json(c, o);
}

static int on_connected(ClientConn *c, void *userdata) {
        Tail *t = userdata;

        if (t->need_status && !t->subscribed)
                return client_conn_send_line(c, "{\"op\":\"status\"}", strlen("{\"op\":\"status\"}"));
        return tail_subscribe(t, c);
}

/* The server's queue bounds are known: where to begin, and for --no-follow where to end. */
static int on_status(Tail *t, ClientConn *c, struct json_object *msg) {
        uint64_t first = 0, end = 0, start;

        if (!json_get_uint64(msg, "queue_first_offset", &first) || !json_get_uint64(msg, "queue_next_offset", &end)) {
                log_error("The server did not say where its queue begins and ends.");
                tail_exit(t, EXIT_FAILURE);
                return 0;
        }
        if (!arg_from_set)
                t->from = (SubscribeFrom) { .kind = SUBSCRIBE_FROM_OFFSET,
                                            .offset = MAX(first, end > arg_lines ? end - arg_lines : 0) };
        start = t->from.kind == SUBSCRIBE_FROM_OFFSET ? MAX(t->from.offset, first) :
                t->from.kind == SUBSCRIBE_FROM_EARLIEST ? first : end;
        if (arg_no_follow) {
                if (start >= end) {
                        t->stop_at_end = true;
                        tail_exit(t, EXIT_SUCCESS); /* nothing there to show: says so */
                        return 0;
                }
                t->stop_at_end = true;
                t->end = end;
                t->filter_here = arg_n_sources > 0;
        }
        return tail_subscribe(t, c);
}

static int append_human(Tail *t, const char *line, size_t len, uint64_t offset) {
        _cleanup_json_ struct json_object *rec = NULL;
        struct json_object *data = NULL;
        char ts[64] = "-";
        uint64_t us;

        if (json_parse_n(line, len, &rec, NULL) < 0)
                return buffer_printf(t->out, "%" PRIu64 " %.*s\n", offset, (int) len, line);
        if (json_get_uint64(rec, "ts_us", &us))
                (void) format_timestamp_local(ts, sizeof(ts), us);
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
                t->printed++;
                if (arg_json_mode == JSON_PRETTY) {
                        _cleanup_json_ struct json_object *rec = NULL;

                        r = json_parse_n(line, len, &rec, NULL);
                        if (r >= 0)
                                r = buffer_printf(t->out, "%s\n", json_object_to_json_string_ext(rec, json_event_flags()));
                } else if (arg_json) {
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

        const char *op = json_get_string(msg, "op");

        if (streq_ptr(op, "error")) {
                const char *code = json_get_string(msg, "code");

                log_error("Failed to follow records: %s", json_get_string(msg, "message") ?: line);
                tail_exit(t, streq_ptr(code, "denied") ? EXIT_DENIED : streq_ptr(code, "no_such_source") ? EXIT_NO_SUCH_SOURCE : EXIT_FAILURE);
                return 0;
        }
        if (streq_ptr(op, "status") && t->need_status && !t->subscribed)
                return on_status(t, c, msg);
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
                tail_exit(t, (error == -ECONNREFUSED || error == -ENOENT) ? EXIT_NOT_RUNNING :
                             error == -EACCES ? EXIT_DENIED : EXIT_FAILURE);
                return;
        }
        if (t->stop_at_end || (t->need_status && !t->subscribed)) {
                /* The server went away before we had everything we came for. */
                log_error("The server closed the connection before the end of the queue.");
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

        /* Where to begin depends on the queue: -n (10 by default, as tail(1)), and --no-follow needs
         * its end. Only an explicit --from= while following can subscribe straight away. */
        t.need_status = arg_no_follow || !arg_from_set;
        if (!arg_lines_set)
                arg_lines = 10;

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
                t.exit_code = (r == -ECONNREFUSED || r == -ENOENT) ? EXIT_NOT_RUNNING : EXIT_FAILURE;
                r = 0;
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
