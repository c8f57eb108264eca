/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "dpiped-audit.h"
#include "log.h"

const char *actor_transport_to_string(ActorTransport t) {
        switch (t) {
        case ACTOR_DBUS:
                return "dbus";
        case ACTOR_UNIX:
                return "unix";
        case ACTOR_TCP:
                return "tcp";
        case ACTOR_TLS:
                return "tls";
        }
        return "unknown";
}

const char *actor_describe(const Actor *a, char *buf, size_t size) {
        static const char *const over[] = {
                [ACTOR_DBUS] = "D-Bus",
                [ACTOR_UNIX] = "client.sock",
                [ACTOR_TCP] = "TCP",
                [ACTOR_TLS] = "TLS",
        };
        size_t n = 0;

#define APPEND(...) (n += (size_t) snprintf(buf + n, n < size ? size - n : 0, __VA_ARGS__), n = MIN(n, size))
        buf[0] = 0;
        if (a->uid != UID_INVALID) {
                APPEND("uid %u", (unsigned) a->uid);
                if (a->pid > 0 && a->unit)
                        APPEND(" (pid %d, unit %s)", (int) a->pid, a->unit);
                else if (a->pid > 0)
                        APPEND(" (pid %d)", (int) a->pid);
        } else if (a->token)
                APPEND("token %s", a->token);
        else
                APPEND("a client without a token");
        if (a->uid != UID_INVALID && a->token)
                APPEND(" with token %s", a->token);
        if (a->tls_cn)
                APPEND(" (certificate CN %s)", a->tls_cn);
        if (a->peer)
                APPEND(" from %s", a->peer);
        APPEND(" over %s", over[a->transport]);
        if (a->bus_sender)
                APPEND(" (%s)", a->bus_sender);
#undef APPEND
        return buf;
}

void audit_log(int level, const Actor *actor, const char *op, const char *source, bool denied, const char *format, ...) {
        char what[512], who[512], f_op[64], f_source[128], f_transport[64], f_uid[64], f_pid[64], f_unit[320],
                f_sender[320], f_token[128], f_cn[320], f_peer[128];
        const char *fields[12];
        size_t n = 0;
        va_list ap;

        if (log_get_max_level() < level)
                return;
        va_start(ap, format);
        vsnprintf(what, sizeof(what), format, ap);
        va_end(ap);

        fields[n++] = "DPIPE_AUDIT=1";
        fields[n++] = denied ? "DPIPE_RESULT=denied" : "DPIPE_RESULT=ok";
        snprintf(f_op, sizeof(f_op), "DPIPE_OP=%s", op);
        fields[n++] = f_op;
        if (source) {
                snprintf(f_source, sizeof(f_source), "DPIPE_SOURCE=%s", source);
                fields[n++] = f_source;
        }
        if (!actor) {
                log_fields_full(level, fields, n, "%s.", what);
                return;
        }
        snprintf(f_transport, sizeof(f_transport), "DPIPE_TRANSPORT=%s", actor_transport_to_string(actor->transport));
        fields[n++] = f_transport;
        if (actor->uid != UID_INVALID) {
                snprintf(f_uid, sizeof(f_uid), "DPIPE_PEER_UID=%u", (unsigned) actor->uid);
                fields[n++] = f_uid;
        }
        if (actor->pid > 0) {
                snprintf(f_pid, sizeof(f_pid), "DPIPE_PEER_PID=%d", (int) actor->pid);
                fields[n++] = f_pid;
        }
        if (actor->unit) {
                snprintf(f_unit, sizeof(f_unit), "DPIPE_PEER_UNIT=%s", actor->unit);
                fields[n++] = f_unit;
        }
        if (actor->bus_sender) {
                snprintf(f_sender, sizeof(f_sender), "DPIPE_BUS_SENDER=%s", actor->bus_sender);
                fields[n++] = f_sender;
        }
        if (actor->token) {
                snprintf(f_token, sizeof(f_token), "DPIPE_TOKEN=%s", actor->token);
                fields[n++] = f_token;
        }
        if (actor->tls_cn) {
                snprintf(f_cn, sizeof(f_cn), "DPIPE_TLS_CN=%s", actor->tls_cn);
                fields[n++] = f_cn;
        }
        if (actor->peer) {
                snprintf(f_peer, sizeof(f_peer), "DPIPE_PEER=%s", actor->peer);
                fields[n++] = f_peer;
        }
        log_fields_full(level, fields, n, "%s by %s.", what, actor_describe(actor, who, sizeof(who)));
}
