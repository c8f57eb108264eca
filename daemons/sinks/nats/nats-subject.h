/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The nats sink's subject template (option subject, default dpipe.{pipeline}.{source}): tokens
 * separated by dots, {pipeline} exactly once as a whole token, {source} at most once and last
 * (source names may hold dots), no blanks, wildcards or other braces. From it and the pipeline id:
 * the subject of a record (prefix + source name), where this pipeline's last message is looked up
 * (prefix + ">"), and the subjects of a stream the sink creates (the literal tokens before
 * {pipeline}, then ">"). */

#include <stdbool.h>
#include <stddef.h>

#define NATS_SUBJECT_MAX 255
#define PIPELINE_TOKEN "{pipeline}"
#define SOURCE_TOKEN "{source}"

typedef struct NatsSubjects {
        char *prefix;    /* "dpipe.<id>." + source, or the whole subject without {source} */
        bool per_source;
        char *last;      /* "dpipe.<id>.>" */
        char *stream;    /* "dpipe.>", or NULL when the template starts with {pipeline} */
} NatsSubjects;

bool nats_token_is_plain(const char *t, size_t n);
/* Checks the template; with pipeline_id (and ret), fills the derived subjects (malloc'ed, freed by
 * nats_subjects_done()). -EINVAL with a message in *ret_message for a bad template. */
int nats_subject_parse(const char *tpl, const char *pipeline_id, char **ret_message, NatsSubjects *ret);
void nats_subjects_done(NatsSubjects *s);
