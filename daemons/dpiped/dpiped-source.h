/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A registered source: its definition (name, type, options) as persisted in the registry, and its
 * run-time state as reported by its connector. */

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

#include "dpiped-def-file.h"
#include "list.h"
#include "macro.h"

typedef struct Manager Manager;

typedef enum SourceState {
        SOURCE_CONNECTING,
        SOURCE_ACTIVE,
        SOURCE_BACKOFF,
        SOURCE_PAUSED,
        SOURCE_FAILED,
        SOURCE_DEGRADED, /* active, but records were skipped lately (Manager.degraded_usec) */
        _SOURCE_STATE_MAX,
        _SOURCE_STATE_INVALID = -EINVAL,
} SourceState;

const char *source_state_to_string(SourceState s);
SourceState source_state_from_string(const char *s);

typedef struct Source {
        Manager *manager;
        LIST_FIELDS(struct Source, sources);

        char *name;
        char *type;
        struct json_object *options; /* normalised options, "address" included */
        bool paused;
        char *object_path;

        SourceState state;
        uint64_t records_received;
        uint64_t bytes_received;
        uint64_t last_record_usec;
        uint64_t last_heartbeat_usec;
        uint32_t reconnects;
        char *last_error;
        uint64_t records_skipped; /* counted by the connector: refused at the edge (bad JSON, too long) */
        uint64_t records_filtered; /* counted by the connector: dropped by a `where` of the transform */
        char *last_skip_reason;
        uint64_t last_error_usec;   /* CLOCK_REALTIME of the last error reported; 0: never */
        uint64_t state_change_usec; /* CLOCK_REALTIME when it entered its state */
        uint64_t last_skip_usec;    /* CLOCK_REALTIME when the skip counter last grew */

        uint64_t pending_request_id; /* id of the last "add" sent to the connector */

        /* Set when a file defines the source (dpipe.source(5)). */
        DefFiles files;
} Source;

/* The kind of dpipe.source(5) files. */
extern const DefFileKind def_file_kind_source;

int source_new(const char *name, const char *type, struct json_object *options, Source **ret);
Source *source_free(Source *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(Source *, source_free);

const char *source_address(const Source *s);
static inline bool source_is_from_file(const Source *s) {
        return def_files_defined(&s->files);
}
/* Sets state and error (NULL or "": keep the last error, it stays visible with its time after the
 * source recovered); returns true if anything visible changed. now is CLOCK_REALTIME. */
bool source_set_state(Source *s, SourceState state, const char *error, uint64_t now);
/* The state a connector's report means: "active" with records skipped within the last window
 * (skipped_grew_at: CLOCK_REALTIME of the last growth of the skip counter) is degraded. */
SourceState source_effective_state(SourceState reported, uint64_t last_skip_usec, uint64_t window_usec, uint64_t now);
/* Healthy: active, or paused by request. Not: degraded, failed, backoff, and connecting for longer
 * than stuck_usec. */
bool source_state_is_healthy(SourceState state);
/* Active, degraded or paused: not failing. */
bool source_state_is_running(SourceState state);

/* Validation shared by D-Bus and the client protocol. On failure these return -EINVAL and a
 * human-readable reason in *ret_reason (static or malloc'ed into reason_buf of size 256). */
bool source_type_is_valid(const char *type);
int source_address_check(const char *address, const char **ret_reason);
/* Checks what dpiped needs of the options object: valid names, values of basic JSON types, an
 * address. Which names a type takes, and their values, only its connector knows: it checks them
 * ("check", dpiped-option-check.h). Returns a new object in *ret. */
/* The shape every definition's options have (sources' and sinks'): valid names, values of basic
 * JSON types, finite numbers, UTF-8 strings. Returns a new object in *ret. */
int options_normalize_shape(struct json_object *options, struct json_object **ret, char *reason, size_t reason_size);
int source_options_normalize(const char *type, struct json_object *options, struct json_object **ret,
                             char *reason, size_t reason_size);

/* The registry entry of one source, a JSON object: {"name","type","options","paused"}. */
char *source_registry_format(const Source *s);
int source_registry_parse(const char *text, size_t size, Source **ret);
