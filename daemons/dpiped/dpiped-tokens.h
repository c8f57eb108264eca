/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Access tokens of the client protocol on TCP (dpiped(8), ACCESS): `dpiped --tokens=PATH` or the
 * systemd credential dpipe-tokens. One token per line, "NAME ROLE SECRET" separated by blanks,
 * ROLE "read" or "admin"; blank lines and lines whose first non-blank is '#' are ignored.
 *
 * Only a SHA-256 digest of each secret is kept. A secret a client presents is digested too and
 * compared with every token's digest by CRYPTO_memcmp(), always all of them: neither where a
 * guess first differs nor how long the real secret is shows in the time an answer takes. */

#include <stdbool.h>
#include <stddef.h>

#include "macro.h"

#define TOKEN_NAME_MAX 64
#define TOKEN_SECRET_MIN 16
#define TOKEN_SECRET_MAX 4096
#define TOKENS_FILE_MAX (4u * 1024u * 1024u)
#define TOKEN_DIGEST_SIZE 32

typedef enum TokenRole {
        TOKEN_ROLE_READ,
        TOKEN_ROLE_ADMIN,
} TokenRole;

typedef struct Token {
        char name[TOKEN_NAME_MAX + 1];
        TokenRole role;
        unsigned char digest[TOKEN_DIGEST_SIZE];
} Token;

typedef struct TokenSet {
        Token *tokens;
        size_t n_tokens;
} TokenSet;

/* Parses the text of a tokens file. A malformed line gives -EINVAL, its number in *ret_line and the
 * reason in error; nothing else is kept of the text. */
int token_set_parse(const char *text, size_t size, TokenSet **ret, unsigned *ret_line, char *error,
                    size_t error_size);
/* Reads and parses path. Errors are described in error as "PATH:LINE: reason" (or "PATH: reason").
 * *ret_others_may_read tells whether the file is readable by other users (the caller warns). */
int token_set_load(const char *path, TokenSet **ret, bool *ret_others_may_read, char *error, size_t error_size);
TokenSet *token_set_free(TokenSet *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(TokenSet *, token_set_free);

/* The token whose secret is secret[0..len), or NULL; in time that depends only on len and the
 * number of tokens. */
const Token *token_set_find(const TokenSet *s, const char *secret, size_t len);

const char *token_role_to_string(TokenRole role);
