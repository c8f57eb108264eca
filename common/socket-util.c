/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "macro.h"
#include "socket-util.h"

int socket_address_parse(const char *s, SocketAddress *ret) {
        struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV };
        struct addrinfo *res = NULL;
        char host[256];
        const char *port, *h;
        size_t hl;
        int r;

        if (isempty(s))
                return -EINVAL;
        if (s[0] == '[') {
                const char *e = strchr(s, ']');
                if (!e || e[1] != ':')
                        return -EINVAL;
                h = s + 1;
                hl = (size_t) (e - h);
                port = e + 2;
                hints.ai_family = AF_INET6;
        } else {
                const char *c = strrchr(s, ':');
                if (!c || strchr(s, ':') != c)
                        return -EINVAL;
                h = s;
                hl = (size_t) (c - s);
                port = c + 1;
        }
        if (hl == 0 || hl >= sizeof(host) || isempty(port) || strspn(port, "0123456789") != strlen(port) ||
            strlen(port) > 5 || atoi(port) > 65535)
                return -EINVAL;
        memcpy(host, h, hl);
        host[hl] = 0;

        r = getaddrinfo(host, port, &hints, &res);
        if (r != 0 || !res)
                return -EADDRNOTAVAIL;
        memcpy(&ret->sa, res->ai_addr, res->ai_addrlen);
        ret->len = res->ai_addrlen;
        freeaddrinfo(res);
        return 0;
}

const char *socket_address_format(const SocketAddress *a, char *buf, size_t size) {
        char host[INET6_ADDRSTRLEN] = "?";

        if (a->sa.ss_family == AF_INET6) {
                const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *) &a->sa;
                inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
                snprintf(buf, size, "[%s]:%u", host, ntohs(in6->sin6_port));
        } else if (a->sa.ss_family == AF_INET) {
                const struct sockaddr_in *in = (const struct sockaddr_in *) &a->sa;
                inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
                snprintf(buf, size, "%s:%u", host, ntohs(in->sin_port));
        } else
                snprintf(buf, size, "(unknown)");
        return buf;
}

bool socket_address_is_loopback(const SocketAddress *a) {
        if (a->sa.ss_family == AF_INET) {
                const struct sockaddr_in *in = (const struct sockaddr_in *) &a->sa;
                return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
        }
        if (a->sa.ss_family == AF_INET6) {
                const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *) &a->sa;
                if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
                        return true;
                return IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) && in6->sin6_addr.s6_addr[12] == 127;
        }
        return false;
}

int socket_local_address(int fd, SocketAddress *ret) {
        ret->len = sizeof(ret->sa);
        if (getsockname(fd, (struct sockaddr *) &ret->sa, &ret->len) < 0)
                return -errno;
        return 0;
}

int fd_set_nonblock(int fd, bool nonblock) {
        int flags = fcntl(fd, F_GETFL);

        if (flags < 0)
                return -errno;
        flags = nonblock ? flags | O_NONBLOCK : flags & ~O_NONBLOCK;
        if (fcntl(fd, F_SETFL, flags) < 0)
                return -errno;
        return 0;
}

void socket_set_buffers(int fd, int size) {
        (void) setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
        (void) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
}

int listen_fd_take(const char *fdname, int family) {
        char **names = NULL;
        int n, found = -ENOENT;

        n = sd_listen_fds_with_names(0, &names);
        if (n <= 0) {
                free(names);
                return -ENOENT;
        }
        /* First pass by name, second by family. */
        for (int pass = 0; pass < 2 && found < 0; pass++)
                for (int i = 0; i < n; i++) {
                        int fd = SD_LISTEN_FDS_START + i;
                        if (pass == 0 && (!fdname || !names || !streq_ptr(names[i], fdname)))
                                continue;
                        if (pass == 1 && family != AF_UNSPEC && sd_is_socket(fd, family, SOCK_STREAM, 1) <= 0)
                                continue;
                        found = fd;
                        break;
                }
        if (names)
                for (int i = 0; i < n; i++)
                        free(names[i]);
        free(names);
        if (found >= 0) {
                (void) fd_set_nonblock(found, true);
                (void) fcntl(found, F_SETFD, FD_CLOEXEC);
        }
        return found;
}

static void listen_names_free(char **names, int n) {
        if (names)
                for (int i = 0; i < n; i++)
                        free(names[i]);
        free(names);
}

bool socket_address_equal(const SocketAddress *a, const SocketAddress *b) {
        if (a->sa.ss_family != b->sa.ss_family)
                return false;
        switch (a->sa.ss_family) {
        case AF_INET: {
                const struct sockaddr_in *x = (const struct sockaddr_in *) &a->sa, *y = (const struct sockaddr_in *) &b->sa;
                return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
        }
        case AF_INET6: {
                const struct sockaddr_in6 *x = (const struct sockaddr_in6 *) &a->sa,
                                          *y = (const struct sockaddr_in6 *) &b->sa;
                return x->sin6_port == y->sin6_port && memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
        }
        case AF_UNIX:
                return a->len == b->len && memcmp(&a->sa, &b->sa, a->len) == 0;
        default:
                return false;
        }
}

static bool listen_fd_matches(int fd, const char *name, const char *fdname, const SocketAddress *address) {
        SocketAddress a;

        if (fdname && streq_ptr(name, fdname))
                return true;
        return address && socket_local_address(fd, &a) >= 0 && socket_address_equal(&a, address);
}

int listen_fd_take_matching(const char *fdname, const SocketAddress *address) {
        char **names = NULL;
        int n, found = -ENOENT;

        n = sd_listen_fds_with_names(0, &names);
        for (int i = 0; i < n; i++)
                if (listen_fd_matches(SD_LISTEN_FDS_START + i, names ? names[i] : NULL, fdname, address)) {
                        found = SD_LISTEN_FDS_START + i;
                        break;
                }
        listen_names_free(names, n);
        if (found >= 0) {
                (void) fd_set_nonblock(found, true);
                (void) fcntl(found, F_SETFD, FD_CLOEXEC);
        }
        return found;
}

int listen_fds_take_all(const char *except_name, const SocketAddress *except_address, int **ret_fds) {
        _cleanup_free_ int *fds = NULL;
        char **names = NULL;
        int n, k = 0;

        n = sd_listen_fds_with_names(0, &names);
        if (n <= 0) {
                listen_names_free(names, n);
                if (n < 0)
                        return n;
                *ret_fds = NULL;
                return 0;
        }
        fds = calloc((size_t) n, sizeof(int));
        if (!fds) {
                listen_names_free(names, n);
                return -ENOMEM;
        }
        for (int i = 0; i < n; i++) {
                int fd = SD_LISTEN_FDS_START + i;

                if (listen_fd_matches(fd, names ? names[i] : NULL, except_name, except_address))
                        continue;
                if (sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1) <= 0) {
                        listen_names_free(names, n);
                        return -ENOTSOCK;
                }
                (void) fd_set_nonblock(fd, true);
                (void) fcntl(fd, F_SETFD, FD_CLOEXEC);
                fds[k++] = fd;
        }
        listen_names_free(names, n);
        *ret_fds = TAKE_PTR(fds);
        return k;
}

#ifndef SO_PEERGROUPS
#define SO_PEERGROUPS 59
#endif

int socket_peer_credentials(int fd, pid_t *ret_pid, uid_t *ret_uid, gid_t *ret_gid, gid_t **ret_groups,
                            size_t *ret_n_groups) {
        struct ucred cred;
        socklen_t len = sizeof(cred);
        _cleanup_free_ gid_t *groups = NULL;

        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
                return -errno;
        if (len != sizeof(cred))
                return -EIO;
        /* The kernel says how much room the list needs when it does not fit (ERANGE). */
        len = 0;
        for (int attempt = 0;; attempt++) {
                if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) >= 0)
                        break;
                if (errno == ENOPROTOOPT || errno == EOPNOTSUPP) {
                        len = 0;
                        break;
                }
                if (errno != ERANGE || attempt >= 3)
                        return -errno;
                free(groups);
                groups = malloc(len ? len : sizeof(gid_t));
                if (!groups)
                        return -ENOMEM;
        }
        *ret_pid = cred.pid;
        *ret_uid = cred.uid;
        *ret_gid = cred.gid;
        *ret_n_groups = groups ? len / sizeof(gid_t) : 0;
        *ret_groups = TAKE_PTR(groups);
        return 0;
}

int socket_listen_unix(const char *path, int backlog) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int fd = -EBADF;
        struct stat st;

        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);

        /* A socket file left by a dead process is replaced; a live listener is not stolen. */
        if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
                _cleanup_close_ int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (probe >= 0 && connect(probe, (struct sockaddr *) &sa, sizeof(sa)) == 0)
                        return -EADDRINUSE;
                (void) unlink(path);
        }

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                return -errno;
        if (listen(fd, backlog) < 0)
                return -errno;
        return TAKE_FD(fd);
}

int socket_listen_unix_or_activated(const char *path, const char *fdname, bool *ret_activated) {
        int fd = listen_fd_take(fdname, AF_UNIX);

        if (ret_activated)
                *ret_activated = fd >= 0;
        if (fd >= 0)
                return fd;
        return socket_listen_unix(path, SOMAXCONN);
}

int socket_listen_tcp(const SocketAddress *a, int backlog) {
        _cleanup_close_ int fd = -EBADF;
        int one = 1;

        fd = socket(a->sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        (void) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (a->sa.ss_family == AF_INET6)
                (void) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
        if (bind(fd, (const struct sockaddr *) &a->sa, a->len) < 0)
                return -errno;
        if (listen(fd, backlog) < 0)
                return -errno;
        return TAKE_FD(fd);
}

int socket_connect_unix(const char *path, bool nonblock) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int fd = -EBADF;

        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0 && errno != EINPROGRESS && errno != EAGAIN)
                return -errno;
        return TAKE_FD(fd);
}

int socket_set_nodelay(int fd) {
        int one = 1;

        if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
                return errno == EOPNOTSUPP ? 0 : -errno;
        return 0;
}

int socket_connect_tcp(const SocketAddress *a) {
        _cleanup_close_ int fd = -EBADF;

        fd = socket(a->sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        (void) socket_set_nodelay(fd);
        if (connect(fd, (const struct sockaddr *) &a->sa, a->len) < 0 && errno != EINPROGRESS)
                return -errno;
        return TAKE_FD(fd);
}

int socket_finish_connect(int fd) {
        int err = 0;
        socklen_t len = sizeof(err);

        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
                return -errno;
        return -err;
}
