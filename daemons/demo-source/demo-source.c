/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* dpipe-source: the external data source server. Loads a CSV or JSON file at start-up and serves
 * its rows over TCP (real-time, line protocol) and HTTP (REST). See dpipe-source(1). */

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <systemd/sd-daemon.h>

#include "daemon-util.h"
#include "log.h"
#include "demo-manager.h"
#include "util.h"

#define DEFAULT_TCP_LISTEN "127.0.0.1:7700"
#define DEFAULT_HTTP_LISTEN "127.0.0.1:7701"

static bool arg_check = false;

static void help(void *userdata) {
        printf("%s --file=PATH [OPTIONS...]\n\n"
               "Serve the rows of a CSV or JSON file over TCP (real-time) and HTTP (REST).\n\n"
               "  -h --help                  Show this help\n"
               "     --version               Show package version\n"
               "  -f --file=PATH             Data file (.csv, .json, .jsonl)\n"
               "     --format=csv|json       File format, if the name does not tell\n"
               "     --records=POINTER       JSON Pointer to the array of records in a JSON document\n"
               "     --infer-types           CSV: numbers, true/false and empty (null) as JSON types\n"
               "     --tcp=ADDR:PORT         Serve the real-time line protocol here\n"
               "     --http=ADDR:PORT        Serve REST over HTTP here\n"
               "                             (neither given: --tcp=" DEFAULT_TCP_LISTEN " --http=" DEFAULT_HTTP_LISTEN ")\n"
               "     --rate=N                Rows per second per TCP subscriber (0 = unpaced)\n"
               "     --loop                  Start over at the end of the data (seq keeps growing)\n"
               "     --follow                Load rows appended to the file and push them\n"
               "     --heartbeat-ms=N        Ping TCP peers every N ms (default 5000)\n"
               "     --timeout-ms=N          Drop TCP peers silent for N ms (default 3 x heartbeat)\n"
               "     --max-clients=N         TCP connections at most (default 10000)\n"
               "     --client-buffer=BYTES   Pending output per TCP client at most (default 4194304)\n"
               "     --http-max-limit=N      Largest page of /records (default 1000)\n"
               "     --query-max-limit=N     Most rows one TCP query returns (default 10000)\n"
               "     --check                 Load and validate the file, then exit\n"
               "     --runtime-dir=DIR       Runtime directory (unused, accepted for uniformity)\n"
               "     --state-dir=DIR         State directory (unused, accepted for uniformity)\n",
               program_invocation_short_name);
}

static int parse_u64(const char *opt, const char *s, uint64_t min, uint64_t *ret) {
        uint64_t u;

        if (safe_atou64(s, &u) < 0 || u < min) {
                fprintf(stderr, "%s: invalid value for %s: '%s'\n", program_invocation_short_name, opt, s);
                return -EINVAL;
        }
        *ret = u;
        return 0;
}

static int parse_argv(int argc, char *argv[], Manager *m) {
        enum {
                ARG_FORMAT = DAEMON_ARG_OWN,
                ARG_RECORDS,
                ARG_INFER_TYPES,
                ARG_TCP,
                ARG_HTTP,
                ARG_RATE,
                ARG_LOOP,
                ARG_FOLLOW,
                ARG_HEARTBEAT_MS,
                ARG_TIMEOUT_MS,
                ARG_MAX_CLIENTS,
                ARG_CLIENT_BUFFER,
                ARG_HTTP_MAX_LIMIT,
                ARG_QUERY_MAX_LIMIT,
                ARG_CHECK,
                ARG_RUNTIME_DIR,
                ARG_STATE_DIR,
        };
        static const struct option options[] = {
                DAEMON_COMMON_OPTIONS,
                { "file", required_argument, NULL, 'f' },
                { "format", required_argument, NULL, ARG_FORMAT },
                { "records", required_argument, NULL, ARG_RECORDS },
                { "infer-types", no_argument, NULL, ARG_INFER_TYPES },
                { "tcp", required_argument, NULL, ARG_TCP },
                { "http", required_argument, NULL, ARG_HTTP },
                { "rate", required_argument, NULL, ARG_RATE },
                { "loop", no_argument, NULL, ARG_LOOP },
                { "follow", no_argument, NULL, ARG_FOLLOW },
                { "heartbeat-ms", required_argument, NULL, ARG_HEARTBEAT_MS },
                { "timeout-ms", required_argument, NULL, ARG_TIMEOUT_MS },
                { "max-clients", required_argument, NULL, ARG_MAX_CLIENTS },
                { "client-buffer", required_argument, NULL, ARG_CLIENT_BUFFER },
                { "http-max-limit", required_argument, NULL, ARG_HTTP_MAX_LIMIT },
                { "query-max-limit", required_argument, NULL, ARG_QUERY_MAX_LIMIT },
                { "check", no_argument, NULL, ARG_CHECK },
                { "runtime-dir", required_argument, NULL, ARG_RUNTIME_DIR },
                { "state-dir", required_argument, NULL, ARG_STATE_DIR },
                {}
        };
        uint64_t u, timeout_ms = 0;
        char **target;
        int c;

        while ((c = daemon_getopt(argc, argv, "hf:", options, "dpipe-source", help, NULL)) >= 0) {
                target = NULL;
                switch (c) {
                case 'f':
                        target = &m->path;
                        break;
                case ARG_FORMAT:
                        if (data_format_from_string(optarg, &m->load_options.format) < 0) {
                                fprintf(stderr, "%s: unknown --format '%s' (csv, json)\n",
                                        program_invocation_short_name, optarg);
                                return -EINVAL;
                        }
                        break;
                case ARG_RECORDS:
                        if (optarg[0] != 0 && optarg[0] != '/') {
                                fprintf(stderr, "%s: --records= takes a JSON Pointer, like /data/items\n",
                                        program_invocation_short_name);
                                return -EINVAL;
                        }
                        target = &m->records_pointer;
                        break;
                case ARG_INFER_TYPES:
                        m->load_options.infer_types = true;
                        break;
                case ARG_TCP:
                        target = &m->tcp_listen;
                        break;
                case ARG_HTTP:
                        target = &m->http_listen;
                        break;
                case ARG_RATE:
                        if (parse_u64("--rate", optarg, 0, &m->rate) < 0)
                                return -EINVAL;
                        break;
                case ARG_LOOP:
                        m->loop = true;
                        break;
                case ARG_FOLLOW:
                        m->load_options.follow = true;
                        break;
                case ARG_HEARTBEAT_MS:
                        if (parse_u64("--heartbeat-ms", optarg, 1, &u) < 0)
                                return -EINVAL;
                        m->heartbeat_usec = u * USEC_PER_MSEC;
                        break;
                case ARG_TIMEOUT_MS:
                        if (parse_u64("--timeout-ms", optarg, 1, &timeout_ms) < 0)
                                return -EINVAL;
                        break;
                case ARG_MAX_CLIENTS:
                        if (parse_u64("--max-clients", optarg, 1, &u) < 0)
                                return -EINVAL;
                        m->max_clients = (size_t) u;
                        break;
                case ARG_CLIENT_BUFFER:
                        if (parse_u64("--client-buffer", optarg, 1024, &u) < 0)
                                return -EINVAL;
                        m->client_buffer_max = (size_t) u;
                        break;
                case ARG_HTTP_MAX_LIMIT:
                        if (parse_u64("--http-max-limit", optarg, 1, &u) < 0)
                                return -EINVAL;
                        m->http_max_limit = (size_t) u;
                        break;
                case ARG_QUERY_MAX_LIMIT:
                        if (parse_u64("--query-max-limit", optarg, 1, &u) < 0)
                                return -EINVAL;
                        m->query_max_limit = (size_t) u;
                        break;
                case ARG_CHECK:
                        arg_check = true;
                        break;
                case ARG_RUNTIME_DIR:
                case ARG_STATE_DIR:
                        break;
                default:
                        abort();
                }
                if (target) {
                        free(*target);
                        *target = strdup(optarg);
                        if (!*target)
                                return log_oom();
                }
        }

        if (c != -1)
                return c == DAEMON_GETOPT_DONE ? 0 : -EINVAL;
        if (!m->path) {
                fprintf(stderr, "%s: --file=PATH is required\n", program_invocation_short_name);
                return -EINVAL;
        }
        /* Neither side asked for: serve both on their default local ports. */
        if (!arg_check && !m->tcp_listen && !m->http_listen) {
                m->tcp_listen = strdup(DEFAULT_TCP_LISTEN);
                m->http_listen = strdup(DEFAULT_HTTP_LISTEN);
                if (!m->tcp_listen || !m->http_listen)
                        return log_oom();
        }
        m->load_options.records_pointer = m->records_pointer;
        m->timeout_usec = timeout_ms > 0 ? timeout_ms * USEC_PER_MSEC : 3 * m->heartbeat_usec;
        return 1;
}

/* 1000+ clients need as many fds: daemon_setup() took the hard limit; refuse clients politely (an
 * error line) before running out of fds. */
static void limit_clients_to_fds(Manager *m) {
        struct rlimit rl;

        if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
                return;
        if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur > 128 && m->max_clients > rl.rlim_cur - 64) {
                log_debug("Limiting TCP clients to %zu (file descriptor limit %llu).", (size_t) (rl.rlim_cur - 64),
                          (unsigned long long) rl.rlim_cur);
                m->max_clients = (size_t) (rl.rlim_cur - 64);
        }
}

static int run(int argc, char *argv[]) {
        _cleanup_(manager_freep) Manager *m = NULL;
        int r;

        r = manager_new(&m);
        if (r < 0)
                return log_oom();
        r = parse_argv(argc, argv, m);
        if (r <= 0)
                return r;

        limit_clients_to_fds(m);

        r = manager_load(m);
        if (r < 0)
                return r;
        if (arg_check)
                return 0;

        r = manager_start(m);
        if (r < 0)
                return r;

        (void) sd_notify(false, "READY=1");
        manager_update_status(m);
        r = sd_event_loop(m->event);
        if (r < 0)
                return log_error_errno(r, "Event loop failed: %m");
        return 0;
}

DEFINE_MAIN_FUNCTION(run);
