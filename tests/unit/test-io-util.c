/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "io-util.h"

/* More than a pipe holds, into a non-blocking pipe that a child drains slowly: loop_write() waits
 * for room instead of failing with EAGAIN, and every byte arrives in order. */
static void test_loop_write_nonblocking_pipe(void **state) {
        size_t n = 1024 * 1024, got = 0;
        uint8_t *buf = malloc(n), in[4096];
        int p[2], status;
        pid_t pid;

        assert_non_null(buf);
        for (size_t i = 0; i < n; i++)
                buf[i] = (uint8_t) (i * 7 + i / 251);
        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                /* The child: checks the bytes, exits 0 if all arrived as written. It frees what it
                 * inherited first: under valgrind the child's own leak check would set its exit
                 * status (--error-exitcode). */
                int result = 0;

                free(buf);
                close(p[1]);
                for (;;) {
                        ssize_t k = read(p[0], in, sizeof(in));
                        if (k < 0 && errno == EINTR)
                                continue;
                        if (k <= 0)
                                break;
                        for (ssize_t i = 0; i < k && result == 0; i++)
                                if (in[i] != (uint8_t) ((got + (size_t) i) * 7 + (got + (size_t) i) / 251))
                                        result = 2;
                        if (result != 0)
                                break;
                        got += (size_t) k;
                        usleep(100);
                }
                _exit(result != 0 ? result : got == n ? 0 : 3);
        }
        close(p[0]);
        assert_int_equal(fcntl(p[1], F_SETFL, O_NONBLOCK), 0);
        assert_int_equal(loop_write(p[1], buf, n), 0);
        close(p[1]);
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
        free(buf);
}

/* A closed reader: the error, not a hang or a crash. */
static void test_loop_write_epipe(void **state) {
        int p[2];

        signal(SIGPIPE, SIG_IGN);
        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        close(p[0]);
        assert_int_equal(loop_write(p[1], "x", 1), -EPIPE);
        close(p[1]);
        assert_int_equal(loop_write(-1, "x", 1), -EBADF);
        assert_int_equal(loop_write(-1, "x", 0), 0); /* nothing to write: nothing done */
}

/* A regular file gets exactly the bytes. */
static void test_loop_write_file(void **state) {
        char path[] = "/tmp/test-io-util.XXXXXX", back[16] = {};
        int fd = mkstemp(path);

        assert_true(fd >= 0);
        assert_int_equal(loop_write(fd, "hello, world", 12), 0);
        assert_int_equal(pread(fd, back, sizeof(back), 0), 12);
        assert_string_equal(back, "hello, world");
        close(fd);
        unlink(path);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_loop_write_nonblocking_pipe),
                cmocka_unit_test(test_loop_write_epipe),
                cmocka_unit_test(test_loop_write_file),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
