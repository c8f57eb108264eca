/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <sys/resource.h>
#include <systemd/sd-daemon.h>

#include "dpiped-manager.h"
#include "log.h"
#include "util.h"

static const char *arg_runtime_dir = NULL;
static const char *arg_state_dir = NULL;
static const char *arg_listen = "127.0.0.1:7600";
static uint64_t arg_heartbeat_usec = DPIPED_HEARTBEAT_USEC_DEFAULT;
static uint64_t arg_client_timeout_usec = 0;
static bool arg_user = false;
static bool arg_read_only_clients = false;

static void help(void) {
        printf("%s [OPTIONS...]\n\n"
               "The dpipe pipeline manager: D-Bus control plane (org.dpipe.Pipeline1), source registry,\n"
               "and the client TCP server that streams the queue.\n\n"
               "  -h --help                 Show this help\n"
               "     --version              Show the version\n"
               "     --runtime-dir=DIR      Sockets directory (default: %s)\n"
               "     --state-dir=DIR        State directory: queue, registry (default: %s)\n"
               "     --listen=ADDR:PORT     Client TCP address (default: 127.0.0.1:7600)\n"
               "     --heartbeat-ms=N       Ping clients every N ms (default: 5000)\n"
               "     --client-timeout-ms=N  Close clients silent for N ms (default: 3 x heartbeat)\n"
               "     --read-only-clients    TCP clients may not change the pipeline\n"
               "     --user                 Use the user's session bus instead of the system bus\n"
               "     --bus-introspect       Print the D-Bus interfaces as XML and exit\n",
               program_invocation_short_name, default_runtime_dir(), default_state_dir());
}

static int parse_ms(const char *s, const char *what, uint64_t *ret) {
        uint64_t v;

        if (safe_atou64(s, &v) < 0 || v == 0 || v > UINT32_MAX) {
                fprintf(stderr, "%s: invalid %s \"%s\": a positive number of milliseconds expected\n",
                        program_invocation_short_name, what, s);
                return -EINVAL;
        }
        *ret = v * USEC_PER_MSEC;
        return 0;
}

/* Returns 1 to run, 0 to exit successfully, < 0 on error. */
static int parse_argv(int argc, char *argv[]) {
        enum {
                ARG_VERSION = 0x100,
                ARG_RUNTIME_DIR,
                ARG_STATE_DIR,
                ARG_LISTEN,
                ARG_HEARTBEAT_MS,
                ARG_CLIENT_TIMEOUT_MS,
                ARG_READ_ONLY_CLIENTS,
                ARG_USER,
                ARG_BUS_INTROSPECT,
        };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "runtime-dir", required_argument, NULL, ARG_RUNTIME_DIR },
                { "state-dir", required_argument, NULL, ARG_STATE_DIR },
                { "listen", required_argument, NULL, ARG_LISTEN },
                { "heartbeat-ms", required_argument, NULL, ARG_HEARTBEAT_MS },
                { "client-timeout-ms", required_argument, NULL, ARG_CLIENT_TIMEOUT_MS },
                { "read-only-clients", no_argument, NULL, ARG_READ_ONLY_CLIENTS },
                { "user", no_argument, NULL, ARG_USER },
                { "bus-introspect", no_argument, NULL, ARG_BUS_INTROSPECT },
                {}
        };
        int c, r;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("dpiped %s\n", dpipe_version());
                        return 0;
                case ARG_RUNTIME_DIR:
                        arg_runtime_dir = optarg;
                        break;
                case ARG_STATE_DIR:
                        arg_state_dir = optarg;
                        break;
                case ARG_LISTEN:
                        arg_listen = optarg;
                        break;
                case ARG_HEARTBEAT_MS:
                        r = parse_ms(optarg, "--heartbeat-ms", &arg_heartbeat_usec);
                        if (r < 0)
                                return r;
                        break;
                case ARG_CLIENT_TIMEOUT_MS:
                        r = parse_ms(optarg, "--client-timeout-ms", &arg_client_timeout_usec);
                        if (r < 0)
                                return r;
                        break;
                case ARG_READ_ONLY_CLIENTS:
                        arg_read_only_clients = true;
                        break;
                case ARG_USER:
                        arg_user = true;
                        break;
                case ARG_BUS_INTROSPECT:
                        r = bus_introspect_print();
                        return r < 0 ? r : 0;
                case '?':
                        return -EINVAL;
                default:
                        return -EINVAL;
                }
        if (optind < argc) {
                fprintf(stderr, "%s: unexpected argument \"%s\"\n", program_invocation_short_name, argv[optind]);
                return -EINVAL;
        }
        if (arg_client_timeout_usec == 0)
                arg_client_timeout_usec = 3 * arg_heartbeat_usec;
        return 1;
}

/* Many idle clients each hold an fd: raise the soft limit to the hard one, as systemd does. */
static void raise_fd_limit(void) {
        struct rlimit rl;

        if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= rl.rlim_max)
                return;
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
                log_debug_errno(errno, "Failed to raise the fd limit, ignoring: %m");
}

static int run(int argc, char *argv[]) {
        _cleanup_(manager_freep) Manager *m = NULL;
        ManagerConfig config = {};
        sigset_t mask;
        int r;

        log_setup();
        r = parse_argv(argc, argv);
        if (r <= 0)
                return r;

        config.runtime_dir = arg_runtime_dir ?: default_runtime_dir();
        config.state_dir = arg_state_dir ?: default_state_dir();
        config.heartbeat_usec = arg_heartbeat_usec;
        config.client_timeout_usec = arg_client_timeout_usec;
        config.user_bus = arg_user;
        config.read_only_clients = arg_read_only_clients;
        r = socket_address_parse(arg_listen, &config.listen_address);
        if (r < 0)
                return log_error_errno(r, "Invalid --listen address \"%s\": %m", arg_listen);

        raise_fd_limit();
        (void) signal(SIGPIPE, SIG_IGN);
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return log_error_errno(errno, "Failed to block signals: %m");

        r = manager_new(&config, &m);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the manager: %m");
        r = sd_event_add_signal(m->event, NULL, SIGTERM, NULL, NULL);
        if (r >= 0)
                r = sd_event_add_signal(m->event, NULL, SIGINT, NULL, NULL);
        if (r < 0)
                return log_error_errno(r, "Failed to handle signals: %m");

        r = manager_start(m);
        if (r < 0)
                return r;
        /* WatchdogSec= in dpiped.service: sd-event sends WATCHDOG=1 while the loop turns. */
        r = sd_event_set_watchdog(m->event, true);
        if (r < 0)
                log_warning_errno(r, "Failed to enable the watchdog, ignoring: %m");

        (void) sd_notify(false, "READY=1");
        manager_update_status(m);
        log_info("dpiped %s running (runtime dir %s, state dir %s).", dpipe_version(), m->runtime_dir, m->state_dir);

        r = sd_event_loop(m->event);
        if (r < 0)
                return log_error_errno(r, "Event loop failed: %m");
        (void) sd_notify(false, "STOPPING=1\nSTATUS=Shutting down.");
        log_info("dpiped stopping.");
        return r == 0 ? 0 : -ECONNRESET;
}

int main(int argc, char *argv[]) {
        int r = run(argc, argv);
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
