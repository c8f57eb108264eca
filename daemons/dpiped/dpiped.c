/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>
#include <systemd/sd-daemon.h>

#include "daemon-util.h"
#include "dpiped-client.h"
#include "dpiped-manager.h"
#include "dpiped-tokens.h"
#include "line.h"
#include "log.h"
#include "tls.h"
#include "nats-address.h"
#include "pipeline-id.h"
#include "util.h"

/* The systemd credential (LoadCredential=dpipe-tokens:PATH) read when --tokens is not given. */
#define TOKENS_CREDENTIAL "dpipe-tokens"
#define ADMIN_GROUP_DEFAULT "dpipe"

static const char *arg_runtime_dir = NULL;
static const char *arg_state_dir = NULL;
static const char *arg_listen = "127.0.0.1:7600";
static uint64_t arg_heartbeat_usec = DPIPED_HEARTBEAT_USEC_DEFAULT;
static uint64_t arg_client_timeout_usec = 0;
static bool arg_user = false;
static bool arg_read_only_clients = false;
static const char *arg_tokens = NULL;
static const char *arg_tls_cert = NULL;
static const char *arg_tls_key = NULL;
static const char *arg_tls_client_ca = NULL;
static bool arg_allow_plaintext = false;
static const char *arg_admin_group = NULL;
static uint64_t arg_max_client_memory = CLIENT_MEMORY_DEFAULT;
static unsigned arg_max_clients = CLIENTS_MAX_DEFAULT;
static const char *arg_sources_dirs = NULL;
static const char *arg_sinks_dirs = NULL;
static const char *arg_pipeline_id = NULL;
static const char *arg_stream = NULL;
static const char *arg_stream_name = "DPIPE";
static const char *arg_metrics = NULL;
static uint64_t arg_degraded_usec = DPIPED_DEGRADED_USEC_DEFAULT;

static void help(void *userdata) {
        printf("%s [OPTIONS...]\n\n"
               "The dpipe pipeline manager: D-Bus control plane (org.dpipe.Pipeline1), source registry,\n"
               "and the client TCP server that streams the queue.\n\n"
               "  -h --help                 Show this help\n"
               "     --version              Show the version\n"
               "     --runtime-dir=DIR      Sockets directory (default: %s)\n"
               "     --state-dir=DIR        State directory: queue, registry (default: %s)\n"
               "     --listen=ADDR:PORT     Client TCP address (default: 127.0.0.1:7600; none: no TCP)\n"
               "     --heartbeat-ms=N       Ping clients every N ms (default: 5000)\n"
               "     --client-timeout-ms=N  Close clients silent for N ms (default: 3 x heartbeat)\n"
               "     --read-only-clients    No client may change the pipeline (D-Bus only)\n"
               "     --admin-group=GROUP    Members may change the pipeline over client.sock\n"
               "                            (default: " ADMIN_GROUP_DEFAULT ")\n"
               "     --tokens=PATH          Tokens for TCP clients: lines NAME read|admin SECRET\n"
               "                            (default: the credential " TOKENS_CREDENTIAL ", if any)\n"
               "     --tls-cert=PATH        Serve TLS on every TCP listener with this certificate\n"
               "     --tls-key=PATH         ... and its key\n"
               "     --tls-client-ca=PATH   Require client certificates signed by this CA\n"
               "     --allow-plaintext      Allow a TCP listener without TLS on a non-loopback address\n"
               "     --max-clients=N        Most clients at once (default: %u)\n"
               "     --sources-dirs=DIR[:DIR...]\n"
               "                            Where dpipe.source(5) files are read, highest\n"
               "                            precedence first (default: /etc/dpipe/sources.d,\n"
               "                            /run/dpipe/sources.d, /usr/lib/dpipe/sources.d)\n"
               "     --max-client-memory=BYTES\n"
               "                            Most input buffered for all clients together\n"
               "                            (default: 64M)\n"
               "     --pipeline-id=ID       This pipeline's id, handed to its sinks (default:\n"
               "                            derived from /etc/machine-id)\n"
               "     --stream=nats://HOST:PORT[,nats://HOST:PORT...]\n"
               "                            Serve the client protocol from a JetStream stream\n"
               "                            instead of the local queue\n"
               "     --stream-name=NAME     The stream (default: DPIPE)\n"
               "     --metrics=ADDR:PORT    Serve GET /metrics (Prometheus) there (default: off)\n"
               "     --degraded-sec=SEC     A source that skipped records is degraded this long\n"
               "                            (default: 60; 0: never degraded)\n"
               "     --user                 Use the user's session bus instead of the system bus\n"
               "     --bus-introspect       Print the D-Bus interfaces as XML and exit\n",
               program_invocation_short_name, default_runtime_dir(), default_state_dir(), CLIENTS_MAX_DEFAULT);
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
                ARG_RUNTIME_DIR = DAEMON_ARG_OWN,
                ARG_STATE_DIR,
                ARG_LISTEN,
                ARG_HEARTBEAT_MS,
                ARG_CLIENT_TIMEOUT_MS,
                ARG_READ_ONLY_CLIENTS,
                ARG_ADMIN_GROUP,
                ARG_TOKENS,
                ARG_TLS_CERT,
                ARG_TLS_KEY,
                ARG_TLS_CLIENT_CA,
                ARG_ALLOW_PLAINTEXT,
                ARG_MAX_CLIENTS,
                ARG_MAX_CLIENT_MEMORY,
                ARG_SOURCES_DIRS,
                ARG_SINKS_DIRS,
                ARG_USER,
                ARG_BUS_INTROSPECT,
                ARG_PIPELINE_ID,
                ARG_STREAM,
                ARG_STREAM_NAME,
                ARG_METRICS,
                ARG_DEGRADED_SEC,
        };
        static const struct option options[] = {
                DAEMON_COMMON_OPTIONS,
                { "runtime-dir", required_argument, NULL, ARG_RUNTIME_DIR },
                { "state-dir", required_argument, NULL, ARG_STATE_DIR },
                { "listen", required_argument, NULL, ARG_LISTEN },
                { "heartbeat-ms", required_argument, NULL, ARG_HEARTBEAT_MS },
                { "client-timeout-ms", required_argument, NULL, ARG_CLIENT_TIMEOUT_MS },
                { "read-only-clients", no_argument, NULL, ARG_READ_ONLY_CLIENTS },
                { "admin-group", required_argument, NULL, ARG_ADMIN_GROUP },
                { "tokens", required_argument, NULL, ARG_TOKENS },
                { "tls-cert", required_argument, NULL, ARG_TLS_CERT },
                { "tls-key", required_argument, NULL, ARG_TLS_KEY },
                { "tls-client-ca", required_argument, NULL, ARG_TLS_CLIENT_CA },
                { "allow-plaintext", no_argument, NULL, ARG_ALLOW_PLAINTEXT },
                { "max-clients", required_argument, NULL, ARG_MAX_CLIENTS },
                { "max-client-memory", required_argument, NULL, ARG_MAX_CLIENT_MEMORY },
                { "sources-dirs", required_argument, NULL, ARG_SOURCES_DIRS },
                { "sinks-dirs", required_argument, NULL, ARG_SINKS_DIRS },
                { "user", no_argument, NULL, ARG_USER },
                { "metrics", required_argument, NULL, ARG_METRICS },
                { "degraded-sec", required_argument, NULL, ARG_DEGRADED_SEC },
                { "bus-introspect", no_argument, NULL, ARG_BUS_INTROSPECT },
                { "pipeline-id", required_argument, NULL, ARG_PIPELINE_ID },
                { "stream", required_argument, NULL, ARG_STREAM },
                { "stream-name", required_argument, NULL, ARG_STREAM_NAME },
                {}
        };
        int c, r;

        while ((c = daemon_getopt(argc, argv, "h", options, "dpiped", help, NULL)) >= 0)
                switch (c) {
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
                case ARG_ADMIN_GROUP:
                        if (isempty(optarg)) {
                                fprintf(stderr, "%s: --admin-group= needs a group name\n", program_invocation_short_name);
                                return -EINVAL;
                        }
                        arg_admin_group = optarg;
                        break;
                case ARG_TOKENS:
                        arg_tokens = optarg;
                        break;
                case ARG_TLS_CERT:
                        arg_tls_cert = optarg;
                        break;
                case ARG_TLS_KEY:
                        arg_tls_key = optarg;
                        break;
                case ARG_TLS_CLIENT_CA:
                        arg_tls_client_ca = optarg;
                        break;
                case ARG_ALLOW_PLAINTEXT:
                        arg_allow_plaintext = true;
                        break;
                case ARG_MAX_CLIENTS:
                        if (safe_atou32(optarg, &arg_max_clients) < 0 || arg_max_clients == 0 ||
                            arg_max_clients > CLIENTS_MAX_LIMIT) {
                                fprintf(stderr, "%s: invalid --max-clients \"%s\": a number of 1-%u expected\n",
                                        program_invocation_short_name, optarg, CLIENTS_MAX_LIMIT);
                                return -EINVAL;
                        }
                        break;
                case ARG_MAX_CLIENT_MEMORY: {
                        /* At least room for one line of the longest kind as it arrives. */
                        uint64_t min = LINE_MAX_DEFAULT + 2 * CLIENT_READ_SIZE;

                        if (parse_size(optarg, &arg_max_client_memory) < 0 || arg_max_client_memory < min) {
                                fprintf(stderr,
                                        "%s: invalid --max-client-memory \"%s\": a size of at least %" PRIu64
                                        " bytes expected (e.g. 64M)\n",
                                        program_invocation_short_name, optarg, min);
                                return -EINVAL;
                        }
                        break;
                }
                case ARG_SOURCES_DIRS:
                case ARG_SINKS_DIRS:
                        for (const char *p = optarg; *p; p += strcspn(p, ":"), p += !!*p)
                                if (*p != '/' && *p != ':') {
                                        fprintf(stderr, "%s: --%s-dirs= takes absolute paths separated by ':', not \"%s\"\n",
                                                program_invocation_short_name, c == ARG_SINKS_DIRS ? "sinks" : "sources",
                                                optarg);
                                        return -EINVAL;
                                }
                        *(c == ARG_SINKS_DIRS ? &arg_sinks_dirs : &arg_sources_dirs) = optarg;
                        break;
                case ARG_USER:
                        arg_user = true;
                        break;
                case ARG_METRICS:
                        arg_metrics = streq(optarg, "none") ? NULL : optarg;
                        break;
                case ARG_DEGRADED_SEC: {
                        uint64_t v;

                        if (safe_atou64(optarg, &v) < 0 || v > UINT32_MAX) {
                                fprintf(stderr, "%s: invalid --degraded-sec \"%s\": a number of seconds expected\n",
                                        program_invocation_short_name, optarg);
                                return -EINVAL;
                        }
                        arg_degraded_usec = v * USEC_PER_SEC;
                        break;
                }
                case ARG_BUS_INTROSPECT:
                        r = bus_introspect_print();
                        return r < 0 ? r : 0;
                case ARG_PIPELINE_ID:
                        if (!pipeline_id_is_valid(optarg)) {
                                fprintf(stderr, "%s: invalid --pipeline-id \"%s\": 1-64 characters of [A-Za-z0-9_-]\n",
                                        program_invocation_short_name, optarg);
                                return -EINVAL;
                        }
                        arg_pipeline_id = optarg;
                        break;
                case ARG_STREAM: {
                        const char *reason = NULL;

                        if (nats_servers_parse(optarg, NULL, NULL, &reason, NULL, NULL) < 0) {
                                fprintf(stderr, "%s: invalid --stream \"%s\" (%s): nats://HOST:PORT[,nats://HOST:PORT...] expected\n",
                                        program_invocation_short_name, optarg, reason);
                                return -EINVAL;
                        }
                        arg_stream = optarg;
                        break;
                }
                case ARG_STREAM_NAME:
                        if (!nats_stream_name_is_valid(optarg)) {
                                fprintf(stderr, "%s: invalid --stream-name \"%s\": 1-64 characters of [A-Za-z0-9_-]\n",
                                        program_invocation_short_name, optarg);
                                return -EINVAL;
                        }
                        arg_stream_name = optarg;
                        break;
                default:
                        return -EINVAL;
                }
        if (c != -1)
                return c == DAEMON_GETOPT_DONE ? 0 : -EINVAL;
        if (arg_client_timeout_usec == 0)
                arg_client_timeout_usec = 3 * arg_heartbeat_usec;
        if (!!arg_tls_cert != !!arg_tls_key) {
                fprintf(stderr, "%s: --tls-cert= and --tls-key= go together\n", program_invocation_short_name);
                return -EINVAL;
        }
        if (arg_tls_client_ca && !arg_tls_cert) {
                fprintf(stderr, "%s: --tls-client-ca= needs --tls-cert= and --tls-key=\n", program_invocation_short_name);
                return -EINVAL;
        }
        return 1;
}

/* --tokens, or else the systemd credential. A malformed file stops dpiped: "PATH:LINE: why". */
static int load_tokens(TokenSet **ret) {
        _cleanup_free_ char *credential = NULL;
        const char *path = arg_tokens, *dir;
        char error[512];
        bool others_may_read = false;
        int r;

        *ret = NULL;
        if (!path) {
                dir = getenv("CREDENTIALS_DIRECTORY");
                if (isempty(dir))
                        return 0;
                credential = path_join(dir, TOKENS_CREDENTIAL);
                if (!credential)
                        return log_oom();
                if (access(credential, F_OK) < 0)
                        return 0;
                path = credential;
        }
        r = token_set_load(path, ret, &others_may_read, error, sizeof(error));
        if (r == -ENOMEM)
                return log_oom();
        if (r < 0) {
                log_error("Invalid tokens file %s", error);
                return r;
        }
        if (others_may_read)
                log_warning("Tokens file %s is readable by other users: anyone on this machine can read its secrets "
                            "(chmod o-r, or use LoadCredential=%s:%s).", path, TOKENS_CREDENTIAL, path);
        if ((*ret)->n_tokens == 0)
                log_warning("Tokens file %s holds no token: TCP clients may only say hello, ping, help and quit.", path);
        else
                log_info("Loaded %zu token%s from %s.", (*ret)->n_tokens, (*ret)->n_tokens == 1 ? "" : "s", path);
        return 0;
}

static int load_tls(TlsContext **ret) {
        char error[512];
        int r;

        *ret = NULL;
        if (!arg_tls_cert)
                return 0;
        r = tls_context_new_server(arg_tls_cert, arg_tls_key, arg_tls_client_ca, ret, error, sizeof(error));
        if (r < 0) {
                log_error("TLS: %s", error);
                return r;
        }
        log_info("TLS on the TCP listeners with %s%s%s.", arg_tls_cert,
                 arg_tls_client_ca ? ", client certificates signed by " : "", arg_tls_client_ca ?: "");
        return 0;
}

/* The group whose members may change the pipeline over client.sock. The default one may be
 * missing (then only root and dpiped's own user may); one named with --admin-group= must exist. */
static int resolve_admin_group(ManagerConfig *config) {
        const char *name = arg_admin_group ?: ADMIN_GROUP_DEFAULT;
        struct group *g;

        errno = 0;
        g = getgrnam(name);
        config->admin_group = name;
        if (g) {
                config->have_admin_gid = true;
                config->admin_gid = g->gr_gid;
                return 0;
        }
        if (arg_admin_group)
                return log_error_errno(errno ?: ENOENT, "Unknown group \"%s\" for --admin-group=.", name);
        if (geteuid() == 0)
                log_info("No group \"%s\": over client.sock only root may change the pipeline.", name);
        else
                log_info("No group \"%s\": over client.sock only root and uid %u may change the pipeline.", name,
                         (unsigned) geteuid());
        return 0;
}

/* SIGHUP: reload the source files, like `systemctl reload dpiped` (which calls Reload()). */
static int sighup_handler(sd_event_source *es, const struct signalfd_siginfo *si, void *userdata) {
        Manager *m = userdata;

        log_info("Received SIGHUP from pid %u.", (unsigned) si->ssi_pid);
        (void) manager_reload(m, NULL, NULL);
        return 0;
}

static int run(int argc, char *argv[]) {
        _cleanup_(manager_freep) Manager *m = NULL;
        _cleanup_(token_set_freep) TokenSet *tokens = NULL;
        _cleanup_(tls_context_freep) TlsContext *tls = NULL;
        ManagerConfig config = {};
        sigset_t mask;
        int r;

        r = parse_argv(argc, argv);
        if (r <= 0)
                return r;

        config.runtime_dir = arg_runtime_dir ?: default_runtime_dir();
        config.state_dir = arg_state_dir ?: default_state_dir();
        config.heartbeat_usec = arg_heartbeat_usec;
        config.client_timeout_usec = arg_client_timeout_usec;
        config.user_bus = arg_user;
        config.read_only_clients = arg_read_only_clients;
        config.allow_plaintext = arg_allow_plaintext;
        config.max_clients = arg_max_clients;
        config.max_client_memory = arg_max_client_memory;
        config.source_dirs = arg_sources_dirs;
        config.sink_dirs = arg_sinks_dirs;
        config.pipeline_id = arg_pipeline_id;
        config.stream = arg_stream;
        config.stream_name = arg_stream_name;
        config.listen_tcp = !streq(arg_listen, "none");
        if (config.listen_tcp) {
                r = socket_address_parse(arg_listen, &config.listen_address);
                if (r < 0)
                        return log_error_errno(r, "Invalid --listen address \"%s\": %m", arg_listen);
        }
        config.degraded_usec = arg_degraded_usec;
        if (arg_metrics) {
                config.metrics = true;
                r = socket_address_parse(arg_metrics, &config.metrics_address);
                if (r < 0)
                        return log_error_errno(r, "Invalid --metrics address \"%s\": %m", arg_metrics);
        }
        r = resolve_admin_group(&config);
        if (r < 0)
                return r;
        r = load_tokens(&tokens);
        if (r < 0)
                return r;
        r = load_tls(&tls);
        if (r < 0)
                return r;
        config.tokens = tokens;
        config.tls = tls;

        /* SIGHUP reloads the source files: blocked here, like the exit signals in daemon_setup(). */
        sigemptyset(&mask);
        sigaddset(&mask, SIGHUP);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return log_error_errno(errno, "Failed to block SIGHUP: %m");

        r = manager_new(&config, &m);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the manager: %m");
        TAKE_PTR(tokens);
        TAKE_PTR(tls);
        r = event_add_exit_signals(m->event, NULL, NULL);
        if (r >= 0)
                r = sd_event_add_signal(m->event, NULL, SIGHUP, sighup_handler, m);
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

DEFINE_MAIN_FUNCTION(run);
