/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"
#include "pager.h"

static pid_t pager_pid = 0;

const char *pager_command(void) {
        static const char *const vars[] = { "DPIPE_PAGER", "SYSTEMD_PAGER", "PAGER" };

        /* The first variable that is set decides, even when it says "no pager" (empty or cat). */
        for (size_t i = 0; i < ELEMENTSOF(vars); i++) {
                const char *e = getenv(vars[i]);

                if (!e)
                        continue;
                if (isempty(e) || streq(e, "cat"))
                        return NULL;
                return e;
        }
        return "less";
}

void pager_open(bool disabled) {
        const char *pager;
        int fds[2], errfds[2];
        pid_t pid;
        char c;

        if (disabled || pager_pid > 0 || !isatty(STDOUT_FILENO))
                return;
        pager = pager_command();
        if (!pager)
                return;

        fflush(stdout);
        if (pipe2(fds, O_CLOEXEC) < 0)
                return (void) log_debug_errno(errno, "Failed to create pager pipe, not using a pager: %m");
        /* The child tells us through this pipe whether the exec failed (it closes on a successful one),
         * so that without less we simply print, instead of falling back to more(1), which waits for a
         * key on the terminal even for one line of output. */
        if (pipe2(errfds, O_CLOEXEC) < 0) {
                safe_close(fds[0]);
                safe_close(fds[1]);
                return (void) log_debug_errno(errno, "Failed to create pager pipe, not using a pager: %m");
        }
        pid = fork();
        if (pid < 0) {
                safe_close(fds[0]);
                safe_close(fds[1]);
                safe_close(errfds[0]);
                safe_close(errfds[1]);
                return (void) log_debug_errno(errno, "Failed to fork pager, not using one: %m");
        }
        if (pid == 0) {
                if (dup2(fds[0], STDIN_FILENO) < 0)
                        _exit(EXIT_FAILURE);
                (void) setenv("LESS", getenv("SYSTEMD_LESS") ?: "FRSXMK", 0);
                (void) setenv("LESSCHARSET", "utf-8", 0);
                if (streq(pager, "less"))
                        execlp("less", "less", (char *) NULL);
                else
                        execl("/bin/sh", "sh", "-c", pager, (char *) NULL);
                if (write(errfds[1], "x", 1) < 0) {}
                _exit(EXIT_FAILURE);
        }
        safe_close(fds[0]);
        safe_close(errfds[1]);
        if (read(errfds[0], &c, 1) == 1) {
                /* No pager to run: print directly. */
                safe_close(errfds[0]);
                safe_close(fds[1]);
                (void) waitpid(pid, NULL, 0);
                log_debug("No pager found (%s), printing directly.", pager);
                return;
        }
        safe_close(errfds[0]);
        if (dup2(fds[1], STDOUT_FILENO) < 0) {
                safe_close(fds[1]);
                return;
        }
        safe_close(fds[1]);
        /* Quitting the pager early must not kill us with SIGPIPE. */
        (void) signal(SIGPIPE, SIG_IGN);
        pager_pid = pid;
}

void pager_close(void) {
        if (pager_pid <= 0)
                return;
        fflush(stdout);
        (void) close(STDOUT_FILENO);
        (void) waitpid(pager_pid, NULL, 0);
        pager_pid = 0;
}
