/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The framed connection of every dpipe link: frames in order, held and resumed, EOF with whole
 * frames first, an oversized frame refused, and the connecting side's connect, backoff and retry
 * against a real Unix socket on a real sd_event loop. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "frame-conn.h"
#include "io-util.h"
#include "json-util.h"
#include "socket-util.h"
#include "util.h"

typedef struct Peer {
        FrameConn conn;
        unsigned n_frames;
        uint32_t sizes[64];
        unsigned hold_at;   /* frame() returns FRAME_CONN_HOLD for the frame with this number (1-based) */
        int closed;         /* 1 + reason, 0: not closed */
        int closed_reason;
        unsigned n_connected;
        unsigned n_retries;
} Peer;

static int peer_frame(FrameConn *c, const Frame *f) {
        Peer *p = c->userdata;

        if (p->hold_at == p->n_frames + 1) {
                p->hold_at = 0;
                return FRAME_CONN_HOLD;
        }
        assert_true(p->n_frames < ELEMENTSOF(p->sizes));
        p->sizes[p->n_frames++] = f->size;
        return 0;
}

static void peer_closed(FrameConn *c, int reason) {
        Peer *p = c->userdata;

        p->closed = 1;
        p->closed_reason = reason;
        (void) sd_event_exit(c->event, 0);
}

static int peer_connected(FrameConn *c) {
        _cleanup_json_ struct json_object *o = json_tokener_parse("{\"op\":\"hello\"}");
        Peer *p = c->userdata;

        p->n_connected++;
        return frame_conn_send_json(c, o);
}

static void peer_retry(FrameConn *c) {
        Peer *p = c->userdata;

        p->n_retries++;
}

static const FrameConnOps peer_ops = {
        .connected = peer_connected,
        .frame = peer_frame,
        .closed = peer_closed,
        .retry = peer_retry,
};

/* Runs the loop until it exits or n iterations pass without work. */
static void run_loop(sd_event *e, unsigned n) {
        for (unsigned i = 0; i < n; i++)
                if (sd_event_run(e, 20 * USEC_PER_MSEC) < 0 || sd_event_get_state(e) == SD_EVENT_FINISHED)
                        break;
}

static void write_frame(int fd, uint16_t type, size_t size) {
        Buffer b = {};
        char *payload = calloc(1, size + 1);

        assert_non_null(payload);
        assert_int_equal(frame_append(&b, type, payload, (uint32_t) size), 0);
        assert_int_equal(loop_write(fd, buffer_begin(&b), buffer_size(&b)), 0);
        buffer_done(&b);
        free(payload);
}

/* Frames arrive in order however they are cut; a held one stays until resumed; EOF after the
 * last whole frame closes with reason 0. */
static void test_frames_hold_eof(void **state) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        Peer p = { .hold_at = 3 };
        int pair[2];

        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, pair), 0);
        frame_conn_init(&p.conn, e, &(FrameConnConfig) { .frame_max = 1 << 20, .read_min = 16 }, &peer_ops, &p);
        assert_int_equal(frame_conn_adopt(&p.conn, pair[0]), 0);
        assert_true(frame_conn_is_connected(&p.conn));

        for (size_t i = 1; i <= 5; i++)
                write_frame(pair[1], FRAME_BATCH, i * 1000); /* several reads of 16+ bytes each */
        run_loop(e, 50);
        assert_int_equal(p.n_frames, 2); /* the third is held */
        assert_true(p.conn.held);
        assert_int_equal(frame_conn_resume(&p.conn), 0);
        assert_true(p.n_frames >= 3); /* what was read already; the rest waits in the socket */
        run_loop(e, 50);
        assert_int_equal(p.n_frames, 5);
        for (unsigned i = 0; i < 5; i++)
                assert_int_equal(p.sizes[i], (i + 1) * 1000);

        write_frame(pair[1], FRAME_CONTROL, 7);
        safe_close(pair[1]);
        run_loop(e, 50);
        assert_int_equal(p.n_frames, 6); /* the frame before the EOF still counted */
        assert_int_equal(p.closed, 1);
        assert_int_equal(p.closed_reason, 0);
        assert_false(frame_conn_is_open(&p.conn));
        frame_conn_done(&p.conn);
}

/* A header that announces more than frame_max ends the connection with -EMSGSIZE. */
static void test_too_big(void **state) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        Peer p = {};
        uint8_t h[FRAME_HEADER_SIZE] = {};
        int pair[2];

        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, pair), 0);
        frame_conn_init(&p.conn, e, &(FrameConnConfig) { .frame_max = 4096, .read_min = 4096 }, &peer_ops, &p);
        assert_int_equal(frame_conn_adopt(&p.conn, pair[0]), 0);
        le32_put(h, 4097);
        le16_put(h + 4, FRAME_BATCH);
        assert_int_equal(loop_write(pair[1], h, sizeof(h)), 0);
        run_loop(e, 50);
        assert_int_equal(p.closed, 1);
        assert_int_equal(p.closed_reason, -EMSGSIZE);
        safe_close(pair[1]);
        frame_conn_done(&p.conn);
}

/* No input is handled while out_max of output waits; once it is written, the input is. */
static void test_out_max(void **state) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        Peer p = {};
        int pair[2];

        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, pair), 0);
        frame_conn_init(&p.conn, e, &(FrameConnConfig) { .frame_max = 1 << 20, .read_min = 4096, .out_max = 100 },
                        &peer_ops, &p);
        assert_int_equal(frame_conn_adopt(&p.conn, pair[0]), 0);
        for (int i = 0; i < 10; i++) /* 100 bytes waiting: the limit */
                assert_int_equal(buffer_append(&p.conn.out, "0123456789", 10), 0);
        assert_int_equal(frame_append(&p.conn.in, FRAME_BATCH, "abc", 3), 0);
        assert_int_equal(frame_conn_resume(&p.conn), 0);
        assert_int_equal(p.n_frames, 0);
        run_loop(e, 10); /* the loop writes the output, then takes the input */
        assert_int_equal(buffer_size(&p.conn.out), 0);
        assert_int_equal(frame_conn_resume(&p.conn), 0);
        assert_int_equal(p.n_frames, 1);
        assert_int_equal(p.sizes[0], 3);
        safe_close(pair[1]);
        frame_conn_done(&p.conn);
}

/* The connecting side: nothing listens, the owner retries with backoff; once a server listens,
 * the connect completes, connected() sends, the server gets it. */
static void test_connect_retry(void **state) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        _cleanup_close_ int lfd = -EBADF, sfd = -EBADF;
        char dir[] = "/tmp/test-frame-conn.XXXXXX", path[128];
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        Peer p = {};
        Buffer in = {};
        Frame f;

        assert_non_null(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/s.sock", dir);
        assert_int_equal(sd_event_new(&e), 0);
        frame_conn_init(&p.conn, e,
                        &(FrameConnConfig) { .frame_max = 1 << 20, .read_min = 4096,
                                             .backoff = BACKOFF_INIT(10 * USEC_PER_MSEC, 40 * USEC_PER_MSEC, false) },
                        &peer_ops, &p);

        assert_true(frame_conn_connect(&p.conn, path) < 0); /* nobody there */
        assert_false(frame_conn_is_open(&p.conn));
        assert_int_equal(frame_conn_schedule_retry(&p.conn), 10 * USEC_PER_MSEC);
        assert_true(frame_conn_retry_pending(&p.conn));
        assert_int_equal(frame_conn_schedule_retry(&p.conn), 0); /* armed already */
        run_loop(e, 10);
        assert_int_equal(p.n_retries, 1);
        assert_false(frame_conn_retry_pending(&p.conn));
        assert_int_equal(frame_conn_schedule_retry(&p.conn), 20 * USEC_PER_MSEC); /* doubled */
        frame_conn_cancel_retry(&p.conn);

        lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        strcpy(sa.sun_path, path);
        assert_int_equal(bind(lfd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        assert_int_equal(listen(lfd, 4), 0);
        assert_int_equal(frame_conn_connect(&p.conn, path), 0);
        run_loop(e, 5);
        assert_int_equal(p.n_connected, 1);
        assert_int_equal(p.conn.backoff.attempt, 0); /* a success resets the backoff */
        sfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        assert_true(sfd >= 0);
        while (frame_peek(&in, 1 << 20, &f) == 0)
                assert_true(buffer_read_fd(&in, sfd, 4096) > 0);
        assert_int_equal(f.type, FRAME_CONTROL);
        assert_memory_equal(f.payload, "{\"op\":\"hello\"}", f.size);

        frame_conn_done(&p.conn);
        buffer_done(&in);
        unlink(path);
        rmdir(dir);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_frames_hold_eof),
                cmocka_unit_test(test_too_big),
                cmocka_unit_test(test_out_max),
                cmocka_unit_test(test_connect_retry),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
