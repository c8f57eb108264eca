/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "dpiped-tokens.h"
#include "util.h"

const char *token_role_to_string(TokenRole role) {
        return role == TOKEN_ROLE_ADMIN ? "admin" : "read";
}

static bool token_name_is_valid(const char *s, size_t n) {
        if (n == 0 || n > TOKEN_NAME_MAX)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!(s[i] >= 'a' && s[i] <= 'z') && !(s[i] >= 'A' && s[i] <= 'Z') && !(s[i] >= '0' && s[i] <= '9') &&
                    !strchr("_.@-", s[i]))
                        return false;
        return true;
}

static int digest(const char *secret, size_t len, unsigned char ret[TOKEN_DIGEST_SIZE]) {
        unsigned int n = 0;

        if (EVP_Digest(secret, len, ret, &n, EVP_sha256(), NULL) != 1 || n != TOKEN_DIGEST_SIZE)
                return -EIO;
        return 0;
}

TokenSet *token_set_free(TokenSet *s) {
        if (!s)
                return NULL;
        if (s->tokens)
                OPENSSL_cleanse(s->tokens, s->n_tokens * sizeof(Token));
        free(s->tokens);
        free(s);
        return NULL;
}

/* The next blank-separated word of [*p, end): its start and length, *p moved past it. */
static bool next_word(const char **p, const char *end, const char **ret, size_t *ret_len) {
        const char *s = *p;

        while (s < end && (*s == ' ' || *s == '\t'))
                s++;
        if (s == end)
                return false;
        *ret = s;
        while (s < end && *s != ' ' && *s != '\t')
                s++;
        *ret_len = (size_t) (s - *ret);
        *p = s;
        return true;
}

static int parse_line(TokenSet *s, const char *line, const char *end, char *error, size_t error_size) {
        const char *name, *role, *secret, *extra, *p = line;
        size_t name_len, role_len, secret_len, extra_len;
        Token t = {};
        int r;

        if (!next_word(&p, end, &name, &name_len) || name[0] == '#')
                return 0; /* blank or comment */
        if (!next_word(&p, end, &role, &role_len) || !next_word(&p, end, &secret, &secret_len)) {
                snprintf(error, error_size, "expected \"NAME ROLE SECRET\"");
                return -EINVAL;
        }
        if (next_word(&p, end, &extra, &extra_len)) {
                snprintf(error, error_size, "expected \"NAME ROLE SECRET\", found more words (a secret has no blanks)");
                return -EINVAL;
        }
        if (!token_name_is_valid(name, name_len)) {
                snprintf(error, error_size, "invalid token name \"%.*s\": 1-%d characters of [A-Za-z0-9_.@-]",
                         (int) MIN(name_len, (size_t) 80), name, TOKEN_NAME_MAX);
                return -EINVAL;
        }
        memcpy(t.name, name, name_len);
        if (role_len == 4 && memcmp(role, "read", 4) == 0)
                t.role = TOKEN_ROLE_READ;
        else if (role_len == 5 && memcmp(role, "admin", 5) == 0)
                t.role = TOKEN_ROLE_ADMIN;
        else {
                snprintf(error, error_size, "invalid role \"%.*s\" of token %s: \"read\" or \"admin\"",
                         (int) MIN(role_len, (size_t) 80), role, t.name);
                return -EINVAL;
        }
        if (secret_len < TOKEN_SECRET_MIN || secret_len > TOKEN_SECRET_MAX) {
                snprintf(error, error_size,
                         "the secret of token %s has %zu characters, it needs %d-%d (e.g. openssl rand -hex 32)",
                         t.name, secret_len, TOKEN_SECRET_MIN, TOKEN_SECRET_MAX);
                return -EINVAL;
        }
        for (size_t i = 0; i < secret_len; i++)
                if ((unsigned char) secret[i] < 0x20 || secret[i] == 0x7f) {
                        snprintf(error, error_size, "the secret of token %s contains a control character", t.name);
                        return -EINVAL;
                }
        r = digest(secret, secret_len, t.digest);
        if (r < 0) {
                snprintf(error, error_size, "failed to digest the secret of token %s", t.name);
                return r;
        }
        for (size_t i = 0; i < s->n_tokens; i++) {
                if (streq(s->tokens[i].name, t.name)) {
                        snprintf(error, error_size, "token name %s is used twice", t.name);
                        return -EINVAL;
                }
                if (CRYPTO_memcmp(s->tokens[i].digest, t.digest, TOKEN_DIGEST_SIZE) == 0) {
                        snprintf(error, error_size, "tokens %s and %s have the same secret", s->tokens[i].name,
                                 t.name);
                        return -EINVAL;
                }
        }

        Token *a = realloc(s->tokens, (s->n_tokens + 1) * sizeof(Token));
        if (!a)
                return -ENOMEM;
        s->tokens = a;
        s->tokens[s->n_tokens++] = t;
        OPENSSL_cleanse(&t, sizeof(t));
        return 0;
}

int token_set_parse(const char *text, size_t size, TokenSet **ret, unsigned *ret_line, char *error,
                    size_t error_size) {
        _cleanup_(token_set_freep) TokenSet *s = NULL;
        const char *p = text, *end = text + size;
        unsigned line = 0;
        int r;

        s = calloc(1, sizeof(TokenSet));
        if (!s)
                return -ENOMEM;
        while (p < end) {
                const char *nl = memchr(p, '\n', (size_t) (end - p)), *eol = nl ?: end;

                line++;
                if (eol > p && eol[-1] == '\r')
                        eol--;
                if (memchr(p, 0, (size_t) (eol - p))) {
                        snprintf(error, error_size, "NUL byte in the line");
                        r = -EINVAL;
                } else
                        r = parse_line(s, p, eol, error, error_size);
                if (r < 0) {
                        *ret_line = line;
                        return r;
                }
                p = nl ? nl + 1 : end;
        }
        *ret = TAKE_PTR(s);
        return 0;
}

int token_set_load(const char *path, TokenSet **ret, bool *ret_others_may_read, char *error, size_t error_size) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *text = NULL;
        char why[256];
        unsigned line = 0;
        struct stat st;
        ssize_t n;
        int r;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0 || fstat(fd, &st) < 0) {
                r = -errno;
                snprintf(error, error_size, "%s: %s", path, strerror(-r));
                return r;
        }
        if (!S_ISREG(st.st_mode)) {
                snprintf(error, error_size, "%s: not a regular file", path);
                return -EINVAL;
        }
        if (st.st_size > (off_t) TOKENS_FILE_MAX) {
                snprintf(error, error_size, "%s: larger than %u bytes", path, TOKENS_FILE_MAX);
                return -EFBIG;
        }
        text = malloc((size_t) st.st_size + 1);
        if (!text)
                return -ENOMEM;
        n = read(fd, text, (size_t) st.st_size + 1);
        if (n < 0) {
                r = -errno;
                snprintf(error, error_size, "%s: %s", path, strerror(-r));
                return r;
        }
        if (n > st.st_size) {
                snprintf(error, error_size, "%s: changed while it was read", path);
                return -EBUSY;
        }
        r = token_set_parse(text, (size_t) n, ret, &line, why, sizeof(why));
        OPENSSL_cleanse(text, (size_t) n);
        if (r == -EINVAL)
                snprintf(error, error_size, "%s:%u: %s", path, line, why);
        else if (r < 0)
                snprintf(error, error_size, "%s: %s", path, strerror(-r));
        if (r < 0)
                return r;
        *ret_others_may_read = st.st_mode & S_IROTH;
        return 0;
}

const Token *token_set_find(const TokenSet *s, const char *secret, size_t len) {
        unsigned char d[TOKEN_DIGEST_SIZE];
        size_t found = SIZE_MAX;

        if (!s || s->n_tokens == 0 || digest(secret, len, d) < 0)
                return NULL;
        /* Every token is compared, and the index is chosen without a branch on the result. */
        for (size_t i = 0; i < s->n_tokens; i++) {
                size_t match = (size_t) 0 - (size_t) (CRYPTO_memcmp(d, s->tokens[i].digest, TOKEN_DIGEST_SIZE) == 0);
                found = (found & ~match) | (i & match);
        }
        OPENSSL_cleanse(d, sizeof(d));
        return found == SIZE_MAX ? NULL : &s->tokens[found];
}
