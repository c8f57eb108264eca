/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* main() of every connector: command line, logging, limits, the manager, sd_notify. */

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include <systemd/sd-daemon.h>

#include "connector-internal.h"
#include "daemon-util.h"
#include "log.h"

/* The option table as it is: --list-options, and the test that holds the man pages to it. */
static void list_options(const ConnectorType *t) {
        const ConnectorOption *tables[2] = { t->options, connector_common_options };

        config_tables_print(stdout, tables, ELEMENTSOF(tables));
}

static void help(const ConnectorType *t) {
        printf("dpipe-connector-%s [OPTIONS...]\n\n"
               "%s\n\n"
               "  -h --help              Show this help\n"
               "     --version           Show package version\n"
               "     --runtime-dir=DIR   Sockets: DIR/connector-%s.sock, DIR/writer.sock\n"
               "                         (default: %s)\n"
               "     --state-dir=DIR     Cursors in DIR/connector-%s/ (default: %s)\n"
               "     --idle-exit-sec=N   Exit after N s without dpiped connection and sources\n"
               "                         (0 = never, the default)\n",
               t->name, t->description ?: "dpipe connector", t->name, default_runtime_dir(), t->name,
               default_state_dir());
        printf("     --list-options      List the source options (the table below) and exit\n");
        for (const ConnectorOption *o = t->daemon_options; o && o->name; o++)
                printf("     --%s=VALUE%*s%s (default: %s)\n", o->name, (int) MAX(1, 18 - (int) strlen(o->name)), "",
                       o->description ?: "", o->default_value ?: "none");
        printf("\nSource options (add request of man:dpipe-connector(7)): NAME TYPE DEFAULT DESCRIPTION\n");
        list_options(t);
        printf("dpiped refuses other names when a source is added; a saved source that has one\n"
               "runs, with a warning.\n");
        printf("\nSee the dpipe-connector-%s(8) and dpipe-connector(7) man pages for details.\n", t->name);
}

int connector_main(const ConnectorType *type, int argc, char *argv[]) {
        enum { ARG_VERSION = 0x100, ARG_RUNTIME_DIR, ARG_STATE_DIR, ARG_IDLE_EXIT, ARG_LIST_OPTIONS,
               ARG_TYPE_OPTION = 0x200 };
        static const struct option common_options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "runtime-dir", required_argument, NULL, ARG_RUNTIME_DIR },
                { "state-dir", required_argument, NULL, ARG_STATE_DIR },
                { "idle-exit-sec", required_argument, NULL, ARG_IDLE_EXIT },
                { "list-options", no_argument, NULL, ARG_LIST_OPTIONS },
        };
        _cleanup_(manager_freep) Manager *m = NULL;
        _cleanup_free_ struct option *options = NULL;
        _cleanup_free_ char *message = NULL;
        const char *runtime_dir = NULL, *state_dir = NULL;
        size_t n_type = 0;
        uint64_t idle = 0;
        int c, r;

        /* Logging, signals, fd limit (many sources means many sockets). */
        r = daemon_setup();
        if (r < 0)
                return log_error_errno(r, "Failed to set up the process: %m"), 1;

        /* The type's own options after the common ones, with their defaults applied first. */
        for (const ConnectorOption *o = type->daemon_options; o && o->name; o++)
                n_type++;
        options = calloc(ELEMENTSOF(common_options) + n_type + 1, sizeof(struct option));
        if (!options)
                return log_oom(), 1;
        memcpy(options, common_options, sizeof(common_options));
        for (size_t i = 0; i < n_type; i++)
                options[ELEMENTSOF(common_options) + i] = (struct option) {
                        type->daemon_options[i].name, required_argument, NULL, ARG_TYPE_OPTION + (int) i,
                };
        if (n_type > 0) {
                const ConnectorOption *tables[1] = { type->daemon_options };
                void *configs[1] = { type->daemon_settings };

                if (config_tables_parse(tables, configs, 1, NULL, 0, NULL, &message) < 0)
                        return log_oom(), 1;
        }

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help(type);
                        return 0;
                case ARG_VERSION:
                        printf("dpipe-connector-%s %s\n", type->name, dpipe_version());
                        return 0;
                case ARG_LIST_OPTIONS:
                        list_options(type);
                        return 0;
                case ARG_RUNTIME_DIR:
                        runtime_dir = optarg;
                        break;
                case ARG_STATE_DIR:
                        state_dir = optarg;
                        break;
                case ARG_IDLE_EXIT:
                        if (safe_atou64(optarg, &idle) < 0 || idle > UINT32_MAX) {
                                fprintf(stderr, "Invalid --idle-exit-sec value: %s\n", optarg);
                                return 1;
                        }
                        break;
                case '?':
                        return 1;
                default:
                        if (c >= ARG_TYPE_OPTION && (size_t) (c - ARG_TYPE_OPTION) < n_type) {
                                const ConnectorOption *o = type->daemon_options + (c - ARG_TYPE_OPTION);

                                if (config_option_parse_text(o, optarg, type->daemon_settings) < 0) {
                                        fprintf(stderr, "Invalid --%s value: %s\n", o->name, optarg);
                                        return 1;
                                }
                                break;
                        }
                        return 1;
                }
        if (optind < argc) {
                fprintf(stderr, "Unexpected argument: %s\n", argv[optind]);
                return 1;
        }

        r = manager_new(type, runtime_dir ?: default_runtime_dir(), state_dir ?: default_state_dir(),
                        idle * USEC_PER_SEC, &m);
        if (r < 0) {
                log_error_errno(r, "Failed to set up: %m");
                return 1;
        }
        r = manager_start(m);
        if (r < 0)
                return 1;

        (void) sd_notify(false, "READY=1\nSTATUS=Waiting for sources");
        r = sd_event_loop(m->event);
        (void) sd_notify(false, "STOPPING=1");
        if (r < 0) {
                log_error_errno(r, "Event loop failed: %m");
                return 1;
        }
        return r;
}
