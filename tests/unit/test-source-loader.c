/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* dpipe-source's Loader: formats from file names, whole-file loading, --follow reads of appended
 * rows, truncation detected, error positions formatted as file:line:column. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "loader.h"

static char dir[] = "/tmp/test-source-loader.XXXXXX";

static char *write_file(const char *name, const char *text, const char *mode) {
        char *path;
        FILE *f;

        assert_true(asprintf(&path, "%s/%s", dir, name) > 0);
        f = fopen(path, mode);
        assert_non_null(f);
        fputs(text, f);
        fclose(f);
        return path;
}

static void test_formats(void **state) {
        DataFormat f;

        assert_int_equal(data_format_from_path("x/a.csv"), DATA_FORMAT_CSV);
        assert_int_equal(data_format_from_path("A.CSV"), DATA_FORMAT_CSV);
        assert_int_equal(data_format_from_path("a.json"), DATA_FORMAT_JSON);
        assert_int_equal(data_format_from_path("a.jsonl"), DATA_FORMAT_JSON);
        assert_int_equal(data_format_from_path("a.ndjson"), DATA_FORMAT_JSON);
        assert_int_equal(data_format_from_path("a.txt"), DATA_FORMAT_AUTO);
        assert_int_equal(data_format_from_string("csv", &f), 0);
        assert_int_equal(f, DATA_FORMAT_CSV);
        assert_int_equal(data_format_from_string("xml", &f), -EINVAL);
}

static void test_load(void **state) {
        LoaderOptions o = {};
        LoadError err = {};
        Loader *l = NULL;
        char *p = write_file("a.csv", "x,y\n1,2\n3,4\n", "w"), *q = write_file("data.txt", "x\n1\n", "w");
        char buf[512];

        assert_int_equal(loader_load(p, &o, &err, &l), 0);
        assert_int_equal(l->dataset->n_rows, 2);
        assert_int_equal(l->fd, -EBADF); /* closed without --follow */
        loader_free(l);

        /* No format from the name: refused, unless given. */
        assert_int_equal(loader_load(q, &o, &err, &l), -EPROTONOSUPPORT);
        o.format = DATA_FORMAT_CSV;
        assert_int_equal(loader_load(q, &o, &err, &l), 0);
        assert_int_equal(l->dataset->n_rows, 1);
        loader_free(l);
        o.format = DATA_FORMAT_AUTO;

        free(p);
        assert_true(asprintf(&p, "%s/missing.csv", dir) > 0);
        assert_int_equal(loader_load(p, &o, &err, &l), -ENOENT);
        free(p);

        p = write_file("bad.csv", "x,y\n1,\"2\n", "w");
        assert_int_equal(loader_load(p, &o, &err, &l), -EBADMSG);
        loader_format_error("bad.csv", &err, buf, sizeof(buf));
        assert_string_equal(buf, "bad.csv:2:3: unterminated quoted field at end of file");
        free(p);
        free(q);
}

static void test_follow(void **state) {
        LoaderOptions o = { .follow = true };
        LoadError err = {};
        Loader *l = NULL;
        char *p = write_file("f.csv", "x,y\n1,2\n", "w");

        assert_int_equal(loader_load(p, &o, &err, &l), 0);
        assert_true(l->can_follow);
        assert_int_equal(loader_read_more(l, &err), 0);
        free(write_file("f.csv", "3,4\n5,", "a"));
        assert_int_equal(loader_read_more(l, &err), 1);
        free(write_file("f.csv", "6\n", "a"));
        assert_int_equal(loader_read_more(l, &err), 1);
        assert_int_equal(l->dataset->n_rows, 3);
        /* Truncated: the caller must reload. */
        assert_int_equal(truncate(p, 4), 0);
        assert_int_equal(loader_read_more(l, &err), -ESTALE);
        loader_free(l);
        free(p);

        /* A JSON array cannot be followed; JSON Lines can. */
        p = write_file("a.json", "[{\"a\":1}]", "w");
        assert_int_equal(loader_load(p, &o, &err, &l), 0);
        assert_false(l->can_follow);
        loader_free(l);
        free(p);
        p = write_file("l.jsonl", "{\"a\":1}\n", "w");
        assert_int_equal(loader_load(p, &o, &err, &l), 0);
        assert_true(l->can_follow);
        free(write_file("l.jsonl", "{\"a\":2}\n", "a"));
        assert_int_equal(loader_read_more(l, &err), 1);
        loader_free(l);
        free(p);
}

static int setup(void **state) {
        return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state) {
        char *cmd;
        int r;

        if (asprintf(&cmd, "rm -rf '%s'", dir) < 0)
                return -1;
        r = system(cmd);
        free(cmd);
        return r == 0 ? 0 : -1;
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_formats),
                cmocka_unit_test(test_load),
                cmocka_unit_test(test_follow),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
