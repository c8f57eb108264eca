/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* dpipe-client's stdout: a full pipe must not block the loop, the rest goes out when the reader
 * drains it (and only then is the owner told, so that it acks), a closed reader is -EPIPE, the
 * pipe gets its blocking mode back, and a pipe that is also stderr is left blocking. */

#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "output.h"

typedef struct Done {
        int calls;
        int error;
} Done;

static void on_done(Output *o, int error, void *userdata) {
        Done *d = userdata;

        d->calls++;
        d->error = error;
}

static size_t drain(int fd) {
        char buf[65536];
        size_t total = 0;
        ssize_t n;

        while ((n = read(fd, buf, sizeof(buf))) > 0)
                total += (size_t) n;
        return total;
}

static void test_full_pipe(void **state) {
        sd_event *e = NULL;
        Output *o = NULL;
        Done d = {};
        int p[2];
        size_t total = 0, written;
        char chunk[4096];

        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        assert_int_equal(fcntl(p[0], F_SETFL, O_NONBLOCK), 0);
        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(output_new(e, p[1], on_done, &d, &o), 0);
        assert_true(fcntl(p[1], F_GETFL) & O_NONBLOCK);

        /* More than any pipe holds (64 KiB by default): flush returns "pending" instead of blocking. */
        memset(chunk, 'x', sizeof(chunk));
        for (int i = 0; i < 64; i++)
                assert_int_equal(buffer_append(output_buffer(o), chunk, sizeof(chunk)), 0);
        written = 64 * sizeof(chunk);
        assert_int_equal(output_flush(o), 1);
        assert_true(output_pending(o));
        assert_int_equal(d.calls, 0);

        /* The reader catches up: the loop writes the rest and tells us once, with no error. */
        while (d.calls == 0) {
                total += drain(p[0]);
                assert_true(sd_event_run(e, 100 * 1000) >= 0);
        }
        total += drain(p[0]);
        assert_int_equal(d.error, 0);
        assert_int_equal(total, written);
        assert_false(output_pending(o));
        assert_int_equal(output_flush(o), 0);

        /* Back to blocking for whoever shares the pipe after us. */
        output_free(o);
        assert_false(fcntl(p[1], F_GETFL) & O_NONBLOCK);
        close(p[0]);
        close(p[1]);
        sd_event_unref(e);
}

static void test_closed_reader(void **state) {
        sd_event *e = NULL;
        Output *o = NULL;
        Done d = {};
        int p[2];

        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(output_new(e, p[1], on_done, &d, &o), 0);
        close(p[0]);
        assert_int_equal(buffer_append_str(output_buffer(o), "record\n"), 0);
        assert_int_equal(output_flush(o), -EPIPE);
        assert_int_equal(output_flush_blocking(o, 100), -EPIPE);
        output_free(o);
        close(p[1]);
        sd_event_unref(e);
}

static void test_regular_file(void **state) {
        char path[] = "/tmp/test-client-output.XXXXXX";
        sd_event *e = NULL;
        Output *o = NULL;
        int fd, flags;
        char buf[16] = {};

        fd = mkstemp(path);
        assert_true(fd >= 0);
        (void) unlink(path);
        flags = fcntl(fd, F_GETFL);
        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(output_new(e, fd, on_done, NULL, &o), 0);
        /* Files are left alone: they never block. */
        assert_int_equal(fcntl(fd, F_GETFL), flags);
        assert_int_equal(buffer_append_str(output_buffer(o), "a\nb\n"), 0);
        assert_int_equal(output_flush_blocking(o, -1), 0);
        assert_int_equal(pread(fd, buf, sizeof(buf) - 1, 0), 4);
        assert_string_equal(buf, "a\nb\n");
        output_free(o);
        close(fd);
        sd_event_unref(e);
}

static void test_shared_with_stderr(void **state) {
        sd_event *e = NULL;
        Output *o = NULL;
        int p[2], saved;

        /* "2>&1 | reader": the pipe stays blocking, or our own messages could be lost. */
        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        saved = dup(STDERR_FILENO);
        assert_true(saved >= 0);
        assert_true(dup2(p[1], STDERR_FILENO) >= 0);
        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(output_new(e, p[1], on_done, NULL, &o), 0);
        assert_false(fcntl(p[1], F_GETFL) & O_NONBLOCK);
        output_free(o);
        assert_true(dup2(saved, STDERR_FILENO) >= 0);
        close(saved);
        close(p[0]);
        close(p[1]);
        sd_event_unref(e);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_full_pipe),
                cmocka_unit_test(test_closed_reader),
                cmocka_unit_test(test_regular_file),
                cmocka_unit_test(test_shared_with_stderr),
        };

        (void) signal(SIGPIPE, SIG_IGN);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
