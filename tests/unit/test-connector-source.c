/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The connector library's per-source logic without sockets: where a source resumes, how records
 * are numbered and batched, when a position becomes the persisted cursor, and the backoff. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "connector-internal.h"

typedef struct DummyConfig {
        char *address;
} DummyConfig;

static const ConnectorOption dummy_options[] = {
        CONNECTOR_OPTION_STRING("address", DummyConfig, address, NULL, true, "where"),
        {}
};

static unsigned starts, stops;
static void dummy_start(Source *s) {
        starts++;
}
static void dummy_stop(Source *s) {
        stops++;
}

static const ConnectorType dummy_connector = {
        .name = "dummy",
        .config_size = sizeof(DummyConfig),
        .options = dummy_options,
        .start = dummy_start,
        .stop = dummy_stop,
};

typedef struct Fixture {
        char dir[64];
        Manager *m;
} Fixture;

static int setup(void **state) {
        Fixture *f = calloc(1, sizeof(Fixture));

        assert_non_null(f);
        strcpy(f->dir, "/tmp/test-connector-source.XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        /* No writer listens in f->dir: the client keeps retrying in the background, which is fine. */
        assert_int_equal(manager_new(&dummy_connector, f->dir, f->dir, 0, &f->m), 0);
        starts = stops = 0;
        *state = f;
        return 0;
}

static int teardown(void **state) {
        Fixture *f = *state;
        char cmd[128];

        manager_free(f->m);
        (void) snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
        assert_int_equal(system(cmd), 0);
        free(f);
        return 0;
}

static Source *add(Fixture *f, const char *name) {
        json_object *o = json_tokener_parse("{\"address\":\"x\"}");
        char *msg = NULL;
        Source *s = NULL;

        assert_int_equal(source_new(f->m, name, o, false, &msg, &s), 0);
        json_object_put(o);
        assert_null(msg);
        return s;
}

/* Takes the oldest unacked batch as if the writer had acked it. */
static void ack_one(Fixture *f, Source *s) {
        WriterClient *w = &f->m->writer;
        Batch *b = w->batches_head;

        assert_non_null(b);
        LIST_REMOVE_TAIL(batches, w->batches_head, w->batches_tail, b);
        source_batch_acked(s, b);
        writer_client_recycle_batch(w, b);
}

static void test_resume_from_writer(void **state) {
        Fixture *f = *state;
        Source *s = add(f, "a");

        /* Nothing starts before the writer said where the source stands. */
        assert_int_equal(s->core.state, SOURCE_CONNECTING);
        assert_int_equal(starts, 0);
        source_resume_known(s, true, 41);
        assert_int_equal(starts, 1);
        assert_true(source_next_seq(s) == 42);

        /* Peer-numbered records: older seqs are duplicates, newer ones advance next_seq. */
        assert_int_equal(source_emit_seq(s, 40, "1", 1), 0);
        assert_int_equal(source_emit_seq(s, 42, "2", 1), 1);
        assert_int_equal(source_emit_seq(s, 45, "3", 1), 1);
        assert_true(source_next_seq(s) == 46);
        assert_true(s->records == 2);
        assert_non_null(s->open_batch);
        assert_int_equal(s->open_batch->count, 2);
        assert_true(s->open_batch->first_seq == 42 && s->open_batch->last_seq == 45);

        source_flush(s);
        assert_null(s->open_batch);
        assert_non_null(f->m->writer.batches_head);
        assert_int_equal(s->unacked_batches, 1);
        ack_one(f, s);
        assert_int_equal(s->unacked_batches, 0);
        /* Without positions the cursor is just the seq. */
        assert_null(s->position);
        assert_true(s->cursor_seq == 46);
}

static void test_empty_writer(void **state) {
        Fixture *f = *state;
        Source *s = add(f, "b");

        source_resume_known(s, false, 0);
        assert_true(source_next_seq(s) == 0);
        assert_int_equal(source_emit(s, "{}", 2), 1);
        assert_int_equal(source_emit(s, "[]", 2), 1);
        assert_true(source_next_seq(s) == 2);
}

static void test_seq_limit(void **state) {
        Fixture *f = *state;
        Source *s = add(f, "d"), *t;
        WriterClient *w = &f->m->writer;
        Batch *b;

        /* The largest seq is fine; UINT64_MAX is refused and nothing moves. */
        source_resume_known(s, true, SOURCE_SEQ_MAX - 2);
        assert_int_equal(source_emit_seq(s, SOURCE_SEQ_MAX, "1", 1), 1);
        assert_true(source_next_seq(s) == SOURCE_SEQ_INVALID);
        assert_int_equal(source_emit_seq(s, SOURCE_SEQ_INVALID, "2", 1), -ERANGE);
        assert_int_equal(source_emit(s, "3", 1), -ERANGE);
        assert_true(s->records == 1);

        /* A queue that holds UINT64_MAX already (an older version stored it): the source fails
         * with the reason instead of resuming at 0, where everything would be a duplicate. */
        t = add(f, "e");
        source_resume_known(t, true, UINT64_MAX);
        assert_int_equal(t->core.state, SOURCE_FAILED);
        assert_int_equal(starts, 1); /* only d started */
        assert_non_null(strstr(t->core.error, "no record can follow"));

        /* A batch the writer refuses: its records are skipped with the reason, not sent again. */
        source_flush(s);
        b = w->batches_head;
        assert_non_null(b);
        LIST_REMOVE_TAIL(batches, w->batches_head, w->batches_tail, b);
        source_batch_refused(s, b, "record 0 (seq 1) is not one JSON value on one line");
        writer_client_recycle_batch(w, b);
        assert_true(s->skipped == 1);
        assert_int_equal(s->unacked_batches, 0);
        assert_non_null(strstr(s->skip_reason, "refused by the writer: record 0 (seq 1)"));
}

static void test_position_after_ack(void **state) {
        Fixture *f = *state;
        Source *s = add(f, "c");
        char path[128];

        source_resume_known(s, false, 0);
        assert_int_equal(source_emit(s, "1", 1), 1);
        assert_int_equal(source_set_position(s, "{\"offset\":2}"), 0);
        source_flush(s);
        /* Not acked yet: the old (no) position stays. */
        assert_null(s->position);

        /* A position set while a batch is in flight waits for it. */
        assert_int_equal(source_set_position(s, "{\"offset\":3}"), 0);
        assert_null(s->position);
        assert_int_equal(source_emit(s, "2", 1), 1);
        assert_int_equal(source_set_position(s, "{\"offset\":5}"), 0);
        source_flush(s);

        ack_one(f, s);
        /* The first batch's own position, then the pending one that was valid after it. */
        assert_string_equal(s->position, "{\"offset\":3}");
        assert_true(s->cursor_seq == 1);
        ack_one(f, s);
        assert_string_equal(s->position, "{\"offset\":5}");
        assert_true(s->cursor_seq == 2);

        /* Persisted, and read back by a new source of the same name. */
        assert_int_equal(source_save_cursor(s), 0);
        (void) snprintf(path, sizeof(path), "%s/connector-dummy/c.cursor", f->dir);
        assert_int_equal(access(path, F_OK), 0);
        source_remove(s);
        assert_int_equal(access(path, F_OK), -1); /* remove forgets the cursor */
}

static void test_cursor_reload(void **state) {
        Fixture *f = *state;
        Source *s = add(f, "d");

        source_resume_known(s, false, 0);
        assert_int_equal(source_emit(s, "1", 1), 1);
        assert_int_equal(source_emit(s, "2", 1), 1);
        assert_int_equal(source_set_position(s, "{\"offset\":9}"), 0);
        source_flush(s);
        ack_one(f, s);
        assert_int_equal(source_save_cursor(s), 0);
        assert_null(manager_find_source(f->m, "e"));

        /* Simulate a restart: drop the source without remove (keeps the cursor), add it again. */
        service_delete(&f->m->service, s->name);
        source_free(s);
        s = add(f, "d");
        assert_string_equal(source_position(s), "{\"offset\":9}");
        /* The writer has more than the cursor (acked, cursor not yet written): with a position the
         * cursor's seq wins, so re-read records get the same seqs and are dropped as duplicates. */
        source_resume_known(s, true, 7);
        assert_true(source_next_seq(s) == 2);
}

static void test_pause_resume(void **state) {
        Fixture *f = *state;
        Source *s = add(f, "p");

        source_resume_known(s, false, 0);
        assert_int_equal(starts, 1);
        source_pause(s);
        assert_int_equal(s->core.state, SOURCE_PAUSED);
        assert_int_equal(stops, 1);
        source_resume(s);
        assert_int_equal(starts, 2);
        assert_int_equal(s->core.state, SOURCE_CONNECTING);

        /* A failure stops the source and waits in backoff; the error is kept. */
        assert_int_equal(source_fail(s, -ECONNREFUSED, "connect to %s failed", "x"), -ECONNREFUSED);
        assert_int_equal(s->core.state, SOURCE_BACKOFF);
        assert_int_equal(stops, 2);
        assert_string_equal(s->core.error, "connect to x failed: Connection refused");
        assert_non_null(s->core.backoff_timer);
        /* The source's backoff is the jittered one of the connectors, and counted the failure. */
        assert_int_equal(s->core.backoff.attempt, 1);
        assert_true(s->core.backoff.jitter);
        assert_int_equal(s->core.backoff.min_usec, BACKOFF_MIN_USEC);
        assert_int_equal(s->core.backoff.max_usec, BACKOFF_MAX_USEC);
}

/* A batch is flushed before a record would take it over BATCH_FLUSH_BYTES (its buffer does not
 * double for the last record), and all open batches together stay within BATCH_OPEN_BUDGET, the
 * oldest flushed first, whatever the number of sources: no record is lost or reordered on the way. */
static void test_batch_bounds(void **state) {
        Fixture *f = *state;
        WriterClient *w = &f->m->writer;
        char rec[1002], name[16];
        Source *src[20];
        uint64_t total = 0, seen = 0;

        memset(rec, ' ', sizeof(rec));
        rec[0] = '"', rec[sizeof(rec) - 1] = '"';
        for (unsigned i = 0; i < ELEMENTSOF(src); i++) {
                (void) snprintf(name, sizeof(name), "s%u", i);
                src[i] = add(f, name);
                source_resume_known(src[i], false, 0);
        }
        /* 200 KB into each source in turn: each stays below its own limit, all together not. */
        for (unsigned i = 0; i < ELEMENTSOF(src); i++)
                for (unsigned k = 0; k < 200; k++) {
                        assert_int_equal(source_emit(src[i], rec, sizeof(rec)), 1);
                        total++;
                        assert_true(f->m->open_bytes <= BATCH_OPEN_BUDGET);
                }
        /* The first sources were flushed, in the order they were opened; the last is still open. */
        assert_non_null(w->batches_head);
        assert_string_equal(w->batches_head->source, "s0");
        assert_non_null(src[ELEMENTSOF(src) - 1]->open_batch);
        for (unsigned i = 0; i < ELEMENTSOF(src); i++)
                source_flush(src[i]);
        assert_int_equal(f->m->open_bytes, 0);
        for (Batch *b = w->batches_head; b; b = b->batches_next) {
                assert_true(buffer_size(&b->frame) <= BATCH_FLUSH_BYTES);
                assert_true(b->frame.allocated <= BATCH_FLUSH_BYTES);
                assert_int_equal(b->last_seq - b->first_seq + 1, b->count);
                seen += b->count;
        }
        assert_int_equal(seen, total);

        /* One source alone: batches end below BATCH_FLUSH_BYTES, in seq order. */
        for (unsigned k = 0; k < 600; k++)
                assert_int_equal(source_emit(src[0], rec, sizeof(rec)), 1);
        source_flush(src[0]);
        for (Batch *b = w->batches_head, *prev = NULL; b; prev = b, b = b->batches_next) {
                assert_true(b->frame.allocated <= BATCH_FLUSH_BYTES);
                if (prev && streq(prev->source, "s0") && streq(b->source, "s0"))
                        assert_int_equal(b->first_seq, prev->last_seq + 1);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_resume_from_writer, setup, teardown),
                cmocka_unit_test_setup_teardown(test_empty_writer, setup, teardown),
                cmocka_unit_test_setup_teardown(test_seq_limit, setup, teardown),
                cmocka_unit_test_setup_teardown(test_position_after_ack, setup, teardown),
                cmocka_unit_test_setup_teardown(test_cursor_reload, setup, teardown),
                cmocka_unit_test_setup_teardown(test_pause_resume, setup, teardown),
                cmocka_unit_test_setup_teardown(test_batch_bounds, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
