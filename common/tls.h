/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* TLS (1.2 and later, OpenSSL) over a non-blocking stream socket driven by an event loop: dpiped's
 * TCP listeners and the client tools. A connection is a TlsConn on an fd the caller owns; every
 * operation returns at once, and when one has to wait, tls_conn_events() says for what (EPOLLIN or
 * EPOLLOUT: a TLS read may need to write and the other way round), so the caller adds that to the
 * events it waits for and calls again.
 *
 * Reads: every tls_conn_read() offers at least TLS_READ_MIN bytes of room, so OpenSSL never keeps
 * decrypted bytes of a record that did not fit (it does not read ahead either): whatever is not
 * read yet is still in the kernel, and the socket's readiness tells the whole truth.
 * Writes: partial writes are on and the buffer may move between retries (it is a Buffer that
 * grows and is consumed from its head), so one call writes as much of the buffer as the socket
 * takes, one TLS record after the other.
 *
 * This is library code: nothing here logs; failures are described by tls_conn_error() or the
 * error buffer of the context constructors, in one line for the user. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "macro.h"

#define TLS_READ_MIN (16u * 1024u) /* the largest plaintext of one TLS record */
#define TLS_ERROR_MAX 256

typedef struct TlsContext TlsContext;
typedef struct TlsConn TlsConn;

/* A server: certificate chain and key (PEM). With client_ca, every client must present a
 * certificate that this CA (PEM bundle) signed. */
int tls_context_new_server(const char *cert, const char *key, const char *client_ca, TlsContext **ret,
                           char *error, size_t error_size);
/* A client: the server's certificate is verified against ca (a PEM bundle) or, when NULL, the
 * system's store; cert and key (both or none) are the client's own certificate. */
int tls_context_new_client(const char *ca, const char *cert, const char *key, TlsContext **ret, char *error,
                           size_t error_size);
TlsContext *tls_context_free(TlsContext *ctx);
DEFINE_TRIVIAL_CLEANUP_FUNC(TlsContext *, tls_context_free);

/* A connection on fd (which stays the caller's). For a client, host is the name or address the
 * server certificate must be issued for (also sent as SNI when it is a name); NULL for a server. */
int tls_conn_new(TlsContext *ctx, int fd, const char *host, TlsConn **ret);
TlsConn *tls_conn_free(TlsConn *t);
DEFINE_TRIVIAL_CLEANUP_FUNC(TlsConn *, tls_conn_free);

/* 1 once the handshake is complete, 0 while it waits (see tls_conn_events()), negative on failure:
 * -EKEYREJECTED when a certificate was not accepted, -EPROTO otherwise (tls_conn_error() says why). */
int tls_conn_handshake(TlsConn *t);
bool tls_conn_handshake_done(const TlsConn *t);
/* Decrypted bytes into buf (size >= TLS_READ_MIN): the number read, 0 at the end of the stream,
 * -EAGAIN when nothing is there yet, -EPROTO (or another negative errno) on failure. */
ssize_t tls_conn_read(TlsConn *t, void *buf, size_t size);
/* Writes as much of buf as the socket takes: the number of bytes written (0 when it takes nothing
 * now), or a negative errno on failure. */
ssize_t tls_conn_write(TlsConn *t, const void *buf, size_t size);
/* Sends close_notify if the socket takes it now; never waits. */
void tls_conn_shutdown(TlsConn *t);

/* EPOLLIN and/or EPOLLOUT: what the last operation that could not finish waits for; 0 if none. */
uint32_t tls_conn_events(const TlsConn *t);
const char *tls_conn_error(const TlsConn *t);
/* The common name of the peer's verified certificate, NULL if it sent none. */
const char *tls_conn_peer_cn(const TlsConn *t);
/* "TLSv1.3", for the logs. */
const char *tls_conn_version(const TlsConn *t);
