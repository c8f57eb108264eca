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

int service_setup(const ServiceClass *class, const char *type_name, const ServiceArgsParser *p, int argc,
                  char *argv[], ServiceArgs *ret) {
        enum { ARG_VERSION = 0x100, ARG_RUNTIME_DIR, ARG_IDLE_EXIT };
        static const struct option common_options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "runtime-dir", required_argument, NULL, ARG_RUNTIME_DIR },
                { "idle-exit-sec", required_argument, NULL, ARG_IDLE_EXIT },
        };
        _cleanup_free_ struct option *options = NULL;
        uint64_t idle = 0;
        int c, r;

        /* Logging, signals, fd limit (many sources or sinks means many sockets). */
        r = daemon_setup();
        if (r < 0)
                return log_error_errno(r, "Failed to set up the process: %m");

        options = calloc(ELEMENTSOF(common_options) + p->n_options + 1, sizeof(struct option));
        if (!options) {
                fprintf(stderr, "Out of memory\n");
                return -ENOMEM;
        }
        memcpy(options, common_options, sizeof(common_options));
        if (p->n_options > 0)
                memcpy(options + ELEMENTSOF(common_options), p->options, p->n_options * sizeof(struct option));

        *ret = (ServiceArgs) {};
        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        printf("dpipe-%s-%s [OPTIONS...]\n\n"
                               "%s\n\n"
                               "  -h --help              Show this help\n"
                               "     --version           Show package version\n",
                               class->kind, type_name, p->description);
                        p->help(p->userdata);
                        return 0;
                case ARG_VERSION:
                        printf("dpipe-%s-%s %s\n", class->kind, type_name, dpipe_version());
                        return 0;
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
                case '?':
                        return -EINVAL;
                default:
                        if (c < SERVICE_ARG_OWN || !p->parse)
                                return -EINVAL;
                        r = p->parse(c, optarg, p->userdata);
                        if (r != 0)
                                return r > 0 ? 0 : r;
                }
        if (optind < argc) {
                fprintf(stderr, "Unexpected argument: %s\n", argv[optind]);
                return -EINVAL;
        }
        return 1;
}
