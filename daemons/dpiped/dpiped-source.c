/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "dpiped-source.h"
#include "json-util.h"
#include "utf8.h"
#include "util.h"

static const char *const source_state_table[_SOURCE_STATE_MAX] = {
        [SOURCE_CONNECTING] = "connecting",
        [SOURCE_ACTIVE] = "active",
        [SOURCE_BACKOFF] = "backoff",
        [SOURCE_PAUSED] = "paused",
        [SOURCE_FAILED] = "failed",
        [SOURCE_DEGRADED] = "degraded",
};

DEFINE_STRING_TABLE_LOOKUP(source_state, SourceState)

int source_new(const char *name, const char *type, struct json_object *options, Source **ret) {
        _cleanup_(source_freep) Source *s = NULL;

        s = calloc(1, sizeof(Source));
        if (!s)
                return -ENOMEM;
        s->name = strdup(name);
        s->type = strdup(type);
        s->last_error = strdup("");
        s->last_skip_reason = strdup("");
        if (!s->name || !s->type || !s->last_error || !s->last_skip_reason)
                return -ENOMEM;
        s->options = options ? json_object_get(options) : json_object_new_object();
        if (!s->options)
                return -ENOMEM;
        s->state = SOURCE_CONNECTING;
        s->state_change_usec = now_usec(CLOCK_REALTIME);
        *ret = TAKE_PTR(s);
        return 0;
}

Source *source_free(Source *s) {
        if (!s)
                return NULL;
        free(s->name);
        free(s->type);
        free(s->object_path);
        free(s->last_error);
        free(s->last_skip_reason);
        json_object_put(s->options);
        def_files_done(&s->files);
        free(s);
        return NULL;
}

const char *source_address(const Source *s) {
        return json_get_string(s->options, "address") ?: "";
}

bool source_set_state(Source *s, SourceState state, const char *error, uint64_t now) {
        bool changed = false;

        if (s->state != state) {
                s->state = state;
                s->state_change_usec = now;
                changed = true;
        }
        if (!isempty(error) && !streq(error, s->last_error)) {
                char *e = strdup(error);
                if (e) {
                        free(s->last_error);
                        s->last_error = e;
                        s->last_error_usec = now;
                        changed = true;
                }
        } else if (!isempty(error) && !source_state_is_running(state))
                /* The same error again while failing (a peer that keeps refusing): its time is the
                 * latest occurrence. A running source's connector repeats its last error in every
                 * report; that is not a new one. */
                s->last_error_usec = now;
        return changed;
}

SourceState source_effective_state(SourceState reported, uint64_t last_skip_usec, uint64_t window_usec, uint64_t now) {
        if (reported == SOURCE_ACTIVE && last_skip_usec > 0 && window_usec > 0 && now < last_skip_usec + window_usec)
                return SOURCE_DEGRADED;
        return reported;
}

bool source_state_is_running(SourceState state) {
        return state == SOURCE_ACTIVE || state == SOURCE_DEGRADED || state == SOURCE_PAUSED;
}

bool source_state_is_healthy(SourceState state) {
        return state == SOURCE_ACTIVE || state == SOURCE_PAUSED;
}

bool source_type_is_valid(const char *type) {
        /* A type names a connector executable and its socket connector-<type>.sock: the same
         * character rules as source names keep it a plain file name. */
        return source_name_is_valid(type) && type[0] != '.';
}

/* What every source's address is, whatever its type: its form (HOST:PORT, URL, path) is the type's
 * to check, with the rest of its options ("check" in man:dpipe-connector(7)). */
int source_address_check(const char *address, const char **ret_reason) {
        if (isempty(address)) {
                *ret_reason = "the option \"address\" is required";
                return -EINVAL;
        }
        if (strlen(address) > 2048) {
                *ret_reason = "the address is too long";
                return -EINVAL;
        }
        for (const char *p = address; *p; p++)
                if ((unsigned char) *p < ' ' || *p == 0x7f) {
                        *ret_reason = "the address contains control characters";
                        return -EINVAL;
                }
        return 0;
}

static bool option_key_is_valid(const char *key) {
        size_t n = strlen(key);

        if (n == 0 || n > 64)
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = key[i];
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                      c == '-' || c == '.'))
                        return false;
        }
        return true;
}

int options_normalize_shape(struct json_object *options, struct json_object **ret, char *reason, size_t reason_size) {
        _cleanup_json_ struct json_object *out = NULL;

        if (options && !json_object_is_type(options, json_type_object)) {
                snprintf(reason, reason_size, "options must be an object");
                return -EINVAL;
        }
        out = json_object_new_object();
        if (!out)
                return -ENOMEM;
        if (options) {
                json_object_object_foreach(options, key, value) {
                        if (!option_key_is_valid(key)) {
                                snprintf(reason, reason_size, "invalid option name \"%.64s\"", key);
                                return -EINVAL;
                        }
                        /* Names, types and values are the daemon's to check: dpiped only keeps what
                         * it can store and send on (basic JSON types). */
                        if (!value || json_object_is_type(value, json_type_object) ||
                            json_object_is_type(value, json_type_array)) {
                                snprintf(reason, reason_size, "option \"%.64s\" must be a string, number or boolean", key);
                                return -EINVAL;
                        }
                        if (json_object_is_type(value, json_type_double) && !isfinite(json_object_get_double(value))) {
                                /* Not JSON: the registry file could not be read back. */
                                snprintf(reason, reason_size, "option \"%.64s\" must be a finite number", key);
                                return -EINVAL;
                        }
                        if (json_object_is_type(value, json_type_string) &&
                            !utf8_is_valid_n(json_object_get_string(value), (size_t) json_object_get_string_len(value))) {
                                snprintf(reason, reason_size, "option \"%.64s\" is not UTF-8", key);
                                return -EINVAL;
                        }
                        if (json_object_object_add(out, key, json_object_get(value)) < 0)
                                return -ENOMEM;
                }
        }
        *ret = TAKE_PTR(out);
        return 0;
}

int source_options_normalize(const char *type, struct json_object *options, struct json_object **ret,
                             char *reason, size_t reason_size) {
        _cleanup_json_ struct json_object *out = NULL;
        const char *why = NULL;
        int r;

        r = options_normalize_shape(options, &out, reason, reason_size);
        if (r < 0)
                return r;
        r = source_address_check(json_get_string(out, "address"), &why);
        if (r < 0) {
                snprintf(reason, reason_size, "%s", why);
                return r;
        }
        *ret = TAKE_PTR(out);
        return 0;
}

char *source_registry_format(const Source *s) {
        _cleanup_json_ struct json_object *o = NULL;
        const char *text;

        o = json_object_new_object();
        if (!o)
                return NULL;
        if (json_object_object_add(o, "name", json_object_new_string(s->name)) < 0 ||
            json_object_object_add(o, "type", json_object_new_string(s->type)) < 0 ||
            json_object_object_add(o, "options", json_object_get(s->options)) < 0 ||
            json_object_object_add(o, "paused", json_object_new_boolean(s->paused)) < 0)
                return NULL;
        text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
        if (!text)
                return NULL;
        char *t;
        if (asprintf(&t, "%s\n", text) < 0)
                return NULL;
        return t;
}

int source_registry_parse(const char *text, size_t size, Source **ret) {
        _cleanup_json_ struct json_object *o = NULL, *options = NULL;
        _cleanup_(source_freep) Source *s = NULL;
        struct json_object *opts = NULL;
        const char *name, *type;
        char reason[256];
        bool paused = false;
        int r;

        r = json_parse_n(text, size, &o, NULL);
        if (r < 0)
                return r;
        if (!json_object_is_type(o, json_type_object))
                return -EBADMSG;
        name = json_get_string(o, "name");
        type = json_get_string(o, "type");
        if (!source_name_is_valid(name) || !source_type_is_valid(type))
                return -EBADMSG;
        (void) json_object_object_get_ex(o, "options", &opts);
        r = source_options_normalize(type, opts, &options, reason, sizeof(reason));
        if (r < 0)
                return r == -ENOMEM ? r : -EBADMSG;
        (void) json_get_bool(o, "paused", &paused);

        r = source_new(name, type, options, &s);
        if (r < 0)
                return r;
        s->paused = paused;
        s->state = paused ? SOURCE_PAUSED : SOURCE_CONNECTING;
        *ret = TAKE_PTR(s);
        return 0;
}

const DefFileKind def_file_kind_source = {
        .what = "source",
        .section = "Source",
        .man = "dpipe.source(5)",
        .type_hint = "a connector type such as tcp, http or file",
        .name_rule = "1-64 characters of [A-Za-z0-9_.-]",
        .name_is_valid = source_name_is_valid,
        .type_is_valid = source_type_is_valid,
        .normalize = source_options_normalize,
};
