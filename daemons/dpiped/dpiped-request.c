/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>

#include "dpiped-request.h"
#include "json-util.h"
#include "line.h"
#include "util.h"

const char *const request_inline_help[] = {
        "hello [TOKEN]",
        "ping",
        "pong",
        "add NAME TYPE address=ADDRESS [key=value...]",
        "remove NAME",
        "pause NAME",
        "start NAME",
        "reload",
        "list",
        "add-sink NAME TYPE address=ADDRESS [key=value...]",
        "remove-sink NAME",
        "list-sinks",
        "status",
        "subscribe [earliest|latest|committed|OFFSET] [window=N] [name=NAME] [sources=A,B...]",
        "ack OFFSET",
        "quit",
        "help",
        NULL,
};

static int add_string(struct json_object *o, const char *key, const char *value) {
        struct json_object *v = json_object_new_string(value);

        if (!v)
                return -ENOMEM;
        return json_object_object_add(o, key, v) < 0 ? -ENOMEM : 0;
}

/* A whole decimal word becomes a number, like the JSON form would carry it. */
static struct json_object *number_or_string(const char *w) {
        uint64_t u;

        if (safe_atou64(w, &u) >= 0 && u <= INT64_MAX)
                return json_object_new_int64((int64_t) u);
        return json_object_new_string(w);
}

static int parse_subscribe(struct json_object *o, char **words, int n, const char **ret_error) {
        int r;

        for (int i = 1; i < n; i++) {
                char *key, *value;
                struct json_object *v;

                if (!strchr(words[i], '=')) {
                        if (i != 1) {
                                *ret_error = "usage: subscribe [earliest|latest|committed|OFFSET] [key=value...]";
                                return -EINVAL;
                        }
                        v = number_or_string(words[i]);
                        if (!v || json_object_object_add(o, "from", v) < 0)
                                return -ENOMEM;
                        continue;
                }
                r = word_split_key_value(words[i], &key, &value);
                if (r < 0) {
                        *ret_error = "malformed key=value argument";
                        return r;
                }
                if (streq(key, "sources")) {
                        struct json_object *a = json_object_new_array();
                        if (!a || json_object_object_add(o, "sources", a) < 0) {
                                json_object_put(a);
                                return -ENOMEM;
                        }
                        for (char *p = value, *comma; p; p = comma ? comma + 1 : NULL) {
                                comma = strchr(p, ',');
                                if (comma)
                                        *comma = 0;
                                if (*p && json_object_array_add(a, json_object_new_string(p)) < 0)
                                        return -ENOMEM;
                        }
                } else if (streq(key, "window") || streq(key, "from")) {
                        v = number_or_string(value);
                        if (!v || json_object_object_add(o, key, v) < 0)
                                return -ENOMEM;
                } else if (streq(key, "name")) {
                        r = add_string(o, key, value);
                        if (r < 0)
                                return r;
                } else {
                        *ret_error = "unknown subscribe argument (known: window, name, sources, from)";
                        return -EINVAL;
                }
        }
        return 0;
}

int request_from_inline(char *line, struct json_object **ret, const char **ret_error) {
        _cleanup_json_ struct json_object *o = NULL;
        char *words[REQUEST_WORDS_MAX];
        const char *cmd, *op = NULL;
        int n, r;

        n = line_tokenize(line, words, ELEMENTSOF(words));
        if (n == -EINVAL) {
                *ret_error = "unterminated quote";
                return -EINVAL;
        }
        if (n == -E2BIG) {
                *ret_error = "too many words";
                return -EINVAL;
        }
        if (n < 0)
                return n;
        if (n == 0) {
                *ret_error = "empty command";
                return -EINVAL;
        }
        o = json_object_new_object();
        if (!o)
                return -ENOMEM;
        cmd = words[0];

        /* Commands without arguments. */
        static const struct {
                const char *cmd, *op;
        } plain[] = {
                { "ping", "ping" },     { "pong", "pong" }, { "list", "list_sources" },
                { "status", "status" }, { "quit", "quit" }, { "help", "help" },
                { "reload", "reload" },
                { "list-sinks", "list_sinks" },
        };

        /* hello [TOKEN] (dpiped(8), ACCESS) */
        if (streq(cmd, "hello")) {
                if (n > 2) {
                        *ret_error = "usage: hello [TOKEN]";
                        return -EINVAL;
                }
                r = add_string(o, "op", "hello");
                if (r >= 0 && json_object_object_add(o, "version", json_object_new_int(1)) < 0)
                        r = -ENOMEM;
                if (r >= 0 && n == 2)
                        r = add_string(o, "token", words[1]);
                if (r < 0)
                        return r;
                *ret = TAKE_PTR(o);
                return 0;
        }
        for (size_t i = 0; i < ELEMENTSOF(plain); i++)
                if (streq(cmd, plain[i].cmd))
                        op = plain[i].op;
        if (op) {
                if (n != 1) {
                        *ret_error = "this command takes no arguments";
                        return -EINVAL;
                }
                r = add_string(o, "op", op);
                if (r < 0)
                        return r;
                *ret = TAKE_PTR(o);
                return 0;
        }

        /* Commands that take one source name. */
        static const struct {
                const char *cmd, *op;
        } named[] = {
                { "remove", "remove_source" },
                { "pause", "pause_source" },
                { "start", "resume_source" },
                { "resume", "resume_source" },
                { "remove-sink", "remove_sink" },
        };
        for (size_t i = 0; i < ELEMENTSOF(named); i++)
                if (streq(cmd, named[i].cmd))
                        op = named[i].op;
        if (op) {
                if (n != 2) {
                        *ret_error = "usage: remove|pause|start|remove-sink NAME";
                        return -EINVAL;
                }
                r = add_string(o, "op", op);
                if (r >= 0)
                        r = add_string(o, "name", words[1]);
                if (r < 0)
                        return r;
                *ret = TAKE_PTR(o);
                return 0;
        }

        if (streq(cmd, "add") || streq(cmd, "add-sink")) {
                bool sink = streq(cmd, "add-sink");
                struct json_object *options;

                if (n < 3) {
                        *ret_error = sink ? "usage: add-sink NAME TYPE address=ADDRESS [key=value...]"
                                          : "usage: add NAME TYPE address=ADDRESS [key=value...]";
                        return -EINVAL;
                }
                r = add_string(o, "op", sink ? "add_sink" : "add_source");
                if (r >= 0)
                        r = add_string(o, "name", words[1]);
                if (r >= 0)
                        r = add_string(o, "type", words[2]);
                if (r < 0)
                        return r;
                options = json_object_new_object();
                if (!options || json_object_object_add(o, "options", options) < 0) {
                        json_object_put(options);
                        return -ENOMEM;
                }
                for (int i = 3; i < n; i++) {
                        char *key, *value;

                        r = word_split_key_value(words[i], &key, &value);
                        if (r < 0) {
                                *ret_error = "options must be key=value";
                                return -EINVAL;
                        }
                        r = add_string(options, key, value);
                        if (r < 0)
                                return r;
                }
                *ret = TAKE_PTR(o);
                return 0;
        }

        if (streq(cmd, "subscribe")) {
                r = add_string(o, "op", "subscribe");
                if (r < 0)
                        return r;
                r = parse_subscribe(o, words, n, ret_error);
                if (r < 0)
                        return r;
                *ret = TAKE_PTR(o);
                return 0;
        }

        if (streq(cmd, "ack")) {
                uint64_t offset;

                if (n != 2 || safe_atou64(words[1], &offset) < 0 || offset > INT64_MAX) {
                        *ret_error = "usage: ack OFFSET";
                        return -EINVAL;
                }
                r = add_string(o, "op", "ack");
                if (r < 0)
                        return r;
                if (json_object_object_add(o, "offset", json_object_new_int64((int64_t) offset)) < 0)
                        return -ENOMEM;
                *ret = TAKE_PTR(o);
                return 0;
        }

        *ret_error = "unknown command, try \"help\"";
        return -EOPNOTSUPP;
}

int request_parse_line(char *line, size_t len, struct json_object **ret, const char **ret_code, const char **ret_error) {
        _cleanup_json_ struct json_object *req = NULL;
        const char *why = NULL;
        int r;

        while (len > 0 && (line[0] == ' ' || line[0] == '\t'))
                line++, len--;
        if (len == 0) {
                *ret = NULL;
                return 0;
        }
        if (!utf8_is_valid_n(line, len)) {
                *ret_code = "bad_request";
                *ret_error = "not UTF-8 text";
                return -EINVAL;
        }
        if (line[0] == '{') {
                r = json_parse_n(line, len, &req, NULL);
                if (r == -ENOMEM)
                        return r;
                if (r < 0 || !json_object_is_type(req, json_type_object)) {
                        *ret_code = "bad_request";
                        *ret_error = "malformed JSON";
                        return -EINVAL;
                }
        } else {
                r = request_from_inline(line, &req, &why);
                if (r == -ENOMEM)
                        return r;
                if (r < 0) {
                        *ret_code = r == -EOPNOTSUPP ? "unknown_op" : "bad_request";
                        *ret_error = why ?: "malformed command";
                        return r;
                }
        }
        *ret = TAKE_PTR(req);
        return 0;
}
