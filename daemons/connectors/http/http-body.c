/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Reading one HTTP response body into records: see http-body.h. */

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "http-body.h"
#include "json-scan.h"

/* A buffer above this is given back after the response instead of kept for the next one. */
#define BODY_KEEP_BYTES (256u * 1024u)

const char *http_body_expected(RecordFormat declared) {
        switch (declared) {
        case RECORD_FORMAT_JSON:
                return "a JSON array";
        case RECORD_FORMAT_JSONL:
                return "JSON lines";
        case RECORD_FORMAT_CSV:
                return "CSV";
        case RECORD_FORMAT_DPIPE:
                return "a dpipe-source page ({\"records\":[...],\"next_offset\":N})";
        default:
                return "JSON, JSON lines or CSV";
        }
}

void http_body_begin(HttpBody *b, RecordFormat declared, bool page_expected, RecordReader *reader, uint64_t skip,
                     bool page_seqs, uint64_t first_seq) {
        Buffer buf = b->buf, scratch = b->scratch;

        buffer_clear(&buf);
        buffer_clear(&scratch);
        *b = (HttpBody) {
                .declared = declared,
                .page_expected = page_expected,
                .skip = skip,
                .page_seqs = page_seqs,
                .first_seq = first_seq,
                .reader = reader,
                .format = RECORD_FORMAT_AUTO,
                .buf = buf,
                .scratch = scratch,
        };
        record_reader_reset(reader, 0);
}

void http_body_release(HttpBody *b) {
        if (b->buf.allocated > BODY_KEEP_BYTES)
                buffer_done(&b->buf);
        else
                buffer_clear(&b->buf);
        if (b->scratch.allocated > BODY_KEEP_BYTES)
                buffer_done(&b->scratch);
        else
                buffer_clear(&b->scratch);
}

void http_body_done(HttpBody *b) {
        buffer_done(&b->buf);
        buffer_done(&b->scratch);
}

static bool is_blank(char c) {
        return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static const char *skip_blanks(const char *p, const char *end) {
        while (p < end && is_blank(*p))
                p++;
        return p;
}

/* The start of the body's content: after a UTF-8 byte order mark and blanks. */
static const char *body_start(const HttpBody *b, const char **ret_end) {
        const char *p = buffer_begin(&b->buf), *end;

        if (!p) {
                *ret_end = NULL;
                return NULL;
        }
        end = p + buffer_size(&b->buf);

        if (end - p >= 3 && memcmp(p, "\xef\xbb\xbf", 3) == 0)
                p += 3;
        *ret_end = end;
        return skip_blanks(p, end);
}

/* "Content-Type text/html" or "no Content-Type", for messages (control characters left out). */
static const char *describe_type(const char *content_type, char *buf, size_t size) {
        size_t n = 0;

        if (!content_type || !*content_type)
                return "no Content-Type";
        n = (size_t) snprintf(buf, size, "Content-Type ");
        for (const char *p = content_type; *p && n + 1 < size && n < 80; p++)
                buf[n++] = (unsigned char) *p >= 0x20 && (unsigned char) *p < 0x7f ? *p : '?';
        buf[MIN(n, size - 1)] = 0;
        return buf;
}

static int body_error(HttpBody *b, int error, const char *fmt, ...) _printf_(3, 4);
static int body_error(HttpBody *b, int error, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        (void) vsnprintf(b->error, sizeof(b->error), fmt, ap);
        va_end(ap);
        return error;
}

/* What a media type says the body is, when that is none of ours; NULL when it may be ours. */
static const char *media_type_kind(const char *content_type) {
        char t[128];
        size_t n = 0;

        if (!content_type)
                return NULL;
        while (*content_type == ' ')
                content_type++;
        for (; content_type[n] && content_type[n] != ';' && content_type[n] != ' ' && n + 1 < sizeof(t); n++)
                t[n] = (char) (content_type[n] >= 'A' && content_type[n] <= 'Z' ? content_type[n] - 'A' + 'a'
                                                                                  : content_type[n]);
        t[n] = 0;
        if (streq(t, "text/html") || streq(t, "application/xhtml+xml"))
                return "an HTML page";
        if ((n >= 4 && streq(t + n - 4, "/xml")) || (n >= 4 && streq(t + n - 4, "+xml")))
                return "an XML document";
        if (strncmp(t, "image/", 6) == 0)
                return "an image";
        if (strncmp(t, "audio/", 6) == 0 || strncmp(t, "video/", 6) == 0)
                return "audio or video";
        if (strncmp(t, "font/", 5) == 0)
                return "a font";
        if (streq(t, "application/pdf"))
                return "a PDF document";
        if (streq(t, "application/zip") || streq(t, "application/gzip") || streq(t, "application/x-tar"))
                return "an archive";
        return NULL;
}

int http_body_check_content_type(HttpBody *b, const char *content_type) {
        const char *kind = media_type_kind(content_type);
        char buf[128];

        if (!kind)
                return 0;
        return body_error(b, -EMEDIUMTYPE, "the response is %s (%s), not %s", kind,
                          describe_type(content_type, buf, sizeof(buf)), http_body_expected(b->declared));
}

/* '<' then a letter, '!', '?' or '/': an HTML or XML document, whatever the format. */
static bool looks_like_markup(const char *p, const char *end) {
        char c;

        if (end - p < 2 || p[0] != '<')
                return false;
        c = p[1];
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '!' || c == '?' || c == '/';
}

static int markup_error(HttpBody *b, const char *p, const char *end, const char *content_type) {
        char start[24], buf[128];
        size_t n = 0;

        for (; p + n < end && n + 1 < sizeof(start) && (unsigned char) p[n] >= 0x20 && (unsigned char) p[n] < 0x7f; n++)
                start[n] = p[n];
        start[n] = 0;
        return body_error(b, -EMEDIUMTYPE, "the body is an HTML or XML document (%s, it starts with \"%s\"), not %s",
                          describe_type(content_type, buf, sizeof(buf)), start, http_body_expected(b->declared));
}

static int not_format_error(HttpBody *b, const char *content_type, const char *detail) {
        char buf[128];

        return body_error(b, -EMEDIUMTYPE, "the body (%s) is not %s%s%s", describe_type(content_type, buf, sizeof(buf)),
                          http_body_expected(b->format != RECORD_FORMAT_AUTO ? b->format : b->declared),
                          detail ? ": " : "", detail ?: "");
}

/* Is the line [p, end) a dpipe-source page: an object with a records array and next_offset? */
static bool line_is_page(const char *p, const char *end, bool *ret_valid) {
        JsonScanField f[] = { { .key = "records" }, { .key = "next_offset" } };
        int r;

        if (end > p && end[-1] == '\r')
                end--;
        r = json_scan_line(p, (size_t) (end - p), f, ELEMENTSOF(f), NULL);
        *ret_valid = r > 0;
        return r == JSON_SCAN_OBJECT && f[0].type == JSON_SCAN_ARRAY && f[1].type == JSON_SCAN_NUMBER;
}

static void set_streaming(HttpBody *b, RecordFormat f) {
        b->format = f;
        b->streaming = true;
        b->reader->format = f;
}

/* Decides what the body is, once enough of it is there. Returns 1 when decided, 0 when more bytes
 * are needed, or an error. */
static int decide(HttpBody *b, const char *content_type, bool eof) {
        const char *end, *p = body_start(b, &end);

        if (p >= end || (*p == '<' && end - p < 2)) {
                if (!eof)
                        return 0;
        } else if (looks_like_markup(p, end)) {
                /* A few more bytes make a better message. */
                if (!eof && end - p < 16 && !memchr(p, '\n', (size_t) (end - p)))
                        return 0;
                return markup_error(b, p, end, content_type);
        }

        /* A byte order mark would become part of the first record. */
        if (buffer_size(&b->buf) >= 3 && memcmp(buffer_begin(&b->buf), "\xef\xbb\xbf", 3) == 0)
                buffer_consume(&b->buf, 3);

        switch (b->declared) {
        case RECORD_FORMAT_JSON:
        case RECORD_FORMAT_DPIPE:
                b->format = b->declared;
                return 1;
        case RECORD_FORMAT_JSONL:
        case RECORD_FORMAT_CSV:
                set_streaming(b, b->declared);
                return 1;
        default:
                break;
        }

        /* auto */
        if (content_type && strcasestr(content_type, "csv"))
                set_streaming(b, RECORD_FORMAT_CSV);
        else if (p >= end)
                set_streaming(b, RECORD_FORMAT_JSONL); /* empty: nothing to read either way */
        else if (*p == '[')
                b->format = RECORD_FORMAT_JSON;
        else if (*p == '{') {
                const char *nl;
                bool valid;

                if (b->page_expected) {
                        b->format = RECORD_FORMAT_DPIPE;
                        return 1;
                }
                /* One object per line, or a page {"records":[...]}? Its first line tells, if that is
                 * a JSON value; else (a page spread over lines, or not JSON) the whole body does. */
                nl = memchr(p, '\n', (size_t) (end - p));
                if (!nl && !eof)
                        return 0;
                if (line_is_page(p, nl ?: end, &valid))
                        b->format = RECORD_FORMAT_DPIPE;
                else if (valid)
                        set_streaming(b, RECORD_FORMAT_JSONL);
                else if (!eof) {
                        b->undecided_until_end = true;
                        return 0;
                } else
                        return 2; /* decided at the end, see http_body_end() */
        } else if (content_type && strcasestr(content_type, "json"))
                set_streaming(b, RECORD_FORMAT_JSONL);
        else
                set_streaming(b, RECORD_FORMAT_CSV);
        return 1;
}

/* jsonl and csv: every complete record in the buffer (all of it at eof). */
static int stream_records(HttpBody *b, Source *s, const char *content_type, bool eof) {
        RecordReader *r = b->reader;
        char *rec, reason[160];
        size_t len;
        int k;

        while ((k = record_reader_next(r, &b->buf, eof, &rec, &len)) != 0) {
                if (k == -E2BIG) {
                        char pos[64];

                        b->first_record_checked = true;
                        (void) snprintf(pos, sizeof(pos), "line %" PRIu64, r->skipped_line);
                        if (b->index++ >= b->skip)
                                source_skip_record(s, pos, "record longer than %zu bytes", r->max_record);
                        continue;
                }
                if (k < 0)
                        return k;
                if (b->format == RECORD_FORMAT_CSV && !r->header) {
                        k = record_reader_emit(r, s, rec, len); /* takes the header */
                        if (k < 0)
                                return k;
                        continue;
                }
                if (b->format == RECORD_FORMAT_JSONL && len == 0) {
                        r->line++;
                        continue;
                }
                if (b->format == RECORD_FORMAT_JSONL && !b->first_record_checked && len > strspn(rec, " \t")) {
                        /* The first line says whether the body is JSON lines at all, wherever the
                         * cursor stands: an error page must not pass as a stream of bad records. */
                        b->first_record_checked = true;
                        if (record_check_json(rec, len, reason, sizeof(reason)) < 0) {
                                char detail[200];

                                (void) snprintf(detail, sizeof(detail), "line %" PRIu64 ": %s", r->line, reason);
                                return not_format_error(b, content_type, detail);
                        }
                }
                if (b->index++ < b->skip) {
                        r->line++;
                        continue;
                }
                k = record_reader_emit(r, s, rec, len);
                if (k < 0)
                        return k;
                b->emitted += (uint64_t) k;
        }
        return 0;
}

/* An element spread over several lines, put on one: the blanks outside strings go (inside strings a
 * raw line break is not JSON, so json_scan_prefix() refused that already). */
static int compact(HttpBody *b, const char *p, size_t n, const char **ret, size_t *ret_len) {
        bool in_string = false;
        char *o;
        int r;

        buffer_clear(&b->scratch);
        r = buffer_reserve(&b->scratch, n);
        if (r < 0)
                return r;
        o = buffer_tail(&b->scratch);
        for (size_t i = 0; i < n; i++) {
                char c = p[i];

                if (in_string) {
                        *o++ = c;
                        if (c == '\\' && i + 1 < n)
                                *o++ = p[++i];
                        else if (c == '"')
                                in_string = false;
                } else if (!is_blank(c)) {
                        *o++ = c;
                        in_string = c == '"';
                }
        }
        buffer_advance(&b->scratch, (size_t) (o - buffer_tail(&b->scratch)));
        *ret = buffer_begin(&b->scratch);
        *ret_len = buffer_size(&b->scratch);
        return 0;
}

static const char *element_position(HttpBody *b, uint64_t i, char buf[static 48]) {
        if (b->format == RECORD_FORMAT_DPIPE)
                (void) snprintf(buf, 48, "offset %" PRIu64, b->first_seq + i);
        else
                (void) snprintf(buf, 48, "record %" PRIu64, i);
        return buf;
}

/* mt: the element's members, listed by the pass that validated it (with a transform, on one line). */
static int emit_element(HttpBody *b, Source *s, uint64_t i, const char *p, size_t n, const JsonScanMembers *mt) {
        size_t max = b->reader->max_record;
        char pos[48];
        int r;

        if (!mt && (memchr(p, '\n', n) || memchr(p, '\r', n))) {
                r = compact(b, p, n, &p, &n);
                if (r < 0)
                        return r;
        }
        if (n > max) {
                source_skip_record(s, element_position(b, i, pos), "record longer than %zu bytes", max);
                return 0;
        }
        if (b->page_seqs) {
                uint64_t seq = b->first_seq + i;

                if (seq < b->first_seq || seq == SOURCE_SEQ_INVALID)
                        return body_error(b, -ERANGE, "the record at offset %" PRIu64 "+%" PRIu64
                                          " has a seq that no record can follow", b->first_seq, i);
                r = mt ? source_emit_listed(s, seq, p, n, mt, -1, "offset", seq) : source_emit_seq(s, seq, p, n);
        } else
                r = mt ? source_emit_listed(s, source_next_seq(s), p, n, mt, -1, "record", i) : source_emit(s, p, n);
        if (r < 0)
                return r;
        b->emitted += (uint64_t) (r > 0);
        return 0;
}

/* The elements of the array whose '[' is at p (its closing ']' before end; the shape was checked
 * with json_scan_lenient()). Elements before skip are passed over unchecked. Returns the number of
 * elements in *ret_n. */
static int walk_elements(HttpBody *b, Source *s, const char *p, const char *end, uint64_t skip, uint64_t *ret_n) {
        JsonScanMembers *mt = source_members(s, 0);
        uint64_t i = 0;
        int r;

        p = skip_blanks(p + 1, end);
        if (p < end && *p == ']') {
                *ret_n = 0;
                return 0;
        }
        for (;; i++) {
                size_t len = 0, at = 0;
                const char *q;
                bool ok = false;

                if (i >= skip) {
                        const JsonScanMembers *listed = NULL;

                        r = -EBADMSG;
                        if (mt) {
                                /* With a transform: the pass that validates the element lists its
                                 * members too, when it is an object on one line (as APIs that send
                                 * many records write them). Anything else is checked as without a
                                 * transform: an element spread over lines is put on one and then
                                 * scanned by the transform again, one that is no object is skipped
                                 * by it. */
                                r = json_scan_prefix_line_members(p, (size_t) (end - p), mt, &len, &at);
                                if (r == -ENOMEM)
                                        return r;
                                if (r == JSON_SCAN_OBJECT)
                                        listed = mt;
                        }
                        if (!listed)
                                r = json_scan_prefix(p, (size_t) (end - p), &len, &at);
                        q = r > 0 ? skip_blanks(p + len, end) : NULL;
                        ok = q && q < end && (*q == ',' || *q == ']');
                        if (ok) {
                                r = emit_element(b, s, i, p, len, listed);
                                if (r < 0)
                                        return r;
                        } else {
                                char pos[48];

                                source_skip_record(s, element_position(b, i, pos), "not valid JSON: %s at byte %zu",
                                                   r > 0 ? "a syntax error" : json_scan_error_reason(p, (size_t) (end - p), at),
                                                   (r > 0 ? len : at) + 1);
                        }
                }
                if (!ok && json_scan_lenient(p, (size_t) (end - p), JSON_SCAN_PREFIX, &len) < 0)
                        return -EBADMSG; /* can not happen after the check of the whole */
                p = skip_blanks(p + len, end);
                if (p < end && *p == ',') {
                        p = skip_blanks(p + 1, end);
                        continue;
                }
                if (p < end && *p == ']')
                        break;
                return -EBADMSG;
        }
        *ret_n = i + 1;
        return 0;
}

static int end_array(HttpBody *b, Source *s, const char *content_type) {
        const char *end, *p = body_start(b, &end);
        uint64_t n = 0;
        size_t len;
        int r;

        if (p >= end || *p != '[')
                return not_format_error(b, content_type, NULL);
        if (json_scan_lenient(p, (size_t) (end - p), 0, &len) < 0)
                return not_format_error(b, content_type, "it is not well-formed");
        r = walk_elements(b, s, p, end, b->skip, &n);
        if (r >= 0 && n < b->skip) {
                /* Fewer records than the cursor: a new document, read from its start (nothing was
                 * emitted in the walk, every index was below skip). */
                b->shrank = true;
                r = walk_elements(b, s, p, end, 0, &n);
        }
        if (r == -EBADMSG)
                return not_format_error(b, content_type, "it is not well-formed");
        if (r < 0)
                return r;
        b->index = n;
        return 0;
}

static bool member_number(const char *v, size_t n, uint64_t *ret) {
        size_t len;

        return json_scan_prefix(v, n, &len, NULL) == JSON_SCAN_NUMBER && len == n && json_scan_uint64(v, n, ret) >= 0;
}

static int end_page(HttpBody *b, Source *s, const char *content_type) {
        const char *end, *p = body_start(b, &end), *records = NULL;
        size_t len, records_len = 0;
        int r;

        if (p >= end || *p != '{' || json_scan_lenient(p, (size_t) (end - p), 0, &len) < 0)
                return not_format_error(b, content_type, NULL);
        /* The members of the object, without a tree: records, next_offset and total. */
        p = skip_blanks(p + 1, end);
        while (p < end && *p == '"') {
                const char *key = p, *value;
                size_t key_len;

                if (json_scan_lenient(key, (size_t) (end - key), JSON_SCAN_PREFIX, &key_len) < 0)
                        return not_format_error(b, content_type, NULL);
                p = skip_blanks(key + key_len, end);
                if (p >= end || *p != ':')
                        return not_format_error(b, content_type, NULL);
                value = skip_blanks(p + 1, end);
                if (json_scan_lenient(value, (size_t) (end - value), JSON_SCAN_PREFIX, &len) < 0)
                        return not_format_error(b, content_type, NULL);
                if (json_scan_string_equal(key, key_len, "records")) {
                        records = value;
                        records_len = len;
                } else if (json_scan_string_equal(key, key_len, "next_offset"))
                        b->have_next_offset = member_number(value, len, &b->next_offset);
                else if (json_scan_string_equal(key, key_len, "total"))
                        b->have_total = member_number(value, len, &b->total);
                p = skip_blanks(value + len, end);
                if (p < end && *p == ',')
                        p = skip_blanks(p + 1, end);
        }
        if (!records || *records != '[')
                return not_format_error(b, content_type, "it has no records array");
        r = walk_elements(b, s, records, records + records_len, 0, &b->elements);
        if (r == -EBADMSG)
                return not_format_error(b, content_type, "it is not well-formed");
        return r;
}

int http_body_feed(HttpBody *b, Source *s, const char *content_type, const char *p, size_t n) {
        int r;

        r = buffer_append(&b->buf, p, n);
        if (r < 0)
                return r;
        if (b->format == RECORD_FORMAT_AUTO && !b->undecided_until_end) {
                r = decide(b, content_type, false);
                if (r <= 0)
                        return r;
        }
        if (b->streaming)
                return stream_records(b, s, content_type, false);
        return 0;
}

int http_body_end(HttpBody *b, Source *s, const char *content_type) {
        int r;

        if (b->format == RECORD_FORMAT_AUTO) {
                r = b->undecided_until_end ? 2 : decide(b, content_type, true);
                if (r < 0)
                        return r;
                if (r == 2) {
                        /* A '{' body whose first line is no JSON value: a page spread over lines, or
                         * something that is not JSON lines (the first line check says so). */
                        const char *end, *start = body_start(b, &end);
                        size_t n = (size_t) (end - start);

                        if (memmem(start, n, "\"next_offset\"", 13) && memmem(start, n, "\"records\"", 9))
                                b->format = RECORD_FORMAT_DPIPE;
                        else
                                set_streaming(b, RECORD_FORMAT_JSONL);
                }
        }
        if (b->streaming)
                return stream_records(b, s, content_type, true);
        if (b->format == RECORD_FORMAT_JSON)
                return end_array(b, s, content_type);
        return end_page(b, s, content_type);
}
