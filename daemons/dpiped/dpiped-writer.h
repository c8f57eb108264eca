/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* dpiped's link to dpipe-writer, for the metrics only: a control connection to
 * <runtime-dir>/writer.sock over which dpiped asks {"op":"status"} once a second and keeps the
 * latest reply (queue bytes, segments, the sync duration histogram, the writer's counters). It only
 * exists with --metrics and only connects while wanted() says so, sends nothing on the data path and never blocks the loop: a writer that is
 * not there is retried with backoff and its figures are reported as absent (dpipe_writer_up 0). */

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "backoff.h"
#include "frame-conn.h"
#include "macro.h"

/* Whether the writer should be asked now: dpiped asks only while the pipeline has sources (then the
 * connectors keep the writer running anyway), so that the metrics never socket-activate a writer
 * that would not run otherwise, and lets go when the last source is gone, so that an idle writer
 * can exit (--idle-exit-sec). */
typedef bool (*WriterLinkWantedFunc)(void *userdata);

typedef struct WriterLink {
        sd_event *event;
        WriterLinkWantedFunc wanted;
        void *userdata;
        char *socket_path;
        FrameConn conn;        /* to writer.sock (common/frame-conn.h); reconnected by the timer */
        bool up;               /* connected since the last failure: the next failure is logged */
        bool request_pending;
        sd_event_source *timer; /* the next status request, or the next connect after the backoff */
        Backoff backoff;

        struct json_object *status; /* the latest status reply; NULL before the first */
        uint64_t status_usec;       /* CLOCK_MONOTONIC when it came */
} WriterLink;

int writer_link_new(sd_event *event, const char *runtime_dir, WriterLinkWantedFunc wanted, void *userdata,
                    WriterLink **ret);
WriterLink *writer_link_free(WriterLink *w);
DEFINE_TRIVIAL_CLEANUP_FUNC(WriterLink *, writer_link_free);

/* The latest status if it is fresh (connected, and younger than a few polls), else NULL. */
struct json_object *writer_link_status(WriterLink *w);
