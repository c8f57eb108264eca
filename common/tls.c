/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>

#include "tls.h"

struct TlsContext {
        SSL_CTX *ctx;
        bool server;
};

struct TlsConn {
        SSL *ssl;
        bool server;
        bool handshake_done;
        bool eof;
        int failed;      /* a failure seen after some bytes were already returned: reported next */
        uint32_t events; /* what the last blocked operation waits for */
        char *peer_cn;
        char error[TLS_ERROR_MAX];
};

/* The reason of the last OpenSSL error in words ("certificate verify failed"), and the queue
 * emptied for the next operation. */
static void tls_error_string(char *buf, size_t size, const char *fallback) {
        unsigned long e = ERR_peek_last_error();
        const char *reason = e ? ERR_reason_error_string(e) : NULL;

        if (reason)
                snprintf(buf, size, "%s", reason);
        else if (e)
                ERR_error_string_n(e, buf, size);
        else
                snprintf(buf, size, "%s", fallback);
        ERR_clear_error();
}

/* A file we cannot open is reported with errno's words, not OpenSSL's "system lib". */
static int check_readable(const char *what, const char *path, char *error, size_t error_size) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);

        if (fd < 0) {
                int r = -errno;
                snprintf(error, error_size, "cannot open %s %s: %s", what, path, strerror(errno));
                return r;
        }
        close(fd);
        return 0;
}

static int context_new(bool server, TlsContext **ret) {
        TlsContext *c;

        c = calloc(1, sizeof(TlsContext));
        if (!c)
                return -ENOMEM;
        c->server = server;
        c->ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
        if (!c->ctx) {
                free(c);
                return -ENOMEM;
        }
        /* TLS 1.2 at least; no renegotiation (a peer could make us do handshakes on demand); a peer
         * that closes without close_notify is an ordinary end of stream for a line protocol (a cut
         * line has no newline and is never processed); no session cache or tickets: connections
         * are long-lived, resumption would buy nothing. */
        SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION);
        SSL_CTX_set_options(c->ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_COMPRESSION |
                                            SSL_OP_NO_TICKET | (server ? SSL_OP_CIPHER_SERVER_PREFERENCE : 0));
        SSL_CTX_set_session_cache_mode(c->ctx, SSL_SESS_CACHE_OFF);
        if (server)
                SSL_CTX_set_num_tickets(c->ctx, 0);
        /* Partial writes with a buffer that may move: see tls.h. A server has many idle
         * connections: their record buffers are given back while they are empty. */
        SSL_CTX_set_mode(c->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                                         (server ? SSL_MODE_RELEASE_BUFFERS : 0));
        *ret = c;
        return 0;
}

static int context_use_certificate(TlsContext *c, const char *cert, const char *key, char *error, size_t error_size) {
        char why[TLS_ERROR_MAX];
        int r;

        r = check_readable("certificate", cert, error, error_size);
        if (r < 0)
                return r;
        r = check_readable("key", key, error, error_size);
        if (r < 0)
                return r;
        if (SSL_CTX_use_certificate_chain_file(c->ctx, cert) != 1) {
                tls_error_string(why, sizeof(why), "not a PEM certificate");
                snprintf(error, error_size, "cannot load certificate %s: %s", cert, why);
                return -EINVAL;
        }
        if (SSL_CTX_use_PrivateKey_file(c->ctx, key, SSL_FILETYPE_PEM) != 1) {
                if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH) {
                        ERR_clear_error();
                        snprintf(error, error_size, "key %s does not belong to certificate %s", key, cert);
                        return -EINVAL;
                }
                tls_error_string(why, sizeof(why), "not a PEM key");
                snprintf(error, error_size, "cannot load key %s: %s", key, why);
                return -EINVAL;
        }
        if (SSL_CTX_check_private_key(c->ctx) != 1) {
                tls_error_string(why, sizeof(why), "mismatch");
                snprintf(error, error_size, "key %s does not belong to certificate %s: %s", key, cert, why);
                return -EINVAL;
        }
        return 0;
}

static int context_load_ca(TlsContext *c, const char *ca, char *error, size_t error_size) {
        char why[TLS_ERROR_MAX];
        int r;

        r = check_readable("CA file", ca, error, error_size);
        if (r < 0)
                return r;
        if (SSL_CTX_load_verify_locations(c->ctx, ca, NULL) != 1) {
                tls_error_string(why, sizeof(why), "no PEM certificates");
                snprintf(error, error_size, "cannot load CA file %s: %s", ca, why);
                return -EINVAL;
        }
        return 0;
}

int tls_context_new_server(const char *cert, const char *key, const char *client_ca, TlsContext **ret,
                           char *error, size_t error_size) {
        _cleanup_(tls_context_freep) TlsContext *c = NULL;
        int r;

        ERR_clear_error();
        r = context_new(true, &c);
        if (r < 0) {
                snprintf(error, error_size, "out of memory");
                return r;
        }
        r = context_use_certificate(c, cert, key, error, error_size);
        if (r < 0)
                return r;
        if (client_ca) {
                STACK_OF(X509_NAME) *names;

                r = context_load_ca(c, client_ca, error, error_size);
                if (r < 0)
                        return r;
                /* Tell clients which CAs we accept, so that one with several certificates picks. */
                names = SSL_load_client_CA_file(client_ca);
                if (names)
                        SSL_CTX_set_client_CA_list(c->ctx, names);
                ERR_clear_error();
                SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
        }
        *ret = TAKE_PTR(c);
        return 0;
}

int tls_context_new_client(const char *ca, const char *cert, const char *key, TlsContext **ret, char *error,
                           size_t error_size) {
        _cleanup_(tls_context_freep) TlsContext *c = NULL;
        int r;

        ERR_clear_error();
        r = context_new(false, &c);
        if (r < 0) {
                snprintf(error, error_size, "out of memory");
                return r;
        }
        if (ca) {
                r = context_load_ca(c, ca, error, error_size);
                if (r < 0)
                        return r;
        } else if (SSL_CTX_set_default_verify_paths(c->ctx) != 1) {
                char why[TLS_ERROR_MAX];
                tls_error_string(why, sizeof(why), "unknown error");
                snprintf(error, error_size, "cannot load the system's CA store: %s", why);
                return -EINVAL;
        }
        if (!!cert != !!key) {
                snprintf(error, error_size, "a client certificate needs its key, and a key its certificate");
                return -EINVAL;
        }
        if (cert) {
                r = context_use_certificate(c, cert, key, error, error_size);
                if (r < 0)
                        return r;
        }
        SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
        *ret = TAKE_PTR(c);
        return 0;
}

TlsContext *tls_context_free(TlsContext *c) {
        if (!c)
                return NULL;
        SSL_CTX_free(c->ctx);
        free(c);
        return NULL;
}

int tls_conn_new(TlsContext *ctx, int fd, const char *host, TlsConn **ret) {
        _cleanup_(tls_conn_freep) TlsConn *t = NULL;

        t = calloc(1, sizeof(TlsConn));
        if (!t)
                return -ENOMEM;
        t->server = ctx->server;
        t->ssl = SSL_new(ctx->ctx);
        if (!t->ssl || SSL_set_fd(t->ssl, fd) != 1)
                return -ENOMEM;
        if (ctx->server)
                SSL_set_accept_state(t->ssl);
        else {
                unsigned char addr[sizeof(struct in6_addr)];
                bool is_ip = host && (inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1);

                SSL_set_connect_state(t->ssl);
                if (host && is_ip) {
                        /* An address is checked against the certificate's IP SANs. */
                        if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), host) != 1)
                                return -EINVAL;
                } else if (host) {
                        if (SSL_set1_host(t->ssl, host) != 1 || SSL_set_tlsext_host_name(t->ssl, host) != 1)
                                return -ENOMEM;
                }
        }
        ERR_clear_error();
        *ret = TAKE_PTR(t);
        return 0;
}

TlsConn *tls_conn_free(TlsConn *t) {
        if (!t)
                return NULL;
        SSL_free(t->ssl);
        free(t->peer_cn);
        free(t);
        return NULL;
}

static void conn_take_peer_cn(TlsConn *t) {
        X509 *peer = SSL_get1_peer_certificate(t->ssl);
        char cn[256];
        int n;

        if (!peer)
                return;
        n = X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, cn, sizeof(cn));
        if (n > 0)
                t->peer_cn = strdup(cn);
        X509_free(peer);
}

/* Maps SSL_get_error() for a failed call: 0 for "try again" (events set), else a negative errno
 * with t->error filled. */
static int conn_map_error(TlsConn *t, int ret, const char *what) {
        char why[TLS_ERROR_MAX];
        long verify;
        int err = SSL_get_error(t->ssl, ret);

        switch (err) {
        case SSL_ERROR_WANT_READ:
                ERR_clear_error();
                t->events = EPOLLIN;
                return 0;
        case SSL_ERROR_WANT_WRITE:
                ERR_clear_error();
                t->events = EPOLLOUT;
                return 0;
        case SSL_ERROR_ZERO_RETURN:
                ERR_clear_error();
                t->eof = true;
                snprintf(t->error, sizeof(t->error), "connection closed by the peer");
                return -ECONNRESET;
        case SSL_ERROR_SYSCALL: {
                int e = errno;
                if (ERR_peek_last_error() == 0) {
                        ERR_clear_error();
                        if (e == 0 || ret == 0) {
                                t->eof = true;
                                snprintf(t->error, sizeof(t->error), "connection closed by the peer during %s", what);
                                return -ECONNRESET;
                        }
                        snprintf(t->error, sizeof(t->error), "%s failed: %s", what, strerror(e));
                        return -e;
                }
                _fallthrough_;
        }
        default:
                verify = SSL_get_verify_result(t->ssl);
                tls_error_string(why, sizeof(why), "protocol error");
                if (verify != X509_V_OK && !t->handshake_done) {
                        snprintf(t->error, sizeof(t->error), "%s failed: %.100s (%.100s)", what, why,
                                 X509_verify_cert_error_string(verify));
                        return -EKEYREJECTED;
                }
                snprintf(t->error, sizeof(t->error), "%s failed: %.200s", what, why);
                return -EPROTO;
        }
}

int tls_conn_handshake(TlsConn *t) {
        int r;

        if (t->handshake_done)
                return 1;
        t->events = 0;
        ERR_clear_error();
        r = SSL_do_handshake(t->ssl);
        if (r == 1) {
                t->handshake_done = true;
                conn_take_peer_cn(t);
                return 1;
        }
        r = conn_map_error(t, r, "TLS handshake");
        if (r == -ECONNRESET)
                snprintf(t->error, sizeof(t->error), "the peer closed the connection during the TLS handshake");
        return r;
}

bool tls_conn_handshake_done(const TlsConn *t) {
        return t->handshake_done;
}

ssize_t tls_conn_read(TlsConn *t, void *buf, size_t size) {
        size_t total = 0;

        t->events = 0;
        if (t->failed < 0)
                return t->failed;
        if (t->eof)
                return 0;
        /* Whole records only: the room left must hold the largest one, see tls.h. */
        while (total == 0 || size - total >= TLS_READ_MIN) {
                int n, r;

                ERR_clear_error();
                n = SSL_read(t->ssl, (char *) buf + total, (int) MIN(size - total, (size_t) INT_MAX));
                if (n > 0) {
                        total += (size_t) n;
                        continue;
                }
                r = conn_map_error(t, n, "TLS read");
                if (r == 0)
                        return total > 0 ? (ssize_t) total : -EAGAIN;
                if (t->eof)
                        return (ssize_t) total; /* 0 when nothing came before the end */
                if (total > 0) {
                        t->failed = r;
                        return (ssize_t) total;
                }
                return r;
        }
        return (ssize_t) total;
}

ssize_t tls_conn_write(TlsConn *t, const void *buf, size_t size) {
        size_t total = 0;

        t->events = 0;
        if (t->failed < 0)
                return t->failed;
        while (total < size) {
                int n, r;

                ERR_clear_error();
                n = SSL_write(t->ssl, (const char *) buf + total, (int) MIN(size - total, (size_t) INT_MAX));
                if (n > 0) {
                        total += (size_t) n;
                        continue;
                }
                r = conn_map_error(t, n, "TLS write");
                if (r == 0)
                        break;
                if (total > 0) {
                        t->failed = r;
                        break;
                }
                return r == -ECONNRESET ? -EPIPE : r;
        }
        return (ssize_t) total;
}

void tls_conn_shutdown(TlsConn *t) {
        if (!t->handshake_done || t->failed < 0)
                return;
        ERR_clear_error();
        (void) SSL_shutdown(t->ssl);
        ERR_clear_error();
}

uint32_t tls_conn_events(const TlsConn *t) {
        return t->events;
}

const char *tls_conn_error(const TlsConn *t) {
        return t->error[0] ? t->error : "unknown TLS error";
}

const char *tls_conn_peer_cn(const TlsConn *t) {
        return t->peer_cn;
}

const char *tls_conn_version(const TlsConn *t) {
        return SSL_get_version(t->ssl);
}
