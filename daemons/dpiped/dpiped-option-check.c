/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>

#include "dpiped-connector.h"
#include "dpiped-option-check.h"
#include "frame.h"
#include "json-util.h"
#include "log.h"
#include "socket-util.h"
#include "util.h"

#define OPTION_CHECK_FRAME_MAX (1024u * 1024u)

struct OptionCheck {
        Manager *manager;
        OptionCheck *next, *prev;
        const ConnectorKind *kind;
        char *type;
        int fd;
        bool connected;
        sd_event_source *io, *timer;
        Buffer in, out;
        option_check_handler_t handler;
        void (*destroy)(void *userdata);
        void *userdata;
};

void option_check_set_destroy(OptionCheck *q, void (*destroy)(void *userdata)) {
        q->destroy = destroy;
}

OptionCheck *option_check_free(OptionCheck *q) {
        if (!q)
                return NULL;
        if (q->manager) {
                if (q->prev)
                        q->prev->next = q->next;
                else if (q->manager->option_checks == q)
                        q->manager->option_checks = q->next;
                if (q->next)
                        q->next->prev = q->prev;
        }
        sd_event_source_disable_unref(q->io);
        sd_event_source_disable_unref(q->timer);
        safe_close(q->fd);
        buffer_done(&q->in);
        buffer_done(&q->out);
        free(q->type);
        if (q->destroy)
                q->destroy(q->userdata);
        free(q);
        return NULL;
}

void manager_option_checks_free(Manager *m) {
        while (m->option_checks)
                option_check_free(m->option_checks);
}

static void option_check_finish(OptionCheck *q, OptionCheckResult result, const char *message,
                                struct json_object *options) {
        option_check_handler_t handler = q->handler;
        void *userdata = q->userdata;
        OptionCheckAnswer answer = {
                .result = result,
                .message = result == OPTION_CHECK_REFUSED ? message : NULL,
                .options = result == OPTION_CHECK_ACCEPTED && json_object_is_type(options, json_type_object) ? options
                                                                                                           : NULL,
        };

        if (result == OPTION_CHECK_UNCHECKED)
                log_notice("%s %s did not answer the check of a %s's options (%s); it checks them when it gets "
                           "the %s.", q->kind->title, q->type, q->kind->object, message ?: "no answer", q->kind->object);
        /* Freed first: the handler may start another check, or free what owns the userdata. */
        q->destroy = NULL;
        option_check_free(q);
        handler(&answer, userdata);
}

/* The reply to our request (id 1); hello and state reports of the connector are passed over. */
static int option_check_process(OptionCheck *q) {
        for (;;) {
                _cleanup_json_ struct json_object *o = NULL;
                uint64_t id;
                const char *op;
                Frame f;
                int r;

                r = frame_peek(&q->in, OPTION_CHECK_FRAME_MAX, &f);
                if (r <= 0)
                        return r;
                if (f.type == FRAME_CONTROL && frame_parse_json(&f, &o) >= 0) {
                        op = json_get_string(o, "op");
                        if (json_get_uint64(o, "id", &id) && id == 1 && streq_ptr(op, "ok")) {
                                struct json_object *options = NULL;

                                (void) json_object_object_get_ex(o, "options", &options);
                                option_check_finish(q, OPTION_CHECK_ACCEPTED, NULL, options);
                                return 1;
                        }
                        if (json_get_uint64(o, "id", &id) && id == 1 && streq_ptr(op, "error")) {
                                const char *message = json_get_string(o, "message") ?: "refused by the connector";

                                /* A connector from before the check knows no such op: it checks
                                 * when it gets the source. */
                                option_check_finish(q, streq(message, "unknown op") ? OPTION_CHECK_UNCHECKED
                                                                                   : OPTION_CHECK_REFUSED,
                                                    message, NULL);
                                return 1;
                        }
                }
                buffer_consume(&q->in, FRAME_HEADER_SIZE + f.size);
        }
}

static int option_check_io(sd_event_source *es, int fd, uint32_t revents, void *userdata) {
        OptionCheck *q = userdata;
        const char *why = "connection lost";
        ssize_t n;
        int r;

        if (!q->connected) {
                r = socket_finish_connect(fd);
                if (r < 0) {
                        why = "connect failed";
                        goto fail;
                }
                q->connected = true;
        }
        if (buffer_size(&q->out) > 0) {
                n = buffer_write_fd(&q->out, fd);
                if (n < 0 && n != -EAGAIN)
                        goto fail;
        }
        if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR))
                for (;;) {
                        n = buffer_read_fd(&q->in, fd, 16384);
                        if (n == -EAGAIN)
                                break;
                        if (n <= 0)
                                goto fail;
                        r = option_check_process(q);
                        if (r != 0) {
                                if (r < 0) {
                                        why = "malformed reply";
                                        goto fail;
                                }
                                return 0; /* finished, q is gone */
                        }
                }
        (void) sd_event_source_set_io_events(q->io, EPOLLIN | (buffer_size(&q->out) > 0 ? EPOLLOUT : 0));
        return 0;
fail:
        option_check_finish(q, OPTION_CHECK_UNCHECKED, why, NULL);
        return 0;
}

static int option_check_timeout(sd_event_source *es, uint64_t usec, void *userdata) {
        option_check_finish(userdata, OPTION_CHECK_UNCHECKED, "timed out", NULL);
        return 0;
}

int option_check_start(Manager *m, const ConnectorKind *kind, const char *type, json_object *options,
                       option_check_handler_t handler, void *userdata, OptionCheck **ret,
                       OptionCheckResult *ret_result) {
        _cleanup_(option_check_freep) OptionCheck *q = NULL;
        _cleanup_json_ struct json_object *req = NULL;
        _cleanup_free_ char *path = NULL;
        _cleanup_close_ int fd = -EBADF;
        int r;

        path = connector_kind_socket_path(kind, m->runtime_dir, type);
        if (!path)
                return -ENOMEM;
        fd = socket_connect_unix(path, true);
        if (fd == -ENOENT) {
                *ret_result = OPTION_CHECK_NO_TYPE;
                return 0;
        }
        if (fd < 0) {
                log_notice_errno(fd, "%s %s cannot check a %s's options (%s: %m); it checks them when it gets "
                                 "the %s.", kind->title, type, kind->object, path, kind->object);
                *ret_result = OPTION_CHECK_UNCHECKED;
                return 0;
        }

        q = calloc(1, sizeof(OptionCheck));
        req = json_object_new_object();
        if (!q || !req)
                return -ENOMEM;
        q->fd = -EBADF;
        q->kind = kind;
        q->type = strdup(type);
        if (!q->type)
                return -ENOMEM;
        json_object_object_add(req, "op", json_object_new_string("check"));
        json_object_object_add(req, "id", json_object_new_int(1));
        if (options)
                json_object_object_add(req, "options", json_object_get(options));
        r = frame_append_json(&q->out, req);
        if (r < 0)
                return r;
        r = sd_event_add_io(m->event, &q->io, fd, EPOLLIN | EPOLLOUT, option_check_io, q);
        if (r < 0)
                return r;
        r = sd_event_add_time_relative(m->event, &q->timer, CLOCK_MONOTONIC, OPTION_CHECK_TIMEOUT_USEC, 0,
                                       option_check_timeout, q);
        if (r < 0)
                return r;
        q->fd = TAKE_FD(fd);
        q->handler = handler;
        q->userdata = userdata;
        q->manager = m;
        q->next = m->option_checks;
        if (m->option_checks)
                m->option_checks->prev = q;
        m->option_checks = q;
        *ret = TAKE_PTR(q);
        return 1;
}
