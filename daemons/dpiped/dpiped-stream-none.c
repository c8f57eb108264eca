/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* dpiped built without cnats (meson -Dnats=disabled): --stream= is refused at start. */

#include <errno.h>
#include <stdio.h>

#include "dpiped-stream.h"
#include "log.h"

int stream_link_new(Manager *m, const char *servers, const char *stream, StreamLink **ret) {
        log_error("This dpiped was built without cnats (libnats): --stream= is not available.");
        return -EOPNOTSUPP;
}
StreamLink *stream_link_free(StreamLink *l) {
        return NULL;
}
bool stream_link_bounds(StreamLink *l, uint64_t *ret_first, uint64_t *ret_next) {
        return false;
}
int stream_reader_new(StreamLink *l, const char *name, StreamFrom from, uint64_t offset, char **sources, size_t n_sources,
                      StreamReader **ret) {
        return -EOPNOTSUPP;
}
void stream_reader_release(StreamReader *r) {
}
void stream_reader_set_room(StreamReader *r, uint64_t room) {
}
void stream_reader_commit(StreamReader *r, uint64_t committed) {
}
bool stream_reader_take_start(StreamReader *r, uint64_t *ret_start, char **ret_error) {
        return false;
}
int stream_reader_take(StreamReader *r, Buffer *out, size_t out_max, uint64_t **seqs, size_t *allocated, size_t *n) {
        *n = 0;
        return 0;
}
char *stream_reader_take_problem(StreamReader *r) {
        return NULL;
}
