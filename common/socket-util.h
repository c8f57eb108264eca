/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

/* Every daemon either receives its listening socket from systemd (LISTEN_FDS, sd_listen_fds) or,
 * when started by hand, binds its own. */

typedef struct SocketAddress {
        struct sockaddr_storage sa;
        socklen_t len;
} SocketAddress;

/* Parses "host:port", "[v6]:port" or "v4:port". Host names are resolved with getaddrinfo()
 * (numeric ones without a lookup). -EINVAL for malformed input, -EADDRNOTAVAIL if not resolvable. */
int socket_address_parse(const char *s, SocketAddress *ret);
/* "127.0.0.1:7600" / "[::1]:7600" into buf. */
const char *socket_address_format(const SocketAddress *a, char *buf, size_t size);
/* 127.0.0.0/8, ::1 and ::ffff:127.0.0.0/104: only this machine can connect to a socket bound there. */
bool socket_address_is_loopback(const SocketAddress *a);
/* The address fd is bound to (getsockname). */
int socket_local_address(int fd, SocketAddress *ret);

/* Takes a listening socket passed by systemd: the one named fdname (FileDescriptorName=) if given
 * and present, else the first one whose family matches (AF_UNSPEC: any). Returns the fd, -ENOENT if
 * none was passed. Call once per process; unclaimed fds stay open. */
int listen_fd_take(const char *fdname, int family);

/* Same family, address and port (IPv4 and IPv6; Unix sockets by path). */
bool socket_address_equal(const SocketAddress *a, const SocketAddress *b);

/* The socket passed by systemd that is named fdname (if fdname is not NULL) or else bound to
 * address (if not NULL): -ENOENT if there is none. No fallback to the first of a family. */
int listen_fd_take_matching(const char *fdname, const SocketAddress *address);

/* Takes every socket passed by systemd, except those listen_fd_take_matching(except_name,
 * except_address) would take (both may be NULL). Returns how many (0 when not socket activated)
 * and a malloc'ed array of them in *ret_fds; each is made non-blocking and close-on-exec.
 * -ENOTSOCK if one is not a listening stream socket. */
int listen_fds_take_all(const char *except_name, const SocketAddress *except_address, int **ret_fds);

/* The peer of a connected Unix socket: SO_PEERCRED, and the supplementary groups (SO_PEERGROUPS,
 * malloc'ed into *ret_groups, may be NULL when there are none). */
int socket_peer_credentials(int fd, pid_t *ret_pid, uid_t *ret_uid, gid_t *ret_gid, gid_t **ret_groups,
                            size_t *ret_n_groups);

/* Binds and listens on a Unix stream socket at path, replacing a stale socket file. Non-blocking,
 * close-on-exec. -EADDRINUSE if another process is listening there. */
int socket_listen_unix(const char *path, int backlog);
/* Binds and listens on a TCP address (SO_REUSEADDR). */
int socket_listen_tcp(const SocketAddress *a, int backlog);
/* Both: prefer a socket from systemd, else bind. *ret_activated tells which (may be NULL). */
int socket_listen_unix_or_activated(const char *path, const char *fdname, bool *ret_activated);

/* Connects a non-blocking stream socket. Returns the fd; connection may still be in progress
 * (EINPROGRESS is not an error: wait for EPOLLOUT and check SO_ERROR with socket_finish_connect). */
int socket_connect_unix(const char *path, bool nonblock);
int socket_connect_tcp(const SocketAddress *a);
/* TCP_NODELAY on a stream socket, for one that writes whole batches itself: without it the tail of a
 * batch waits for the peer's ACK of the one before (Nagle), which a peer that only reads delays by
 * its delayed-ACK timer (40 ms on Linux). A no-op (success) on a unix socket; returns 0 or -errno. */
int socket_set_nodelay(int fd);
int socket_finish_connect(int fd);

int fd_set_nonblock(int fd, bool nonblock);
/* Larger kernel buffers for the data path (best effort). */
void socket_set_buffers(int fd, int size);
