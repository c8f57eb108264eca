/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* One start-up for every daemon (dpiped, dpipe-writer, the connectors, the sinks, dpipe-source),
 * in the shape of systemd's DEFINE_MAIN_FUNCTION(): main() sets the process up and calls run(),
 * which is a straight list of steps that each log their own failure and return a negative errno.
 *
 *   static int run(int argc, char *argv[]) { ... }
 *   DEFINE_MAIN_FUNCTION(run);
 */

#include <getopt.h>
#include <stdint.h>
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

/* The options every program of the tree has, first in its option array: -h/--help and --version.
 * The program's own options take values from DAEMON_ARG_OWN on. */
#define DAEMON_ARG_VERSION 0x100
#define DAEMON_ARG_OWN 0x101
#define DAEMON_COMMON_OPTIONS                                                                          \
        { "help", no_argument, NULL, 'h' }, { "version", no_argument, NULL, DAEMON_ARG_VERSION }

/* getopt_long() (shortopts with "h") that answers -h/--help (help(userdata)) and --version
 * ("<program> <version>") itself and refuses arguments that are not options. Returns the next other
 * option as getopt_long() does (never '?'), then -1 at the end; or DAEMON_GETOPT_DONE once it printed the help
 * or the version (the program exits 0), or DAEMON_GETOPT_FAILED after it printed why the command
 * line is wrong (exit 1). So a program's loop ends with
 *
 *         if (c != -1)
 *                 return c == DAEMON_GETOPT_DONE ? 0 : -EINVAL;
 */
#define DAEMON_GETOPT_DONE (-2)
#define DAEMON_GETOPT_FAILED (-3)
int daemon_getopt(int argc, char *argv[], const char *shortopts, const struct option *options, const char *program,
                  void (*help)(void *userdata), void *userdata);

/* The number of option --name given as text, if it is one of min..max; else says so on stderr
 * ("Invalid --name: text") and returns -EINVAL. */
int daemon_parse_u64_arg(const char *name, const char *text, uint64_t min, uint64_t max, uint64_t *ret);

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
