/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* dpipe-writer: the one process that appends to the message queue. See dpipe-writer(8). */

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#include "daemon-util.h"
#include "log.h"
#include "util.h"
#include "writer-manager.h"

static void help(void *userdata) {
        printf("%s [OPTIONS...]\n\n"
               "The dpipe data writer: accepts record batches from connectors on <runtime-dir>/writer.sock,\n"
               "appends them to the message queue in <state-dir>/queue/ and acks them once durable.\n\n"
               "  -h --help                 Show this help\n"
               "     --version              Show the version\n"
               "     --runtime-dir=DIR      Directory of writer.sock (default: %s)\n"
               "     --state-dir=DIR        Directory holding queue/ (default: %s)\n"
               "     --sync=POLICY          batch (ack after an fsync, group commit; default),\n"
               "                            interval:MS (ack after write, fsync every MS ms),\n"
               "                            none (never fsync)\n"
               "     --segment-size=BYTES   Roll to a new segment file after this size (default: 64M)\n"
               "     --retention-bytes=BYTES Remove the oldest whole segments above this total (0 = keep)\n"
               "     --retention-sec=SEC    Remove whole segments older than this (0 = keep)\n"
               "     --max-bytes=BYTES      Hard limit: stop accepting (no acks) above this size (0 = none)\n"
               "     --idle-exit-sec=SEC    Exit after SEC seconds without a connection (0 = never, default)\n"
               "\nSizes take K, M, G suffixes (powers of 1024). See dpipe-writer(8) and dpipe-queue(5).\n",
               program_invocation_short_name, default_runtime_dir(), default_state_dir());
}

static int parse_sync(const char *s, WriterOptions *o) {
        uint64_t ms;

        if (streq(s, "batch"))
                o->sync = QUEUE_SYNC_BATCH;
        else if (streq(s, "none"))
                o->sync = QUEUE_SYNC_NONE;
        else if (strncmp(s, "interval:", 9) == 0) {
                if (safe_atou64(s + 9, &ms) < 0 || ms == 0 || ms > 3600 * 1000)
                        return -EINVAL;
                o->sync = QUEUE_SYNC_INTERVAL;
                o->sync_interval_usec = ms * USEC_PER_MSEC;
        } else if (streq(s, "interval")) {
                o->sync = QUEUE_SYNC_INTERVAL;
                o->sync_interval_usec = 100 * USEC_PER_MSEC;
        } else
                return -EINVAL;
        return 0;
}

enum {
        ARG_RUNTIME_DIR = DAEMON_ARG_OWN,
        ARG_STATE_DIR,
        ARG_SYNC,
        ARG_SEGMENT_SIZE,
        ARG_RETENTION_BYTES,
        ARG_RETENTION_SEC,
        ARG_MAX_BYTES,
        ARG_IDLE_EXIT_SEC,
};

/* Returns 1 to run, 0 to exit successfully (--help), negative on bad usage (already reported). */
static int parse_argv(int argc, char *argv[], WriterOptions *o) {
        static const struct option options[] = {
                DAEMON_COMMON_OPTIONS,
                { "runtime-dir", required_argument, NULL, ARG_RUNTIME_DIR },
                { "state-dir", required_argument, NULL, ARG_STATE_DIR },
                { "sync", required_argument, NULL, ARG_SYNC },
                { "segment-size", required_argument, NULL, ARG_SEGMENT_SIZE },
                { "retention-bytes", required_argument, NULL, ARG_RETENTION_BYTES },
                { "retention-sec", required_argument, NULL, ARG_RETENTION_SEC },
                { "max-bytes", required_argument, NULL, ARG_MAX_BYTES },
                { "idle-exit-sec", required_argument, NULL, ARG_IDLE_EXIT_SEC },
                {}
        };
        uint64_t v;
        int c;

        while ((c = daemon_getopt(argc, argv, "h", options, "dpipe-writer", help, NULL)) >= 0)
                switch (c) {
                case ARG_RUNTIME_DIR:
                        o->runtime_dir = optarg;
                        break;
                case ARG_STATE_DIR:
                        o->state_dir = optarg;
                        break;
                case ARG_SYNC:
                        if (parse_sync(optarg, o) < 0)
                                return log_error_errno(EINVAL, "Invalid --sync='%s': expected batch, interval:MS or none.",
                                                       optarg);
                        break;
                case ARG_SEGMENT_SIZE:
                        if (parse_size(optarg, &v) < 0 || v < 4096)
                                return log_error_errno(EINVAL, "Invalid --segment-size='%s': expected a size of at least 4K.",
                                                       optarg);
                        o->queue.segment_size = v;
                        break;
                case ARG_RETENTION_BYTES:
                        if (parse_size(optarg, &o->queue.retention_bytes) < 0)
                                return log_error_errno(EINVAL, "Invalid --retention-bytes='%s'.", optarg);
                        break;
                case ARG_RETENTION_SEC:
                        if (safe_atou64(optarg, &v) < 0 || v > UINT64_MAX / USEC_PER_SEC)
                                return log_error_errno(EINVAL, "Invalid --retention-sec='%s'.", optarg);
                        o->queue.retention_usec = v * USEC_PER_SEC;
                        break;
                case ARG_MAX_BYTES:
                        if (parse_size(optarg, &o->queue.max_bytes) < 0)
                                return log_error_errno(EINVAL, "Invalid --max-bytes='%s'.", optarg);
                        break;
                case ARG_IDLE_EXIT_SEC:
                        if (safe_atou64(optarg, &v) < 0 || v > UINT64_MAX / USEC_PER_SEC)
                                return log_error_errno(EINVAL, "Invalid --idle-exit-sec='%s'.", optarg);
                        o->idle_exit_usec = v * USEC_PER_SEC;
                        break;
                default:
                        return -EINVAL;
                }

        if (c != -1)
                return c == DAEMON_GETOPT_DONE ? 0 : -EINVAL;
        if (o->queue.max_bytes > 0 && o->queue.max_bytes < 2 * o->queue.segment_size && o->queue.segment_size > 0)
                log_notice("--max-bytes=%" PRIu64 " is below two segments; set a smaller --segment-size for a useful "
                           "limit.", o->queue.max_bytes);
        return 1;
}

static int run(int argc, char *argv[]) {
        _cleanup_(manager_freep) Manager *m = NULL;
        WriterOptions opts = {
                .runtime_dir = (char *) default_runtime_dir(),
                .state_dir = (char *) default_state_dir(),
                .sync = QUEUE_SYNC_BATCH,
                .queue.segment_size = QUEUE_SEGMENT_SIZE_DEFAULT,
        };
        int r;

        r = parse_argv(argc, argv, &opts);
        if (r <= 0)
                return r;

        /* A connector that went away must not take the writer with it: SIGPIPE is ignored
         * (daemon_setup()), a write to it fails with EPIPE. */
        r = manager_new(&opts, &m);
        if (r < 0)
                return r;
        r = manager_start(m);
        if (r < 0)
                return r;

        (void) sd_notify(false, "READY=1");
        manager_update_status(m);

        r = sd_event_loop(m->event);
        (void) sd_notify(false, "STOPPING=1");
        m = manager_free(m);
        if (r < 0)
                return r;
        return r == 0 ? 0 : -ECONNRESET;
}

DEFINE_MAIN_FUNCTION(run);
