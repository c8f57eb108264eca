/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The declarative option table: an add request's "options" object parsed into a type's config
 * struct, row by row, with defaults and named errors. */

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "connector-internal.h"
#include "log.h"

static int parse_bool(const char *s, bool *ret) {
        if (streq(s, "1") || streq(s, "yes") || streq(s, "true") || streq(s, "on"))
                *ret = true;
        else if (streq(s, "0") || streq(s, "no") || streq(s, "false") || streq(s, "off"))
                *ret = false;
        else
                return -EINVAL;
        return 0;
}

/* Parses one value, given either as JSON (v != NULL) or as text (the default). */
static int option_set(const ConnectorOption *o, json_object *v, const char *text, void *config) {
        uint8_t *p = (uint8_t *) config + o->offset;
        uint64_t u;
        int r;

        if (v && json_object_is_type(v, json_type_string))
                text = json_object_get_string(v), v = NULL;

        switch (o->type) {
        case OPTION_STRING: {
                char **s = (char **) p, *copy;

                if (v)
                        return -EINVAL;
                copy = strdup(text);
                if (!copy)
                        return -ENOMEM;
                free(*s);
                *s = copy;
                return 0;
        }
        case OPTION_U32:
        case OPTION_U64:
                if (v) {
                        if (!json_object_is_type(v, json_type_int))
                                return -EINVAL;
                        if (json_object_get_int64(v) < 0)
                                return -ERANGE;
                        u = json_object_get_uint64(v);
                } else {
                        r = safe_atou64(text, &u);
                        if (r < 0)
                                return r;
                }
                if (o->type == OPTION_U32) {
                        if (u > UINT32_MAX)
                                return -ERANGE;
                        *(uint32_t *) p = (uint32_t) u;
                } else
                        *(uint64_t *) p = u;
                return 0;
        case OPTION_BOOL:
                if (v) {
                        if (!json_object_is_type(v, json_type_boolean))
                                return -EINVAL;
                        *(bool *) p = json_object_get_boolean(v);
                        return 0;
                }
                return parse_bool(text, (bool *) p);
        }
        return -EINVAL;
}

int option_parse_text(const ConnectorOption *o, const char *text, void *config) {
        return option_set(o, NULL, text, config);
}

int options_parse(const ConnectorOption *table, json_object *options, void *config, char **ret_message) {
        int r;

        if (options && !json_object_is_type(options, json_type_object)) {
                *ret_message = strdup("options must be a JSON object");
                return -EINVAL;
        }

        /* Options the type does not know are reported, not fatal: dpiped may pass options meant for
         * other types or added later, but a misspelt option must not go unnoticed. */
        if (options) {
                json_object_object_foreach(options, key, val) {
                        const ConnectorOption *o;

                        (void) val;
                        if (streq(key, "transform"))
                                continue; /* every type's, handled by the library */
                        for (o = table; o->name; o++)
                                if (streq(o->name, key))
                                        break;
                        if (!o->name)
                                log_warning("Unknown option '%s', ignoring.", key);
                }
        }

        for (const ConnectorOption *o = table; o->name; o++) {
                json_object *v = NULL;

                if (options && json_object_object_get_ex(options, o->name, &v) && v) {
                        r = option_set(o, v, NULL, config);
                        if (r == -ENOMEM)
                                return r;
                        if (r < 0) {
                                if (asprintf(ret_message, "invalid value for option '%s'", o->name) < 0)
                                        *ret_message = NULL;
                                return r;
                        }
                } else if (o->default_value) {
                        r = option_set(o, NULL, o->default_value, config);
                        if (r < 0)
                                return r == -ENOMEM ? r : -EINVAL; /* a bad default is a programming error */
                } else if (o->required) {
                        if (asprintf(ret_message, "option '%s' is required", o->name) < 0)
                                *ret_message = NULL;
                        return -EINVAL;
                }
        }
        return 0;
}

void options_free(const ConnectorOption *table, void *config) {
        if (!config)
                return;
        for (const ConnectorOption *o = table; o->name; o++)
                if (o->type == OPTION_STRING) {
                        char **s = (char **) ((uint8_t *) config + o->offset);
                        free(*s);
                        *s = NULL;
                }
}
