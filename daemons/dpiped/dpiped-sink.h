/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A registered sink (dpipe-sink(7)): its definition (name, type, options) as persisted in
 * <state-dir>/sinks/<name>.sink, and its run-time state as its sink daemon reports it. dpiped knows
 * nothing of any sink type: the daemon at <runtime-dir>/sink-<type>.sock checks the type's options
 * and runs the sink (man:dpipe-sink(7)); a definition it refuses shows as State "failed" with the
 * daemon's reason in LastError. */

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

#include "dpiped-connector.h"
#include "dpiped-def-file.h"
#include "dpiped-registry.h"
#include "macro.h"

/* The sink daemon's durable subscription is "sink-<name>", itself at most 64 characters. */
#define SINK_NAME_MAX 59

typedef enum SinkState {
        SINK_CONNECTING,
        SINK_ACTIVE,
        SINK_BACKOFF,
        SINK_PAUSED,
        SINK_FAILED,
        _SINK_STATE_MAX,
        _SINK_STATE_INVALID = -EINVAL,
} SinkState;

const char *sink_state_to_string(SinkState s);
SinkState sink_state_from_string(const char *s);

typedef struct Sink {
        Manager *manager;
        struct Sink *next, *prev;

        char *name;
        char *type;
        struct json_object *options; /* checked for shape, "address" included */
        char *object_path;

        SinkState state;
        uint64_t records_sent;
        uint64_t lag;
        char *last_error;

        uint64_t pending_request_id; /* id of the last "add" sent to the sink daemon */

        /* Set when a file defines the sink (dpipe.sink(5)). */
        DefFiles files;
        /* A sink of a file waits for its daemon's check of the options before it is sent. */
        struct OptionCheck *option_check;
} Sink;

/* The kind of dpipe.sink(5) files. */
extern const DefFileKind def_file_kind_sink;

extern const ConnectorKind connector_kind_sink;

int sink_new(const char *name, const char *type, struct json_object *options, Sink **ret);
Sink *sink_free(Sink *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(Sink *, sink_free);

const char *sink_address(const Sink *s);
static inline bool sink_is_from_file(const Sink *s) {
        return def_files_defined(&s->files);
}
/* Sets state and error (NULL: keep the last error); returns true if anything visible changed. */
bool sink_set_state(Sink *s, SinkState state, const char *error);
bool sink_name_is_valid(const char *name);
/* Checks the shape every sink's options have (an "address" string without control characters,
 * option names, basic types, finite numbers); the type's own rules are its daemon's. Numbers given as
 * decimal strings (the inline form, dpipectl --option) stay strings: the daemon's option table
 * converts them. Returns a new object, or -EINVAL and the reason in reason. */
int sink_options_normalize(struct json_object *options, struct json_object **ret, char *reason, size_t reason_size);

/* The registry: one file per sink (dpiped-registry.h). */
extern const RegistryKind registry_kind_sink;
static inline int sink_registry_save(const char *dir, const Sink *s) {
        return registry_save_kind(&registry_kind_sink, dir, s);
}
static inline int sink_registry_remove(const char *dir, const char *name) {
        return registry_remove_kind(&registry_kind_sink, dir, name);
}
/* Loads every <name>.sink of dir, in name order, into a NULL-terminated array; broken entries are
 * skipped with a warning, a missing dir is empty. */
static inline int sink_registry_load(const char *dir, Sink ***ret, size_t *ret_n) {
        return registry_load_kind(&registry_kind_sink, dir, (void ***) ret, ret_n);
}

/* To the sink daemon; while disconnected nothing happens (the link resends everything). */
int sink_send_add(Connector *c, Sink *s);

/* dpiped-sink-bus.c */
extern const sd_bus_vtable sink_vtable[];
int sink_object_find(sd_bus *bus, const char *path, const char *interface, void *userdata, void **found,
                     sd_bus_error *error);
int sink_node_enumerator(sd_bus *bus, const char *path, void *userdata, char ***nodes, sd_bus_error *error);
void sink_emit_state_changed(Sink *s);
void sink_emit_files_changed(Sink *s);
