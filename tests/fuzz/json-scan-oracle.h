/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The oracle that tests/unit/test-json-scan.c and tests/fuzz/fuzz-json-scan.c share: json_scan()
 * must never accept what json-c in strict mode refuses; where json-c
 * accepts what json_scan() refuses, the offending byte must be one of json-c's known laxities (bad
 * UTF-8 or raw control characters in strings, unpaired surrogate escapes, NaN/Infinity, "1.",
 * "-.5", "-01", "04e2", single quotes); and for an object, the members found must be exactly json-c's
 * (where json-c decodes a string right: it turns some valid surrogate pairs into U+FFFD). */

#include <errno.h>
#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "json-scan.h"

static inline bool oracle_jsonc_parse(const char *s, size_t n, json_object **ret) {
        struct json_tokener *tok;
        enum json_tokener_error err;
        json_object *o;
        size_t end;

        if (n > INT32_MAX)
                return false;
        tok = json_tokener_new();
        if (!tok)
                return false;
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
        o = json_tokener_parse_ex(tok, s, (int) n);
        err = json_tokener_get_error(tok);
        end = json_tokener_get_parse_end(tok);
        if (err == json_tokener_continue) {
                o = json_tokener_parse_ex(tok, "", 1);
                err = json_tokener_get_error(tok);
                end = n;
        }
        json_tokener_free(tok);
        for (size_t i = end; err == json_tokener_success && i < n; i++)
                if (!strchr(" \t\r\n", s[i]) || s[i] == 0)
                        err = json_tokener_error_parse_unexpected;
        if (err != json_tokener_success) {
                json_object_put(o);
                return false;
        }
        *ret = o;
        return true;
}

static inline bool oracle_is_token_byte(char c) {
        return c && !strchr(" \t\r\n,:[]{}\"", c);
}

static inline bool oracle_known_laxity(const char *s, size_t n, size_t off) {
        uint8_t c = off < n ? (uint8_t) s[off] : 0;
        size_t start = off;

        if (off < n && (c < 0x20 || c >= 0x80))
                return true; /* json-c takes raw control characters and any byte >= 0x80 in strings */
        if (c == '\\' || c == '\'')
                return true; /* unpaired surrogate escapes; single quotes */
        while (start > 0 && oracle_is_token_byte(s[start - 1]))
                start--;
        if (start < n && s[start] == '-')
                start++;
        if (start < n && strchr("NnIi", s[start]))
                return true; /* NaN, Infinity */
        if (off > 0 && s[off - 1] == '.')
                return true; /* "1." */
        if (off > 0 && s[off - 1] == '-' && c == '.')
                return true; /* "-.5" */
        if (off > 0 && s[off - 1] == '0' && c >= '0' && c <= '9')
                return true; /* "-01", "04e02" (but not "01") */
        return false;
}

static inline JsonScanType oracle_type(json_object *o) {
        switch (json_object_get_type(o)) {
        case json_type_null:
                return JSON_SCAN_NULL;
        case json_type_boolean:
                return json_object_get_boolean(o) ? JSON_SCAN_TRUE : JSON_SCAN_FALSE;
        case json_type_double:
        case json_type_int:
                return JSON_SCAN_NUMBER;
        case json_type_object:
                return JSON_SCAN_OBJECT;
        case json_type_array:
                return JSON_SCAN_ARRAY;
        case json_type_string:
                return JSON_SCAN_STRING;
        }
        return JSON_SCAN_NONE;
}

/* The variants against json_scan(): json_scan_line() is json_scan() for text without CR or LF and
 * refuses all text with them; json_scan_prefix() finds a valid value where json_scan() accepts, and
 * what it finds is one; json_scan_lenient() accepts whatever json_scan() accepts, with the same end;
 * json_scan_error_reason() always has words. */
static inline const char *json_scan_oracle_variants(const char *s, size_t n, int r, size_t off) {
        bool line_break = memchr(s, '\n', n) || memchr(s, '\r', n);
        size_t end = SIZE_MAX, lend = SIZE_MAX;
        int k;

        k = json_scan_line(s, n, NULL, 0, NULL);
        if (line_break ? k > 0 : k != r)
                return "json_scan_line() differs from json_scan() and the one-line rule";
        if (json_scan_line_check(s, n, NULL) != k)
                return "json_scan_line_check() differs from json_scan_line()";
        if (r < 0 && !json_scan_error_reason(s, n, off))
                return "json_scan_error_reason() returned NULL";
        k = json_scan_prefix(s, n, &end, NULL);
        if (r > 0 && k != r)
                return "json_scan_prefix() refuses what json_scan() accepts";
        if (k > 0) {
                if (end > n)
                        return "json_scan_prefix() ends beyond the input";
                if (json_scan(s, end, NULL, 0, NULL) != k)
                        return "what json_scan_prefix() found is not one value";
                for (size_t i = end; r > 0 && i < n; i++)
                        if (!strchr(" \t\r\n", s[i]) || s[i] == 0)
                                return "json_scan_prefix() stopped before the end of an accepted value";
        }
        k = json_scan_lenient(s, n, 0, &lend);
        if (r > 0 && (k < 0 || lend != n))
                return "json_scan_lenient() refuses what json_scan() accepts";
        k = json_scan_lenient(s, n, JSON_SCAN_PREFIX, &lend);
        if (k == 0 && lend > n)
                return "json_scan_lenient() ends beyond the input";
        if (r > 0 && (k < 0 || lend != end))
                return "json_scan_lenient() and json_scan_prefix() end an accepted value differently";
        return NULL;
}

/* NULL if json_scan() and json-c agree on s[0..n), else what differs. */
static inline const char *json_scan_oracle(const char *s, size_t n) {
        JsonScanField f[] = { { .key = "op" }, { .key = "seq" }, { .key = "data" }, { .key = "\xc3\xa9" }, { .key = "" } };
        json_object *o = NULL;
        const char *msg = NULL;
        size_t off = SIZE_MAX;
        bool ok;
        int r;

        r = json_scan(s, n, f, sizeof(f) / sizeof(f[0]), &off);
        msg = json_scan_oracle_variants(s, n, r, off);
        if (msg)
                return msg;
        ok = oracle_jsonc_parse(s, n, &o);
        if (r < 0) {
                if (r != -EBADMSG)
                        return "json_scan returned neither a type nor -EBADMSG";
                if (off > n)
                        return "error offset beyond the input";
                for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
                        if (f[i].type != JSON_SCAN_NONE || f[i].value)
                                return "a field is set after an error";
                if (ok && !oracle_known_laxity(s, n, off))
                        msg = "json-c accepts what json_scan refuses (and not for a known json-c laxity)";
                json_object_put(o);
                return msg;
        }
        if (!ok)
                return "json_scan accepts what json-c refuses";
        if ((JsonScanType) r != oracle_type(o))
                msg = "top-level type differs from json-c's";
        /* json-c keys are C strings: a key with an escaped NUL compares differently there. */
        else if (r == JSON_SCAN_OBJECT && !memmem(s, n, "\\u0000", 6))
                for (size_t i = 0; i < sizeof(f) / sizeof(f[0]) && !msg; i++) {
                        json_object *v = NULL, *w = NULL;
                        bool present = json_object_object_get_ex(o, f[i].key, &v);
                        uint64_t u;

                        if (present != (f[i].type != JSON_SCAN_NONE)) {
                                msg = "a member is found by one and not the other";
                                break;
                        }
                        if (!present)
                                continue;
                        if (f[i].type != oracle_type(v))
                                msg = "a member's type differs from json-c's";
                        else if (!oracle_jsonc_parse(f[i].value, f[i].value_len, &w))
                                msg = "a member's span is not valid JSON for json-c";
                        else if (strcmp(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN),
                                        json_object_to_json_string_ext(w, JSON_C_TO_STRING_PLAIN)) != 0)
                                msg = "a member's span is not the value json-c has";
                        else if (f[i].type == JSON_SCAN_STRING &&
                                 strlen(json_object_get_string(v)) == (size_t) json_object_get_string_len(v) &&
                                 /* json-c 0.16 turns some valid surrogate pairs (e.g. \ud836\ude0e) into U+FFFD */
                                 !strstr(json_object_get_string(v), "\xef\xbf\xbd") &&
                                 !json_scan_string_equal(f[i].value, f[i].value_len, json_object_get_string(v)))
                                msg = "json_scan_string_equal() differs from json-c's string";
                        else if (f[i].type == JSON_SCAN_NUMBER && json_scan_uint64(f[i].value, f[i].value_len, &u) == 0 &&
                                 (!json_object_is_type(v, json_type_int) || json_object_get_uint64(v) != u))
                                msg = "json_scan_uint64() differs from json-c's integer";
                        json_object_put(w);
                }
        json_object_put(o);
        return msg;
}
