/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The NATS server lists of dpipe-sink-nats(8) (its address) and dpiped(8) (--stream=):
 * nats://HOST:PORT[,nats://HOST:PORT...], and JetStream stream names. Shape only: nothing resolves. */

#include <stdbool.h>

/* Splits and checks address; on success a NULL-terminated list of malloc'ed URLs in *ret (may be
 * NULL: only check) and their number in *ret_n. -EINVAL with a static reason, or -ENOMEM. */
int nats_servers_parse(const char *address, char ***ret, int *ret_n, const char **ret_reason,
                       const char **ret_bad, int *ret_bad_len);
void nats_servers_free(char **list, int n);
/* 1-64 characters of [A-Za-z0-9_-]: no dots, wildcards or blanks, which JetStream refuses. */
bool nats_stream_name_is_valid(const char *s);
