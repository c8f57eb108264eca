/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* dpipectl top: a live table of every source and subscription, like `vector top`. Each refresh
 * reads the same counters /metrics shows (the Source properties and Manager.ListSubscriptions) and
 * turns the difference to the previous refresh into rates. On a terminal the table is redrawn in
 * place and q quits; otherwise a table is printed per refresh; --json prints one snapshot (with the
 * rates over one --interval) and exits. */

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "dpipectl.h"
#include "json-util.h"
#include "log.h"
#include "table.h"
#include "util.h"

typedef struct TopSource {
        char *name, *type, *state;
        uint64_t records, bytes, skipped, last_record_usec;
} TopSource;

typedef struct TopSubscription {
        char *label, *client, *sources;
        uint64_t position, next_offset, lag, sent;
        uint32_t in_flight;
} TopSubscription;

typedef struct TopSnapshot {
        uint64_t usec; /* CLOCK_MONOTONIC when taken */
        uint64_t queue_first, queue_next, clients;
        TopSource *sources;
        size_t n_sources;
        TopSubscription *subscriptions;
        size_t n_subscriptions;
} TopSnapshot;

static volatile sig_atomic_t top_quit = 0;
static struct termios top_saved_termios;
static bool top_termios_saved = false;

static void top_snapshot_done(TopSnapshot *s) {
        for (size_t i = 0; i < s->n_sources; i++) {
                free(s->sources[i].name);
                free(s->sources[i].type);
                free(s->sources[i].state);
        }
        for (size_t i = 0; i < s->n_subscriptions; i++) {
                free(s->subscriptions[i].label);
                free(s->subscriptions[i].client);
                free(s->subscriptions[i].sources);
        }
        free(s->sources);
        free(s->subscriptions);
        *s = (TopSnapshot) {};
}

static int top_read_subscriptions(sd_bus *bus, TopSnapshot *snap) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_call_method(bus, DPIPED_BUS_NAME, DPIPED_BUS_PATH, DPIPED_MANAGER_INTERFACE, "ListSubscriptions", &error, &reply, NULL);
        if (r < 0) {
                log_error("Failed to list subscriptions: %s", bus_error_text(&error, r));
                return r;
        }
        r = sd_bus_message_enter_container(reply, 'a', "(sssttttu)");
        if (r < 0)
                return r;
        for (;;) {
                const char *label, *client, *sources;
                TopSubscription t = {}, *a;

                r = sd_bus_message_read(reply, "(sssttttu)", &label, &client, &sources, &t.position, &t.next_offset, &t.lag,
                                        &t.sent, &t.in_flight);
                if (r < 0)
                        return r;
                if (r == 0)
                        break;
                a = realloc(snap->subscriptions, (snap->n_subscriptions + 1) * sizeof(TopSubscription));
                if (!a)
                        return -ENOMEM;
                snap->subscriptions = a;
                t.label = strdup(label);
                t.client = strdup(client);
                t.sources = strdup(sources);
                snap->subscriptions[snap->n_subscriptions++] = t;
                if (!t.label || !t.client || !t.sources)
                        return -ENOMEM;
        }
        return sd_bus_message_exit_container(reply);
}

static int top_read_sources(sd_bus *bus, TopSnapshot *snap) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_call_method(bus, DPIPED_BUS_NAME, DPIPED_BUS_PATH, DPIPED_MANAGER_INTERFACE, "ListSources", &error, &reply, NULL);
        if (r < 0) {
                log_error("Failed to list sources: %s", bus_error_text(&error, r));
                return r;
        }
        r = sd_bus_message_enter_container(reply, 'a', "(ssso)");
        if (r < 0)
                return r;
        for (;;) {
                _cleanup_json_ struct json_object *props = NULL;
                const char *name, *type, *state, *path;
                TopSource t = {}, *a;

                r = sd_bus_message_read(reply, "(ssso)", &name, &type, &state, &path);
                if (r < 0)
                        return r;
                if (r == 0)
                        break;
                /* A source removed between the two calls keeps what ListSources said. */
                if (bus_get_all_properties_json(bus, path, DPIPED_SOURCE_INTERFACE, NULL, &props) >= 0) {
                        (void) json_get_uint64(props, "RecordsReceived", &t.records);
                        (void) json_get_uint64(props, "BytesReceived", &t.bytes);
                        (void) json_get_uint64(props, "RecordsSkipped", &t.skipped);
                        (void) json_get_uint64(props, "LastRecordUSec", &t.last_record_usec);
                        state = json_get_string(props, "State") ?: state;
                }
                a = realloc(snap->sources, (snap->n_sources + 1) * sizeof(TopSource));
                if (!a)
                        return -ENOMEM;
                snap->sources = a;
                t.name = strdup(name);
                t.type = strdup(type);
                t.state = strdup(state);
                snap->sources[snap->n_sources++] = t;
                if (!t.name || !t.type || !t.state)
                        return -ENOMEM;
        }
        return sd_bus_message_exit_container(reply);
}

static int top_snapshot_take(sd_bus *bus, TopSnapshot *ret) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_json_ struct json_object *props = NULL;
        TopSnapshot snap = {};
        int r;

        r = bus_get_all_properties_json(bus, DPIPED_BUS_PATH, DPIPED_MANAGER_INTERFACE, &error, &props);
        if (r < 0) {
                log_error("Failed to read the pipeline's properties: %s", bus_error_text(&error, r));
                return r;
        }
        (void) json_get_uint64(props, "QueueFirstOffset", &snap.queue_first);
        (void) json_get_uint64(props, "QueueNextOffset", &snap.queue_next);
        (void) json_get_uint64(props, "Clients", &snap.clients);
        r = top_read_sources(bus, &snap);
        if (r >= 0)
                r = top_read_subscriptions(bus, &snap);
        if (r < 0) {
                top_snapshot_done(&snap);
                return r == -ENOMEM ? log_oom() : log_error_errno(r, "Failed to read the pipeline: %m");
        }
        snap.usec = now_usec(CLOCK_MONOTONIC);
        *ret = snap;
        return 0;
}

/* Per second between two readings of a counter; NAN when there is no earlier reading or the
 * counter went back (a restarted connector starts from 0). */
static double top_rate(uint64_t now, uint64_t before, bool have_before, uint64_t dt_usec) {
        if (!have_before || dt_usec == 0 || now < before)
                return NAN;
        return (double) (now - before) * (double) USEC_PER_SEC / (double) dt_usec;
}

static const TopSource *top_find_source(const TopSnapshot *s, const char *name) {
        for (size_t i = 0; s && i < s->n_sources; i++)
                if (streq(s->sources[i].name, name))
                        return &s->sources[i];
        return NULL;
}

static const TopSubscription *top_find_subscription(const TopSnapshot *s, const TopSubscription *t) {
        for (size_t i = 0; s && i < s->n_subscriptions; i++)
                if (streq(s->subscriptions[i].label, t->label) && streq(s->subscriptions[i].client, t->client))
                        return &s->subscriptions[i];
        return NULL;
}

static struct json_object *json_rate(double v) {
        return isnan(v) ? NULL : json_object_new_double((double) (uint64_t) (v * 100 + 0.5) / 100);
}

static struct json_object *top_json(const TopSnapshot *cur, const TopSnapshot *prev) {
        uint64_t dt = prev ? cur->usec - prev->usec : 0;
        struct json_object *o = json_object_new_object(), *sources = json_object_new_array(),
                           *subs = json_object_new_array();

        if (!o || !sources || !subs) {
                json_object_put(o);
                json_object_put(sources);
                json_object_put(subs);
                return NULL;
        }
        json_object_object_add(o, "interval_sec", json_object_new_double((double) dt / (double) USEC_PER_SEC));
        json_object_object_add(o, "queue_first_offset", json_object_new_uint64(cur->queue_first));
        json_object_object_add(o, "queue_next_offset", json_object_new_uint64(cur->queue_next));
        json_object_object_add(o, "records_written_per_sec",
                               json_rate(top_rate(cur->queue_next, prev ? prev->queue_next : 0, prev, dt)));
        json_object_object_add(o, "clients", json_object_new_uint64(cur->clients));
        for (size_t i = 0; i < cur->n_sources; i++) {
                const TopSource *s = &cur->sources[i], *p = top_find_source(prev, s->name);
                struct json_object *e = json_object_new_object();

                if (!e)
                        break;
                json_object_object_add(e, "name", json_object_new_string(s->name));
                json_object_object_add(e, "type", json_object_new_string(s->type));
                json_object_object_add(e, "state", json_object_new_string(s->state));
                json_object_object_add(e, "records", json_object_new_uint64(s->records));
                json_object_object_add(e, "bytes", json_object_new_uint64(s->bytes));
                json_object_object_add(e, "skipped", json_object_new_uint64(s->skipped));
                json_object_object_add(e, "last_record_usec", json_object_new_uint64(s->last_record_usec));
                json_object_object_add(e, "records_per_sec", json_rate(top_rate(s->records, p ? p->records : 0, p, dt)));
                json_object_object_add(e, "bytes_per_sec", json_rate(top_rate(s->bytes, p ? p->bytes : 0, p, dt)));
                json_object_array_add(sources, e);
        }
        for (size_t i = 0; i < cur->n_subscriptions; i++) {
                const TopSubscription *s = &cur->subscriptions[i], *p = top_find_subscription(prev, s);
                struct json_object *e = json_object_new_object();

                if (!e)
                        break;
                json_object_object_add(e, "subscription", json_object_new_string(s->label));
                json_object_object_add(e, "client", json_object_new_string(s->client));
                json_object_object_add(e, "sources", json_object_new_string(s->sources));
                json_object_object_add(e, "position", json_object_new_uint64(s->position));
                json_object_object_add(e, "next_offset", json_object_new_uint64(s->next_offset));
                json_object_object_add(e, "lag", json_object_new_uint64(s->lag));
                json_object_object_add(e, "records_sent", json_object_new_uint64(s->sent));
                json_object_object_add(e, "in_flight", json_object_new_uint64(s->in_flight));
                json_object_object_add(e, "records_per_sec", json_rate(top_rate(s->sent, p ? p->sent : 0, p, dt)));
                json_object_array_add(subs, e);
        }
        json_object_object_add(o, "sources", sources);
        json_object_object_add(o, "subscriptions", subs);
        return o;
}

static void format_rate(char *buf, size_t size, double v, bool bytes) {
        if (isnan(v))
                (void) snprintf(buf, size, "-");
        else if (bytes)
                (void) format_bytes(buf, size, (uint64_t) (v + 0.5));
        else if (v < 10 && v != (double) (uint64_t) v)
                (void) snprintf(buf, size, "%.1f", v);
        else
                (void) snprintf(buf, size, "%.0f", v);
}

static const char *top_state_color(const char *state) {
        return source_state_color(state);
}

static int top_format(const TopSnapshot *cur, const TopSnapshot *prev, size_t width, Buffer *out) {
        uint64_t dt = prev ? cur->usec - prev->usec : 0, now = now_usec(CLOCK_REALTIME);
        TableFormat fmt = { .header = true, .colors = arg_colors, .max_width = width };
        char rate[32], brate[32], age[64];
        int r;

        format_rate(rate, sizeof(rate), top_rate(cur->queue_next, prev ? prev->queue_next : 0, prev, dt), false);
        r = buffer_printf(out,
                          "dpipe top: %" PRIu64 " records queued (next offset %" PRIu64 "), %s rec/s written, %" PRIu64
                          " client%s  (every %.3gs%s)\n\n",
                          cur->queue_next - MIN(cur->queue_first, cur->queue_next), cur->queue_next, rate, cur->clients,
                          cur->clients == 1 ? "" : "s", arg_top_interval_usec / 1e6, isatty(STDIN_FILENO) ? ", q quits" : "");
        if (r < 0)
                return r;

        _cleanup_(table_freep) Table *ts = table_new(8, (const char *const[]) {
                "SOURCE", "TYPE", "STATE", "REC/S", "BYTES/S", "RECORDS", "SKIPPED", "LAST RECORD" });
        if (!ts)
                return -ENOMEM;
        for (size_t c = 3; c < 7; c++)
                table_set_align_right(ts, c, true);
        for (size_t i = 0; r >= 0 && i < cur->n_sources; i++) {
                const TopSource *s = &cur->sources[i], *p = top_find_source(prev, s->name);

                format_rate(rate, sizeof(rate), top_rate(s->records, p ? p->records : 0, p, dt), false);
                format_rate(brate, sizeof(brate), top_rate(s->bytes, p ? p->bytes : 0, p, dt), true);
                if (s->last_record_usec > 0)
                        (void) format_timestamp_relative(age, sizeof(age), s->last_record_usec, now);
                else
                        age[0] = 0;
                r = table_add_cell(ts, s->name, NULL);
                if (r >= 0)
                        r = table_add_cell(ts, s->type, NULL);
                if (r >= 0)
                        r = table_add_cell(ts, s->state, top_state_color(s->state));
                if (r >= 0)
                        r = table_add_cell(ts, rate, NULL);
                if (r >= 0)
                        r = table_add_cell(ts, brate, NULL);
                if (r >= 0)
                        r = table_add_cellf(ts, NULL, "%" PRIu64, s->records);
                if (r >= 0)
                        r = table_add_cellf(ts, s->skipped > 0 ? ANSI_YELLOW : NULL, "%" PRIu64, s->skipped);
                if (r >= 0)
                        r = table_add_cell(ts, age, NULL);
        }
        if (r >= 0)
                r = table_format(ts, &fmt, out);
        if (r >= 0 && cur->n_sources == 0)
                r = buffer_append_str(out, "(no sources)\n");
        if (r < 0)
                return r;
        r = buffer_append_str(out, "\n");
        if (r < 0)
                return r;

        _cleanup_(table_freep) Table *tc = table_new(7, (const char *const[]) {
                "SUBSCRIPTION", "CLIENT", "SOURCES", "REC/S", "SENT", "LAG", "IN FLIGHT" });
        if (!tc)
                return -ENOMEM;
        for (size_t c = 3; c < 7; c++)
                table_set_align_right(tc, c, true);
        for (size_t i = 0; r >= 0 && i < cur->n_subscriptions; i++) {
                const TopSubscription *s = &cur->subscriptions[i], *p = top_find_subscription(prev, s);

                format_rate(rate, sizeof(rate), top_rate(s->sent, p ? p->sent : 0, p, dt), false);
                r = table_add_cell(tc, s->label, NULL);
                if (r >= 0)
                        r = table_add_cell(tc, s->client, NULL);
                if (r >= 0)
                        r = table_add_cell(tc, isempty(s->sources) ? "*" : s->sources, NULL);
                if (r >= 0)
                        r = table_add_cell(tc, rate, NULL);
                if (r >= 0)
                        r = table_add_cellf(tc, NULL, "%" PRIu64, s->sent);
                if (r >= 0)
                        r = table_add_cellf(tc, NULL, "%" PRIu64, s->lag);
                if (r >= 0)
                        r = table_add_cellf(tc, NULL, "%" PRIu32, s->in_flight);
        }
        if (r >= 0)
                r = table_format(tc, &fmt, out);
        if (r >= 0 && cur->n_subscriptions == 0)
                r = buffer_append_str(out, "(no subscriptions)\n");
        return r;
}

static void sleep_usec(uint64_t usec) {
        struct timespec ts = { .tv_sec = (time_t) (usec / USEC_PER_SEC), .tv_nsec = (long) (usec % USEC_PER_SEC) * 1000 };

        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

static void top_terminal_restore(void) {
        if (!top_termios_saved)
                return;
        (void) tcsetattr(STDIN_FILENO, TCSANOW, &top_saved_termios);
        /* Cursor back, the main screen back. */
        fputs("\x1b[?25h\x1b[?1049l", stdout);
        fflush(stdout);
        top_termios_saved = false;
}

static void top_on_signal(int sig) {
        top_quit = 1;
}

static int top_terminal_setup(void) {
        struct termios t;

        if (tcgetattr(STDIN_FILENO, &top_saved_termios) < 0)
                return -errno;
        t = top_saved_termios;
        /* Keys one by one, not echoed; ^C still sends SIGINT (ISIG stays on). */
        t.c_lflag &= ~(tcflag_t) (ICANON | ECHO);
        t.c_cc[VMIN] = 0;
        t.c_cc[VTIME] = 0;
        if (tcsetattr(STDIN_FILENO, TCSANOW, &t) < 0)
                return -errno;
        top_termios_saved = true;
        atexit(top_terminal_restore);
        /* The alternate screen (like top and less): the shell's screen comes back afterwards. */
        fputs("\x1b[?1049h\x1b[?25l", stdout);
        return 0;
}

static size_t top_width(void) {
        struct winsize ws;
        const char *e = getenv("COLUMNS");
        uint32_t c;

        if (e && safe_atou32(e, &c) >= 0 && c > 0)
                return c;
        if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) >= 0 && ws.ws_col > 0)
                return ws.ws_col;
        return 0;
}

/* Waits up to usec for the next refresh; returns true when the user asked to quit. */
static bool top_wait(uint64_t usec, bool keys) {
        uint64_t end = now_usec(CLOCK_MONOTONIC) + usec;

        while (!top_quit) {
                uint64_t now = now_usec(CLOCK_MONOTONIC);
                struct pollfd p = { .fd = STDIN_FILENO, .events = POLLIN };
                int n;

                if (now >= end)
                        return false;
                n = poll(keys ? &p : NULL, keys ? 1 : 0, (int) ((end - now + 999) / 1000));
                if (n > 0 && (p.revents & POLLIN)) {
                        char buf[64];
                        ssize_t k = read(STDIN_FILENO, buf, sizeof(buf));

                        if (k == 0)
                                keys = false; /* end of input: keep refreshing until a signal */
                        for (ssize_t i = 0; i < k; i++)
                                if (buf[i] == 'q' || buf[i] == 'Q')
                                        return true;
                } else if (n > 0 && (p.revents & (POLLHUP | POLLERR | POLLNVAL)))
                        keys = false;
        }
        return true;
}

int verb_top(sd_bus *bus, int argc, char **argv) {
        TopSnapshot prev = {}, cur = {};
        bool have_prev = false, tty = isatty(STDOUT_FILENO) && isatty(STDIN_FILENO);
        struct sigaction sa = { .sa_handler = top_on_signal };
        int r, ret = EXIT_SUCCESS;

        if (arg_json) {
                _cleanup_json_ struct json_object *o = NULL;

                /* One snapshot, with the rates over one interval. */
                r = top_snapshot_take(bus, &prev);
                if (r < 0)
                        return EXIT_FAILURE;
                sleep_usec(arg_top_interval_usec);
                r = top_snapshot_take(bus, &cur);
                if (r >= 0) {
                        o = top_json(&cur, &prev);
                        if (!o)
                                r = log_oom();
                }
                top_snapshot_done(&prev);
                top_snapshot_done(&cur);
                if (r < 0)
                        return EXIT_FAILURE;
                json_print(o);
                return EXIT_SUCCESS;
        }

        (void) sigaction(SIGINT, &sa, NULL);
        (void) sigaction(SIGTERM, &sa, NULL);
        if (tty && top_terminal_setup() < 0)
                tty = false;

        while (!top_quit) {
                _cleanup_(buffer_done) Buffer out = {};

                r = top_snapshot_take(bus, &cur);
                if (r < 0) {
                        ret = EXIT_FAILURE;
                        break;
                }
                if (tty)
                        (void) buffer_append_str(&out, "\x1b[H\x1b[2J");
                r = top_format(&cur, have_prev ? &prev : NULL, tty ? top_width() : 0, &out);
                if (r >= 0 && !tty)
                        r = buffer_append_str(&out, "\n");
                if (r < 0) {
                        log_oom();
                        ret = EXIT_FAILURE;
                        break;
                }
                if (fwrite(buffer_begin(&out), 1, buffer_size(&out), stdout) != buffer_size(&out) || fflush(stdout) != 0)
                        break; /* the reader went away */
                top_snapshot_done(&prev);
                prev = cur;
                cur = (TopSnapshot) {};
                have_prev = true;
                if (top_wait(arg_top_interval_usec, tty))
                        break;
        }
        top_snapshot_done(&prev);
        top_snapshot_done(&cur);
        top_terminal_restore();
        return ret;
}
