/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Strict JSON (RFC 8259) validation in one pass that allocates nothing, and the byte spans of the
 * members of a top-level object. This is what the data path uses where every record must be
 * validated once but building a tree (json-c) would cost a dozen mallocs per record: validate,
 * pick "op", "seq" and "data" out of the same pass, and hand the data bytes on unchanged.
 *
 * Strict means: exactly one value with optional blanks (space, tab, CR, LF) around it; no comments,
 * single quotes, trailing commas, NaN/Infinity, leading zeros, '+' signs or bare control
 * characters; strings must be valid UTF-8 (no overlong forms, no surrogates, nothing above
 * U+10FFFF) and \u escapes must not leave a surrogate unpaired. Whatever json_scan() accepts,
 * json-c accepts too (tests/unit/test-json-scan.c and tests/fuzz/fuzz-json-scan.c check that). */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Containers may nest this deep: json-c's default depth, so that records json-c refused before
 * are refused still. */
#define JSON_SCAN_DEPTH_MAX 32u

typedef enum JsonScanType {
        JSON_SCAN_NONE = 0, /* (a field the object does not have) */
        JSON_SCAN_OBJECT,
        JSON_SCAN_ARRAY,
        JSON_SCAN_STRING,
        JSON_SCAN_NUMBER,
        JSON_SCAN_TRUE,
        JSON_SCAN_FALSE,
        JSON_SCAN_NULL,
} JsonScanType;

/* One member of the top-level object to look for. */
typedef struct JsonScanField {
        const char *key;   /* in: the member name (UTF-8, NUL-terminated; matched after unescaping) */
        JsonScanType type; /* out: JSON_SCAN_NONE when the object has no such member */
        const char *value; /* out: first byte of its value in the input (NULL when absent) */
        size_t value_len;  /* out: length of the value; a string's includes its quotes */
} JsonScanField;

/* Validates s[0..n) as exactly one JSON value. When that value is an object, fills each of
 * fields[0..n_fields) with the span of the member of that name (the last one if a name repeats,
 * as json-c does); fields is left untouched on error. Returns the type of the value (> 0), or
 * -EBADMSG when s is not valid JSON, with the offset of the offending byte in *ret_error_offset
 * (may be NULL). */
int json_scan(const char *s, size_t n, JsonScanField *fields, size_t n_fields, size_t *ret_error_offset);

/* Validates only (no fields): true if s[0..n) is one valid JSON value. */
static inline bool json_scan_valid(const char *s, size_t n) {
        return json_scan(s, n, NULL, 0, NULL) > 0;
}

/* Flags of the variants below. */
enum {
        JSON_SCAN_ONE_LINE = 1u << 0, /* CR and LF are no blanks: the value must be one line */
        JSON_SCAN_PREFIX = 1u << 1,   /* one value at the start; whatever follows it is not looked at */
        JSON_SCAN_MEMBERS = 1u << 2,  /* (internal: json_scan_line_members()) */
};

/* Like json_scan(), but only space and tab count as blanks: what it accepts is one JSON value on one
 * line (no CR or LF anywhere: inside strings they must be escaped anyway). This is the rule for a
 * record: dpiped puts its bytes into a client's line as they are, so a line break in them would end
 * that line early. The connectors and the writer check records with it, in the same pass. */
int json_scan_line(const char *s, size_t n, JsonScanField *fields, size_t n_fields, size_t *ret_error_offset);

/* The same without fields, for the checks of whole records (the connectors' jsonl lines, the writer):
 * with no member to track, the scan is compiled without that bookkeeping (a tenth fewer
 * instructions for the bench's records). Returns the type or -EBADMSG with the error offset. */
int json_scan_line_check(const char *s, size_t n, size_t *ret_error_offset);

static inline bool json_scan_line_valid(const char *s, size_t n) {
        return json_scan_line_check(s, n, NULL) > 0;
}

/* The members of a top-level object and of the objects nested in it, down to a depth, as the one
 * validating pass finds them: what the connector's transforms work on instead of a tree. A
 * transform reaches 8 levels deep; one more is the envelope around a record (a dpipe protocol
 * line's "data"). */
#define JSON_SCAN_MEMBERS_DEPTH_MAX 9u

typedef struct JsonScanMember {
        const char *key;     /* the member name as in the input, quotes included */
        const char *value;   /* its value's first byte */
        uint32_t key_len;
        uint32_t value_len;
        int32_t parent;      /* index of the member whose value holds this one, -1 at the top */
        uint8_t depth;       /* 1 for members of the top-level object */
        uint8_t type;        /* JsonScanType of the value */
        bool key_escaped;    /* the name has backslash escapes (compare it unescaped) */
        bool value_escaped;  /* a string value with backslash escapes */
} JsonScanMember;

typedef struct JsonScanMembers {
        unsigned max_depth;      /* in: list members of objects up to this depth (1..9) */
        JsonScanMember *members; /* out: in document order; a member's parent comes before it */
        size_t n;
        size_t allocated;        /* grown (realloc) when a record has more members than ever before */
} JsonScanMembers;

/* json_scan_line() that lists members instead of looking for named fields: members of the top-level
 * object (depth 1), and of each object that is the value of a listed member, down to max_depth.
 * Objects inside arrays are not entered. Returns the type of the value, -EBADMSG with the error
 * offset, -ENOMEM if the table could not grow. The table is reused from call to call. */
int json_scan_line_members(const char *s, size_t n, JsonScanMembers *mt, size_t *ret_error_offset);
/* The same for the one value at the start of s[0..n) (after blanks, which may not be line breaks
 * here), as json_scan_prefix(): its end in *ret_end. For the elements of an array of records. */
int json_scan_prefix_line_members(const char *s, size_t n, JsonScanMembers *mt, size_t *ret_end,
                                  size_t *ret_error_offset);
int json_scan_members_grow(JsonScanMembers *mt);
void json_scan_members_done(JsonScanMembers *mt);

/* Validates the one value at the start of s[0..n) (after blanks) and stores in *ret_end the offset
 * just after it, without looking at the rest: for walking the elements of a large array one by one.
 * Returns its type, or -EBADMSG with *ret_error_offset (may be NULL). */
int json_scan_prefix(const char *s, size_t n, size_t *ret_end, size_t *ret_error_offset);

/* What is wrong at the error offset json_scan() reported, for a message: "NaN or Infinity, which are
 * not JSON numbers", "invalid UTF-8", "a raw control character", "a line break", "it ends in the
 * middle of a value", ... (a static string, never NULL). */
const char *json_scan_error_reason(const char *s, size_t n, size_t offset);

/* The shape of JSON without its details: containers, separators and strings are checked, but any run
 * of bytes that is no string and holds no separator counts as a scalar (NaN, 0x1f, tru), and strings
 * may hold anything up to an unescaped quote. For finding where a value that json_scan() refused
 * ends, so that the next one can be read (an array of records with one bad record). With
 * JSON_SCAN_PREFIX it stops after the first value; otherwise s[0..n) must be one value with blanks
 * around it. Nests up to 64 levels. Returns 0 with the end in *ret_end, or -EBADMSG. */
int json_scan_lenient(const char *s, size_t n, unsigned flags, size_t *ret_end);

/* For a string value span as returned by json_scan() (quotes included): whether it unescapes to
 * exactly the NUL-terminated s. False for anything that is not a valid JSON string. */
bool json_scan_string_equal(const char *value, size_t len, const char *s);

/* Unescapes a string value span (quotes included) into buf[0..size) and NUL-terminates it; for
 * short values such as an error message. Returns the unescaped length, -EBADMSG if it is not a
 * valid JSON string, -ENOBUFS if it does not fit (buf holds a truncated, terminated prefix). */
int json_scan_string_unescape(const char *value, size_t len, char *buf, size_t size);

/* For a number value span: the value as an unsigned 64-bit integer. -EINVAL if it is not a
 * non-negative integer written without fraction or exponent, -ERANGE above UINT64_MAX. */
int json_scan_uint64(const char *value, size_t len, uint64_t *ret);
