/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The Sink object of dpiped: its definition, state, registry entry and dpipe.sink(5) kind. Pure logic
 * (the unit tests link it); the manager's side is dpiped-sink-manager.c. */

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "dpiped-sink.h"
#include "dpiped-source.h"
#include "json-util.h"
#include "util.h"

#define SINK_ADDRESS_MAX 4096

static const char *const sink_state_table[_SINK_STATE_MAX] = {
        [SINK_CONNECTING] = "connecting",
        [SINK_ACTIVE] = "active",
        [SINK_BACKOFF] = "backoff",
        [SINK_PAUSED] = "paused",
        [SINK_FAILED] = "failed",
};

DEFINE_STRING_TABLE_LOOKUP(sink_state, SinkState)

bool sink_name_is_valid(const char *name) {
        return source_name_is_valid(name) && strlen(name) <= SINK_NAME_MAX;
}

int sink_new(const char *name, const char *type, struct json_object *options, Sink **ret) {
        _cleanup_(sink_freep) Sink *s = NULL;

        s = calloc(1, sizeof(Sink));
        if (!s)
                return -ENOMEM;
        s->name = strdup(name);
        s->type = strdup(type);
        s->last_error = strdup("");
        if (!s->name || !s->type || !s->last_error)
                return -ENOMEM;
        s->options = options ? json_object_get(options) : json_object_new_object();
        if (!s->options)
                return -ENOMEM;
        s->state = SINK_CONNECTING;
        *ret = TAKE_PTR(s);
        return 0;
}

Sink *sink_free(Sink *s) {
        if (!s)
                return NULL;
        free(s->name);
        free(s->type);
        free(s->object_path);
        free(s->last_error);
        json_object_put(s->options);
        def_files_done(&s->files);
        free(s);
        return NULL;
}

const char *sink_address(const Sink *s) {
        return json_get_string(s->options, "address") ?: "";
}

bool sink_set_state(Sink *s, SinkState state, const char *error) {
        bool changed = false;

        if (s->state != state) {
                s->state = state;
                changed = true;
        }
        if (error && !streq(error, s->last_error)) {
                char *e = strdup(error);
                if (e) {
                        free(s->last_error);
                        s->last_error = e;
                        changed = true;
                }
        }
        return changed;
}

int sink_options_normalize(struct json_object *options, struct json_object **ret, char *reason, size_t reason_size) {
        _cleanup_json_ struct json_object *out = NULL;
        const char *address;
        int r;

        r = options_normalize_shape(options, &out, reason, reason_size);
        if (r < 0)
                return r;
        address = json_get_string(out, "address");
        if (isempty(address)) {
                snprintf(reason, reason_size, "the option \"address\" (a string) is required");
                return -EINVAL;
        }
        if (strlen(address) > SINK_ADDRESS_MAX) {
                snprintf(reason, reason_size, "the address is too long");
                return -EINVAL;
        }
        for (const char *p = address; *p; p++)
                if ((unsigned char) *p < ' ' || *p == 0x7f) {
                        snprintf(reason, reason_size, "the address contains control characters");
                        return -EINVAL;
                }
        *ret = TAKE_PTR(out);
        return 0;
}

/* ---- registry ----------------------------------------------------------------------------------- */

static char *sink_entry_format(const void *object) {
        _cleanup_json_ struct json_object *o = json_object_new_object();
        const Sink *s = object;
        char *text;

        if (!o || json_object_object_add(o, "name", json_object_new_string(s->name)) < 0 ||
            json_object_object_add(o, "type", json_object_new_string(s->type)) < 0 ||
            json_object_object_add(o, "options", json_object_get(s->options)) < 0)
                return NULL;
        if (asprintf(&text, "%s\n",
                     json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE)) < 0)
                return NULL;
        return text;
}

static int sink_entry_parse(const char *text, size_t size, void **ret) {
        _cleanup_json_ struct json_object *o = NULL, *options = NULL;
        struct json_object *opts = NULL;
        const char *name, *type;
        char reason[256];
        Sink *s;
        int r;

        r = json_parse_n(text, size, &o, NULL);
        if (r < 0)
                return r;
        if (!json_object_is_type(o, json_type_object))
                return -EBADMSG;
        name = json_get_string(o, "name");
        type = json_get_string(o, "type");
        if (!sink_name_is_valid(name) || !source_type_is_valid(type))
                return -EBADMSG;
        (void) json_object_object_get_ex(o, "options", &opts);
        r = sink_options_normalize(opts, &options, reason, sizeof(reason));
        if (r < 0)
                return r == -ENOMEM ? r : -EBADMSG;
        r = sink_new(name, type, options, &s);
        if (r >= 0)
                *ret = s;
        return r;
}

static const char *sink_entry_name(const void *object) {
        return ((const Sink *) object)->name;
}

static void sink_entry_free(void *object) {
        sink_free(object);
}

const RegistryKind registry_kind_sink = {
        .what = "sink",
        .parse = sink_entry_parse,
        .format = sink_entry_format,
        .name = sink_entry_name,
        .free = sink_entry_free,
};

/* ---- dpipe.sink(5) ------------------------------------------------------------------------------- */

static int sink_file_normalize(const char *type, struct json_object *options, struct json_object **ret, char *reason,
                               size_t reason_size) {
        return sink_options_normalize(options, ret, reason, reason_size);
}

const DefFileKind def_file_kind_sink = {
        .what = "sink",
        .section = "Sink",
        .man = "dpipe.sink(5)",
        .type_hint = "a sink type such as file or nats",
        .name_rule = "1-59 characters of [A-Za-z0-9_.-]",
        .name_is_valid = sink_name_is_valid,
        .type_is_valid = source_type_is_valid,
        .normalize = sink_file_normalize,
};
