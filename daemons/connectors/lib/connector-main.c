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

typedef struct ConnectorArgs {
        const ConnectorType *type;
        const char *state_dir;
} ConnectorArgs;

static void help(const void *userdata) {
        const ConnectorType *t = ((const ConnectorArgs *) userdata)->type;

        printf("     --runtime-dir=DIR   Sockets: DIR/connector-%s.sock, DIR/writer.sock\n"
               "                         (default: %s)\n"
               "     --state-dir=DIR     Cursors in DIR/connector-%s/ (default: %s)\n"
               "     --idle-exit-sec=N   Exit after N s without dpiped connection and sources\n"
               "                         (0 = never, the default)\n",
               t->name, default_runtime_dir(), t->name, default_state_dir());
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

enum { ARG_STATE_DIR = SERVICE_ARG_OWN, ARG_LIST_OPTIONS, ARG_TYPE_OPTION };

static int parse_arg(int c, const char *arg, void *userdata) {
        ConnectorArgs *a = userdata;
        const ConnectorType *t = a->type;

        switch (c) {
        case ARG_STATE_DIR:
                a->state_dir = arg;
                return 0;
        case ARG_LIST_OPTIONS:
                list_options(t);
                return 1;
        default: {
                const ConnectorOption *o = t->daemon_options + (c - ARG_TYPE_OPTION);

                if (config_option_parse_text(o, arg, t->daemon_settings) < 0) {
                        fprintf(stderr, "Invalid --%s value: %s\n", o->name, arg);
                        return -EINVAL;
                }
                return 0;
        }
        }
}

int connector_main(const ConnectorType *type, int argc, char *argv[]) {
        static const struct option own_options[] = {
                { "state-dir", required_argument, NULL, ARG_STATE_DIR },
                { "list-options", no_argument, NULL, ARG_LIST_OPTIONS },
        };
        _cleanup_(manager_freep) Manager *m = NULL;
        _cleanup_free_ struct option *options = NULL;
        _cleanup_free_ char *message = NULL;
        ConnectorArgs args = { .type = type };
        ServiceArgs common;
        size_t n_type = 0;
        int r;

        /* The type's own options after the library's, with their defaults applied first. */
        for (const ConnectorOption *o = type->daemon_options; o && o->name; o++)
                n_type++;
        options = calloc(ELEMENTSOF(own_options) + n_type, sizeof(struct option));
        if (!options)
                return log_oom(), 1;
        memcpy(options, own_options, sizeof(own_options));
        for (size_t i = 0; i < n_type; i++)
                options[ELEMENTSOF(own_options) + i] = (struct option) {
                        type->daemon_options[i].name, required_argument, NULL, ARG_TYPE_OPTION + (int) i,
                };
        if (n_type > 0) {
                const ConnectorOption *tables[1] = { type->daemon_options };
                void *configs[1] = { type->daemon_settings };

                if (config_tables_parse(tables, configs, 1, NULL, 0, NULL, &message) < 0)
                        return log_oom(), 1;
        }

        r = service_setup(&connector_service_class, type->name,
                          &(ServiceArgsParser) { .options = options, .n_options = ELEMENTSOF(own_options) + n_type,
                                                 .parse = parse_arg, .help = help, .userdata = &args,
                                                 .description = type->description ?: "dpipe connector" },
                          argc, argv, &common);
        if (r <= 0)
                return r < 0;

        r = manager_new(type, common.runtime_dir ?: default_runtime_dir(), args.state_dir ?: default_state_dir(),
                        common.idle_exit_usec, &m);
        if (r < 0) {
                log_error_errno(r, "Failed to set up: %m");
                return 1;
        }
        r = manager_start(m);
        if (r < 0)
                return 1;
        return service_run(&m->service, "Waiting for sources");
}
