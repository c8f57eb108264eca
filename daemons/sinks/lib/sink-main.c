/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* main() of every sink daemon: command line, logging, the manager, sd_notify. */

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#include "daemon-util.h"
#include "log.h"
#include "sink-internal.h"

static void help_options(const SinkOption *table) {
        for (const SinkOption *o = table; o->name; o++) {
                printf("  %-20s %s", o->name, o->description ?: "");
                if (o->required)
                        printf(" (required)");
                else if (o->default_value)
                        printf(" (default: %s)", o->default_value);
                printf("\n");
        }
}

static void help(const SinkType *t) {
        printf("dpipe-sink-%s [OPTIONS...]\n\n"
               "%s\n\n"
               "  -h --help              Show this help\n"
               "     --version           Show package version\n"
               "     --runtime-dir=DIR   Control socket DIR/sink-%s.sock (default: %s)\n"
               "     --connect=ADDR      dpiped's client protocol: a socket path or HOST:PORT\n"
               "                         (default: RUNTIME-DIR/client.sock)\n"
               "     --pipeline-id=ID    Pipeline id when dpiped sends none (default: derived\n"
               "                         from /etc/machine-id)\n"
               "     --idle-exit-sec=N   Exit after N s without dpiped connection and sinks\n"
               "                         (0 = never, the default)\n"
               "\nSink options (add request of man:dpipe-sink(7)):\n",
               t->name, t->description ?: "dpipe sink", t->name, default_runtime_dir());
        help_options(t->options);
        help_options(sink_common_options);
        printf("\nSee the dpipe-sink-%s(8) and dpipe-sink(7) man pages for details.\n", t->name);
}

int sink_main(const SinkType *type, int argc, char *argv[]) {
        enum { ARG_VERSION = 0x100, ARG_RUNTIME_DIR, ARG_CONNECT, ARG_PIPELINE_ID, ARG_IDLE_EXIT };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "runtime-dir", required_argument, NULL, ARG_RUNTIME_DIR },
                { "connect", required_argument, NULL, ARG_CONNECT },
                { "pipeline-id", required_argument, NULL, ARG_PIPELINE_ID },
                { "idle-exit-sec", required_argument, NULL, ARG_IDLE_EXIT },
                {},
        };
        _cleanup_(manager_freep) Manager *m = NULL;
        const char *runtime_dir = NULL, *connect_address = NULL, *pipeline_id = NULL;
        uint64_t idle = 0;
        int c, r;

        r = daemon_setup();
        if (r < 0)
                return log_error_errno(r, "Failed to set up the process: %m"), 1;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help(type);
                        return 0;
                case ARG_VERSION:
                        printf("dpipe-sink-%s %s\n", type->name, dpipe_version());
                        return 0;
                case ARG_RUNTIME_DIR:
                        runtime_dir = optarg;
                        break;
                case ARG_CONNECT:
                        if (isempty(optarg)) {
                                fprintf(stderr, "Invalid --connect value: empty\n");
                                return 1;
                        }
                        connect_address = optarg;
                        break;
                case ARG_PIPELINE_ID:
                        if (!pipeline_id_is_valid(optarg)) {
                                fprintf(stderr, "Invalid --pipeline-id value '%s': 1-64 characters of [A-Za-z0-9_-]\n",
                                        optarg);
                                return 1;
                        }
                        pipeline_id = optarg;
                        break;
                case ARG_IDLE_EXIT:
                        if (safe_atou64(optarg, &idle) < 0 || idle > UINT32_MAX) {
                                fprintf(stderr, "Invalid --idle-exit-sec value: %s\n", optarg);
                                return 1;
                        }
                        break;
                default:
                        return 1;
                }
        if (optind < argc) {
                fprintf(stderr, "Unexpected argument: %s\n", argv[optind]);
                return 1;
        }

        r = manager_new(type, runtime_dir ?: default_runtime_dir(), connect_address, pipeline_id, idle * USEC_PER_SEC,
                        &m);
        if (r < 0) {
                log_error_errno(r, "Failed to set up: %m");
                return 1;
        }
        r = manager_start(m);
        if (r < 0)
                return 1;

        (void) sd_notify(false, "READY=1\nSTATUS=Waiting for sinks");
        r = sd_event_loop(m->event);
        (void) sd_notify(false, "STOPPING=1");
        if (r < 0) {
                log_error_errno(r, "Event loop failed: %m");
                return 1;
        }
        return r;
}
