/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The sinks' option tables: the library's common rows, and the parse of an add request's "options"
 * object with common/config-table.c into the common config and the type's config struct, for an add
 * (lenient) and for dpiped's "check" (strict, nothing added). */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "sink-internal.h"

const SinkOption sink_common_options[] = {
        SINK_OPTION_U32("window", SinkCommonConfig, window, "50000",
                        "records dpiped may send ahead of the target's confirmations (1-1000000)"),
        {}
};

int sink_options_configure(const SinkType *t, json_object *options, ConfigParseFlags flags, SinkCommonConfig *common,
                           void *config, char **ret_message) {
        const SinkOption *tables[2] = { sink_common_options, t->options };
        void *configs[2] = { common, config };
        _cleanup_free_ char *unknown = NULL;
        int r;

        /* Without CONFIG_PARSE_STRICT, options nobody knows are reported, not fatal: dpiped may pass
         * options added later, but a misspelt option must not go unnoticed. */
        r = config_tables_parse(tables, configs, ELEMENTSOF(tables), options, flags, &unknown, ret_message);
        if (r < 0)
                return r;
        if (unknown)
                log_warning("Unknown option%s %s, ignoring.", strchr(unknown, ',') ? "s" : "", unknown);
        if (common->window < 1 || common->window > 1000000) {
                *ret_message = strdup("option 'window' must be 1-1000000");
                return -EINVAL;
        }
        if (t->validate)
                return t->validate(config, ret_message);
        return 0;
}

int sink_check_options(const SinkType *t, json_object *options, json_object **ret_typed, char **ret_message) {
        const SinkOption *tables[2] = { sink_common_options, t->options };
        SinkCommonConfig common = {};
        void *config;
        int r;

        *ret_message = NULL;
        config = calloc(1, MAX(t->config_size, (size_t) 1));
        if (!config)
                return -ENOMEM;
        r = sink_options_configure(t, options, CONFIG_PARSE_STRICT, &common, config, ret_message);
        if (r >= 0 && ret_typed)
                r = config_tables_typed(tables, (void *[]) { &common, config }, ELEMENTSOF(tables), options, ret_typed);
        config_table_free(t->options, config);
        config_table_free(sink_common_options, &common);
        free(config);
        if (r < 0 && r != -ENOMEM && !*ret_message && asprintf(ret_message, "invalid options: %s", strerror(-r)) < 0)
                *ret_message = NULL;
        return r;
}

void sink_options_free(const SinkOption *table, void *config) {
        config_table_free(table, config);
}
