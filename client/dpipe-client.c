/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* dpipe-client: the line client of dpiped's client protocol (dpiped(8), CLIENT PROTOCOL; dpipe-client(1)).
 *
 * With a command it runs that one command: `dpipe-client subscribe earliest` prints every record
 * as one JSON line and acks as it goes; other commands print their reply. Without a command it is
 * interactive: lines from stdin go to the server as typed (inline commands or JSON), replies and
 * records are printed as they arrive, a prompt is shown when both ends are a terminal. */

#include <assert.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buffer.h"
#include "client-format.h"
#include "client-proto.h"
#include "client-util.h"
#include "json-util.h"
#include "line.h"
#include "log.h"
#include "output.h"
#include "util.h"

#define PROMPT "dpipe> "
#define STDIN_LINE_MAX LINE_MAX_DEFAULT
#define RECONNECT_MIN_USEC (250 * USEC_PER_MSEC)
#define RECONNECT_MAX_USEC (5 * USEC_PER_SEC)
#define WINDOW_MAX 1000000u

static const char *arg_connect = DEFAULT_CONNECT_ADDRESS;
static OutputFormat arg_format = OUTPUT_JSON;
static bool arg_reconnect = false;
static uint32_t arg_window = 0;
static char **arg_sources = NULL;
static size_t arg_n_sources = 0;
static char **arg_command = NULL;
static size_t arg_n_command = 0;
static const char *arg_token_file = NULL;
static ClientConnOptions arg_conn = {};
static bool arg_quiet = false;
static bool arg_json_auto = false; /* bare --json: pretty on a terminal, else short */

typedef struct Client {
        sd_event *event;
        ClientConn *conn;
        Output *output;
        Buffer *out;        /* the output's buffer */
        RecordFormatter formatter;

        bool interactive;
        bool tty;           /* prompt and line clearing */
        bool prompt_shown;
        bool greeted;

        /* one-shot mode */
        bool command_done;  /* the reply to the command arrived */
        bool command_is_subscribe;
        bool command_is_ack;

        /* the subscription to renew after a reconnect */
        struct json_object *subscribe_request;
        char *subscribe_inline; /* one-shot subscribe with words only the server knows, as sent */
        bool subscribed;

        unsigned pending_replies;

        /* interactive input */
        sd_event_source *stdin_source;
        Buffer in;
        bool stdin_eof;
        bool stdin_is_file;
        bool quit_sent;      /* our own quit after stdin ended: its "bye" is not shown */
        bool quit_requested; /* the user typed quit */

        sd_event_source *reconnect_timer;
        uint64_t reconnect_delay;

        int exit_code;
        bool exiting;
} Client;

static Client *client_free(Client *c) {
        if (!c)
                return NULL;
        client_conn_free(c->conn);
        output_free(c->output);
        sd_event_source_disable_unref(c->stdin_source);
        sd_event_source_disable_unref(c->reconnect_timer);
        sd_event_unref(c->event);
        buffer_done(&c->in);
        record_formatter_done(&c->formatter);
        json_object_putp(&c->subscribe_request);
        free(c->subscribe_inline);
        free(c);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(Client *, client_free);

static void client_exit(Client *c, int code) {
        if (c->exiting)
                return;
        c->exiting = true;
        c->exit_code = code;
        (void) sd_event_exit(c->event, code);
}

/* Writes what stdout takes now. 1: the rest waits for the reader (records are acked once it is
 * out); 0: all written. Errors end the client. */
static int client_flush_stdout(Client *c) {
        int r = output_flush(c->output);

        if (r == -EPIPE) {
                /* Nobody reads our output any more (e.g. "| head"): stop without acking the rest. */
                client_exit(c, EXIT_SUCCESS);
                return r;
        }
        if (r < 0) {
                log_error_errno(r, "Failed to write to standard output: %m");
                client_exit(c, EXIT_FAILURE);
        }
        return r;
}

static void on_output_done(Output *o, int error, void *userdata) {
        Client *c = userdata;
        int r;

        if (error == -EPIPE) {
                client_exit(c, EXIT_SUCCESS);
                return;
        }
        if (error < 0) {
                log_error_errno(error, "Failed to write to standard output: %m");
                client_exit(c, EXIT_FAILURE);
                return;
        }
        r = client_conn_ack(c->conn);
        if (r < 0)
                log_debug_errno(r, "Failed to send ack, ignoring: %m");
}

static void client_show_prompt(Client *c) {
        if (!c->tty || c->prompt_shown || c->stdin_eof || c->exiting || c->quit_requested)
                return;
        (void) buffer_append_str(c->out, PROMPT);
        c->prompt_shown = true;
}

/* Before printing something that arrived on its own, take the prompt away. */
static void client_hide_prompt(Client *c) {
        if (!c->prompt_shown)
                return;
        (void) buffer_append_str(c->out, "\r\x1b[K");
        c->prompt_shown = false;
}

static int on_flush(ClientConn *conn, void *userdata) {
        Client *c = userdata;

        if (!output_pending(c->output))
                return 0;
        if (c->interactive && c->pending_replies == 0)
                client_show_prompt(c);
        return client_flush_stdout(c);
}

static int build_subscribe(const SubscribeFrom *from, struct json_object **ret) {
        _cleanup_json_ struct json_object *o = json_object_new_object();
        struct json_object *v;

        if (!o)
                return -ENOMEM;
        if (json_object_object_add(o, "op", json_object_new_string("subscribe")) < 0)
                return -ENOMEM;
        if (from->kind == SUBSCRIBE_FROM_OFFSET)
                v = json_object_new_uint64(from->offset);
        else
                v = json_object_new_string(from->kind == SUBSCRIBE_FROM_EARLIEST ? "earliest" : "latest");
        if (json_object_object_add(o, "from", v) < 0)
                return -ENOMEM;
        if (arg_n_sources > 0) {
                struct json_object *a = json_object_new_array();

                if (json_object_object_add(o, "sources", a) < 0)
                        return -ENOMEM;
                for (size_t i = 0; i < arg_n_sources; i++)
                        if (json_object_array_add(a, json_object_new_string(arg_sources[i])) < 0)
                                return -ENOMEM;
        }
        if (arg_window > 0 && json_object_object_add(o, "window", json_object_new_uint64(arg_window)) < 0)
                return -ENOMEM;
        *ret = TAKE_PTR(o);
        return 0;
}

/* After a reconnect, continue right after the last record we received (and printed). */
static int client_resubscribe(Client *c) {
        struct json_object *req = c->subscribe_request;
        bool have_last;
        uint64_t last;

        have_last = client_conn_last_offset(c->conn, &last);
        if (have_last)
                client_conn_set_skip_through(c->conn, last);
        c->pending_replies++;
        if (!req)
                /* Words we do not interpret: the same request again; what we have already is
                 * dropped by the skip above, so there is still no repeat. */
                return client_conn_send_line(c->conn, c->subscribe_inline, strlen(c->subscribe_inline));
        if (have_last && json_object_object_add(req, "from", json_object_new_uint64(last + 1)) < 0)
                return -ENOMEM;
        return client_conn_send_json(c->conn, req);
}

static int client_send_command(Client *c) {
        _cleanup_(buffer_done) Buffer line = {};
        int r;

        if (c->command_is_subscribe)
                return 0; /* sent by the subscription logic */

        r = inline_command_append(&line, arg_command, arg_n_command);
        if (r < 0)
                return r;
        r = client_conn_send_line(c->conn, buffer_begin(&line), buffer_size(&line));
        if (r < 0)
                return r;
        /* "ack" has no reply: follow it by a ping so that we learn it was processed. */
        if (c->command_is_ack)
                r = client_conn_send_line(c->conn, "{\"op\":\"ping\"}", strlen("{\"op\":\"ping\"}"));
        c->pending_replies++;
        return r;
}

static int on_connected(ClientConn *conn, void *userdata) {
        Client *c = userdata;
        int r;

        c->reconnect_delay = 0;
        if ((c->subscribe_request || c->subscribe_inline) && (c->subscribed || !c->interactive)) {
                r = client_resubscribe(c);
                if (r < 0)
                        return r;
        }
        if (!c->interactive && !c->command_done) {
                r = client_send_command(c);
                if (r < 0)
                        return r;
        }
        if (c->tty && !c->greeted && !arg_quiet) {
                c->greeted = true;
                (void) buffer_printf(c->out, "Connected to %s. \"help\" lists the commands, \"quit\" or Ctrl-D leaves.\n",
                                     client_conn_address(conn));
        }
        if (c->interactive && c->pending_replies == 0) {
                /* The prompt appears once there is someone to talk to. */
                client_show_prompt(c);
                (void) client_flush_stdout(c);
        }
        if (c->stdin_source)
                return sd_event_source_set_enabled(c->stdin_source, c->stdin_eof ? SD_EVENT_OFF : SD_EVENT_ON);
        return 0;
}

static int on_record(ClientConn *conn, const char *line, size_t len, uint64_t offset, void *userdata) {
        Client *c = userdata;
        int r;

        client_hide_prompt(c);
        r = record_formatter_append(&c->formatter, line, len, c->out);
        if (r == -EBADMSG) {
                log_warning("Record at offset %" PRIu64 " is not valid JSON, printing it as it came.", offset);
                r = buffer_append(c->out, line, len);
                if (r >= 0)
                        r = buffer_append(c->out, "\n", 1);
        }
        return r;
}

/* The exit code for an error reply (dpipe-client(1), EXIT STATUS). */
static int error_exit_status(const char *code) {
        if (streq_ptr(code, "no_such_source"))
                return EXIT_NO_SUCH_SOURCE;
        if (streq_ptr(code, "denied"))
                return EXIT_DENIED;
        return EXIT_FAILURE;
}

static int on_reply(ClientConn *conn, const char *line, size_t len, struct json_object *msg, void *userdata) {
        Client *c = userdata;
        const char *op = json_get_string(msg, "op");
        bool is_error = streq_ptr(op, "error");

        if (c->pending_replies > 0)
                c->pending_replies--;

        if (streq_ptr(op, "bye") && c->quit_sent)
                return 0; /* our own goodbye after stdin ended */

        if (!c->interactive) {
                if (c->command_done)
                        return 0;
                if (c->command_is_subscribe) {
                        if (is_error) {
                                log_error("Failed to subscribe: %s", json_get_string(msg, "message") ?: line);
                                client_exit(c, error_exit_status(json_get_string(msg, "code")));
                                client_conn_disconnect(conn);
                                return 0;
                        }
                        c->subscribed = true;
                        c->command_done = true;
                        return 0; /* the "ok": records follow */
                }
                if (c->command_is_ack && streq_ptr(op, "pong")) {
                        c->command_done = true;
                        client_exit(c, EXIT_SUCCESS);
                        return 0;
                }
                c->command_done = true;
                if (is_error) {
                        const char *code = json_get_string(msg, "code"), *text = json_get_string(msg, "message") ?: line;

                        if (streq_ptr(code, "denied"))
                                log_error("Access denied: %s (see dpiped(8), ACCESS).", text);
                        else
                                log_error("%s", text);
                        client_exit(c, error_exit_status(code));
                        return 0;
                }
                client_exit(c, EXIT_SUCCESS);
                if (arg_quiet && (streq_ptr(op, "ok") || streq_ptr(op, "bye") || streq_ptr(op, "pong")))
                        return 0; /* -q: success is the exit code */
                return reply_format_append(arg_format, line, len, msg, c->out);
        }

        client_hide_prompt(c);
        if (c->subscribe_request && !c->subscribed && (streq_ptr(op, "ok") || is_error)) {
                /* The reply to the subscribe the user typed. */
                c->subscribed = !is_error;
                if (is_error)
                        json_object_putp(&c->subscribe_request), c->subscribe_request = NULL;
        }
        if (is_error && c->tty && colors_enabled()) {
                /* On a terminal an error stands out; the line itself stays as the server sent it. */
                int r = buffer_append_str(c->out, "\x1b[0;31m");

                if (r >= 0)
                        r = buffer_append(c->out, line, len);
                if (r >= 0)
                        r = buffer_append_str(c->out, "\x1b[0m\n");
                return r;
        }
        return reply_format_append(arg_format, line, len, msg, c->out);
}

/* Records the server could not read from its queue: say so on stderr, never among the records on
 * stdout, and carry on with the ones after them. */
static int on_lost(ClientConn *conn, uint64_t first, uint64_t last, const char *message, void *userdata) {
        if (first == last)
                log_warning("The record at offset %" PRIu64 " was lost: %s", first, message);
        else
                log_warning("The records at offsets %" PRIu64 "..%" PRIu64 " were lost: %s", first, last, message);
        return 0;
}

static void on_disconnected(ClientConn *conn, int error, const char *reason, void *userdata);

static int reconnect_handler(sd_event_source *s, uint64_t usec, void *userdata) {
        Client *c = userdata;
        int r;

        r = client_conn_connect(c->conn);
        if (r < 0) {
                /* Failed before even trying (no socket, say): count it as one more failed attempt. */
                on_disconnected(c->conn, r, "Failed to connect.", c);
        }
        return 0;
}

static void on_disconnected(ClientConn *conn, int error, const char *reason, void *userdata) {
        Client *c = userdata;
        int r;

        if (c->exiting)
                return;
        client_hide_prompt(c);
        (void) client_flush_stdout(c);
        if (c->exiting)
                return;

        if (error == 0 && (c->quit_sent || c->quit_requested || (!c->interactive && c->command_done && !c->command_is_subscribe))) {
                client_exit(c, EXIT_SUCCESS);
                return;
        }
        if (arg_reconnect && error != -EACCES && error != -EKEYREJECTED) {
                if (c->pending_replies > 0 && c->interactive)
                        c->pending_replies = 0;
                c->reconnect_delay = c->reconnect_delay == 0 ? RECONNECT_MIN_USEC : MIN(c->reconnect_delay * 2, RECONNECT_MAX_USEC);
                log_warning("%s%s Reconnecting in %" PRIu64 " ms.", reason,
                            reason[0] && reason[strlen(reason) - 1] == '.' ? "" : ".", c->reconnect_delay / USEC_PER_MSEC);
                if (c->subscribed)
                        c->subscribed = !!c->subscribe_request; /* renewed on connect */
                r = sd_event_source_set_time_relative(c->reconnect_timer, c->reconnect_delay);
                if (r >= 0)
                        r = sd_event_source_set_enabled(c->reconnect_timer, SD_EVENT_ONESHOT);
                if (r < 0) {
                        log_error_errno(r, "Failed to schedule a reconnect: %m");
                        client_exit(c, EXIT_FAILURE);
                }
                if (c->stdin_source)
                        (void) sd_event_source_set_enabled(c->stdin_source, SD_EVENT_OFF);
                return;
        }
        if (error == 0) {
                /* The server closed the stream in order: for a subscriber that is the end. */
                if (c->interactive && !c->quit_sent)
                        log_info("%s", reason);
                client_exit(c, !c->interactive && !c->command_done ? EXIT_FAILURE : EXIT_SUCCESS);
                return;
        }
        log_error("%s", reason);
        client_exit(c, error == -ECONNREFUSED || error == -ENOENT ? EXIT_NOT_RUNNING :
                       error == -EACCES ? EXIT_DENIED : EXIT_FAILURE);
}

/* Interactive input: one line typed → one line to the server, as it is. */
static int client_handle_input_line(Client *c, char *line, size_t len) {
        _cleanup_free_ char *copy = NULL;
        char *words[4];
        const char *op = NULL;
        _cleanup_json_ struct json_object *req = NULL;
        int n, r;

        c->prompt_shown = false;
        while (len > 0 && (*line == ' ' || *line == '\t'))
                line++, len--;
        if (len == 0) {
                client_show_prompt(c);
                return 0;
        }

        /* Learn what it is, for the bookkeeping of replies and for renewing a subscription. */
        if (line[0] == '{') {
                if (json_parse_n(line, len, &req, NULL) >= 0 && json_object_is_type(req, json_type_object))
                        op = json_get_string(req, "op");
        } else {
                copy = strndup(line, len);
                if (!copy)
                        return -ENOMEM;
                n = line_tokenize(copy, words, ELEMENTSOF(words));
                if (n > 0)
                        op = words[0];
                if (streq_ptr(op, "subscribe")) {
                        SubscribeFrom from = { .kind = SUBSCRIBE_FROM_LATEST };

                        if (n >= 2)
                                (void) subscribe_from_parse(words[1], &from);
                        r = build_subscribe(&from, &req);
                        if (r < 0)
                                return r;
                }
        }

        if (streq_ptr(op, "subscribe") && req) {
                json_object_putp(&c->subscribe_request);
                c->subscribe_request = TAKE_PTR(req);
                c->subscribed = false;
        }
        if (streq_ptr(op, "quit"))
                c->quit_requested = true;
        if (!streq_ptr(op, "ack") && !streq_ptr(op, "pong"))
                c->pending_replies++;

        r = client_conn_send_line(c->conn, line, len);
        if (r < 0)
                return log_error_errno(r, "Failed to send to %s: %m", client_conn_address(c->conn));
        return 0;
}

static int client_stdin_ended(Client *c) {
        c->stdin_eof = true;
        if (c->stdin_source)
                (void) sd_event_source_set_enabled(c->stdin_source, SD_EVENT_OFF);
        if (c->tty)
                (void) buffer_append_str(c->out, "\n");
        c->prompt_shown = false;
        (void) client_flush_stdout(c);
        /* Ctrl-D on a terminal means "I am done". From a pipe, keep following a subscription (the
         * commands were the set-up); otherwise say goodbye once the replies are in. */
        if (c->subscribe_request && !c->tty)
                return 0;
        c->quit_sent = true;
        return client_conn_send_line(c->conn, "{\"op\":\"quit\"}", strlen("{\"op\":\"quit\"}"));
}

static int client_process_input(Client *c) {
        for (;;) {
                char *line;
                size_t len;
                int r = line_next(&c->in, STDIN_LINE_MAX, &line, &len);

                if (r == -E2BIG) {
                        log_error("Input line too long (more than %u bytes), dropping it.", STDIN_LINE_MAX);
                        buffer_clear(&c->in);
                        return 0;
                }
                if (r <= 0)
                        return r;
                r = client_handle_input_line(c, line, len);
                if (r < 0)
                        return r;
        }
}

static int stdin_handler(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Client *c = userdata;
        ssize_t n;
        int r;

        if (!client_conn_is_connected(c->conn)) {
                (void) sd_event_source_set_enabled(s, SD_EVENT_OFF);
                return 0;
        }
        n = buffer_read_fd(&c->in, fd, 4096);
        if (n == -EAGAIN)
                return 0;
        if (n < 0) {
                log_error_errno((int) n, "Failed to read standard input: %m");
                client_exit(c, EXIT_FAILURE);
                return 0;
        }
        if (n == 0) {
                /* A last line without a newline still counts. */
                if (buffer_size(&c->in) > 0 && buffer_append(&c->in, "\n", 1) >= 0)
                        (void) client_process_input(c);
                r = client_stdin_ended(c);
        } else
                r = client_process_input(c);
        if (r < 0) {
                log_error_errno(r, "Failed to send to the server: %m");
                client_exit(c, EXIT_FAILURE);
                return 0;
        }
        (void) client_flush_stdout(c);
        return 0;
}

/* A regular file cannot be polled (epoll refuses it) and never blocks: read it from a "defer"
 * source, a piece per loop iteration, so that replies are handled in between. */
static int stdin_file_handler(sd_event_source *s, void *userdata) {
        return stdin_handler(s, STDIN_FILENO, EPOLLIN, userdata);
}

static int signal_handler(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Client *c = userdata;

        (void) client_flush_stdout(c);
        client_exit(c, EXIT_SUCCESS);
        return 0;
}

static void help(void) {
        printf("%s [OPTIONS...] [COMMAND...] [OPTIONS...]\n\n"
               "Talk to dpiped's client port: subscribe to records, manage sources.\n"
               "Without a command, read commands from standard input (interactive mode).\n"
               "Options may come before or after the command; words after \"--\" are the command's.\n\n"
               "  -h --help              Show this help\n"
               "     --version           Show package version\n"
               "  -c --connect=ADDRESS   dpiped's client.sock (default %s),\n"
               "                         another socket's /PATH, or HOST:PORT for TCP\n"
               "     --token-file=PATH   Send the token in PATH in hello (TCP; default: $DPIPE_TOKEN)\n"
               "     --tls               Speak TLS (TCP), verify the server's certificate and name\n"
               "     --tls-ca=PATH       ... against these CA certificates (default: the system's)\n"
               "     --tls-cert=PATH     Present this client certificate (with --tls-key=)\n"
               "     --tls-key=PATH      ... and its key\n"
               "  -f --format=FORMAT     Output: json (default, as the server sent it), json-pretty,\n"
               "                         csv, table (aligned, times in local time)\n"
               "  -j --json[=MODE]       pretty, short (= --format=json) or off (= --format=table);\n"
               "                         bare --json (-j): pretty on a terminal, short otherwise\n"
               "  -q --quiet             No greeting; a command that succeeds prints no \"ok\"\n"
               "     --reconnect         Reconnect when the connection is lost and resume\n"
               "                         right after the last record received\n"
               "     --source=NAME       subscribe: only records of this source (repeatable)\n"
               "     --window=N          subscribe: records in flight before an ack (1..%u)\n\n"
               "Commands (interfaces of dpiped, see dpipe-client(1)):\n"
               "  subscribe [earliest|latest|OFFSET]   Print records as they arrive\n"
               "  list | status | help | ping | hello  Print the server's reply\n"
               "  add NAME TYPE KEY=VALUE... | remove NAME | pause NAME | start NAME\n"
               "  ack OFFSET | quit\n",
               program_invocation_short_name, DEFAULT_CONNECT_ADDRESS, WINDOW_MAX);
}

static int parse_argv(int argc, char *argv[]) {
        enum {
                ARG_VERSION = 0x100,
                ARG_RECONNECT,
                ARG_SOURCE,
                ARG_WINDOW,
                ARG_JSON,
        };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "json", optional_argument, NULL, ARG_JSON },
                { "quiet", no_argument, NULL, 'q' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "connect", required_argument, NULL, 'c' },
                { "format", required_argument, NULL, 'f' },
                { "reconnect", no_argument, NULL, ARG_RECONNECT },
                { "source", required_argument, NULL, ARG_SOURCE },
                { "window", required_argument, NULL, ARG_WINDOW },
                CLIENT_CONN_LONG_OPTIONS,
                {}
        };
        int c;

        /* Options may follow the command too (GNU getopt permutes), like systemctl's; a word of the
         * command that starts with '-' goes after "--". */
        while ((c = getopt_long(argc, argv, "hjqc:f:", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("dpipe-client %s\n", dpipe_version());
                        return 0;
                case 'c':
                        arg_connect = optarg;
                        break;
                case 'f':
                        arg_format = output_format_from_string(optarg);
                        arg_json_auto = false;
                        if (arg_format < 0) {
                                log_error("Unknown output format '%s': expected json, json-pretty, csv or table.", optarg);
                                return -EINVAL;
                        }
                        break;
                case ARG_RECONNECT:
                        arg_reconnect = true;
                        break;
                case 'q':
                        arg_quiet = true;
                        break;
                case 'j':
                        arg_json_auto = true;
                        break;
                case ARG_JSON:
                        arg_json_auto = false;
                        if (!optarg)
                                arg_json_auto = true;
                        else if (streq(optarg, "pretty"))
                                arg_format = OUTPUT_JSON_PRETTY;
                        else if (streq(optarg, "short"))
                                arg_format = OUTPUT_JSON;
                        else if (streq(optarg, "off"))
                                arg_format = OUTPUT_TABLE;
                        else {
                                log_error("Invalid --json=%s: expected pretty, short or off.", optarg);
                                return -EINVAL;
                        }
                        break;
                case ARG_SOURCE: {
                        char **a = realloc(arg_sources, (arg_n_sources + 1) * sizeof(char *));

                        if (!a)
                                return log_oom();
                        arg_sources = a;
                        arg_sources[arg_n_sources++] = optarg;
                        break;
                }
                case ARG_WINDOW:
                        if (safe_atou32(optarg, &arg_window) < 0 || arg_window == 0 || arg_window > WINDOW_MAX) {
                                log_error("Invalid --window=%s: expected 1..%u.", optarg, WINDOW_MAX);
                                return -EINVAL;
                        }
                        break;
                case '?':
                        return -EINVAL;
                default:
                        if (client_conn_options_parse(&arg_conn, &arg_token_file, c, optarg) > 0)
                                break;
                        assert(0);
                }

        if (arg_json_auto)
                arg_format = isatty(STDOUT_FILENO) ? OUTPUT_JSON_PRETTY : OUTPUT_JSON;
        if (client_conn_options_verify(&arg_conn, arg_connect) < 0)
                return -EINVAL;
        if (client_conn_options_load_token(&arg_conn, arg_token_file) < 0)
                return -EINVAL;
        arg_command = argv + optind;
        arg_n_command = (size_t) (argc - optind);
        return 1;
}

static int client_setup_command(Client *c) {
        if (arg_n_command == 0) {
                c->interactive = true;
                return 0;
        }
        if (streq(arg_command[0], "subscribe")) {
                SubscribeFrom from = { .kind = SUBSCRIBE_FROM_EARLIEST };

                c->command_is_subscribe = true;
                if (arg_n_command == 1 || (arg_n_command == 2 && subscribe_from_parse(arg_command[1], &from) >= 0))
                        return build_subscribe(&from, &c->subscribe_request) < 0 ? log_oom() : 0;

                /* More than the contract's "subscribe [earliest|latest|OFFSET]": the server's own
                 * extensions; pass the words on as they are and let the server judge them. */
                _cleanup_(buffer_done) Buffer line = {};
                if (arg_n_sources > 0 || arg_window > 0) {
                        log_error("--source= and --window= only go with subscribe [earliest|latest|OFFSET].");
                        return -EINVAL;
                }
                if (inline_command_append(&line, arg_command, arg_n_command) < 0 || buffer_append(&line, "", 1) < 0) {
                        log_error("Invalid command: words cannot contain newlines.");
                        return -EINVAL;
                }
                c->subscribe_inline = strdup(buffer_begin(&line));
                return c->subscribe_inline ? 0 : log_oom();
        }
        c->command_is_ack = streq(arg_command[0], "ack");
        return 0;
}

static int run(int argc, char *argv[]) {
        static const ClientConnCallbacks callbacks = {
                .on_connected = on_connected,
                .on_record = on_record,
                .on_reply = on_reply,
                .on_lost = on_lost,
                .on_flush = on_flush,
                .on_disconnected = on_disconnected,
        };
        _cleanup_(client_freep) Client *c = NULL;
        sigset_t mask;
        int r;

        /* A tool, not a daemon: plain "dpipe-client: message" lines, and no debug noise from the
         * DPIPE_LOG_LEVEL meant for the daemons. */
        log_set_console_prefix(program_invocation_short_name);
        r = parse_argv(argc, argv);
        if (r <= 0)
                return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS; /* bad usage is 1, as in systemctl */

        c = calloc(1, sizeof(Client));
        if (!c)
                return log_oom(), EXIT_FAILURE;
        record_formatter_init(&c->formatter, arg_format);
        r = client_setup_command(c);
        if (r < 0)
                return EXIT_FAILURE;

        (void) signal(SIGPIPE, SIG_IGN);
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        (void) sigprocmask(SIG_BLOCK, &mask, NULL);

        r = sd_event_default(&c->event);
        if (r < 0)
                return log_error_errno(r, "Failed to allocate event loop: %m"), EXIT_FAILURE;
        r = sd_event_add_signal(c->event, NULL, SIGTERM, signal_handler, c);
        if (r >= 0)
                r = sd_event_add_signal(c->event, NULL, SIGINT, signal_handler, c);
        if (r >= 0)
                r = sd_event_add_time(c->event, &c->reconnect_timer, CLOCK_MONOTONIC, UINT64_MAX, 0, reconnect_handler, c);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the event loop: %m"), EXIT_FAILURE;
        (void) sd_event_source_set_enabled(c->reconnect_timer, SD_EVENT_OFF);

        r = output_new(c->event, STDOUT_FILENO, on_output_done, c, &c->output);
        if (r < 0)
                return log_oom(), EXIT_FAILURE;
        c->out = output_buffer(c->output);

        r = client_conn_new(c->event, arg_connect, &arg_conn, &callbacks, c, &c->conn);
        if (r == -EINVAL && arg_conn.tls)
                return EXIT_FAILURE; /* logged */
        if (r == -EINVAL || r == -EADDRNOTAVAIL) {
                log_error("Invalid server address '%s': expected HOST:PORT or the path of a socket.", arg_connect);
                return EXIT_FAILURE;
        }
        if (r < 0)
                return log_error_errno(r, "Failed to set up the connection: %m"), EXIT_FAILURE;

        if (c->interactive) {
                struct stat st;

                c->tty = isatty(STDIN_FILENO) && isatty(STDOUT_FILENO);
                c->stdin_is_file = fstat(STDIN_FILENO, &st) >= 0 && !S_ISFIFO(st.st_mode) && !S_ISSOCK(st.st_mode) && !S_ISCHR(st.st_mode);
                /* No O_NONBLOCK on stdin (it is shared with the shell): one read() per wakeup never blocks. */
                r = -EPERM;
                if (!c->stdin_is_file)
                        r = sd_event_add_io(c->event, &c->stdin_source, STDIN_FILENO, EPOLLIN, stdin_handler, c);
                if (r == -EPERM) /* a file, or a device epoll refuses (/dev/null) */
                        r = sd_event_add_defer(c->event, &c->stdin_source, stdin_file_handler, c);
                if (r < 0)
                        return log_error_errno(r, "Failed to watch standard input: %m"), EXIT_FAILURE;
                (void) sd_event_source_set_enabled(c->stdin_source, SD_EVENT_OFF);
        }

        r = client_conn_connect(c->conn);
        if (r < 0) {
                if (!arg_reconnect)
                        return log_error_errno(r, "Failed to connect to %s: %m", arg_connect),
                               r == -ECONNREFUSED || r == -ENOENT ? EXIT_NOT_RUNNING : EXIT_FAILURE;
                on_disconnected(c->conn, r, "Failed to connect.", c);
        }

        r = sd_event_loop(c->event);
        /* Whatever arrived is printed, but a reader that does not read any more cannot hold us. */
        (void) output_flush_blocking(c->output, 2000);
        if (r < 0)
                return log_error_errno(r, "Event loop failed: %m"), EXIT_FAILURE;
        return c->exit_code;
}

int main(int argc, char *argv[]) {
        int r = run(argc, argv);

        free(arg_sources);
        client_conn_options_done(&arg_conn);
        return r < 0 ? EXIT_FAILURE : r;
}
