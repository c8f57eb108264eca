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

typedef struct SinkArgs {
        const SinkType *type;
        const char *connect_address, *pipeline_id;
} SinkArgs;

static void help(const void *userdata) {
        const SinkType *t = ((const SinkArgs *) userdata)->type;

        printf("     --runtime-dir=DIR   Control socket DIR/sink-%s.sock (default: %s)\n"
               "     --connect=ADDR      dpiped's client protocol: a socket path or HOST:PORT\n"
               "                         (default: RUNTIME-DIR/client.sock)\n"
               "     --pipeline-id=ID    Pipeline id when dpiped sends none (default: derived\n"
               "                         from /etc/machine-id)\n"
               "     --idle-exit-sec=N   Exit after N s without dpiped connection and sinks\n"
               "                         (0 = never, the default)\n"
               "\nSink options (add request of man:dpipe-sink(7)):\n",
               t->name, default_runtime_dir());
        help_options(t->options);
        help_options(sink_common_options);
        printf("\nSee the dpipe-sink-%s(8) and dpipe-sink(7) man pages for details.\n", t->name);
}

enum { ARG_CONNECT = SERVICE_ARG_OWN, ARG_PIPELINE_ID };

static int parse_arg(int c, const char *arg, void *userdata) {
        SinkArgs *a = userdata;

        switch (c) {
        case ARG_CONNECT:
                if (isempty(arg)) {
                        fprintf(stderr, "Invalid --connect value: empty\n");
                        return -EINVAL;
                }
                a->connect_address = arg;
                return 0;
        case ARG_PIPELINE_ID:
                if (!pipeline_id_is_valid(arg)) {
                        fprintf(stderr, "Invalid --pipeline-id value '%s': 1-64 characters of [A-Za-z0-9_-]\n", arg);
                        return -EINVAL;
                }
                a->pipeline_id = arg;
                return 0;
        default:
                return -EINVAL;
        }
}

int sink_main(const SinkType *type, int argc, char *argv[]) {
        static const struct option options[] = {
                { "connect", required_argument, NULL, ARG_CONNECT },
                { "pipeline-id", required_argument, NULL, ARG_PIPELINE_ID },
        };
        _cleanup_(manager_freep) Manager *m = NULL;
        SinkArgs args = { .type = type };
        ServiceArgs common;
        int r;

        r = service_setup(&sink_service_class, type->name,
                          &(ServiceArgsParser) { .options = options, .n_options = ELEMENTSOF(options),
                                                 .parse = parse_arg, .help = help, .userdata = &args,
                                                 .description = type->description ?: "dpipe sink" },
                          argc, argv, &common);
        if (r <= 0)
                return r < 0;

        r = manager_new(type, common.runtime_dir ?: default_runtime_dir(), args.connect_address, args.pipeline_id,
                        common.idle_exit_usec, &m);
        if (r < 0) {
                log_error_errno(r, "Failed to set up: %m");
                return 1;
        }
        r = manager_start(m);
        if (r < 0)
                return 1;
        return service_run(&m->service, "Waiting for sinks");
}
