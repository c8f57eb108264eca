/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config-table.h"
#include "json-util.h"
#include "util.h"

static const char *strempty(const char *s) {
        return s ?: "";
}

static const char *const type_names[_CONFIG_OPTION_TYPE_MAX] = {
        [CONFIG_OPTION_STRING] = "string",
        [CONFIG_OPTION_U32] = "u32",
        [CONFIG_OPTION_U64] = "u64",
        [CONFIG_OPTION_BOOL] = "bool",
};

const char *config_option_type_to_string(ConfigOptionType t) {
        return t >= 0 && t < _CONFIG_OPTION_TYPE_MAX ? type_names[t] : NULL;
}

static int parse_bool(const char *s, bool *ret) {
        if (streq(s, "1") || streq(s, "yes") || streq(s, "true") || streq(s, "on"))
                *ret = true;
        else if (streq(s, "0") || streq(s, "no") || streq(s, "false") || streq(s, "off"))
                *ret = false;
        else
                return -EINVAL;
        return 0;
}

/* Parses one value, given either as JSON (v != NULL) or as text. */
static int option_set(const ConfigOption *o, json_object *v, const char *text, void *config) {
        uint8_t *p = (uint8_t *) config + o->offset;
        uint64_t u;
        int r;

        if (v && json_object_is_type(v, json_type_string))
                text = json_object_get_string(v), v = NULL;

        switch (o->type) {
        case CONFIG_OPTION_STRING: {
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
        case CONFIG_OPTION_U32:
        case CONFIG_OPTION_U64:
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
                if (o->type == CONFIG_OPTION_U32) {
                        if (u > UINT32_MAX)
                                return -ERANGE;
                        *(uint32_t *) p = (uint32_t) u;
                } else
                        *(uint64_t *) p = u;
                return 0;
        case CONFIG_OPTION_BOOL:
                if (v) {
                        if (!json_object_is_type(v, json_type_boolean))
                                return -EINVAL;
                        *(bool *) p = json_object_get_boolean(v);
                        return 0;
                }
                return parse_bool(text, (bool *) p);
        default:
                return -EINVAL;
        }
}

int config_option_parse_text(const ConfigOption *o, const char *text, void *config) {
        return option_set(o, NULL, text, config);
}

const ConfigOption *config_tables_find(const ConfigOption *const *tables, size_t n, const char *name, size_t *ret_table) {
        for (size_t t = 0; t < n; t++)
                for (const ConfigOption *o = tables[t]; o && o->name; o++)
                        if (streq(o->name, name)) {
                                if (ret_table)
                                        *ret_table = t;
                                return o;
                        }
        return NULL;
}

static const char *value_expected(ConfigOptionType t) {
        switch (t) {
        case CONFIG_OPTION_U32:
                return "a number of 0-4294967295";
        case CONFIG_OPTION_U64:
                return "a non-negative number";
        case CONFIG_OPTION_BOOL:
                return "a boolean (yes/no, true/false, on/off, 1/0)";
        default:
                return "a string";
        }
}

int config_tables_parse(const ConfigOption *const *tables, void *const *configs, size_t n, json_object *options,
                        ConfigParseFlags flags, char **ret_unknown, char **ret_message) {
        _cleanup_free_ char *unknown = NULL;
        int r;

        *ret_message = NULL;
        if (options && !json_object_is_type(options, json_type_object)) {
                *ret_message = strdup("options must be a JSON object");
                return -EINVAL;
        }

        if (options) {
                json_object_object_foreach(options, key, val) {
                        (void) val;
                        if (config_tables_find(tables, n, key, NULL))
                                continue;
                        if (flags & CONFIG_PARSE_STRICT) {
                                /* The first unknown name, in the words of the documentation. */
                                if (asprintf(ret_message, "unknown option '%.64s'", key) < 0)
                                        *ret_message = NULL;
                                return -EINVAL;
                        }
                        if (ret_unknown) {
                                char *l;

                                if (asprintf(&l, "%s%s'%.64s'", strempty(unknown), unknown ? ", " : "", key) < 0)
                                        return -ENOMEM;
                                free(unknown);
                                unknown = l;
                        }
                }
        }

        for (size_t t = 0; t < n; t++)
                for (const ConfigOption *o = tables[t]; o && o->name; o++) {
                        json_object *v = NULL;

                        if (options && json_object_object_get_ex(options, o->name, &v) && v) {
                                r = option_set(o, v, NULL, configs[t]);
                                if (r == -ENOMEM)
                                        return r;
                                if (r < 0) {
                                        if (asprintf(ret_message, "invalid value for option '%s': expected %s", o->name,
                                                     value_expected(o->type)) < 0)
                                                *ret_message = NULL;
                                        return r;
                                }
                        } else if (o->default_value) {
                                r = option_set(o, NULL, o->default_value, configs[t]);
                                if (r < 0) { /* a bad default is a programming error */
                                        if (r != -ENOMEM && asprintf(ret_message, "bad default of option '%s'", o->name) < 0)
                                                *ret_message = NULL;
                                        return r == -ENOMEM ? r : -EINVAL;
                                }
                        } else if (o->required) {
                                if (asprintf(ret_message, "option '%s' is required", o->name) < 0)
                                        *ret_message = NULL;
                                return -EINVAL;
                        }
                }
        if (ret_unknown)
                *ret_unknown = TAKE_PTR(unknown);
        return 0;
}

void config_table_free(const ConfigOption *table, void *config) {
        if (!config || !table)
                return;
        for (const ConfigOption *o = table; o->name; o++)
                if (o->type == CONFIG_OPTION_STRING) {
                        char **s = (char **) ((uint8_t *) config + o->offset);
                        free(*s);
                        *s = NULL;
                }
}

int config_tables_typed(const ConfigOption *const *tables, void *const *configs, size_t n, json_object *options,
                        json_object **ret) {
        _cleanup_json_ json_object *out = json_object_new_object();

        if (!out)
                return -ENOMEM;
        if (options) {
                json_object_object_foreach(options, key, val) {
                        size_t i;
                        const ConfigOption *o = config_tables_find(tables, n, key, &i);
                        const uint8_t *p;
                        json_object *v;

                        if (!o)
                                return -EINVAL; /* not what config_tables_parse() took strictly */
                        p = (const uint8_t *) configs[i] + o->offset;
                        switch (o->type) {
                        case CONFIG_OPTION_U32:
                                v = json_object_new_int64(*(const uint32_t *) p);
                                break;
                        case CONFIG_OPTION_U64:
                                v = json_object_new_uint64(*(const uint64_t *) p);
                                break;
                        case CONFIG_OPTION_BOOL:
                                v = json_object_new_boolean(*(const bool *) p);
                                break;
                        default:
                                v = json_object_get(val);
                        }
                        if (!v || json_object_object_add(out, key, v) < 0)
                                return -ENOMEM;
                }
        }
        *ret = TAKE_PTR(out);
        return 0;
}

void config_tables_print(FILE *f, const ConfigOption *const *tables, size_t n) {
        for (size_t t = 0; t < n; t++)
                for (const ConfigOption *o = tables[t]; o && o->name; o++)
                        fprintf(f, "%-20s %-6s %-12s %s\n", o->name, config_option_type_to_string(o->type),
                                o->required ? "(required)" : o->default_value ? o->default_value : "-",
                                strempty(o->description));
}
