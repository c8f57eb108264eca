/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The sink library: everything a dpipe sink type needs except talking to its target system. It is
 * the connector library's counterpart on the way out of the pipeline (man:dpipe-sink(7)).
 *
 * A sink type is one SinkType (a struct of callbacks), one option table and one registration line:
 *
 *     static const SinkOption foo_options[] = {
 *             SINK_OPTION_STRING("address", FooConfig, address, NULL, true, "where to deliver"),
 *             SINK_OPTION_U64("max_bytes", FooConfig, max_bytes, "0", "rotate above this size"),
 *             {}
 *     };
 *     const SinkType foo_sink = { .name = "foo", .options = foo_options, ... };
 *     SINK_DEFINE_MAIN(foo_sink);
 *
 * The library supplies main() (options, logging, signals, sd_notify, watchdog, --idle-exit-sec), the
 * control server for dpiped on <runtime-dir>/sink-<type>.sock, and per sink: a durable named
 * subscription through dpiped's client protocol (client.sock or TCP), the record lines parsed
 * without a JSON parse, batches handed to the type in offset order, acks to dpiped only for what the
 * type confirmed, jittered exponential backoff, and state reports (RecordsSent, Lag, LastError).
 *
 * Exactly once: the type tells where its target stands (sink_opened(): the last offset the target
 * holds), the library subscribes from the next offset and drops anything at or below it, and the
 * type confirms (sink_confirm()) only what the target made durable. After any failure the library
 * closes the target, asks again where it stands and resubscribes from there.
 *
 * The type's callbacks run on the one sd_event loop of the process and must never block. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "macro.h"
#include "config-table.h"

typedef struct Sink Sink;

typedef enum SinkState {
        SINK_CONNECTING, /* opening the target, finding the resume point, subscribing */
        SINK_ACTIVE,
        SINK_BACKOFF,
        SINK_PAUSED,
        SINK_FAILED,
        _SINK_STATE_MAX,
} SinkState;

const char *sink_state_to_string(SinkState s);

/* One row of the declarative option table (common/config-table.h, shared with the connectors):
 * the option `name` of an add request's "options" object is parsed as its type into the config
 * struct at `offset`; the default (text, parsed the same way) applies when it is absent;
 * `description` is what --help prints. Unknown options are logged. */
typedef ConfigOption SinkOption;

#define SINK_OPTION_STRING(n, cfg, field, def, req, desc) CONFIG_OPTION(n, CONFIG_OPTION_STRING, cfg, field, def, req, desc)
#define SINK_OPTION_U32(n, cfg, field, def, desc) CONFIG_OPTION(n, CONFIG_OPTION_U32, cfg, field, def, false, desc)
#define SINK_OPTION_U64(n, cfg, field, def, desc) CONFIG_OPTION(n, CONFIG_OPTION_U64, cfg, field, def, false, desc)
#define SINK_OPTION_BOOL(n, cfg, field, def, desc) CONFIG_OPTION(n, CONFIG_OPTION_BOOL, cfg, field, def, false, desc)

/* One record as dpiped pushed it. The pointers are valid during the deliver() call only. */
typedef struct SinkRecord {
        uint64_t offset;
        uint64_t ts_us;
        const char *source; /* the source name, not NUL-terminated */
        size_t source_len;
        const char *data;   /* the record: one JSON value as the bytes dpiped sent, no newline */
        size_t data_len;
} SinkRecord;

typedef struct SinkType {
        const char *name;        /* "file": socket sink-file.sock, executable dpipe-sink-file */
        const char *description; /* one line for --help */

        size_t config_size;        /* the struct the option table fills */
        const SinkOption *options; /* terminated by an entry with name == NULL */
        size_t data_size;          /* private per-sink state, zeroed, see sink_data() */

        /* Optional: once per process, after the event loop exists; *ret_userdata comes back from
         * sink_type_userdata(). */
        int (*setup)(sd_event *e, void **ret_userdata);
        void (*teardown)(void *userdata);

        /* Optional: checks a parsed config; on failure returns negative errno and a malloc'ed
         * message in *ret_message, which is sent back to dpiped. */
        int (*validate)(const void *config, char **ret_message);
        /* Optional: initialise/free the private data. done() is called on a closed sink. */
        int (*init)(Sink *s);
        void (*done)(Sink *s);

        /* Opens the target and finds where it stands for this sink: calls sink_opened() once known
         * (from open() itself or later from the loop) or sink_fail(). */
        void (*open)(Sink *s);
        /* Takes records in offset order (each offset greater than the last one handed over) and
         * returns how many it took, 0..n: what it did not take is offered again after it called
         * sink_ready(). Negative: it failed (after calling sink_fail()). The type copies what it
         * keeps; it confirms records with sink_confirm() once the target made them durable. */
        int (*deliver)(Sink *s, const SinkRecord *records, size_t n);
        /* Optional: the end of a batch (everything dpiped sent that the loop has read): the moment
         * to write and sync what deliver() collected. */
        void (*flush)(Sink *s);
        /* Closes the target (pause, remove, failure, exit): records handed over and not confirmed
         * are forgotten; the next open() finds out what the target has. */
        void (*close)(Sink *s);
} SinkType;

int sink_main(const SinkType *type, int argc, char *argv[]);

#define SINK_DEFINE_MAIN(type)                                                                         \
        int main(int argc, char *argv[]) {                                                             \
                return sink_main(&(type), argc, argv);                                                 \
        }

/* Accessors for the type. */
const char *sink_name(Sink *s);
void *sink_config(Sink *s);
void *sink_data(Sink *s);
void *sink_type_userdata(Sink *s);
sd_event *sink_get_event(Sink *s);
SinkState sink_get_state(Sink *s);
/* The pipeline id of the records (dpipe-sink(7)): from dpiped's add request, else the sink
 * daemon's --pipeline-id=, else derived from /etc/machine-id. */
const char *sink_pipeline_id(Sink *s);

/* The target holds every record up to last_offset (have_last) or none of this pipeline's: the
 * library subscribes from the next offset (or the durable subscription's committed offset). */
void sink_opened(Sink *s, bool have_last, uint64_t last_offset);
/* Every record up to offset is durable in the target: acked to dpiped, counted as sent. Any time
 * after deliver() took the record, also from within that deliver() call. */
void sink_confirm(Sink *s, uint64_t offset);
/* The type can take records again after deliver() took fewer than offered. */
void sink_ready(Sink *s);

/* Transient failure: close(), state backoff, LastError, open() again after a jittered exponential
 * delay. Returns -abs(error) so that it can end a callback. */
int sink_fail(Sink *s, int error, const char *fmt, ...) _printf_(3, 4);
/* Permanent failure (bad configuration, a target that belongs to another pipeline): close(), state
 * failed, no retry until the sink is re-added or resumed. */
int sink_fail_permanently(Sink *s, int error, const char *fmt, ...) _printf_(3, 4);
/* Resets the backoff delay (the library does it when records are confirmed). */
void sink_backoff_reset(Sink *s);
