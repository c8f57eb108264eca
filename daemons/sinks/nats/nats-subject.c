/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "nats-subject.h"
#include "pipeline-id.h"

bool nats_token_is_plain(const char *t, size_t n) {
        if (n == 0)
                return false;
        for (size_t i = 0; i < n; i++)
                if (t[i] <= ' ' || t[i] == '*' || t[i] == '>' || t[i] == '{' || t[i] == '}' || t[i] == 0x7f)
                        return false;
        return true;
}

/* Checks the subject template; with pipeline_id, also fills the derived subjects. */
int nats_subject_parse(const char *tpl, const char *pipeline_id, char **ret_message, NatsSubjects *ret) {
        bool have_pipeline = false, have_source = false;
        _cleanup_free_ char *prefix = NULL, *literal = NULL;
        size_t literal_len = 0;
        const char *p = tpl;

        if (strlen(tpl) > NATS_SUBJECT_MAX) {
                *ret_message = strdup("subject template too long");
                return -EINVAL;
        }
        if (pipeline_id) {
                prefix = calloc(1, strlen(tpl) + PIPELINE_ID_MAX + 2);
                literal = calloc(1, strlen(tpl) + 3);
                if (!prefix || !literal)
                        return -ENOMEM;
        }
        for (;;) {
                const char *dot = strchr(p, '.');
                size_t len = dot ? (size_t) (dot - p) : strlen(p);

                if (have_source) {
                        *ret_message = strdup("subject: " SOURCE_TOKEN " must be the last token");
                        return -EINVAL;
                }
                if (len == strlen(PIPELINE_TOKEN) && strncmp(p, PIPELINE_TOKEN, len) == 0) {
                        if (have_pipeline) {
                                *ret_message = strdup("subject: " PIPELINE_TOKEN " may appear once");
                                return -EINVAL;
                        }
                        have_pipeline = true;
                        if (prefix)
                                strcat(prefix, pipeline_id);
                } else if (len == strlen(SOURCE_TOKEN) && strncmp(p, SOURCE_TOKEN, len) == 0) {
                        have_source = true;
                } else if (!nats_token_is_plain(p, len)) {
                        if (asprintf(ret_message, "subject: invalid token '%.*s' (no blanks, wildcards or braces)",
                                     (int) len, p) < 0)
                                *ret_message = NULL;
                        return -EINVAL;
                } else if (prefix) {
                        strncat(prefix, p, len);
                        if (!have_pipeline) {
                                memcpy(literal + literal_len, p, len);
                                literal_len += len;
                                literal[literal_len++] = '.';
                        }
                }
                if (!dot)
                        break;
                if (prefix && !have_source)
                        strcat(prefix, ".");
                p = dot + 1;
        }
        if (!have_pipeline) {
                *ret_message = strdup("subject: the template needs the token " PIPELINE_TOKEN
                                      ", so that the sink can find this pipeline's last message");
                return -EINVAL;
        }
        if (!ret || !pipeline_id)
                return 0;

        /* "dpipe.P." + source, or the whole subject; the lookup: "dpipe.P.>" or the subject. */
        *ret = (NatsSubjects) { .per_source = have_source };
        if (have_source) {
                if (asprintf(&ret->last, "%s>", prefix) < 0)
                        return -ENOMEM;
        } else if (!(ret->last = strdup(prefix)))
                return -ENOMEM;
        ret->prefix = TAKE_PTR(prefix);
        if (literal_len > 0) {
                memcpy(literal + literal_len, ">", 2);
                ret->stream = TAKE_PTR(literal);
        }
        return 0;
}

void nats_subjects_done(NatsSubjects *s) {
        free(s->prefix);
        free(s->last);
        free(s->stream);
        *s = (NatsSubjects) {};
}
