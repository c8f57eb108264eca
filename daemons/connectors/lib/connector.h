/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The connector library: everything a dpipe connector type needs except talking to its sources.
 *
 * A connector type is one ConnectorType (a struct of callbacks), one option table and one
 * registration line:
 *
 *     static const ConnectorOption foo_options[] = {
 *             CONNECTOR_OPTION_STRING("address", FooConfig, address, NULL, true, "where to read"),
 *             CONNECTOR_OPTION_U32("interval_ms", FooConfig, interval_ms, "1000", "polling period"),
 *             {}
 *     };
 *     const ConnectorType foo_connector = { .name = "foo", .options = foo_options, ... };
 *     CONNECTOR_DEFINE_MAIN(foo_connector);
 *
 * The library supplies main() (options, logging, signals, sd_notify, watchdog, --idle-exit-sec),
 * the control server for dpiped on <runtime-dir>/connector-<type>.sock, the writer client
 * (pipelined FRAME_BATCH frames, kept until acked, resent after the writer restarts), per-source
 * state and counters reported to dpiped, record batching, jittered exponential backoff, and the
 * per-source cursor in <state-dir>/connector-<type>/<source>.cursor.
 *
 * The type's callbacks run on the one sd_event loop of the process and must never block. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "buffer.h"
#include "config-table.h"
#include "json-scan.h"
#include "macro.h"

typedef struct Manager Manager;
typedef struct Source Source;

typedef enum SourceState {
        SOURCE_CONNECTING,
        SOURCE_ACTIVE,
        SOURCE_BACKOFF,
        SOURCE_PAUSED,
        SOURCE_FAILED,
        _SOURCE_STATE_MAX,
} SourceState;

const char *source_state_to_string(SourceState s);

/* One row of the declarative option table (common/config-table.h): the option `name` of an add
 * request's "options" object is parsed as its type into the config struct at `offset`; the default
 * (text, parsed the same way) applies when it is absent; the description is what --help,
 * --list-options and the man page say. The table is the only schema of the type's options: dpiped
 * has the connector check an add request with it ("check" in man:dpipe-connector(7)), so an
 * unknown name or a bad value is refused before the source is accepted. */
typedef ConfigOption ConnectorOption;

#define CONNECTOR_OPTION_STRING(n, cfg, field, def, req, desc)                                         \
        CONFIG_OPTION(n, CONFIG_OPTION_STRING, cfg, field, def, req, desc)
#define CONNECTOR_OPTION_U32(n, cfg, field, def, desc) CONFIG_OPTION(n, CONFIG_OPTION_U32, cfg, field, def, false, desc)
#define CONNECTOR_OPTION_U64(n, cfg, field, def, desc) CONFIG_OPTION(n, CONFIG_OPTION_U64, cfg, field, def, false, desc)
#define CONNECTOR_OPTION_BOOL(n, cfg, field, def, desc) CONFIG_OPTION(n, CONFIG_OPTION_BOOL, cfg, field, def, false, desc)

/* The options every connector type takes, parsed by the library into the source's
 * SourceCommonConfig (source_common_config()) before the type's own table. A row added here is
 * accepted, listed and documented for every type at once. */
typedef struct SourceCommonConfig {
        char *transform; /* steps applied to each record (dpipe-connector(7) TRANSFORM), or NULL */
} SourceCommonConfig;

extern const ConnectorOption connector_common_options[];

typedef struct ConnectorType {
        const char *name;        /* "tcp": socket connector-tcp.sock, executable dpipe-connector-tcp */
        const char *description; /* one line for --help */

        size_t config_size;             /* the struct the option table fills */
        const ConnectorOption *options; /* terminated by an entry with name == NULL */
        size_t data_size;               /* private per-source state, zeroed, see source_data() */

        /* Optional: options of the daemon's command line that belong to this type (--NAME=VALUE,
         * NAME as in the table, e.g. "max-response-memory"), parsed with their defaults into
         * *daemon_settings before setup() runs; --help lists them. */
        const ConnectorOption *daemon_options;
        void *daemon_settings;

        /* Optional: once per process, after the event loop exists (e.g. a curl multi handle).
         * Whatever is stored in *ret_userdata is returned by source_type_userdata(). */
        int (*setup)(sd_event *e, void **ret_userdata);
        void (*teardown)(void *userdata);

        /* Optional: checks a parsed config; on failure returns negative errno and a malloc'ed
         * message in *ret_message, which is sent back to dpiped. */
        int (*validate)(const void *config, char **ret_message);
        /* Optional: initialise/free the private data. done() must accept a stopped source. */
        int (*init)(Source *s);
        void (*done)(Source *s);
        /* Begin ingestion: connect, open, schedule polls. source_next_seq() and source_position()
         * tell where to resume. Failures are reported with source_fail(), never by blocking. */
        void (*start)(Source *s);
        /* Stop ingestion: close connections, disarm timers. Called before backoff, pause, remove. */
        void (*stop)(Source *s);
        /* Optional: stop/restart reading because too much is waiting for the writer's ack. */
        void (*throttle)(Source *s, bool throttled);
} ConnectorType;

int connector_main(const ConnectorType *type, int argc, char *argv[]);

#define CONNECTOR_DEFINE_MAIN(type)                                                                    \
        int main(int argc, char *argv[]) {                                                             \
                return connector_main(&(type), argc, argv);                                            \
        }

/* Accessors for the type. */
const char *source_name(Source *s);
void *source_config(Source *s);
const SourceCommonConfig *source_common_config(Source *s);
void *source_data(Source *s);
void *source_type_userdata(Source *s);
sd_event *source_get_event(Source *s);
SourceState source_get_state(Source *s);

/* Seqs run from 0 to SOURCE_SEQ_MAX. UINT64_MAX is refused wherever a seq enters (a peer's record,
 * the writer): no record could follow it, since the next seq would wrap to 0 and look like a
 * duplicate of everything stored. */
#define SOURCE_SEQ_MAX (UINT64_MAX - 1)
#define SOURCE_SEQ_INVALID UINT64_MAX

/* The seq the next record gets (source_emit()) or that a sequenced peer must be asked for next
 * (source_emit_seq()). Known before start() is called: the writer's last stored seq + 1, or the
 * persisted cursor, whichever is later. */
uint64_t source_next_seq(Source *s);
/* The position persisted with the cursor (a JSON text set with source_set_position() and acked by
 * the writer), or NULL. If set, next_seq is the seq of the record found at that position. */
const char *source_position(Source *s);

/* Hands one record (one JSON value, already validated, no newline) to the writer with the next seq.
 * Copies the bytes into the current batch: no allocation in the steady state. With the source
 * option transform, the record goes through it first: filtered or skipped, it is not queued (and
 * takes no seq); the return value is 0 then, as for a duplicate. */
int source_emit(Source *s, const char *data, size_t len);
/* Same with a peer-assigned seq: records with seq < source_next_seq() are dropped as duplicates
 * (returns 0), others advance next_seq to seq + 1. Returns 1 when queued, -ERANGE for
 * SOURCE_SEQ_INVALID (the type reports it with source_fail()). */
int source_emit_seq(Source *s, uint64_t seq, const char *data, size_t len);
/* Hands one record that was not checked yet (a jsonl line): it must be one JSON value on one line
 * (strict), else it is skipped with the reason, "<what> <n>" naming it (e.g. "line 12"). With the
 * source option transform, the transform's scan is that check (one pass) and its output is what
 * is queued. Returns 1 when queued, 0 when skipped or filtered, negative errno. */
int source_emit_unchecked(Source *s, const char *data, size_t len, const char *what, uint64_t n);

/* For a connector that validates records itself (a protocol line, an element of a JSON array) or
 * builds them (csv, lines): with the source option transform, the record's members are listed in
 * that same pass (json_scan_line_members(), json_scan_prefix_line_members(), or by hand for a record
 * built), into the table this returns (its max_depth set to what the transform needs, plus
 * extra_depth levels of envelope around the record), and the record goes to source_emit_listed():
 * it is parsed once on its whole way. NULL without a transform: use source_emit*() then. */
JsonScanMembers *source_members(Source *s, unsigned extra_depth);
/* source_emit_seq() of a record listed in mt (see source_members()), which must be a JSON object:
 * the value of mt->members[root], or the listed value itself with root -1. "<what> <n>" names it in
 * a skip message. */
int source_emit_listed(Source *s, uint64_t seq, const char *data, size_t len, const JsonScanMembers *mt, ssize_t root,
                       const char *what, uint64_t n);

/* Records where the stream stands after the records emitted so far (e.g. {"ino":1,"offset":42}).
 * It is persisted once the writer acked everything up to here, so a restart resumes there. */
int source_set_position(Source *s, const char *position_json);

/* Counts and logs (with the source name and position) a record that was skipped; the reason goes to
 * dpiped with the counter ("skip_reason", the Source property LastSkipReason). Logging is limited to
 * a few lines per second and source, the rest is summed up. */
void source_skip_record(Source *s, const char *position, const char *fmt, ...) _printf_(3, 4);

/* State changes the type reports. */
void source_connecting(Source *s);
void source_active(Source *s);
void source_heartbeat(Source *s);
/* Transient failure: stop(), state backoff, LastError, start() again after a jittered exponential
 * delay. Returns -abs(error) so it can end a callback. */
int source_fail(Source *s, int error, const char *fmt, ...) _printf_(3, 4);
/* Permanent failure (bad configuration): stop(), state failed, no retry until re-added/resumed. */
int source_fail_permanently(Source *s, int error, const char *fmt, ...) _printf_(3, 4);
/* Resets the backoff delay (call after the source delivered data). */
void source_backoff_reset(Source *s);
bool source_is_throttled(Source *s);
