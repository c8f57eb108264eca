/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "nats-address.h"

void nats_servers_free(char **list, int n) {
        for (int i = 0; list && i < n; i++)
                free(list[i]);
        free(list);
}

int nats_servers_parse(const char *address, char ***ret, int *ret_n, const char **ret_reason,
                       const char **ret_bad, int *ret_bad_len) {
        char **list = NULL;
        int n = 0;

        if (!address)
                address = "";
        for (const char *p = address;;) {
                size_t len = strcspn(p, ",");
                const char *t = p, *colon;
                size_t tl = len;

                while (tl > 0 && *t == ' ')
                        t++, tl--;
                colon = tl > 7 ? memrchr(t + 7, ':', tl - 7) : NULL;
                if (tl <= 7 || strncmp(t, "nats://", 7) != 0 || !colon || colon == t + 7 || colon + 1 == t + tl ||
                    strspn(colon + 1, "0123456789") != (size_t) (t + tl - colon - 1) || memchr(t, '/', tl) != t + 5) {
                        *ret_reason = tl == 0 ? "an empty server name" : "a server that is not nats://HOST:PORT";
                        if (ret_bad) {
                                *ret_bad = t;
                                *ret_bad_len = (int) tl;
                        }
                        nats_servers_free(list, n);
                        return -EINVAL;
                }
                if (ret) {
                        char **l = realloc(list, ((size_t) n + 2) * sizeof(char *));
                        if (!l) {
                                nats_servers_free(list, n);
                                return -ENOMEM;
                        }
                        list = l;
                        list[n] = strndup(t, tl);
                        list[n + 1] = NULL;
                        if (!list[n]) {
                                nats_servers_free(list, n);
                                return -ENOMEM;
                        }
                }
                n++;
                if (p[len] == 0)
                        break;
                p += len + 1;
        }
        if (ret)
                *ret = list;
        if (ret_n)
                *ret_n = n;
        return 0;
}

bool nats_stream_name_is_valid(const char *s) {
        size_t n = s ? strlen(s) : 0;

        if (n == 0 || n > 64)
                return false;
        return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") == n;
}
