/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <cmocka.h>

#include "socket-util.h"
#include "util.h"

static void expect_round_trip(const char *in, const char *out) {
        SocketAddress a;
        char buf[64];

        assert_int_equal(socket_address_parse(in, &a), 0);
        assert_string_equal(socket_address_format(&a, buf, sizeof(buf)), out);
}

static void test_address_parse(void **state) {
        SocketAddress a;
        char buf[64];

        expect_round_trip("127.0.0.1:7600", "127.0.0.1:7600");
        expect_round_trip("0.0.0.0:0", "0.0.0.0:0");
        expect_round_trip("[::1]:7600", "[::1]:7600");
        expect_round_trip("[::]:65535", "[::]:65535");
        expect_round_trip("10.1.2.3:080", "10.1.2.3:80");

        /* localhost comes from /etc/hosts, either family. */
        assert_int_equal(socket_address_parse("localhost:80", &a), 0);
        socket_address_format(&a, buf, sizeof(buf));
        assert_true(streq(buf, "127.0.0.1:80") || streq(buf, "[::1]:80"));

        static const char *const bad[] = {
                "", "127.0.0.1", "127.0.0.1:", ":80", "127.0.0.1:65536", "127.0.0.1:123456",
                "127.0.0.1:-1", "127.0.0.1:80x", "127.0.0.1: 80", "::1:80", "[::1]80", "[::1",
                "[::1]:", "[]:80",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                int r = socket_address_parse(bad[i], &a);
                if (r != -EINVAL)
                        fail_msg("socket_address_parse(\"%s\") = %d, expected -EINVAL", bad[i], r);
        }
        assert_int_equal(socket_address_parse(NULL, &a), -EINVAL);
}

static char *temp_dir(void) {
        char *d = strdup("/tmp/dpipe-test-socket.XXXXXX");
        assert_non_null(d);
        assert_non_null(mkdtemp(d));
        return d;
}

static void test_unix(void **state) {
        char *dir = temp_dir(), *path = path_join(dir, "x.sock"), longpath[200];
        int l, l2, c, s;
        struct stat st;

        l = socket_listen_unix(path, 16);
        assert_true(l >= 0);
        assert_int_equal(stat(path, &st), 0);
        assert_true(S_ISSOCK(st.st_mode));
        assert_true(fcntl(l, F_GETFL) & O_NONBLOCK);
        assert_true(fcntl(l, F_GETFD) & FD_CLOEXEC);

        c = socket_connect_unix(path, false);
        assert_true(c >= 0);
        s = accept4(l, NULL, NULL, SOCK_CLOEXEC);
        assert_true(s >= 0);
        /* Nothing to do on a unix socket, and not an error: callers need not know the family. */
        assert_int_equal(socket_set_nodelay(s), 0);
        assert_int_equal(write(c, "hi", 2), 2);
        {
                char buf[2];
                assert_int_equal(read(s, buf, 2), 2);
                assert_memory_equal(buf, "hi", 2);
        }
        close(s);
        close(c);

        /* A live listener is not stolen (the check connects once, which the listener sees). */
        assert_int_equal(socket_listen_unix(path, 16), -EADDRINUSE);

        /* A stale socket file of a dead listener is replaced. */
        close(l);
        l2 = socket_listen_unix(path, 16);
        assert_true(l2 >= 0);
        close(l2);

        /* Nobody listening: connect fails with a negative errno. */
        assert_int_equal(unlink(path), 0);
        assert_int_equal(socket_connect_unix(path, false), -ENOENT);

        memset(longpath, 'a', sizeof(longpath) - 1);
        longpath[0] = '/';
        longpath[sizeof(longpath) - 1] = 0;
        assert_int_equal(socket_listen_unix(longpath, 16), -ENAMETOOLONG);
        assert_int_equal(socket_connect_unix(longpath, false), -ENAMETOOLONG);

        assert_int_equal(rmdir(dir), 0);
        free(path);
        free(dir);
}

static int nodelay_of(int fd) {
        int v = -1;
        socklen_t len = sizeof(v);

        assert_int_equal(getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, &len), 0);
        return v != 0;
}

static void test_tcp(void **state) {
        SocketAddress a;
        struct sockaddr_in sin;
        socklen_t len = sizeof(sin);
        struct pollfd p;
        int l, c, s;

        assert_int_equal(socket_address_parse("127.0.0.1:0", &a), 0);
        l = socket_listen_tcp(&a, 16);
        assert_true(l >= 0);
        assert_int_equal(getsockname(l, (struct sockaddr *) &sin, &len), 0);
        assert_true(ntohs(sin.sin_port) > 0);
        memcpy(&a.sa, &sin, sizeof(sin));
        a.len = sizeof(sin);

        c = socket_connect_tcp(&a);
        assert_true(c >= 0);
        p = (struct pollfd) { .fd = c, .events = POLLOUT };
        assert_int_equal(poll(&p, 1, 5000), 1);
        assert_int_equal(socket_finish_connect(c), 0);
        s = accept4(l, NULL, NULL, SOCK_CLOEXEC);
        assert_true(s >= 0);
        /* Both ends without Nagle: connected ones by socket_connect_tcp(), accepted ones by
         * socket_set_nodelay(). */
        assert_int_equal(nodelay_of(c), 1);
        assert_int_equal(nodelay_of(s), 0);
        assert_int_equal(socket_set_nodelay(s), 0);
        assert_int_equal(nodelay_of(s), 1);
        close(s);
        close(c);

        /* The same port again while listening: in use. */
        assert_true(socket_listen_tcp(&a, 16) < 0);
        close(l);

        /* Connecting to a closed port: the error shows up in socket_finish_connect(). */
        c = socket_connect_tcp(&a);
        if (c >= 0) {
                p = (struct pollfd) { .fd = c, .events = POLLOUT };
                assert_int_equal(poll(&p, 1, 5000), 1);
                assert_int_equal(socket_finish_connect(c), -ECONNREFUSED);
                close(c);
        } else
                assert_int_equal(c, -ECONNREFUSED);
}

static void test_loopback(void **state) {
        static const struct {
                const char *address;
                bool loopback;
        } cases[] = {
                { "127.0.0.1:1", true },     { "127.1.2.3:1", true },  { "[::1]:1", true },
                { "0.0.0.0:1", false },      { "10.0.0.1:1", false },  { "[::]:1", false },
                { "128.0.0.1:1", false },    { "[::2]:1", false },     { "[::ffff:127.0.0.1]:1", true },
                { "[::ffff:10.0.0.1]:1", false },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                SocketAddress a;

                assert_int_equal(socket_address_parse(cases[i].address, &a), 0);
                if (socket_address_is_loopback(&a) != cases[i].loopback)
                        fail_msg("%s: loopback %d expected", cases[i].address, cases[i].loopback);
        }
}

/* SO_PEERCRED and SO_PEERGROUPS of a connected pair: our own uid, pid and groups. */
static void test_peer_credentials(void **state) {
        _cleanup_free_ gid_t *groups = NULL;
        gid_t gid, mine[256];
        size_t n_groups = 0;
        pid_t pid;
        uid_t uid;
        int pair[2], n_mine;

        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
        assert_int_equal(socket_peer_credentials(pair[0], &pid, &uid, &gid, &groups, &n_groups), 0);
        assert_int_equal(pid, getpid());
        assert_int_equal(uid, geteuid());
        assert_int_equal(gid, getegid());
        n_mine = getgroups(ELEMENTSOF(mine), mine);
        assert_true(n_mine >= 0);
        assert_int_equal(n_groups, (size_t) n_mine);
        for (size_t i = 0; i < n_groups; i++) {
                bool found = false;
                for (int j = 0; j < n_mine; j++)
                        found = found || mine[j] == groups[i];
                assert_true(found);
        }
        close(pair[0]);
        close(pair[1]);
}

static void test_activation(void **state) {
        char *dir = temp_dir(), *path = path_join(dir, "a.sock"), pid[32];
        bool activated = true;
        int l, fd;

        /* Without LISTEN_FDS the daemon binds its own socket. */
        assert_int_equal(unsetenv("LISTEN_FDS"), 0);
        assert_int_equal(listen_fd_take("writer", AF_UNIX), -ENOENT);
        fd = socket_listen_unix_or_activated(path, "writer", &activated);
        assert_true(fd >= 0);
        assert_false(activated);
        close(fd);
        assert_int_equal(unlink(path), 0);

        /* As systemd passes it: fd 3, LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES. Only when fd 3 is free
         * in this process (a test runner might hold it). */
        if (fcntl(3, F_GETFD) < 0) {
                l = socket_listen_unix(path, 16);
                assert_true(l >= 0);
                if (l != 3) {
                        assert_int_equal(dup2(l, 3), 3);
                        close(l);
                }
                snprintf(pid, sizeof(pid), "%ld", (long) getpid());
                assert_int_equal(setenv("LISTEN_PID", pid, 1), 0);
                assert_int_equal(setenv("LISTEN_FDS", "1", 1), 0);
                assert_int_equal(setenv("LISTEN_FDNAMES", "writer", 1), 0);

                fd = socket_listen_unix_or_activated("/nonexistent/never-bound.sock", "writer", &activated);
                assert_int_equal(fd, 3);
                assert_true(activated);
                assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
                /* Another name falls back to the family. */
                assert_int_equal(listen_fd_take("other", AF_UNIX), 3);
                assert_int_equal(listen_fd_take("other", AF_INET), -ENOENT);
                close(3);
                unsetenv("LISTEN_PID");
                unsetenv("LISTEN_FDS");
                unsetenv("LISTEN_FDNAMES");
                assert_int_equal(unlink(path), 0);
        }

        assert_int_equal(rmdir(dir), 0);
        free(path);
        free(dir);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_address_parse),
                cmocka_unit_test(test_unix),
                cmocka_unit_test(test_tcp),
                cmocka_unit_test(test_activation),
                cmocka_unit_test(test_loopback),
                cmocka_unit_test(test_peer_credentials),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
