/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* js-publish: the NATS baseline of bench/sink-bench.sh. Publishes --count messages of --size bytes
 * with the nats sink's four headers (Nats-Msg-Id, Dpipe-Source, Dpipe-Offset, Dpipe-Ts) to a
 * JetStream stream as fast as cnats can, asynchronously with at most --in-flight unacknowledged
 * (cnats's own PublishAsyncMaxPending), and waits for every ack. No dpiped, no queue: what the
 * servers take from one cnats connection on this machine, to hold the sink's rate against.
 *
 * With --json the payload is what bench-consumer reads, {"s":0,"i":<i>,"t":<CLOCK_MONOTONIC µs>,"p":
 * "xx.."}, so that a bench-consumer on a `dpiped --stream=` checks every message arrives once and
 * measures the latency from the publish.
 *
 * The stream is created with --replicas when absent. Prints one JSON line:
 * {"rate":<messages/s>,"seconds":<s>,"failed":<negative acks>,"ack_p50_us":..,"ack_p99_us":..,
 * "ack_p999_us":..}: the time from each publish to its ack (the stream's store latency as a client
 * sees it; with --rate, at that load). Exit status 1 on any failure. */

#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <inttypes.h>
#include <nats/nats.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *arg_address = "nats://127.0.0.1:4222";
static const char *arg_stream = "BENCH";
static const char *arg_subject = "bench.p.s";
static uint64_t arg_count = 100000;
static uint64_t arg_size = 100;
static int64_t arg_in_flight = 4096;
static int arg_replicas = 1;
static int arg_headers = 4;
static bool arg_json = false;
static uint64_t arg_rate = 0;

static volatile int64_t failed;
static int64_t *sent_ns; /* per message: the publish time, then (on its ack) the latency */

static void on_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure) {
        const char *v = NULL;
        uint64_t i;

        if (!pa)
                __atomic_add_fetch(&failed, 1, __ATOMIC_RELAXED);
        else if (natsMsgHeader_Get(msg, "Dpipe-Offset", &v) == NATS_OK && v && (i = strtoull(v, NULL, 10)) < arg_count)
                sent_ns[i] = nats_NowInNanoSeconds() - sent_ns[i];
        natsMsg_Destroy(msg);
}

static int cmp_i64(const void *a, const void *b) {
        int64_t x = *(const int64_t *) a, y = *(const int64_t *) b;

        return x < y ? -1 : x > y;
}

static int parse_args(int argc, char *argv[]) {
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "address", required_argument, NULL, 'a' },
                { "stream", required_argument, NULL, 'S' },
                { "subject", required_argument, NULL, 's' },
                { "count", required_argument, NULL, 'n' },
                { "size", required_argument, NULL, 'z' },
                { "in-flight", required_argument, NULL, 'f' },
                { "replicas", required_argument, NULL, 'r' },
                { "headers", required_argument, NULL, 'H' },
                { "json", no_argument, NULL, 'j' },
                { "rate", required_argument, NULL, 'R' },
                {}
        };
        int c;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        printf("%s [OPTIONS...]\n\nPublishes to JetStream as fast as cnats can, for bench/sink-bench.sh.\n\n"
                               "  -h --help          Show this help\n"
                               "     --address=URLS  nats://HOST:PORT[,...] (default: nats://127.0.0.1:4222)\n"
                               "     --stream=NAME   Stream, created when absent (default: BENCH)\n"
                               "     --subject=SUBJ  Subject (default: bench.p.s)\n"
                               "     --count=N       Messages (default: 100000)\n"
                               "     --size=BYTES    Payload size (default: 100)\n"
                               "     --in-flight=N   Unacknowledged publishes at most (default: 4096)\n"
                               "     --replicas=N    Replicas of a stream created (default: 1)\n"
                               "     --headers=N     Only the first N of the four headers (default: 4)\n"
                               "     --json          bench-consumer's payload (see the source)\n"
                               "     --rate=N        At most N messages/s (default: as fast as it can)\n",
                               program_invocation_short_name);
                        exit(EXIT_SUCCESS);
                case 'a':
                        arg_address = optarg;
                        break;
                case 'S':
                        arg_stream = optarg;
                        break;
                case 's':
                        arg_subject = optarg;
                        break;
                case 'n':
                        arg_count = strtoull(optarg, NULL, 10);
                        break;
                case 'z':
                        arg_size = strtoull(optarg, NULL, 10);
                        break;
                case 'f':
                        arg_in_flight = strtoll(optarg, NULL, 10);
                        break;
                case 'r':
                        arg_replicas = atoi(optarg);
                        break;
                case 'H':
                        arg_headers = atoi(optarg);
                        break;
                case 'j':
                        arg_json = true;
                        break;
                case 'R':
                        arg_rate = strtoull(optarg, NULL, 10);
                        break;
                default:
                        return -1;
                }
        if (arg_count == 0 || arg_size == 0 || arg_size > 1000000 || (arg_json && arg_size < 64) || arg_in_flight < 1 || arg_replicas < 1 ||
            arg_replicas > 5 || arg_headers < 0 || arg_headers > 4) {
                fprintf(stderr, "Invalid --count, --size, --in-flight or --replicas\n");
                return -1;
        }
        return 0;
}

static int fail(const char *what, natsStatus s) {
        fprintf(stderr, "%s: %s (%s)\n", what, natsStatus_GetText(s), nats_GetLastError(NULL) ?: "");
        return EXIT_FAILURE;
}

int main(int argc, char *argv[]) {
        natsConnection *nc = NULL;
        natsOptions *opts = NULL;
        jsStreamInfo *si = NULL;
        jsCtx *js = NULL;
        jsErrCode jerr = 0;
        jsOptions jo;
        char *data;
        natsStatus s;
        int64_t start, end;

        if (parse_args(argc, argv) < 0)
                return EXIT_FAILURE;
        data = malloc(arg_size);
        sent_ns = calloc(arg_count, sizeof(int64_t));
        if (!data || !sent_ns)
                return EXIT_FAILURE;
        memset(data, 'x', arg_size);

        s = natsOptions_Create(&opts);
        if (s == NATS_OK) {
                /* natsOptions_SetURL() takes one URL: the list is split here. */
                char *copy = strdup(arg_address), *save = NULL;
                const char *servers[16];
                int n = 0;

                if (!copy)
                        return EXIT_FAILURE;
                for (char *t = strtok_r(copy, ",", &save); t && n < (int) (sizeof(servers) / sizeof(servers[0]));
                     t = strtok_r(NULL, ",", &save))
                        servers[n++] = t;
                s = natsOptions_SetServers(opts, servers, n);
                free(copy);
        }
        if (s == NATS_OK)
                s = natsOptions_SetIOBufSize(opts, 256 * 1024);
        if (s == NATS_OK)
                s = natsConnection_Connect(&nc, opts);
        if (s != NATS_OK)
                return fail("connect", s);
        jsOptions_Init(&jo);
        jo.PublishAsync.AckHandler = on_ack;
        jo.PublishAsync.MaxPending = arg_in_flight;
        jo.PublishAsync.StallWait = 60000;
        s = natsConnection_JetStream(&js, nc, &jo);
        if (s != NATS_OK)
                return fail("JetStream", s);
        s = js_GetStreamInfo(&si, js, arg_stream, NULL, &jerr);
        if (s == NATS_NOT_FOUND || jerr == JSStreamNotFoundErr) {
                jsStreamConfig cfg;
                const char *subjects[1] = { arg_subject };

                jsStreamConfig_Init(&cfg);
                cfg.Name = arg_stream;
                cfg.Subjects = subjects;
                cfg.SubjectsLen = 1;
                cfg.Storage = js_FileStorage;
                cfg.Replicas = arg_replicas;
                /* A cluster that just started may not know its peers yet ("no suitable peers"). */
                for (int tries = 0; tries < 60; tries++) {
                        s = js_AddStream(&si, js, &cfg, NULL, &jerr);
                        if (s == NATS_OK || jerr == JSStreamNameExistErr)
                                break;
                        nats_Sleep(500);
                }
                if (jerr == JSStreamNameExistErr)
                        s = NATS_OK;
        }
        if (s != NATS_OK)
                return fail("stream", s);
        jsStreamInfo_Destroy(si);

        start = nats_NowInNanoSeconds();
        for (uint64_t i = 0; i < arg_count; i++) {
                char id[64], offset[24], ts[24];
                natsMsg *m = NULL;

                /* --rate: ahead of the schedule by a millisecond's worth at most. */
                while (arg_rate > 0 && i * 1000000000 / arg_rate > (uint64_t) (nats_NowInNanoSeconds() - start) + 1000000)
                        nats_Sleep(1);
                (void) snprintf(offset, sizeof(offset), "%" PRIu64, i);
                (void) snprintf(id, sizeof(id), "bench:%" PRIu64, i);
                (void) snprintf(ts, sizeof(ts), "%" PRId64, start / 1000 + (int64_t) i);
                if (arg_json) {
                        struct timespec now;
                        int k;

                        (void) clock_gettime(CLOCK_MONOTONIC, &now);
                        k = snprintf(data, arg_size, "{\"s\":0,\"i\":%" PRIu64 ",\"t\":%" PRIu64 ",\"p\":\"", i,
                                     (uint64_t) now.tv_sec * 1000000 + (uint64_t) now.tv_nsec / 1000);
                        memset(data + k, 'x', arg_size - (size_t) k - 2);
                        memcpy(data + arg_size - 2, "\"}", 2);
                }
                s = natsMsg_Create(&m, arg_subject, NULL, data, (int) arg_size);
                if (s == NATS_OK && arg_headers > 0)
                        s = natsMsgHeader_Set(m, "Nats-Msg-Id", id);
                if (s == NATS_OK && arg_headers > 1)
                        s = natsMsgHeader_Set(m, "Dpipe-Source", "bench");
                if (s == NATS_OK && arg_headers > 2)
                        s = natsMsgHeader_Set(m, "Dpipe-Offset", offset);
                if (s == NATS_OK && arg_headers > 3)
                        s = natsMsgHeader_Set(m, "Dpipe-Ts", ts);
                sent_ns[i] = nats_NowInNanoSeconds();
                if (s == NATS_OK)
                        s = js_PublishMsgAsync(js, &m, NULL);
                natsMsg_Destroy(m);
                if (s != NATS_OK)
                        return fail("publish", s);
        }
        {
                jsPubOptions po;

                jsPubOptions_Init(&po);
                po.MaxWait = 120000;
                s = js_PublishAsyncComplete(js, &po);
                if (s != NATS_OK)
                        return fail("waiting for the acks", s);
        }
        end = nats_NowInNanoSeconds();
        qsort(sent_ns, arg_count, sizeof(int64_t), cmp_i64);
        printf("{\"rate\":%.0f,\"seconds\":%.3f,\"failed\":%" PRId64 ",\"ack_p50_us\":%" PRId64
               ",\"ack_p99_us\":%" PRId64 ",\"ack_p999_us\":%" PRId64 "}\n",
               (double) arg_count / ((double) (end - start) / 1e9), (double) (end - start) / 1e9, failed,
               sent_ns[arg_count / 2] / 1000, sent_ns[arg_count * 99 / 100] / 1000, sent_ns[arg_count * 999 / 1000] / 1000);

        jsCtx_Destroy(js);
        natsConnection_Destroy(nc);
        natsOptions_Destroy(opts);
        free(data);
        free(sent_ns);
        nats_Close();
        return failed > 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
