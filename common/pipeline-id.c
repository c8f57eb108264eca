/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>
#include <systemd/sd-id128.h>

#include "pipeline-id.h"

/* The application id that keys the derivation (sd_id128_get_machine_app_specific()); never change
 * it: every pipeline's default id, and so every record's NATS message id, would change with it. */
#define DPIPE_PIPELINE_APP_ID SD_ID128_MAKE(f1, 7d, ee, a6, 9f, a9, 4d, 04, 96, e3, 81, de, 9a, 0b, c5, cc)

bool pipeline_id_is_valid(const char *s) {
        size_t n;

        if (!s)
                return false;
        n = strlen(s);
        if (n == 0 || n > PIPELINE_ID_MAX)
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = s[i];
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                      c == '-'))
                        return false;
        }
        return true;
}

int pipeline_id_default(char ret[static 33]) {
        sd_id128_t id;
        int r;

        r = sd_id128_get_machine_app_specific(DPIPE_PIPELINE_APP_ID, &id);
        if (r < 0)
                return r;
        sd_id128_to_string(id, ret);
        return 0;
}
