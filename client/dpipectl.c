/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* dpipectl: control dpiped over D-Bus, in the manner of systemctl and networkctl. */

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dpipectl.h"
#include "json-util.h"
#include "log.h"
#include "pager.h"
#include "util.h"

bool arg_json = false;
JsonMode arg_json_mode = JSON_OFF;
bool arg_quiet = false;
bool arg_verb_changes = false;
bool arg_no_pager = false;
bool arg_no_legend = false;
bool arg_user = false;
bool arg_colors = false;
const char *arg_connect = DEFAULT_CONNECT_ADDRESS;
ClientConnOptions arg_conn = {};
static const char *arg_token_file = NULL;
static bool arg_connect_set = false;
SubscribeFrom arg_from = { .kind = SUBSCRIBE_FROM_LATEST };
bool arg_from_set = false;
char **arg_sources = NULL;
size_t arg_n_sources = 0;
uint64_t arg_lines = 0;
bool arg_lines_set = false;
bool arg_no_follow = false;
uint64_t arg_top_interval_usec = USEC_PER_SEC;

const char *arg_type = NULL;
const char *arg_address = NULL;
static const char *arg_transform = NULL;
char **arg_options = NULL;
size_t arg_n_options = 0;

/* Every option goes as a string, as typed: its type is the connector's to know (its option table,
 * `dpipe-connector-TYPE --list-options`), and the connector parses numbers and booleans from text. */
static int bus_add_option(sd_bus_message *m, const char *key, const char *value) {
        int r;

        r = sd_bus_message_open_container(m, 'e', "sv");
        if (r < 0)
                return r;
        r = sd_bus_message_append_basic(m, 's', key);
        if (r < 0)
                return r;
        r = sd_bus_message_append(m, "v", "s", value);
        if (r < 0)
                return r;
        return sd_bus_message_close_container(m);
}

/* add-source and add-sink: AddSource/AddSink with --address, --transform and every --option. */
static int verb_add(sd_bus *bus, int argc, char **argv) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        bool sink = streq(argv[0], "add-sink");
        const char *name = argv[1], *method = sink ? "AddSink" : "AddSource", *path;
        int r;

        r = sd_bus_message_new_method_call(bus, &m, DPIPED_BUS_NAME, DPIPED_BUS_PATH, DPIPED_MANAGER_INTERFACE, method);
        if (r < 0)
                return log_error_errno(r, "Failed to create bus message: %m"), EXIT_FAILURE;
        r = sd_bus_message_append(m, "ss", name, arg_type);
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r >= 0 && arg_address)
                r = bus_add_option(m, "address", arg_address);
        if (r >= 0 && arg_transform)
                r = bus_add_option(m, "transform", arg_transform);
        for (size_t i = 0; r >= 0 && i < arg_n_options; i++) {
                _cleanup_free_ char *key = NULL;
                const char *value;

                r = option_assignment_split(arg_options[i], &key, &value);
                if (r >= 0)
                        r = bus_add_option(m, key, value);
        }
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r < 0)
                return log_error_errno(r, "Failed to build the %s call: %m", method), EXIT_FAILURE;

        r = sd_bus_call(bus, m, 0, &error, &reply);
        if (r < 0) {
                log_error("Failed to add %s %s: %s", sink ? "sink" : "source", name, bus_error_text(&error, r));
                return bus_error_exit_status(&error, r);
        }
        r = sd_bus_message_read(reply, "o", &path);
        if (r < 0)
                return log_error_errno(r, "Failed to parse the %s reply: %m", method), EXIT_FAILURE;
        if (arg_json) {
                _cleanup_json_ struct json_object *o = json_object_new_object();

                if (!o || json_object_object_add(o, "name", json_object_new_string(name)) < 0 ||
                    json_object_object_add(o, "path", json_object_new_string(path)) < 0)
                        return log_oom(), EXIT_FAILURE;
                json_print(o);
        }
        return EXIT_SUCCESS;
}

/* RemoveSource, PauseSource, ResumeSource, RemoveSink: one name in, nothing out. */
static int verb_simple(sd_bus *bus, int argc, char **argv) {
        static const struct {
                const char *verb, *method, *what, *object;
        } table[] = {
                { "remove-source", "RemoveSource", "remove", "source" },
                { "pause-source", "PauseSource", "pause", "source" },
                { "resume-source", "ResumeSource", "resume", "source" },
                { "remove-sink", "RemoveSink", "remove", "sink" },
        };
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        int r, ret = EXIT_SUCCESS;

        for (size_t i = 0; i < ELEMENTSOF(table); i++) {
                if (!streq(argv[0], table[i].verb))
                        continue;
                /* Several names may be given, like "systemctl stop a b": each is tried. */
                for (int j = 1; j < argc; j++) {
                        r = sd_bus_call_method(bus, DPIPED_BUS_NAME, DPIPED_BUS_PATH, DPIPED_MANAGER_INTERFACE, table[i].method, &error,
                                               NULL, "s", argv[j]);
                        if (r < 0) {
                                log_error("Failed to %s %s %s: %s", table[i].what, table[i].object, argv[j],
                                          bus_error_text(&error, r));
                                /* The first failure's code, as systemctl does for several units. */
                                if (ret == EXIT_SUCCESS)
                                        ret = bus_error_exit_status(&error, r);
                                sd_bus_error_free(&error);
                        }
                }
                return ret;
        }
        return EXIT_USAGE;
}

/* Reload(): dpiped reads the dpipe.source(5) and dpipe.sink(5) files again and applies what changed. */
static int verb_reload(sd_bus *bus, int argc, char **argv) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        r = sd_bus_call_method(bus, DPIPED_BUS_NAME, DPIPED_BUS_PATH, DPIPED_MANAGER_INTERFACE, "Reload", &error, NULL,
                               NULL);
        if (r < 0) {
                log_error("Failed to reload the source and sink files: %s", bus_error_text(&error, r));
                return bus_error_exit_status(&error, r);
        }
        return EXIT_SUCCESS;
}

typedef struct Verb {
        const char *name;
        int min_args, max_args; /* words after the verb; -1: any number */
        bool needs_bus;
        bool changes;           /* changes the pipeline (root only): the words of an access denial */
        int (*dispatch)(sd_bus *bus, int argc, char **argv);
} Verb;

/* The first one is the default verb, like systemctl's list-units. */
static const Verb verbs[] = {
        { "list-sources", 0, 0, true, false, verb_list_sources },
        { "add-source", 1, 1, true, true, verb_add },
        { "remove-source", 1, -1, true, true, verb_simple },
        { "pause-source", 1, -1, true, true, verb_simple },
        { "resume-source", 1, -1, true, true, verb_simple },
        { "reload", 0, 0, true, true, verb_reload },
        { "add-sink", 1, 1, true, true, verb_add },
        { "remove-sink", 1, -1, true, true, verb_simple },
        { "list-sinks", 0, 0, true, false, verb_list_sinks },
        { "status", 0, -1, true, false, verb_status },
        { "monitor", 0, 0, true, false, verb_monitor },
        { "tail", 0, 0, false, false, verb_tail },
        { "test-transform", 1, 1, false, false, verb_test_transform },
        { "top", 0, 0, true, false, verb_top },
};

static void help(void) {
        printf("%s [OPTIONS...] [COMMAND] ...\n\n"
               "Control the dpipe pipeline (dpiped) over D-Bus.\n\n"
               "Commands (default: list-sources):\n"
               "  add-source NAME --type=TYPE --address=ADDR [--option=KEY=VALUE...]\n"
               "                              Register and start a source\n"
               "  remove-source NAME...       Stop and forget sources\n"
               "  pause-source NAME...        Stop ingestion, keep the definition\n"
               "  resume-source NAME...       Restart ingestion\n"
               "  reload                      Read the source files (dpipe.source(5)) again\n"
               "  list-sources                List sources\n"
               "  add-sink NAME --type=TYPE --address=ADDR [--option=KEY=VALUE...]\n"
               "                              Register and start a sink\n"
               "  remove-sink NAME...         Stop and forget sinks\n"
               "  list-sinks                  List sinks\n"
               "  status [NAME...]            Show the pipeline or sources\n"
               "  tail                        Follow records (client protocol, not D-Bus)\n"
               "  monitor                     Print source changes as they happen\n"
               "  test-transform PROGRAM      Show what a transform makes of the JSON Lines on stdin\n"
               "  top                         Live table of sources and subscriptions (q quits)\n\n"
               "Options:\n"
               "  -h --help                   Show this help\n"
               "     --version                Show package version\n"
               "     --user                   Talk to the session bus instead of the system bus\n"
               "  -j --json[=MODE]            JSON output: pretty, short or off; bare --json (-j):\n"
               "                              pretty on a terminal, short (one line) otherwise\n"
               "  -q --quiet                  No legend, banner or hints; status NAME: exit code only\n"
               "     --no-pager               Do not pipe output into a pager\n"
               "     --no-legend              Do not print the column headers and footer\n"
               "  -t --type=TYPE              add-source: connector type (tcp, http, ...);\n"
               "                              add-sink: sink type (nats, file, ...)\n"
               "  -a --address=ADDR           add-source: host:port or URL of the source;\n"
               "                              add-sink: where the sink delivers\n"
               "  -o --option=KEY=VALUE       add-source: another option (format, query,\n"
               "                              interval_ms, heartbeat_ms, timeout_ms, csv_header);\n"
               "                              add-sink: an option of the sink type\n"
               "     --transform=PROGRAM      add-source: shape each record (see dpipe-connector(7))\n"
               "     --from=POS               tail: begin at earliest, latest (default) or an offset\n"
               "     --source=NAME            tail: only records of this source (repeatable)\n"
               "  -n --lines=N                tail: begin with the last N records of the queue\n"
               "     --no-follow              tail: stop at the end of what is queued now\n"
               "     --interval=SEC           top: seconds between refreshes (default 1; 0.1-3600)\n"
               "     --connect=ADDRESS        tail: dpiped's client.sock (default %s),\n"
               "                              another socket's /PATH, or HOST:PORT (TCP)\n"
               "     --token-file=PATH        tail: token for hello on TCP (default: $DPIPE_TOKEN)\n"
               "     --tls                    tail: TLS on TCP, the server's certificate verified\n"
               "     --tls-ca=PATH            tail: ... against these CAs (default: the system's)\n"
               "     --tls-cert=PATH          tail: present this client certificate\n"
               "     --tls-key=PATH           tail: ... with this key\n",
               program_invocation_short_name, DEFAULT_CONNECT_ADDRESS);
}

static int strv_push(char ***v, size_t *n, char *s) {
        char **a = realloc(*v, (*n + 1) * sizeof(char *));

        if (!a)
                return log_oom();
        a[(*n)++] = s;
        *v = a;
        return 0;
}

/* Returns 1 to go on, 0 to exit successfully (--help), -EINVAL for bad usage. */
static int parse_argv(int argc, char *argv[]) {
        enum {
                ARG_VERSION = 0x100,
                ARG_USER,
                ARG_SYSTEM,
                ARG_JSON,
                ARG_NO_PAGER,
                ARG_NO_LEGEND,
                ARG_FROM,
                ARG_SOURCE,
                ARG_CONNECT,
                ARG_NO_FOLLOW,
                ARG_TRANSFORM,
                ARG_INTERVAL,
        };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "user", no_argument, NULL, ARG_USER },
                { "system", no_argument, NULL, ARG_SYSTEM },
                { "json", optional_argument, NULL, ARG_JSON },
                { "quiet", no_argument, NULL, 'q' },
                { "no-pager", no_argument, NULL, ARG_NO_PAGER },
                { "no-legend", no_argument, NULL, ARG_NO_LEGEND },
                { "type", required_argument, NULL, 't' },
                { "address", required_argument, NULL, 'a' },
                { "option", required_argument, NULL, 'o' },
                { "from", required_argument, NULL, ARG_FROM },
                { "source", required_argument, NULL, ARG_SOURCE },
                { "lines", required_argument, NULL, 'n' },
                { "connect", required_argument, NULL, ARG_CONNECT },
                { "no-follow", no_argument, NULL, ARG_NO_FOLLOW },
                CLIENT_CONN_LONG_OPTIONS,
                { "transform", required_argument, NULL, ARG_TRANSFORM },
                { "interval", required_argument, NULL, ARG_INTERVAL },
                {}
        };
        int c, r;

        while ((c = getopt_long(argc, argv, "hjqt:a:o:n:", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("dpipectl %s\n", dpipe_version());
                        return 0;
                case ARG_USER:
                        arg_user = true;
                        break;
                case ARG_SYSTEM:
                        arg_user = false;
                        break;
                case 'j':
                        arg_json_mode = JSON_AUTO;
                        break;
                case ARG_JSON:
                        if (!optarg)
                                arg_json_mode = JSON_AUTO;
                        else if (streq(optarg, "pretty"))
                                arg_json_mode = JSON_PRETTY;
                        else if (streq(optarg, "short"))
                                arg_json_mode = JSON_SHORT;
                        else if (streq(optarg, "off"))
                                arg_json_mode = JSON_OFF;
                        else if (streq(optarg, "help")) {
                                puts("short\npretty\noff");
                                return 0;
                        } else {
                                log_error("Invalid --json=%s: expected pretty, short or off.", optarg);
                                return -EINVAL;
                        }
                        break;
                case 'q':
                        arg_quiet = true;
                        break;
                case ARG_NO_PAGER:
                        arg_no_pager = true;
                        break;
                case ARG_NO_LEGEND:
                        arg_no_legend = true;
                        break;
                case 't':
                        arg_type = optarg;
                        break;
                case 'a':
                        arg_address = optarg;
                        break;
                case 'o': {
                        _cleanup_free_ char *key = NULL;
                        const char *value;

                        r = option_assignment_split(optarg, &key, &value);
                        if (r == -ENOMEM)
                                return log_oom();
                        if (r < 0) {
                                log_error("Invalid --option=%s: expected KEY=VALUE.", optarg);
                                return -EINVAL;
                        }
                        r = strv_push(&arg_options, &arg_n_options, optarg);
                        if (r < 0)
                                return r;
                        break;
                }
                case ARG_FROM:
                        if (subscribe_from_parse(optarg, &arg_from) < 0) {
                                log_error("Invalid --from=%s: expected earliest, latest or an offset.", optarg);
                                return -EINVAL;
                        }
                        arg_from_set = true;
                        break;
                case ARG_SOURCE:
                        r = strv_push(&arg_sources, &arg_n_sources, optarg);
                        if (r < 0)
                                return r;
                        break;
                case 'n':
                        if (safe_atou64(optarg, &arg_lines) < 0) {
                                log_error("Invalid --lines=%s: expected a number.", optarg);
                                return -EINVAL;
                        }
                        arg_lines_set = true;
                        break;
                case ARG_INTERVAL: {
                        char *end = NULL;
                        double sec;

                        errno = 0;
                        sec = strtod(optarg, &end);
                        if (errno != 0 || end == optarg || *end != 0 || !(sec >= 0.1 && sec <= 3600)) {
                                log_error("Invalid --interval=%s: expected seconds, 0.1 to 3600.", optarg);
                                return -EINVAL;
                        }
                        arg_top_interval_usec = (uint64_t) (sec * USEC_PER_SEC);
                        break;
                }
                case ARG_CONNECT:
                        arg_connect = optarg;
                        arg_connect_set = true;
                        break;
                case ARG_NO_FOLLOW:
                        arg_no_follow = true;
                        break;
                case ARG_TRANSFORM:
                        arg_transform = optarg;
                        break;
                case '?':
                        return -EINVAL;
                default:
                        if (client_conn_options_parse(&arg_conn, &arg_token_file, c, optarg) > 0)
                                break;
                        return -EINVAL;
                }
        arg_json = arg_json_mode != JSON_OFF;
        if (arg_quiet)
                arg_no_legend = true;
        return 1;
}

/* Options that belong to one verb are refused elsewhere, so that a typo does not go unnoticed. */
static int check_verb_options(const char *verb) {
        bool add = streq(verb, "add-source") || streq(verb, "add-sink"), tail = streq(verb, "tail");

        if (!add && (arg_type || arg_address || arg_n_options > 0)) {
                log_error("--type=, --address= and --option= are only valid with add-source and add-sink.");
                return -EINVAL;
        }
        if (!streq(verb, "add-source") && arg_transform) {
                log_error("--transform= is only valid with add-source.");
                return -EINVAL;
        }
        if (!tail && (arg_from_set || arg_n_sources > 0 || arg_lines_set || arg_no_follow || arg_connect_set ||
                      client_conn_options_given(&arg_conn, arg_token_file))) {
                log_error("--from=, --source=, --lines=, --no-follow, --connect=, --token-file= and --tls* are only "
                          "valid with tail.");
                return -EINVAL;
        }
        if (client_conn_options_verify(&arg_conn, arg_connect) < 0)
                return -EINVAL;
        if (tail && client_conn_options_load_token(&arg_conn, arg_token_file) < 0)
                return -EINVAL;
        if (arg_from_set && arg_lines_set) {
                log_error("--from= and --lines= both say where to begin: give one of them.");
                return -EINVAL;
        }
        if (add && !arg_type) {
                log_error("%s needs --type=TYPE.", verb);
                return -EINVAL;
        }
        if (add) {
                size_t n = !!arg_address;

                /* Each key once: the a{sv} would otherwise carry two values for it. */
                for (size_t i = 0; i < arg_n_options; i++) {
                        const char *eq = strchr(arg_options[i], '=');

                        n += strncmp(arg_options[i], "address=", 8) == 0;
                        if (arg_transform && strncmp(arg_options[i], "transform=", 10) == 0) {
                                log_error("The transform is given twice (--transform= and --option=transform=).");
                                return -EINVAL;
                        }
                        for (size_t j = 0; j < i; j++)
                                if (strncmp(arg_options[i], arg_options[j], (size_t) (eq - arg_options[i]) + 1) == 0) {
                                        log_error("Option %.*s given twice.", (int) (eq - arg_options[i]), arg_options[i]);
                                        return -EINVAL;
                                }
                }
                if (n == 0) {
                        log_error("%s needs --address=ADDR.", verb);
                        return -EINVAL;
                }
                if (n > 1) {
                        log_error("The address is given twice (--address= and --option=address=).");
                        return -EINVAL;
                }
        }
        return 0;
}

int bus_connect(sd_bus **ret) {
        int r;

        r = arg_user ? sd_bus_open_user(ret) : sd_bus_open_system(ret);
        if (r < 0)
                return log_error_errno(r, "Failed to connect to the %s bus: %m", arg_user ? "user" : "system");
        /* Let polkit ask the user where it can (like systemctl does). */
        (void) sd_bus_set_allow_interactive_authorization(*ret, isatty(STDIN_FILENO) > 0);
        return 0;
}

static int run(int argc, char *argv[]) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        const Verb *verb = NULL;
        char **words;
        int n_words, r;

        log_set_console_prefix(program_invocation_short_name);

        r = parse_argv(argc, argv);
        if (r <= 0)
                return r < 0 ? EXIT_USAGE : EXIT_SUCCESS;

        words = argv + optind;
        n_words = argc - optind;
        if (n_words == 0) {
                /* "dpipectl" alone lists the sources, as "systemctl" alone lists the units. */
                static char *default_words[] = { (char *) "list-sources", NULL };

                words = default_words;
                n_words = 1;
        }
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                if (streq(words[0], verbs[i].name))
                        verb = &verbs[i];
        if (!verb) {
                log_error("Unknown command '%s'; see --help.", words[0]);
                return EXIT_USAGE;
        }
        if (n_words - 1 < verb->min_args) {
                log_error("Too few arguments for %s; see --help.", verb->name);
                return EXIT_USAGE;
        }
        if (verb->max_args >= 0 && n_words - 1 > verb->max_args) {
                log_error("Too many arguments for %s; see --help.", verb->name);
                return EXIT_USAGE;
        }
        if (check_verb_options(verb->name) < 0)
                return EXIT_USAGE;
        arg_verb_changes = verb->changes;

        arg_colors = colors_enabled();

        if (verb->needs_bus) {
                r = bus_connect(&bus);
                if (r < 0)
                        return EXIT_FAILURE;
        }
        return verb->dispatch(bus, n_words, words);
}

int main(int argc, char *argv[]) {
        int r = run(argc, argv);

        pager_close();
        free(arg_options);
        free(arg_sources);
        client_conn_options_done(&arg_conn);
        return r;
}
