/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* dpipectl: the admin CLI of dpiped over D-Bus (dpipectl(1)). One file per group of verbs:
 * dpipectl.c (options, dispatch, add/remove/pause/resume), dpipectl-list.c (list-sources,
 * status), dpipectl-monitor.c (monitor), dpipectl-tail.c (tail, over the client protocol),
 * dpipectl-bus.c (reading properties into JSON, error text), dpipectl-transform.c (test-transform),
 * dpipectl-top.c (top). */

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-bus.h>

#include "bus-names.h"
#include "client-proto.h"
#include "client-util.h"
#include "table.h"
#include "util.h"


/* --json=MODE (systemd's forms). Bare --json / -j is JSON_AUTO: pretty on a terminal, short
 * otherwise; streams (monitor, tail) print one short line per event unless pretty was asked for. */
typedef enum JsonMode {
        JSON_OFF,
        JSON_AUTO,
        JSON_SHORT,
        JSON_PRETTY,
} JsonMode;

/* Parsed options: the only globals. */
extern bool arg_json;             /* JSON output of any form (arg_json_mode != JSON_OFF) */
extern JsonMode arg_json_mode;
extern bool arg_quiet;            /* -q: no legend, banner or hint; status NAME prints nothing */
extern bool arg_no_pager;
extern bool arg_no_legend;
extern bool arg_user;
extern bool arg_colors;          /* stdout is a terminal and colours are not disabled */
extern const char *arg_connect;
extern ClientConnOptions arg_conn; /* tail: token, TLS */
extern SubscribeFrom arg_from;
extern bool arg_from_set;
extern char **arg_sources;
extern size_t arg_n_sources;
extern uint64_t arg_lines;        /* tail -n: start this many records before the end */
extern bool arg_lines_set;
extern bool arg_no_follow;        /* tail: stop at the end of what the queue held at start */
extern const char *arg_type;      /* add-source, add-sink */
extern const char *arg_address;
extern char **arg_options;        /* KEY=VALUE */
extern size_t arg_n_options;
extern uint64_t arg_top_interval_usec; /* top: time between refreshes */

/* Exit codes (dpipectl(1), EXIT STATUS). Like systemctl, bad usage is 1 (EXIT_FAILURE) and a
 * name that does not exist is 4 (systemctl status: "no such unit"). */
#define EXIT_USAGE EXIT_FAILURE

/* ANSI colours, used only when arg_colors. */
#define ANSI_GREEN "\x1b[0;32m"
#define ANSI_HIGHLIGHT_GREEN "\x1b[0;1;32m"
#define ANSI_RED "\x1b[0;31m"
#define ANSI_HIGHLIGHT_RED "\x1b[0;1;31m"
#define ANSI_YELLOW "\x1b[0;33m"
#define ANSI_GREY "\x1b[0;38;5;245m"
#define ANSI_HIGHLIGHT "\x1b[0;1;39m"
#define ANSI_NORMAL "\x1b[0m"

static inline const char *ansi(const char *code) {
        return arg_colors ? code : "";
}

/* How a source is doing, for status: degraded (yellow) is degraded, backoff, or connecting for
 * longer than CONNECTING_STUCK_USEC; failed (red) is failed. props: the source's properties. */
typedef enum SourceHealth {
        SOURCE_HEALTH_OK,
        SOURCE_HEALTH_DEGRADED,
        SOURCE_HEALTH_FAILED,
} SourceHealth;
#define CONNECTING_STUCK_USEC (30 * USEC_PER_SEC)
/* dpipectl status (the pipeline): the exit code when a source is degraded or failed. */
#define EXIT_UNHEALTHY 1
SourceHealth source_health(struct json_object *props, const char *state, uint64_t now);

/* Colour of a source state (org.dpipe.Pipeline1(5)), NULL for none. */
const char *source_state_color(const char *state);

/* Reads an a{sv} (the message must be positioned before it) into a JSON object: strings and
 * object paths as strings, integers as numbers, booleans, arrays of strings. */
int bus_message_read_properties_json(sd_bus_message *m, struct json_object **ret);
/* Properties.GetAll of iface at path, as JSON. */
int bus_get_all_properties_json(sd_bus *bus, const char *path, const char *iface, sd_bus_error *error,
                                struct json_object **ret);
/* The D-Bus error as one readable line ("Source demo exists." rather than the error name; an access
 * denial of the bus daemon in words, not its rule dump). */
const char *bus_error_text(const sd_bus_error *e, int r);
/* The exit code for a failed call: EXIT_NO_SUCH_SOURCE, EXIT_DENIED, EXIT_NOT_RUNNING or EXIT_FAILURE. */
int bus_error_exit_status(const sd_bus_error *e, int r);
/* The verb being run changes the pipeline (for the words of an access denial). */
extern bool arg_verb_changes;

/* The system bus, or the session bus with --user; logs the error. */
int bus_connect(sd_bus **ret);

/* Prints a JSON value on stdout as --json= says (bare --json: pretty on a terminal, one line
 * otherwise). json_print_event() is for streams: one line unless --json=pretty. */
void json_print(struct json_object *o);
void json_print_event(struct json_object *o);
/* The json-c flags of one value of a stream (tail, monitor). */
int json_event_flags(void);

int verb_list_sources(sd_bus *bus, int argc, char **argv);
int verb_status(sd_bus *bus, int argc, char **argv);
int verb_monitor(sd_bus *bus, int argc, char **argv);
int verb_tail(sd_bus *bus, int argc, char **argv);
int verb_test_transform(sd_bus *bus, int argc, char **argv);
/* dpipectl-list.c: ListSources/ListSinks, then the properties of each object, sorted by name. */
typedef struct ObjectEntry {
        const char *name, *type, *state, *path; /* point into the reply / props */
        struct json_object *props;              /* GetAll of the object; NULL if it vanished */
} ObjectEntry;
/* The strings live in *ret_reply. A refused or failed call is logged and returns its exit code
 * (> 0); what ("sources") names the objects in messages. */
int list_objects(sd_bus *bus, const char *method, const char *interface, const char *what, sd_bus_message **ret_reply,
                 ObjectEntry **ret, size_t *ret_n);
void object_entries_free(ObjectEntry *e, size_t n);
/* The JSON of one object: all its properties, plus what the list said if they are missing. */
struct json_object *object_entry_json(const ObjectEntry *e);
/* --json: the array of all objects; frees entries. Returns the exit code. */
int object_entries_print_json(ObjectEntry *entries, size_t n);
/* The table, with "N WHATs listed." unless --no-legend, through the pager. Returns the exit code. */
int table_print_listing(Table *t, const char *what, unsigned max_width);
int verb_list_sinks(sd_bus *bus, int argc, char **argv);
int verb_top(sd_bus *bus, int argc, char **argv);
