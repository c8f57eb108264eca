/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Declarative option tables, in the manner of Fluent Bit's config_map: one row per option with its
 * name, type, default, description and where its value is stored (an offset into a config struct).
 * A daemon's table is the only schema of its options: it parses add requests with it, prints it
 * (--help, --list-options, man:dpipe-connector(7)), and checks requests for dpiped with it.
 *
 * Several tables may be parsed together, each into its own struct (e.g. the options every
 * connector takes, stored by the library, and the type's own, stored in the type's config). */

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef enum ConfigOptionType {
        CONFIG_OPTION_STRING, /* char *, malloc'ed, freed with config_table_free() */
        CONFIG_OPTION_U32,    /* uint32_t: JSON integer or decimal string */
        CONFIG_OPTION_U64,    /* uint64_t */
        CONFIG_OPTION_BOOL,   /* bool: JSON boolean or yes/no/true/false/on/off/1/0 */
        _CONFIG_OPTION_TYPE_MAX,
} ConfigOptionType;

typedef struct ConfigOption {
        const char *name;
        ConfigOptionType type;
        size_t offset;             /* where the value is stored in the table's config struct */
        const char *default_value; /* text, parsed like a given value; NULL: none */
        bool required;
        const char *description;   /* one line, for --help, --list-options and the man pages */
} ConfigOption;

#define CONFIG_OPTION(n, t, cfg, field, def, req, desc)                                                \
        { .name = (n), .type = (t), .offset = offsetof(cfg, field), .default_value = (def), .required = (req), \
          .description = (desc) }

typedef enum ConfigParseFlags {
        /* Refuse an option that no table has (a check for dpiped before it accepts a source). Without
         * it such an option is logged and ignored: a source saved before an option went away keeps
         * running. */
        CONFIG_PARSE_STRICT = 1 << 0,
} ConfigParseFlags;

const char *config_option_type_to_string(ConfigOptionType t);

/* The row called name in any of the n tables (each terminated by a row with name == NULL), and the
 * index of its table in *ret_table if non-NULL; NULL if there is none. */
const ConfigOption *config_tables_find(const ConfigOption *const *tables, size_t n, const char *name, size_t *ret_table);

/* Parses the JSON object options into configs[i] with tables[i], row by row: given values, else the
 * defaults; a missing required option is an error. On a bad request returns -EINVAL (or -ERANGE) and
 * a malloc'ed message naming the option in *ret_message (NULL if out of memory), -ENOMEM otherwise.
 * Unknown option names are refused with CONFIG_PARSE_STRICT ("unknown option 'NAME'"); without it
 * they are returned in *ret_unknown (a malloc'ed ", "-joined list, NULL if none) for the caller to
 * log, when ret_unknown is non-NULL. */
int config_tables_parse(const ConfigOption *const *tables, void *const *configs, size_t n, json_object *options,
                        ConfigParseFlags flags, char **ret_unknown, char **ret_message);

/* The options that config_tables_parse() took strictly into configs, with the values of the tables'
 * types: what dpiped stores and shows (numbers and booleans given as text, e.g. by dpipectl's
 * KEY=VALUE, become JSON numbers and booleans; strings stay as given). -EINVAL for a name no table
 * has. */
int config_tables_typed(const ConfigOption *const *tables, void *const *configs, size_t n, json_object *options,
                        json_object **ret);

/* One value given as text (a command line argument). */
int config_option_parse_text(const ConfigOption *o, const char *text, void *config);

/* Frees the strings of a config struct filled with table. Accepts NULL. */
void config_table_free(const ConfigOption *table, void *config);

/* The rows as a table for humans: "NAME TYPE DEFAULT DESCRIPTION", one line each, in table order.
 * This is the format of --list-options, which the man pages' option lists are tested against. */
void config_tables_print(FILE *f, const ConfigOption *const *tables, size_t n);
