/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libFuzzer target for what dpiped does with the bytes a client sends (dpiped(8), CLIENT PROTOCOL): the line
 * framing (line_next() over a Buffer that fills in pieces, as reads arrive), then each line to a
 * request (request_parse_line(): UTF-8 check, JSON or the inline tokenizer and its 1:1 mapping).
 *
 * Oracles: a line is a request (a JSON object; from an inline command, one with an "op" string)
 * or an error with a code the protocol knows, never both and never neither; what the server
 * would echo is valid JSON; and the tokenizer gives back exactly the words that
 * inline_command_append() (the quoting dpipe-client uses) made a line of. The input is copied into
 * buffers of exactly its size, so ASan catches any read past a line. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buffer.h"
#include "client-util.h"
#include "dpiped-request.h"
#include "json-util.h"
#include "line.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FAIL(...)                                                                                        \
        do {                                                                                             \
                fprintf(stderr, "fuzz-client-line: " __VA_ARGS__);                                      \
                fputc('\n', stderr);                                                                     \
                abort();                                                                                 \
        } while (0)

#define WORDS_MAX 64

static void check_tokenizer_round_trip(const char *line, size_t len) {
        char *a = strndup(line, len), *b = NULL;
        char *words[WORDS_MAX], *again[WORDS_MAX];
        Buffer quoted = {};
        int n, m;

        if (!a)
                return;
        n = line_tokenize(a, words, WORDS_MAX);
        if (n <= 0)
                goto out;
        if (inline_command_append(&quoted, words, (size_t) n) < 0 || buffer_append(&quoted, "", 1) < 0)
                goto out; /* a word with a CR, which no inline line can carry */
        b = strdup(buffer_begin(&quoted));
        if (!b)
                goto out;
        m = line_tokenize(b, again, WORDS_MAX);
        if (m != n)
                FAIL("%d words quoted as \"%s\" came back as %d", n, buffer_begin(&quoted), m);
        for (int i = 0; i < n; i++)
                if (!streq(words[i], again[i]))
                        FAIL("word %d \"%s\" quoted as \"%s\" came back as \"%s\"", i, words[i], buffer_begin(&quoted),
                             again[i]);
out:
        free(a);
        free(b);
        buffer_done(&quoted);
}

static void check_line(char *line, size_t len) {
        struct json_object *req = NULL;
        const char *code = NULL, *why = NULL, *text;
        bool inline_form;
        size_t skip = 0;
        int r;

        while (skip < len && (line[skip] == ' ' || line[skip] == '\t'))
                skip++;
        inline_form = skip < len && line[skip] != '{';
        if (inline_form)
                check_tokenizer_round_trip(line, len);

        r = request_parse_line(line, len, &req, &code, &why);
        if (r == -ENOMEM)
                return;
        if (r < 0) {
                if (req)
                        FAIL("an error and a request");
                if (!code || !why || (!streq(code, "bad_request") && !streq(code, "unknown_op")))
                        FAIL("error %d without a known code (%s: %s)", r, code ?: "-", why ?: "-");
                return;
        }
        if (!req) {
                if (skip != len)
                        FAIL("a line with words gave no request and no error");
                return;
        }
        if (!json_object_is_type(req, json_type_object))
                FAIL("a request that is not an object");
        if (inline_form && !json_get_string(req, "op"))
                FAIL("an inline command without an op");
        /* What replies echo ("id") and what the server logs: serialisable, and JSON again. */
        text = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        if (!text) {
                json_object_put(req);
                return;
        }
        {
                struct json_object *back = NULL;

                if (json_parse_n(text, strlen(text), &back, NULL) < 0)
                        FAIL("a request that does not serialise to JSON: %s", text);
                json_object_put(back);
        }
        json_object_put(req);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        Buffer in = {};
        size_t off = 0, step = 1;

        /* Bytes arrive in pieces of changing size, as reads do; each piece, then every whole line. */
        while (off < size) {
                size_t n = MIN(step, size - off);

                if (buffer_append(&in, data + off, n) < 0)
                        break;
                off += n;
                step = step * 3 % 97 + 1;
                for (;;) {
                        char *line, *copy;
                        size_t len;
                        int r = line_next(&in, 4096, &line, &len);

                        if (r == -E2BIG) {
                                buffer_clear(&in);
                                break;
                        }
                        if (r <= 0)
                                break;
                        if (memchr(line, 0, len))
                                FAIL("a NUL byte left in a line");
                        /* Exactly the line's size (and its NUL), for ASan. */
                        copy = malloc(len + 1);
                        if (!copy)
                                break;
                        memcpy(copy, line, len + 1);
                        check_line(copy, len);
                        free(copy);
                }
        }
        buffer_done(&in);
        return 0;
}
