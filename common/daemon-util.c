/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <sys/resource.h>

#include "daemon-util.h"
#include "log.h"
#include "util.h"

static void raise_fd_limit(void) {
        struct rlimit rl;

        if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= rl.rlim_max)
                return;
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
                log_debug_errno(errno, "Failed to raise the fd limit, ignoring: %m");
}

int daemon_setup(void) {
        sigset_t mask;

        log_setup();
        (void) signal(SIGPIPE, SIG_IGN);
        if (sigemptyset(&mask) < 0 || sigaddset(&mask, SIGTERM) < 0 || sigaddset(&mask, SIGINT) < 0 ||
            sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return -errno;
        raise_fd_limit();
        return 0;
}

int event_add_exit_signals(sd_event *e, sd_event_signal_handler_t handler, void *userdata) {
        int r;

        r = sd_event_add_signal(e, NULL, SIGTERM, handler, userdata);
        if (r >= 0)
                r = sd_event_add_signal(e, NULL, SIGINT, handler, userdata);
        return r;
}

int daemon_getopt(int argc, char *argv[], const char *shortopts, const struct option *options, const char *program,
                  void (*help)(void *userdata), void *userdata) {
        int c = getopt_long(argc, argv, shortopts, options, NULL);

        switch (c) {
        case 'h':
                help(userdata);
                return DAEMON_GETOPT_DONE;
        case DAEMON_ARG_VERSION:
                printf("%s %s\n", program, dpipe_version());
                return DAEMON_GETOPT_DONE;
        case '?':
                return DAEMON_GETOPT_FAILED; /* getopt_long() said why */
        case -1:
                if (optind < argc) {
                        fprintf(stderr, "%s: unexpected argument \"%s\"\n", program, argv[optind]);
                        return DAEMON_GETOPT_FAILED;
                }
                return -1;
        default:
                return c;
        }
}

int daemon_parse_u64_arg(const char *name, const char *text, uint64_t min, uint64_t max, uint64_t *ret) {
        uint64_t v;

        if (safe_atou64(text, &v) < 0 || v < min || v > max) {
                fprintf(stderr, "Invalid --%s: %s\n", name, text);
                return -EINVAL;
        }
        *ret = v;
        return 0;
}
