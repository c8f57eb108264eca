/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The start of every service daemon: the process set up (common/daemon-util.h), and the command line
 * they share: --help and --version, --runtime-dir= and --idle-exit-sec=, with the daemon's own
 * options parsed by its callback. */

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "daemon-util.h"
#include "log.h"
#include "service.h"
#include "util.h"

typedef struct ServiceHelp {
        const char *program;
        const ServiceArgsParser *parser;
} ServiceHelp;

static void service_help(void *userdata) {
        const ServiceHelp *h = userdata;

        printf("%s [OPTIONS...]\n\n"
               "%s\n\n"
               "  -h --help              Show this help\n"
               "     --version           Show package version\n",
               h->program, h->parser->description);
        h->parser->help(h->parser->userdata);
}

int service_setup(const ServiceClass *class, const char *type_name, const ServiceArgsParser *p, int argc,
                  char *argv[], ServiceArgs *ret) {
        enum { ARG_RUNTIME_DIR = DAEMON_ARG_OWN, ARG_IDLE_EXIT };
        static const struct option common_options[] = {
                DAEMON_COMMON_OPTIONS,
                { "runtime-dir", required_argument, NULL, ARG_RUNTIME_DIR },
                { "idle-exit-sec", required_argument, NULL, ARG_IDLE_EXIT },
        };
        _cleanup_free_ struct option *options = NULL;
        _cleanup_free_ char *program = NULL;
        uint64_t idle = 0;
        int c, r;

        /* Logging, signals, fd limit (many sources or sinks means many sockets). */
        r = daemon_setup();
        if (r < 0)
                return log_error_errno(r, "Failed to set up the process: %m");

        options = calloc(ELEMENTSOF(common_options) + p->n_options + 1, sizeof(struct option));
        if (!options || asprintf(&program, "dpipe-%s-%s", class->kind, type_name) < 0) {
                fprintf(stderr, "Out of memory\n");
                return -ENOMEM;
        }
        memcpy(options, common_options, sizeof(common_options));
        if (p->n_options > 0)
                memcpy(options + ELEMENTSOF(common_options), p->options, p->n_options * sizeof(struct option));

        *ret = (ServiceArgs) {};
        while ((c = daemon_getopt(argc, argv, "h", options, program, service_help,
                                  &(ServiceHelp) { program, p })) >= 0)
                switch (c) {
                case ARG_RUNTIME_DIR:
                        ret->runtime_dir = optarg;
                        break;
                case ARG_IDLE_EXIT:
                        if (safe_atou64(optarg, &idle) < 0 || idle > UINT32_MAX) {
                                fprintf(stderr, "Invalid --idle-exit-sec value: %s\n", optarg);
                                return -EINVAL;
                        }
                        ret->idle_exit_usec = idle * USEC_PER_SEC;
                        break;
                default:
                        if (c < SERVICE_ARG_OWN || !p->parse)
                                return -EINVAL;
                        r = p->parse(c, optarg, p->userdata);
                        if (r != 0)
                                return r > 0 ? 0 : r;
                }
        if (c != -1)
                return c == DAEMON_GETOPT_DONE ? 0 : -EINVAL;
        return 1;
}
