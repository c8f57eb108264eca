/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "dpiped-client.h"
#include "dpiped-listen.h"
#include "log.h"
#include "socket-util.h"
#include "util.h"

/* A refusal for too many clients is logged at most this often. */
#define REFUSAL_LOG_INTERVAL_USEC (10 * USEC_PER_SEC)

struct Listener {
        Manager *manager;
        Listener *next;
        int fd;
        int family;
        bool tls;
        char *bound_path; /* client.sock we bound ourselves: removed at exit */
        char name[128];
        sd_event_source *event_source;
};

static Listener *listener_free(Listener *l) {
        if (!l)
                return NULL;
        sd_event_source_disable_unref(l->event_source);
        safe_close(l->fd);
        if (l->bound_path)
                (void) unlink(l->bound_path);
        free(l->bound_path);
        free(l);
        return NULL;
}

void manager_listeners_free(Manager *m) {
        while (m->listeners) {
                Listener *l = m->listeners;
                m->listeners = l->next;
                listener_free(l);
        }
}

static void refuse(Listener *l, int fd) {
        static const char line[] =
                "{\"op\":\"error\",\"code\":\"overloaded\",\"message\":\"too many clients, try again later\"}\n";
        Manager *m = l->manager;
        uint64_t now = now_usec(CLOCK_MONOTONIC);

        /* One line, if the socket takes it now; a TLS client cannot read it before a handshake. */
        if (!l->tls)
                (void) !write(fd, line, sizeof(line) - 1);
        safe_close(fd);
        m->n_clients_refused++;
        if (m->last_refusal_log_usec == 0 || now - m->last_refusal_log_usec >= REFUSAL_LOG_INTERVAL_USEC) {
                log_warning("Refused a connection on %s: %u clients, the most --max-clients allows (%u refused so far).",
                            l->name, m->n_clients, m->n_clients_refused);
                m->last_refusal_log_usec = now;
        }
}

static int accept_handler(sd_event_source *es, int fd, uint32_t revents, void *userdata) {
        Listener *l = userdata;
        Manager *m = l->manager;

        for (int i = 0; i < 64; i++) {
                int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                int r;

                if (cfd < 0) {
                        if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED)
                                return 0;
                        /* Out of fds or memory: log, and give the loop a chance to free some. */
                        log_warning_errno(errno, "Failed to accept a client connection on %s: %m", l->name);
                        return 0;
                }
                if (m->n_clients >= m->max_clients) {
                        refuse(l, cfd);
                        continue;
                }
                r = client_new(m, cfd, l->family, l->tls);
                if (r < 0)
                        log_warning_errno(r, "Failed to set up a client connection on %s: %m", l->name);
        }
        return 0;
}

static int listener_add(Manager *m, int fd, int family, const char *bound_path) {
        Listener *l;
        SocketAddress a;
        int r;

        l = calloc(1, sizeof(Listener));
        if (!l) {
                safe_close(fd);
                return log_oom();
        }
        l->manager = m;
        l->fd = fd;
        l->family = family;
        l->tls = family != AF_UNIX && m->tls;
        l->next = m->listeners;
        m->listeners = l;
        if (bound_path) {
                l->bound_path = strdup(bound_path);
                if (!l->bound_path)
                        return log_oom();
        }
        if (family == AF_UNIX) {
                const struct sockaddr_un *un = (const struct sockaddr_un *) &a.sa;

                if (bound_path)
                        snprintf(l->name, sizeof(l->name), "%s", bound_path);
                else if (socket_local_address(fd, &a) >= 0 && a.len > offsetof(struct sockaddr_un, sun_path) &&
                         un->sun_path[0])
                        snprintf(l->name, sizeof(l->name), "%.*s", (int) (a.len - offsetof(struct sockaddr_un, sun_path)),
                                 un->sun_path);
                else
                        snprintf(l->name, sizeof(l->name), CLIENT_SOCKET_NAME);
        } else if (socket_local_address(fd, &a) >= 0)
                socket_address_format(&a, l->name, sizeof(l->name));
        else
                snprintf(l->name, sizeof(l->name), "fd %d", fd);

        r = sd_event_add_io(m->event, &l->event_source, fd, EPOLLIN, accept_handler, l);
        if (r < 0)
                return log_error_errno(r, "Failed to watch the client socket %s: %m", l->name);
        return 0;
}

/* dpiped(8), ACCESS: plain text only where nobody but this machine can listen in. */
static int check_plaintext(Manager *m, const SocketAddress *a) {
        char buf[128];

        if (m->tls || m->allow_plaintext || socket_address_is_loopback(a))
                return 0;
        log_error("Refusing to serve clients in plain text on %s, which is not a loopback address: "
                  "give --tls-cert= and --tls-key=, or --allow-plaintext.",
                  socket_address_format(a, buf, sizeof(buf)));
        return -EPERM;
}

static int listen_tcp(Manager *m) {
        char buf[128];
        int fd, r;

        r = check_plaintext(m, &m->listen_address);
        if (r < 0)
                return r;
        fd = socket_listen_tcp(&m->listen_address, SOMAXCONN);
        if (fd < 0)
                return log_error_errno(fd, "Failed to listen on %s: %m",
                                       socket_address_format(&m->listen_address, buf, sizeof(buf)));
        return listener_add(m, fd, m->listen_address.sa.ss_family, NULL);
}

static int listen_unix(Manager *m) {
        _cleanup_free_ char *path = NULL;
        int fd, r;

        path = path_join(m->runtime_dir, CLIENT_SOCKET_NAME);
        if (!path)
                return log_oom();
        r = mkdir_p(m->runtime_dir, 0755);
        if (r < 0)
                return log_error_errno(r, "Failed to create %s: %m", m->runtime_dir);
        fd = socket_listen_unix(path, SOMAXCONN);
        if (fd == -EADDRINUSE)
                return log_error_errno(fd, "Another process serves %s (another dpiped?).", path);
        if (fd < 0)
                return log_error_errno(fd, "Failed to listen on %s: %m", path);
        /* Everyone may connect (to read and subscribe); who may change the pipeline is decided by
         * the peer's credentials. Not fchmod(): that changes the socket inode, not the file. */
        if (chmod(path, 0666) < 0) {
                r = -errno;
                safe_close(fd);
                (void) unlink(path);
                return log_error_errno(r, "Failed to make %s accessible to everyone: %m", path);
        }
        return listener_add(m, fd, AF_UNIX, path);
}

int manager_listen(Manager *m) {
        _cleanup_free_ int *fds = NULL;
        bool have_unix = false, have_tcp = false;
        int n, r;

        /* The metrics socket (named "metrics", or bound to the --metrics address) is
         * dpiped-metrics.c's. */
        n = listen_fds_take_all("metrics", m->metrics ? &m->metrics_address : NULL, &fds);
        if (n == -ENOTSOCK)
                return log_error_errno(n, "A file descriptor passed by systemd is not a listening stream socket.");
        if (n < 0)
                return log_error_errno(n, "Failed to take the sockets passed by systemd: %m");

        for (int i = 0; i < n; i++) {
                SocketAddress a;
                char buf[128];
                int family;

                r = socket_local_address(fds[i], &a);
                if (r < 0)
                        return log_error_errno(r, "Failed to learn the address of socket fd %d passed by systemd: %m",
                                               fds[i]);
                family = a.sa.ss_family;
                if (family == AF_UNIX) {
                        r = listener_add(m, fds[i], AF_UNIX, NULL);
                        have_unix = true;
                } else if (family == AF_INET || family == AF_INET6) {
                        r = check_plaintext(m, &a);
                        if (r < 0)
                                return r;
                        log_info("Serving clients on %s%s (socket passed by systemd).",
                                 socket_address_format(&a, buf, sizeof(buf)), m->tls ? " with TLS" : "");
                        r = listener_add(m, fds[i], family, NULL);
                        have_tcp = true;
                } else
                        return log_error_errno(-EAFNOSUPPORT,
                                               "Socket fd %d passed by systemd is neither AF_UNIX nor TCP.", fds[i]);
                fds[i] = -EBADF;
                if (r < 0)
                        return r;
        }

        /* By hand: --listen (unless "none"). Under systemd the TCP sockets are dpiped.socket's only,
         * dpiped.service has no network of its own. */
        if (n == 0 && m->listen_tcp) {
                char buf[128];

                r = listen_tcp(m);
                if (r < 0)
                        return r;
                have_tcp = true;
                log_info("Serving clients on %s%s.", socket_address_format(&m->listen_address, buf, sizeof(buf)),
                         m->tls ? " with TLS" : "");
        }
        if (!have_unix) {
                r = listen_unix(m);
                if (r < 0)
                        return r;
        }
        for (Listener *l = m->listeners; l; l = l->next)
                if (l->family == AF_UNIX)
                        log_info("Serving clients on %s%s.", l->name, have_unix ? " (socket passed by systemd)" : "");
        if (!have_tcp)
                log_info("No TCP listener: clients connect to %s only.", CLIENT_SOCKET_NAME);
        return 0;
}
