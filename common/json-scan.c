/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A strict, allocation-free JSON validator (RFC 8259 and RFC 3629 for the UTF-8 of strings). It walks
 * the input once with an explicit stack of container kinds (one bit per level), so its cost is a
 * few instructions per byte and it never recurses. */

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "json-scan.h"
#include "macro.h"

_Static_assert(JSON_SCAN_DEPTH_MAX <= 64, "the container stack is one uint64_t");
_Static_assert(JSON_SCAN_DEPTH_MAX == 32, "json_scan_error_reason() names the depth");

/* Bytes that stand for themselves inside a string: printable ASCII but '"' and '\\'. */
static const bool string_plain[256] = {
        [0x20 ... 0x21] = true, /* not '"' (0x22) */
        [0x23 ... 0x5b] = true, /* not '\\' (0x5c) */
        [0x5d ... 0x7f] = true,
};

/* flags is a constant wherever this is inlined (see scan_value()), so the test costs nothing. */
static inline bool is_blank(uint8_t c, unsigned flags) {
        /* Compact JSON has no blanks: one comparison rejects every byte above the space. */
        if (flags & JSON_SCAN_ONE_LINE)
                return c <= ' ' && (c == ' ' || c == '\t');
        return c <= ' ' && (c == ' ' || c == '\n' || c == '\r' || c == '\t');
}

static inline const uint8_t *skip_blanks(const uint8_t *p, const uint8_t *end, unsigned flags) {
        while (p < end && is_blank(*p, flags))
                p++;
        return p;
}

static inline bool is_digit(uint8_t c) {
        return c >= '0' && c <= '9';
}

/* The length of the valid UTF-8 sequence at p (2 to 4 bytes, p[0] >= 0x80), 0 if it is not one. */
static size_t utf8_sequence_length(const uint8_t *p, const uint8_t *end) {
        size_t avail = (size_t) (end - p);
        uint8_t c = p[0], lo = 0x80, hi = 0xbf;
        size_t len;

        if (c >= 0xc2 && c <= 0xdf)
                len = 2;
        else if (c >= 0xe0 && c <= 0xef) {
                len = 3;
                if (c == 0xe0)
                        lo = 0xa0; /* overlong */
                else if (c == 0xed)
                        hi = 0x9f; /* UTF-16 surrogates */
        } else if (c >= 0xf0 && c <= 0xf4) {
                len = 4;
                if (c == 0xf0)
                        lo = 0x90; /* overlong */
                else if (c == 0xf4)
                        hi = 0x8f; /* above U+10FFFF */
        } else
                return 0;
        if (avail < len || p[1] < lo || p[1] > hi)
                return 0;
        for (size_t i = 2; i < len; i++)
                if (p[i] < 0x80 || p[i] > 0xbf)
                        return 0;
        return len;
}

static int hex_value(uint8_t c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

/* Four hex digits at p (which has at least 4 bytes), or -1. */
static int32_t hex4(const uint8_t *p) {
        int32_t v = 0;

        for (int i = 0; i < 4; i++) {
                int h = hex_value(p[i]);
                if (h < 0)
                        return -1;
                v = v * 16 + h;
        }
        return v;
}

/* Decodes the escape sequence at p (p[0] == '\\') into a code point. Returns the bytes it spans (2,
 * 6 or 12 for a surrogate pair), 0 if it is not valid. */
static size_t escape_decode(const uint8_t *p, const uint8_t *end, uint32_t *ret) {
        size_t avail = (size_t) (end - p);
        int32_t hi, lo;

        if (avail < 2)
                return 0;
        switch (p[1]) {
        case '"':
        case '\\':
        case '/':
                *ret = p[1];
                return 2;
        case 'b':
                *ret = '\b';
                return 2;
        case 'f':
                *ret = '\f';
                return 2;
        case 'n':
                *ret = '\n';
                return 2;
        case 'r':
                *ret = '\r';
                return 2;
        case 't':
                *ret = '\t';
                return 2;
        case 'u':
                break;
        default:
                return 0;
        }
        if (avail < 6 || (hi = hex4(p + 2)) < 0)
                return 0;
        if (hi < 0xd800 || hi > 0xdfff) {
                *ret = (uint32_t) hi;
                return 6;
        }
        /* A surrogate: only a high one followed by an escaped low one stands for a character. */
        if (hi > 0xdbff || avail < 12 || p[6] != '\\' || p[7] != 'u' || (lo = hex4(p + 8)) < 0xdc00 || lo > 0xdfff)
                return 0;
        *ret = 0x10000 + (((uint32_t) hi - 0xd800) << 10) + ((uint32_t) lo - 0xdc00);
        return 12;
}

#define BYTES_ONE UINT64_C(0x0101010101010101)
#define BYTES_HIGH UINT64_C(0x8080808080808080)

/* Whether none of the 8 bytes of w needs a closer look: no '"', '\\', control character or byte >=
 * 0x80 (the usual word-at-a-time tests for a zero byte and a byte below n). */
static inline bool word_is_plain(uint64_t w) {
        uint64_t quote = w ^ (BYTES_ONE * '"'), backslash = w ^ (BYTES_ONE * '\\');

        return ((((w - BYTES_ONE * 0x20) & ~w) | ((quote - BYTES_ONE) & ~quote) |
                 ((backslash - BYTES_ONE) & ~backslash) | w) & BYTES_HIGH) == 0;
}

#if defined(__GNUC__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define HAVE_VECTOR16 1
/* GCC's generic vectors: SSE2 on x86-64, NEON on arm64, plain integer code elsewhere. */
typedef int8_t v16i8 __attribute__((vector_size(16)));
typedef uint64_t v2u64 __attribute__((vector_size(16)));

/* The offset of the first of the 16 bytes at p that is no plain string byte ('"', '\\', a control
 * character or a byte >= 0x80), or 16 if there is none. */
static inline unsigned first_special16(const uint8_t *p) {
        v16i8 v, special;
        v2u64 w;

        memcpy(&v, p, sizeof(v));
        /* As signed bytes, those >= 0x80 are negative: one comparison finds them with the controls. */
        special = (v < 0x20) | (v == '"') | (v == '\\');
        w = (v2u64) special;
        if (w[0] != 0)
                return (unsigned) __builtin_ctzll(w[0]) / 8;
        if (w[1] != 0)
                return 8 + (unsigned) __builtin_ctzll(w[1]) / 8;
        return 16;
}
#endif

/* Scans the inside of a string, p just after the opening quote. Returns the byte after the closing
 * quote, or NULL with *ret_error at the offending byte. *ret_escaped says whether it has escapes. */
static const uint8_t *scan_string_slow(const uint8_t *p, const uint8_t *end, bool *ret_escaped,
                                       const uint8_t **ret_error) {
        for (;;) {
                size_t k;
                uint32_t cp;

#ifdef HAVE_VECTOR16
                /* Record data is mostly plain ASCII: 16 bytes at a time, straight to the first byte
                 * that is not plain (for a short member name, its closing quote at once). */
                while (end - p >= 16) {
                        unsigned n = first_special16(p);

                        p += n;
                        if (n < 16)
                                goto special;
                }
#endif
                /* The last bytes: 8 at a time, then byte by byte. */
                while (end - p >= 8) {
                        uint64_t w;

                        memcpy(&w, p, sizeof(w));
                        if (!word_is_plain(w))
                                break;
                        p += 8;
                }
                while (p < end && string_plain[*p])
                        p++;
                if (p >= end)
                        break;
#ifdef HAVE_VECTOR16
        special:
#endif
                if (*p == '"')
                        return p + 1;
                if (*p == '\\') {
                        k = escape_decode(p, end, &cp);
                        *ret_escaped = true;
                } else if (*p < 0x20)
                        k = 0; /* control characters must be escaped */
                else
                        k = utf8_sequence_length(p, end);
                if (k == 0)
                        break;
                p += k;
        }
        *ret_error = p;
        return NULL;
}

/* The same, with the common case inline: a plain string (a member name, a short value) whose closing
 * quote is among the next 16 bytes costs one vector test and no call. */
static inline const uint8_t *scan_string(const uint8_t *p, const uint8_t *end, bool *ret_escaped,
                                         const uint8_t **ret_error) {
#ifdef HAVE_VECTOR16
        if (end - p >= 16) {
                unsigned n = first_special16(p);

                if (n < 16 && p[n] == '"')
                        return p + n + 1;
                p += n; /* what was found plain needs no second look */
        }
#endif
        return scan_string_slow(p, end, ret_escaped, ret_error);
}

/* Inlined (like scan_number()): a record has many short numbers, and the calls were a tenth of the
 * instructions of a scan of the bench's records (callgrind). */
static inline __attribute__((always_inline)) const uint8_t *scan_digits(const uint8_t *p, const uint8_t *end) {
        /* 8 at a time: a byte is a digit when its high nibble is 3 and adding 6 keeps it so. A carry
         * out of a byte >= 0xfa can only spoil the bytes after it, and only the first non-digit counts. */
        while (end - p >= 8) {
                uint64_t w, other;

                memcpy(&w, p, sizeof(w));
                other = ((w & (BYTES_ONE * 0xf0)) ^ (BYTES_ONE * 0x30)) |
                        (((w + BYTES_ONE * 0x06) & (BYTES_ONE * 0xf0)) ^ (BYTES_ONE * 0x30));
                if (other != 0) {
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
                        return p + __builtin_ctzll(other) / 8;
#else
                        break;
#endif
                }
                p += 8;
        }
        while (p < end && is_digit(*p))
                p++;
        return p;
}

/* -? (0 | [1-9][0-9]*) (\.[0-9]+)? ([eE][+-]?[0-9]+)?  Returns the byte after it, or NULL with
 * *ret_error set. What follows is checked by the caller (so "01" fails there, at the '1'). */
static inline __attribute__((always_inline)) const uint8_t *scan_number(const uint8_t *p, const uint8_t *end,
                                                                        const uint8_t **ret_error) {
        const uint8_t *q;

        if (*p == '-')
                p++;
        if (p < end && *p == '0')
                p++;
        else if (p < end && is_digit(*p))
                p = scan_digits(p, end);
        else
                goto fail;
        if (p < end && *p == '.') {
                q = scan_digits(p + 1, end);
                if (q == p + 1) {
                        p = q;
                        goto fail;
                }
                p = q;
        }
        if (p < end && (*p == 'e' || *p == 'E')) {
                p++;
                if (p < end && (*p == '+' || *p == '-'))
                        p++;
                q = scan_digits(p, end);
                if (q == p)
                        goto fail;
                p = q;
        }
        return p;
fail:
        *ret_error = p;
        return NULL;
}

static const uint8_t *scan_literal(const uint8_t *p, const uint8_t *end, const char *word, size_t len,
                                   const uint8_t **ret_error) {
        for (size_t i = 0; i < len; i++)
                if (p + i >= end || p[i] != (uint8_t) word[i]) {
                        *ret_error = p + i;
                        return NULL;
                }
        return p + len;
}

static JsonScanType type_of(uint8_t c) {
        switch (c) {
        case '{':
                return JSON_SCAN_OBJECT;
        case '[':
                return JSON_SCAN_ARRAY;
        case '"':
                return JSON_SCAN_STRING;
        case 't':
                return JSON_SCAN_TRUE;
        case 'f':
                return JSON_SCAN_FALSE;
        case 'n':
                return JSON_SCAN_NULL;
        default:
                return JSON_SCAN_NUMBER;
        }
}

/* Which field the key [start, end) (quotes included) names, or -1. */
static ssize_t match_field(const uint8_t *start, const uint8_t *end, bool escaped, JsonScanField *fields,
                           size_t n_fields) {
        size_t len = (size_t) (end - start) - 2;

        for (size_t i = 0; i < n_fields; i++) {
                if (!escaped) {
                        const char *k = fields[i].key;
                        size_t j = 0;

                        /* Byte by byte, stopping at the first difference: names are short and mostly
                         * differ at once, and an unescaped name holds no NUL, so the key's
                         * terminator is a difference too and nothing reads past it. */
                        while (j < len && (uint8_t) k[j] == start[1 + j])
                                j++;
                        if (j == len && k[j] == 0)
                                return (ssize_t) i;
                } else if (json_scan_string_equal((const char *) start, (size_t) (end - start), fields[i].key))
                        return (ssize_t) i;
        }
        return -1;
}

/* The scanner. Inlined into each entry point below with flags a constant, so that the one-line and
 * prefix variants cost the common case nothing. Returns the type, or -EBADMSG with *ret_error. */
static inline __attribute__((always_inline)) int scan_value(const char *s, size_t n, JsonScanField *fields,
                                                            size_t n_fields, unsigned flags, size_t *ret_end,
                                                            size_t *ret_error_offset, JsonScanMembers *mt) {
        const uint8_t *p = (const uint8_t *) s, *end = p + n, *error = NULL, *member_start = NULL, *key_start;
        uint64_t objects = 0; /* bit d set: the container at depth d + 1 is an object */
        unsigned depth = 0;
        ssize_t member = -1; /* the field whose value is being scanned (depth 1 of an object) */
        /* JSON_SCAN_MEMBERS: bit d set when the container at depth d is an object whose members are
         * listed; open[d] is the member of it whose value is being scanned. */
        uint32_t tracked = 0;
        uint32_t open[JSON_SCAN_MEMBERS_DEPTH_MAX + 1];
        JsonScanType top;
        bool escaped = false;

        assert(s || n == 0);
        assert(fields || n_fields == 0);

        for (size_t i = 0; i < n_fields; i++) {
                fields[i].type = JSON_SCAN_NONE;
                fields[i].value = NULL;
                fields[i].value_len = 0;
        }
        if (flags & JSON_SCAN_MEMBERS)
                mt->n = 0;

        p = skip_blanks(p, end, flags);
        if (p >= end) {
                error = p;
                goto fail;
        }
        top = type_of(*p);

/* Blanks between tokens are taken where the next token was expected and is not found (a case of
 * the switch below, a branch after a value or a name): compact JSON, what the connectors hand on,
 * never pays for looking for them. */
value: /* p is at the first byte of a value (or at blanks before it, or at the end) */
        if (p >= end) {
                error = p;
                goto fail;
        }
        switch (*p) {
        case '{':
        case '[':
                if (depth >= JSON_SCAN_DEPTH_MAX) {
                        error = p;
                        goto fail;
                }
                if (*p == '{')
                        objects |= UINT64_C(1) << depth;
                else
                        objects &= ~(UINT64_C(1) << depth);
                if (flags & JSON_SCAN_MEMBERS) {
                        /* The top-level object, or the value of a listed member not too deep. */
                        if (*p == '{' && (depth == 0 || (depth < mt->max_depth && (tracked >> depth & 1))))
                                tracked |= UINT32_C(1) << (depth + 1);
                        else if (depth + 1 <= JSON_SCAN_MEMBERS_DEPTH_MAX)
                                tracked &= ~(UINT32_C(1) << (depth + 1));
                }
                depth++;
                p++;
                if (p < end && is_blank(*p, flags))
                        p = skip_blanks(p, end, flags);
                if (p < end && *p == (objects >> (depth - 1) & 1 ? '}' : ']')) {
                        p++;
                        depth--;
                        goto after_value;
                }
                if (objects >> (depth - 1) & 1)
                        goto key;
                goto value;
        case '"':
                escaped = false;
                p = scan_string(p + 1, end, &escaped, &error);
                break;
        case '-':
        case '0' ... '9':
                p = scan_number(p, end, &error);
                break;
        case 't':
                p = scan_literal(p, end, "true", 4, &error);
                break;
        case 'f':
                p = scan_literal(p, end, "false", 5, &error);
                break;
        case 'n':
                p = scan_literal(p, end, "null", 4, &error);
                break;
        case ' ':
        case '\t':
        case '\n':
        case '\r':
                if (!is_blank(*p, flags)) {
                        error = p;
                        goto fail;
                }
                p = skip_blanks(p, end, flags);
                if (depth == 1)
                        member_start = p;
                if ((flags & JSON_SCAN_MEMBERS) && depth <= JSON_SCAN_MEMBERS_DEPTH_MAX && (tracked >> depth & 1))
                        mt->members[open[depth]].value = (const char *) p;
                goto value;
        default:
                error = p;
                goto fail;
        }
        if (!p)
                goto fail;

after_value: /* p is just after a complete value */
        if ((flags & JSON_SCAN_MEMBERS) && depth >= 1 && depth <= JSON_SCAN_MEMBERS_DEPTH_MAX &&
            (tracked >> depth & 1)) {
                JsonScanMember *m = mt->members + open[depth];

                m->value_len = (uint32_t) (p - (const uint8_t *) m->value);
                m->type = (uint8_t) type_of((uint8_t) *m->value);
                m->value_escaped = m->type == JSON_SCAN_STRING && escaped;
        }
        if (depth == 1 && member >= 0) {
                fields[member].type = type_of(*member_start);
                fields[member].value = (const char *) member_start;
                fields[member].value_len = (size_t) (p - member_start);
                member = -1;
        }
        if (depth == 0) {
                if (flags & JSON_SCAN_PREFIX) {
                        if (ret_end)
                                *ret_end = (size_t) (p - (const uint8_t *) s);
                        return top;
                }
                p = skip_blanks(p, end, flags);
                if (p != end) {
                        error = p;
                        goto fail;
                }
                return top;
        }
separator: /* p is after a value inside a container: ',' or the closing bracket */
        if (p >= end) {
                error = p;
                goto fail;
        }
        if (*p == ',') {
                p++;
                if (objects >> (depth - 1) & 1)
                        goto key;
                goto value;
        }
        if (*p == (objects >> (depth - 1) & 1 ? '}' : ']')) {
                p++;
                depth--;
                goto after_value;
        }
        if (is_blank(*p, flags)) {
                p = skip_blanks(p, end, flags);
                goto separator;
        }
        error = p;
        goto fail;

key: /* p is where a member name must start (or blanks before it) */
        if (p >= end || *p != '"') {
                if (p < end && is_blank(*p, flags)) {
                        p = skip_blanks(p, end, flags);
                        goto key;
                }
                error = p;
                goto fail;
        }
        key_start = p;
        escaped = false;
        p = scan_string(p + 1, end, &escaped, &error);
        if (!p)
                goto fail;
        if (depth == 1 && n_fields > 0)
                member = match_field(key_start, p, escaped, fields, n_fields);
        if ((flags & JSON_SCAN_MEMBERS) && depth <= JSON_SCAN_MEMBERS_DEPTH_MAX && (tracked >> depth & 1)) {
                JsonScanMember *m;

                if (_unlikely_(mt->n >= mt->allocated) && json_scan_members_grow(mt) < 0) {
                        error = key_start;
                        if (ret_error_offset)
                                *ret_error_offset = (size_t) (error - (const uint8_t *) s);
                        return -ENOMEM;
                }
                open[depth] = (uint32_t) mt->n;
                m = mt->members + mt->n++;
                m->key = (const char *) key_start;
                m->key_len = (uint32_t) (p - key_start);
                m->key_escaped = escaped;
                m->depth = (uint8_t) depth;
                m->parent = depth > 1 ? (int32_t) open[depth - 1] : -1;
                m->value = (const char *) p + 1; /* after the ':' checked below; blanks move it */
        }
        if (p < end && *p != ':' && is_blank(*p, flags))
                p = skip_blanks(p, end, flags);
        if (p >= end || *p != ':') {
                error = p;
                goto fail;
        }
        p++;
        if (depth == 1)
                member_start = p;
        if ((flags & JSON_SCAN_MEMBERS) && depth <= JSON_SCAN_MEMBERS_DEPTH_MAX && (tracked >> depth & 1))
                mt->members[open[depth]].value = (const char *) p;
        goto value;

fail:
        for (size_t i = 0; i < n_fields; i++) {
                fields[i].type = JSON_SCAN_NONE;
                fields[i].value = NULL;
                fields[i].value_len = 0;
        }
        if (ret_error_offset)
                *ret_error_offset = (size_t) (error - (const uint8_t *) s);
        return -EBADMSG;
}

int json_scan(const char *s, size_t n, JsonScanField *fields, size_t n_fields, size_t *ret_error_offset) {
        return scan_value(s, n, fields, n_fields, 0, NULL, ret_error_offset, NULL);
}

int json_scan_line(const char *s, size_t n, JsonScanField *fields, size_t n_fields, size_t *ret_error_offset) {
        return scan_value(s, n, fields, n_fields, JSON_SCAN_ONE_LINE, NULL, ret_error_offset, NULL);
}

int json_scan_line_check(const char *s, size_t n, size_t *ret_error_offset) {
        return scan_value(s, n, NULL, 0, JSON_SCAN_ONE_LINE, NULL, ret_error_offset, NULL);
}

int json_scan_prefix(const char *s, size_t n, size_t *ret_end, size_t *ret_error_offset) {
        assert(ret_end);
        return scan_value(s, n, NULL, 0, JSON_SCAN_PREFIX, ret_end, ret_error_offset, NULL);
}

int json_scan_members_grow(JsonScanMembers *mt) {
        size_t k = MAX(mt->allocated * 2, (size_t) 64);
        JsonScanMember *m;

        if (k > UINT32_MAX)
                return -ENOMEM;
        m = reallocarray(mt->members, k, sizeof(JsonScanMember));
        if (!m)
                return -ENOMEM;
        mt->members = m;
        mt->allocated = k;
        return 0;
}

void json_scan_members_done(JsonScanMembers *mt) {
        free(mt->members);
        mt->members = NULL;
        mt->n = mt->allocated = 0;
}

int json_scan_line_members(const char *s, size_t n, JsonScanMembers *mt, size_t *ret_error_offset) {
        assert(mt);
        assert(mt->max_depth >= 1 && mt->max_depth <= JSON_SCAN_MEMBERS_DEPTH_MAX);
        if (n > UINT32_MAX)
                return -E2BIG;
        return scan_value(s, n, NULL, 0, JSON_SCAN_ONE_LINE | JSON_SCAN_MEMBERS, NULL, ret_error_offset, mt);
}

int json_scan_prefix_line_members(const char *s, size_t n, JsonScanMembers *mt, size_t *ret_end,
                                  size_t *ret_error_offset) {
        assert(mt);
        assert(ret_end);
        assert(mt->max_depth >= 1 && mt->max_depth <= JSON_SCAN_MEMBERS_DEPTH_MAX);
        if (n > UINT32_MAX)
                return -E2BIG;
        return scan_value(s, n, NULL, 0, JSON_SCAN_ONE_LINE | JSON_SCAN_PREFIX | JSON_SCAN_MEMBERS, ret_end,
                          ret_error_offset, mt);
}

/* Decodes the next character inside a string span into UTF-8. Returns its length (1–4), 0 at the
 * closing quote, -EBADMSG if the bytes are not a valid string. */
static int string_next(const uint8_t **pp, const uint8_t *end, uint8_t out[static 4]) {
        const uint8_t *p = *pp;
        uint32_t cp;
        size_t k;

        if (p >= end)
                return -EBADMSG;
        if (string_plain[*p]) {
                out[0] = *p;
                *pp = p + 1;
                return 1;
        }
        if (*p == '"')
                return 0;
        if (*p != '\\') {
                if (*p < 0x20)
                        return -EBADMSG;
                k = utf8_sequence_length(p, end);
                if (k == 0)
                        return -EBADMSG;
                memcpy(out, p, k);
                *pp = p + k;
                return (int) k;
        }
        k = escape_decode(p, end, &cp);
        if (k == 0)
                return -EBADMSG;
        *pp = p + k;
        if (cp < 0x80) {
                out[0] = (uint8_t) cp;
                return 1;
        }
        if (cp < 0x800) {
                out[0] = (uint8_t) (0xc0 | (cp >> 6));
                out[1] = (uint8_t) (0x80 | (cp & 0x3f));
                return 2;
        }
        if (cp < 0x10000) {
                out[0] = (uint8_t) (0xe0 | (cp >> 12));
                out[1] = (uint8_t) (0x80 | ((cp >> 6) & 0x3f));
                out[2] = (uint8_t) (0x80 | (cp & 0x3f));
                return 3;
        }
        out[0] = (uint8_t) (0xf0 | (cp >> 18));
        out[1] = (uint8_t) (0x80 | ((cp >> 12) & 0x3f));
        out[2] = (uint8_t) (0x80 | ((cp >> 6) & 0x3f));
        out[3] = (uint8_t) (0x80 | (cp & 0x3f));
        return 4;
}

/* A string span must be quotes around its inside, and the closing quote must be its last byte. */
static bool string_span_ok(const char *value, size_t len) {
        return value && len >= 2 && value[0] == '"';
}

bool json_scan_string_equal(const char *value, size_t len, const char *s) {
        const uint8_t *p, *end;
        size_t i = 0;

        if (!string_span_ok(value, len) || !s)
                return false;
        p = (const uint8_t *) value + 1;
        end = (const uint8_t *) value + len;
        for (;;) {
                uint8_t c[4];
                int k;

                if (p < end && string_plain[*p]) {
                        /* A byte that stands for itself: the common case, compared in place. */
                        if ((uint8_t) s[i] != *p)
                                return false;
                        p++, i++;
                        continue;
                }
                k = string_next(&p, end, c);
                if (k < 0)
                        return false;
                if (k == 0)
                        return p + 1 == end && s[i] == 0;
                /* Stops at the first difference, so never reads past the end of s; an escaped NUL
                 * differs from everything s can hold. */
                for (int j = 0; j < k; j++)
                        if (c[j] == 0 || (uint8_t) s[i + j] != c[j])
                                return false;
                i += (size_t) k;
        }
}

int json_scan_string_unescape(const char *value, size_t len, char *buf, size_t size) {
        const uint8_t *p, *end;
        size_t i = 0;

        assert(buf && size > 0);

        buf[0] = 0;
        if (!string_span_ok(value, len))
                return -EBADMSG;
        p = (const uint8_t *) value + 1;
        end = (const uint8_t *) value + len;
        for (;;) {
                uint8_t c[4];
                int k = string_next(&p, end, c);

                if (k < 0)
                        return -EBADMSG;
                if (k == 0) {
                        if (p + 1 != end)
                                return -EBADMSG;
                        buf[i] = 0;
                        return (int) MIN(i, (size_t) INT32_MAX);
                }
                if (i + (size_t) k >= size) {
                        buf[i] = 0;
                        return -ENOBUFS;
                }
                memcpy(buf + i, c, (size_t) k);
                i += (size_t) k;
        }
}

int json_scan_uint64(const char *value, size_t len, uint64_t *ret) {
        uint64_t v = 0;

        assert(ret);

        if (!value || len == 0 || (len > 1 && value[0] == '0'))
                return -EINVAL;
        if (len < 20) {
                /* At most 19 digits can not overflow: no check per digit. */
                for (size_t i = 0; i < len; i++) {
                        if (!is_digit((uint8_t) value[i]))
                                return -EINVAL;
                        v = v * 10 + (unsigned) (value[i] - '0');
                }
                *ret = v;
                return 0;
        }
        for (size_t i = 0; i < len; i++) {
                unsigned d;

                if (!is_digit((uint8_t) value[i]))
                        return -EINVAL;
                d = (unsigned) (value[i] - '0');
                if (v > (UINT64_MAX - d) / 10) {
                        /* Still say -EINVAL for what is not an integer at all further on. */
                        for (size_t j = i + 1; j < len; j++)
                                if (!is_digit((uint8_t) value[j]))
                                        return -EINVAL;
                        return -ERANGE;
                }
                v = v * 10 + d;
        }
        *ret = v;
        return 0;
}

/* ---- describing an error, and skipping what is not JSON ---- */

static bool prefix_caseeq(const char *s, size_t n, size_t at, const char *word) {
        size_t k = strlen(word);

        if (at > n || n - at < k)
                return false;
        for (size_t i = 0; i < k; i++) {
                char c = s[at + i];
                if (c >= 'A' && c <= 'Z')
                        c = (char) (c - 'A' + 'a');
                if (c != word[i])
                        return false;
        }
        return true;
}

const char *json_scan_error_reason(const char *s, size_t n, size_t offset) {
        const uint8_t *p = (const uint8_t *) s;
        uint8_t c;

        if (offset >= n)
                return "it ends in the middle of a value";
        c = p[offset];
        /* "NaN" fails at its 'N', "nan" at its 'a' (it began like null), "-Infinity" at the 'I'. */
        if (prefix_caseeq(s, n, offset, "nan") || prefix_caseeq(s, n, offset, "inf") ||
            (offset > 0 && prefix_caseeq(s, n, offset - 1, "nan")))
                return "NaN or Infinity, which are not JSON numbers";
        if (c == '\n' || c == '\r')
                return "a line break";
        if (c < 0x20)
                return "a raw control character";
        if (c >= 0x80 && utf8_sequence_length(p + offset, p + n) == 0)
                return "invalid UTF-8";
        if (c == '[' || c == '{') {
                /* Refused at an opening bracket: too deep, or one where none may be. Count. */
                unsigned depth = 0;
                bool in_string = false;

                for (size_t i = 0; i < offset; i++)
                        if (in_string) {
                                if (p[i] == '\\')
                                        i++;
                                else if (p[i] == '"')
                                        in_string = false;
                        } else if (p[i] == '"')
                                in_string = true;
                        else if (p[i] == '[' || p[i] == '{')
                                depth++;
                        else if ((p[i] == ']' || p[i] == '}') && depth > 0)
                                depth--;
                if (depth >= JSON_SCAN_DEPTH_MAX)
                        return "containers nested deeper than 32 levels";
        }
        return "a syntax error";
}

/* A byte that ends a bare word (a number, a literal, or something like NaN) in the lenient scan. */
static inline bool is_structural(uint8_t c) {
        return c == ',' || c == ':' || c == '[' || c == ']' || c == '{' || c == '}' || c == '"';
}

int json_scan_lenient(const char *s, size_t n, unsigned flags, size_t *ret_end) {
        const uint8_t *p = (const uint8_t *) s, *end = p + n;
        uint64_t objects = 0;
        unsigned depth = 0;

        p = skip_blanks(p, end, 0);

value:
        if (p >= end)
                return -EBADMSG;
        if (*p == '{' || *p == '[') {
                if (depth >= 64)
                        return -EBADMSG;
                if (*p == '{')
                        objects |= UINT64_C(1) << depth;
                else
                        objects &= ~(UINT64_C(1) << depth);
                depth++;
                p = skip_blanks(p + 1, end, 0);
                if (p < end && *p == (objects >> (depth - 1) & 1 ? '}' : ']')) {
                        p++;
                        depth--;
                        goto after_value;
                }
                if (objects >> (depth - 1) & 1)
                        goto key;
                goto value;
        }
        if (*p == '"') {
                /* Any bytes up to the closing quote; a backslash hides the byte after it. */
                for (p++; p < end && *p != '"'; p++)
                        if (*p == '\\' && end - p < 2)
                                return -EBADMSG;
                        else if (*p == '\\')
                                p++;
                if (p >= end)
                        return -EBADMSG;
                p++;
                goto after_value;
        }
        if (is_structural(*p))
                return -EBADMSG;
        while (p < end && !is_structural(*p) && !is_blank(*p, 0))
                p++;

after_value:
        if (depth == 0) {
                if (flags & JSON_SCAN_PREFIX) {
                        *ret_end = (size_t) (p - (const uint8_t *) s);
                        return 0;
                }
                p = skip_blanks(p, end, 0);
                if (p != end)
                        return -EBADMSG;
                *ret_end = n;
                return 0;
        }
        p = skip_blanks(p, end, 0);
        if (p >= end)
                return -EBADMSG;
        if (*p == ',') {
                p = skip_blanks(p + 1, end, 0);
                if (objects >> (depth - 1) & 1)
                        goto key;
                goto value;
        }
        if (*p == (objects >> (depth - 1) & 1 ? '}' : ']')) {
                p++;
                depth--;
                goto after_value;
        }
        return -EBADMSG;

key:
        if (p >= end || *p != '"')
                return -EBADMSG;
        for (p++; p < end && *p != '"'; p++)
                if (*p == '\\' && end - p < 2)
                        return -EBADMSG;
                else if (*p == '\\')
                        p++;
        if (p >= end)
                return -EBADMSG;
        p = skip_blanks(p + 1, end, 0);
        if (p >= end || *p != ':')
                return -EBADMSG;
        p = skip_blanks(p + 1, end, 0);
        goto value;
}
