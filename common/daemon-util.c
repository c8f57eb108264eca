/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <signal.h>
#include <sys/resource.h>

#include "daemon-util.h"
#include "log.h"

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
