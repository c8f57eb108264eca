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

void pager_open(bool disabled) {
        const char *pager;
        int fds[2];
        pid_t pid;

        if (disabled || pager_pid > 0 || !isatty(STDOUT_FILENO))
                return;
        pager = getenv("DPIPE_PAGER");
        if (!pager)
                pager = getenv("PAGER");
        if (pager && (isempty(pager) || streq(pager, "cat")))
                return;

        fflush(stdout);
        if (pipe2(fds, O_CLOEXEC) < 0)
                return (void) log_debug_errno(errno, "Failed to create pager pipe, not using a pager: %m");
        pid = fork();
        if (pid < 0) {
                safe_close(fds[0]);
                safe_close(fds[1]);
                return (void) log_debug_errno(errno, "Failed to fork pager, not using one: %m");
        }
        if (pid == 0) {
                if (dup2(fds[0], STDIN_FILENO) < 0)
                        _exit(EXIT_FAILURE);
                (void) setenv("LESS", "FRSXMK", 0);
                (void) setenv("LESSCHARSET", "utf-8", 0);
                if (pager)
                        execl("/bin/sh", "sh", "-c", pager, (char *) NULL);
                else {
                        execlp("less", "less", (char *) NULL);
                        execlp("more", "more", (char *) NULL);
                }
                /* No pager at all: pass the text through. */
                execlp("cat", "cat", (char *) NULL);
                _exit(EXIT_FAILURE);
        }
        if (dup2(fds[1], STDOUT_FILENO) < 0) {
                safe_close(fds[0]);
                safe_close(fds[1]);
                return;
        }
        safe_close(fds[0]);
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
