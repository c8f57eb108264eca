/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* One start-up for every daemon (dpiped, dpipe-writer, the connectors, the sinks, dpipe-source),
 * in the shape of systemd's DEFINE_MAIN_FUNCTION(): main() sets the process up and calls run(),
 * which is a straight list of steps that each log their own failure and return a negative errno.
 *
 *   static int run(int argc, char *argv[]) { ... }
 *   DEFINE_MAIN_FUNCTION(run);
 */

#include <stdlib.h>
#include <systemd/sd-event.h>

#include "log.h"

/* Before anything else: logging set up (log_setup()); SIGTERM and SIGINT blocked, so that the one
 * sd_event loop receives them through its signal sources (and threads started later inherit the
 * mask; a daemon that handles more signals blocks those itself); SIGPIPE ignored, so that a peer that went away is an EPIPE on write and not
 * the end of the daemon; the soft fd limit raised to the hard one, as systemd does (sockets and
 * queue segments are fds). Returns a negative errno if the signals cannot be blocked. Logs nothing
 * above debug; DEFINE_MAIN_FUNCTION() logs its failure. */
int daemon_setup(void);

/* SIGTERM and SIGINT go to handler (NULL: the loop exits with 0, as sd_event_add_signal() does). */
int event_add_exit_signals(sd_event *e, sd_event_signal_handler_t handler, void *userdata);

#define DEFINE_MAIN_FUNCTION(run)                                                                      \
        int main(int argc, char *argv[]) {                                                             \
                int _r = daemon_setup();                                                               \
                if (_r < 0) {                                                                          \
                        log_error_errno(_r, "Failed to set up the process: %m");                      \
                        return EXIT_FAILURE;                                                           \
                }                                                                                      \
                _r = run(argc, argv);                                                                  \
                return _r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;                                           \
        }
