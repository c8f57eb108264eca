/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The sinks' option tables: the library's common rows, and the parse of an add request's "options"
 * object with common/config-table.c into the common config and the type's config struct. */

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "sink-internal.h"

const SinkOption sink_common_options[] = {
        SINK_OPTION_U32("window", SinkCommonConfig, window, "50000",
                        "records dpiped may send ahead of the target's confirmations (1-1000000)"),
        {}
};

int sink_options_parse(const SinkOption *const *tables, void *const *configs, size_t n_tables, json_object *options,
                       char **ret_message) {
        _cleanup_free_ char *unknown = NULL;
        int r;

        /* Options nobody knows are reported, not fatal: dpiped may pass options added later, but a
         * misspelt option must not go unnoticed. */
        r = config_tables_parse(tables, configs, n_tables, options, 0, &unknown, ret_message);
        if (r < 0)
                return r;
        if (unknown)
                log_warning("Unknown option%s %s, ignoring.", strchr(unknown, ',') ? "s" : "", unknown);
        return 0;
}

void sink_options_free(const SinkOption *table, void *config) {
        config_table_free(table, config);
}
