/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* dpipe.source(5) and dpipe.sink(5): the parser of one file (sections, comments, continuations,
 * Option= verbatim and its reset, errors with file:line), the listing of the directories
 * (precedence, masking, drop-ins in file-name order), and what differs between the two kinds. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "dpiped-def-file.h"
#include "dpiped-sink.h"
#include "dpiped-source.h"
#include "json-util.h"
#include "util.h"

static DefFile *new_file(const DefFileKind *kind) {
        DefFile *f = calloc(1, sizeof(DefFile));

        assert_non_null(f);
        f->kind = kind;
        return f;
}

static DefFile *parse_ok(const char *text) {
        DefFile *f = new_file(&def_file_kind_source);
        char error[DEF_FILE_ERROR_MAX] = "";
        int r;

        assert_non_null(f);
        r = def_file_parse(f, "x.source", text, strlen(text), error, sizeof(error));
        if (r < 0)
                fail_msg("unexpected error %d: %s", r, error);
        return f;
}

static void parse_bad(const char *text, const char *expected_error) {
        _cleanup_(def_file_freep) DefFile *f = new_file(&def_file_kind_source);
        char error[DEF_FILE_ERROR_MAX] = "";

        assert_non_null(f);
        assert_true(def_file_parse(f, "x.source", text, strlen(text), error, sizeof(error)) < 0);
        if (!strstr(error, expected_error))
                fail_msg("error \"%s\" does not contain \"%s\"", error, expected_error);
}

static const char *opt(DefFile *f, const char *key) {
        return json_get_string(f->options, key);
}

static void test_parse_basic(void **state) {
        _cleanup_(def_file_freep) DefFile *f = parse_ok("# comment\n"
                                                               "; another\n"
                                                               "\n"
                                                               "[Source]\r\n"
                                                               "  Type = tcp  \n"
                                                               "Address=127.0.0.1:9\n"
                                                               "Option=format=jsonl\n"
                                                               "X-Whatever=ignored\n"
                                                               "[X-Extension]\n"
                                                               "Type=not-read\n");

        assert_string_equal(f->type, "tcp");
        assert_string_equal(opt(f, "address"), "127.0.0.1:9");
        assert_string_equal(opt(f, "format"), "jsonl");
        assert_int_equal(json_object_object_length(f->options), 2);
        assert_string_equal(f->type_location, "x.source:5");
}

static void test_parse_verbatim(void **state) {
        _cleanup_(def_file_freep) DefFile *f = parse_ok(
                        "[Source]\n"
                        "Option=transform=select a,b; where m ~ \"a = b\";set k='v'\n"
                        "Option=query={\"op\":\"subscribe\",\"from\":0}\n"
                        "Option=empty=\n"
                        "Option=  padded=x  \n");

        assert_string_equal(opt(f, "transform"), "select a,b; where m ~ \"a = b\";set k='v'");
        assert_string_equal(opt(f, "query"), "{\"op\":\"subscribe\",\"from\":0}");
        assert_string_equal(opt(f, "empty"), "");
        assert_string_equal(opt(f, "padded"), "x");
}

static void test_parse_continuation(void **state) {
        _cleanup_(def_file_freep) DefFile *f = parse_ok("[Source]\n"
                                                               "Option=csv_header=a,\\\n"
                                                               "# a comment inside is dropped\n"
                                                               "b,\\\n"
                                                               "c\n"
                                                               "Type=tcp\\\n");

        assert_string_equal(opt(f, "csv_header"), "a, b, c");
        /* A continuation at the very end of the file ends there. */
        assert_string_equal(f->type, "tcp");
}

static void test_parse_reset(void **state) {
        _cleanup_(def_file_freep) DefFile *f = parse_ok("[Source]\n"
                                                               "Type=tcp\n"
                                                               "Address=h:1\n"
                                                               "Option=format=csv\n"
                                                               "Option=query=q\n"
                                                               "Option=\n"
                                                               "Option=format=jsonl\n"
                                                               "Option=format=lines\n");

        /* The reset empties the list, Address= is not part of it; a later key replaces an earlier. */
        assert_string_equal(opt(f, "address"), "h:1");
        assert_string_equal(opt(f, "format"), "lines");
        assert_null(opt(f, "query"));

        /* A drop-in on top: Type= and Address= replace, an empty Address= unsets. */
        char error[DEF_FILE_ERROR_MAX];
        const char *dropin = "[Source]\nType=http\nAddress=\n";
        assert_int_equal(def_file_parse(f, "x.conf", dropin, strlen(dropin), error, sizeof(error)), 0);
        assert_string_equal(f->type, "http");
        assert_null(opt(f, "address"));
        assert_string_equal(opt(f, "format"), "lines");
}

static void test_parse_errors(void **state) {
        parse_bad("Type=tcp\n", "x.source:1: Type= before any section");
        parse_bad("[Source]\nType=tcp\n[Unit]\n", "x.source:3: unknown section [Unit]");
        parse_bad("[Source]\n\nColour=blue\n", "x.source:3: unknown setting \"Colour\"");
        parse_bad("[Source]\njust words\n", "x.source:2: expected KEY=VALUE");
        parse_bad("[Source\n", "x.source:1: a section header must end with ']'");
        parse_bad("[Source]\nOption=novalue\n", "x.source:2: Option= takes KEY=VALUE");
        parse_bad("[Source]\nOption==v\n", "x.source:2: Option= takes KEY=VALUE");
        parse_bad("[Source]\nOption=address=h:1\n", "x.source:2: the address is set with Address=");
        parse_bad("[Source]\nType=bad/type\n", "x.source:2: invalid Type=");
        parse_bad("[Source]\nType=\\\ntcp\nFoo=1\n", "x.source:4: unknown setting \"Foo\"");
        parse_bad("[Source]\nType=tcp\xff\n", "x.source: the file is not UTF-8 text");

        _cleanup_(def_file_freep) DefFile *f = new_file(&def_file_kind_source);
        char error[DEF_FILE_ERROR_MAX] = "";
        assert_non_null(f);
        assert_int_equal(def_file_parse(f, "x.source", "[Source]\nType=t\0cp\n", 18, error, sizeof(error)), -EBADMSG);
        assert_string_equal(error, "x.source: the file contains a NUL byte");
}

/* ---- directories --------------------------------------------------------------------------------- */

static char root[] = "/tmp/test-dpiped-def-file.XXXXXX";

static void write_text(const char *rel, const char *text) {
        _cleanup_free_ char *path = path_join(root, rel);
        FILE *f;

        assert_non_null(path);
        f = fopen(path, "we");
        assert_non_null(f);
        fputs(text, f);
        assert_int_equal(fclose(f), 0);
}

static void make_dir(const char *rel) {
        _cleanup_free_ char *path = path_join(root, rel);
        assert_int_equal(mkdir_p(path, 0755), 0);
}

static void link_null(const char *rel) {
        _cleanup_free_ char *path = path_join(root, rel);
        assert_int_equal(symlink("/dev/null", path), 0);
}

static char problems[2048];

static void collect_problem(const char *path, const char *reason, void *userdata) {
        size_t n = strlen(problems);
        snprintf(problems + n, sizeof(problems) - n, "%s: %s\n", strrchr(path, '/') + 1, reason);
}

static const char *rel(const char *path) {
        return path + strlen(root);
}

static void test_enumerate(void **state) {
        _cleanup_free_ char *etc = NULL, *run = NULL, *lib = NULL;
        DefFileEntry *l = NULL;
        size_t n = 0;

        assert_non_null(mkdtemp(root));
        make_dir("etc");
        make_dir("run");
        make_dir("lib");
        etc = path_join(root, "etc");
        run = path_join(root, "run");
        lib = path_join(root, "lib");
        char *dirs[] = { etc, run, lib, (char *) "/nonexistent/dir", NULL };

        write_text("lib/a.source", "[Source]\n");
        write_text("run/a.source", "[Source]\n");
        write_text("etc/a.source", "[Source]\n");
        write_text("lib/b.source", "[Source]\n");
        link_null("etc/b.source");
        write_text("lib/c.source", "[Source]\n");
        write_text("run/c.source", "");
        write_text("lib/d.source", "[Source]\n");
        write_text("lib/.hidden.source", "[Source]\n");
        write_text("lib/bad name.source", "[Source]\n");
        write_text("lib/readme.txt", "not a source\n");
        make_dir("lib/d.source.d");
        make_dir("run/d.source.d");
        make_dir("etc/d.source.d");
        write_text("lib/d.source.d/10-x.conf", "[Source]\n");
        write_text("run/d.source.d/10-x.conf", "[Source]\n");
        write_text("etc/d.source.d/20-y.conf", "[Source]\n");
        write_text("lib/d.source.d/05-z.conf", "[Source]\n");
        write_text("lib/d.source.d/30-m.conf", "[Source]\n");
        link_null("etc/d.source.d/30-m.conf");
        write_text("lib/d.source.d/notes.txt", "ignored\n");
        /* Drop-ins of a name without a fragment do nothing. */
        make_dir("etc/orphan.source.d");
        write_text("etc/orphan.source.d/10.conf", "[Source]\n");

        problems[0] = 0;
        assert_int_equal(def_files_enumerate(&def_file_kind_source, dirs, collect_problem, NULL, &l, &n), 0);
        assert_int_equal(n, 2);
        assert_string_equal(l[0].name, "a");
        assert_string_equal(rel(l[0].path), "/etc/a.source");
        assert_int_equal(l[0].n_dropins, 0);
        assert_null(l[0].dropins[0]);
        assert_string_equal(l[1].name, "d");
        assert_string_equal(rel(l[1].path), "/lib/d.source");
        assert_int_equal(l[1].n_dropins, 3);
        assert_string_equal(rel(l[1].dropins[0]), "/lib/d.source.d/05-z.conf");
        assert_string_equal(rel(l[1].dropins[1]), "/run/d.source.d/10-x.conf");
        assert_string_equal(rel(l[1].dropins[2]), "/etc/d.source.d/20-y.conf");
        assert_null(l[1].dropins[3]);
        assert_non_null(strstr(problems, "bad name.source: \"bad name\" is not a valid source name"));
        def_file_entries_free(l, n);

        /* Loading: the fragment, then the drop-ins in order; normalised like AddSource (values as
         * written: their types are the connector's option table's, which parses text). */
        write_text("etc/a.source", "[Source]\nType=tcp\nAddress=h:1\nOption=interval_ms=250\n");
        assert_int_equal(def_files_enumerate(&def_file_kind_source, dirs, NULL, NULL, &l, &n), 0);
        DefFile *f = NULL;
        char error[DEF_FILE_ERROR_MAX] = "";
        assert_int_equal(def_file_load(&def_file_kind_source, &l[0], &f, error, sizeof(error)), 0);
        assert_string_equal(json_object_to_json_string_ext(f->options, JSON_C_TO_STRING_PLAIN),
                            "{\"address\":\"h:1\",\"interval_ms\":\"250\"}");
        f = def_file_free(f);
        /* d: no Type= anywhere. */
        assert_int_equal(def_file_load(&def_file_kind_source, &l[1], &f, error, sizeof(error)), -EINVAL);
        assert_non_null(strstr(error, "/lib/d.source: Type= is missing"));
        /* A refused value names the line that set it, in the drop-in that set it. */
        write_text("lib/d.source", "[Source]\nType=tcp\nAddress=h:2\n");
        write_text("etc/d.source.d/20-y.conf", "[Source]\n\nOption=time out=1\n");
        assert_int_equal(def_file_load(&def_file_kind_source, &l[1], &f, error, sizeof(error)), -EINVAL);
        assert_non_null(strstr(error, "/etc/d.source.d/20-y.conf:3: invalid option name \"time out\""));
        write_text("etc/d.source.d/20-y.conf", "[Source]\nAddress=a\tb\n");
        assert_int_equal(def_file_load(&def_file_kind_source, &l[1], &f, error, sizeof(error)), -EINVAL);
        assert_non_null(strstr(error, "/etc/d.source.d/20-y.conf:2: the address contains control characters"));
        def_file_entries_free(l, n);

        /* An empty list of directories is no source at all. */
        char *none[] = { NULL };
        assert_int_equal(def_files_enumerate(&def_file_kind_source, none, NULL, NULL, &l, &n), 0);
        assert_int_equal(n, 0);
        def_file_entries_free(l, n);

        /* The same directories hold sinks: the sink kind sees only NAME.sink and NAME.sink.d/. */
        write_text("lib/a.sink", "[Sink]\nType=file\nAddress=/var/lib/out/a.jsonl\nOption=max_bytes=1000\n");
        write_text("etc/a.sink", "");
        write_text("run/s.sink", "[Sink]\nType=file\nAddress=/var/lib/out/s.jsonl\n");
        make_dir("etc/s.sink.d");
        write_text("etc/s.sink.d/10-nats.conf", "[Sink]\nType=nats\nAddress=nats://127.0.0.1:4222\nOption=stream=X\n");
        write_text("lib/" "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.sink", "[Sink]\n");
        problems[0] = 0;
        assert_int_equal(def_files_enumerate(&def_file_kind_sink, dirs, collect_problem, NULL, &l, &n), 0);
        assert_int_equal(n, 1); /* a.sink is masked by the empty /etc/a.sink */
        assert_string_equal(l[0].name, "s");
        assert_string_equal(rel(l[0].path), "/run/s.sink");
        assert_int_equal(l[0].n_dropins, 1);
        assert_string_equal(rel(l[0].dropins[0]), "/etc/s.sink.d/10-nats.conf");
        assert_non_null(strstr(problems, "is not a valid sink name (1-59 characters"));
        assert_int_equal(def_file_load(&def_file_kind_sink, &l[0], &f, error, sizeof(error)), 0);
        assert_string_equal(f->type, "nats");
        assert_string_equal(json_object_to_json_string_ext(f->options, JSON_C_TO_STRING_PLAIN),
                            "{\"address\":\"nats:\\/\\/127.0.0.1:4222\",\"stream\":\"X\"}");
        f = def_file_free(f);
        /* A [Source] section is not a sink's. */
        write_text("etc/s.sink.d/10-nats.conf", "[Source]\nType=nats\n");
        assert_int_equal(def_file_load(&def_file_kind_sink, &l[0], &f, error, sizeof(error)), -EBADMSG);
        assert_non_null(strstr(error, "/etc/s.sink.d/10-nats.conf:1: unknown section [Source] (dpipe.sink(5) knows [Sink])"));
        write_text("etc/s.sink.d/10-nats.conf", "[Sink]\nOption=max bytes=1\n");
        assert_int_equal(def_file_load(&def_file_kind_sink, &l[0], &f, error, sizeof(error)), -EINVAL);
        assert_non_null(strstr(error, "/etc/s.sink.d/10-nats.conf:2: invalid option name \"max bytes\""));
        def_file_entries_free(l, n);

        char cmd[sizeof(root) + 16];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
        assert_int_equal(system(cmd), 0);
}

static void test_sink_parse(void **state) {
        _cleanup_(def_file_freep) DefFile *f = new_file(&def_file_kind_sink);
        char error[DEF_FILE_ERROR_MAX] = "";
        const char *text = "[Sink]\nType=file\nAddress=/tmp/out.jsonl\nOption=max_files=3\n";

        assert_int_equal(def_file_parse(f, "x.sink", text, strlen(text), error, sizeof(error)), 0);
        assert_string_equal(f->type, "file");
        assert_string_equal(opt(f, "address"), "/tmp/out.jsonl");
        assert_string_equal(opt(f, "max_files"), "3");
        text = "Type=file\n";
        assert_true(def_file_parse(f, "x.sink", text, strlen(text), error, sizeof(error)) < 0);
        assert_string_equal(error, "x.sink:1: Type= before any section: begin the file with [Sink]");
        text = "[Sink]\nPaused=yes\n";
        assert_true(def_file_parse(f, "x.sink", text, strlen(text), error, sizeof(error)) < 0);
        assert_string_equal(error, "x.sink:2: unknown setting \"Paused\" in [Sink] (known: Type=, Address=, Option=)");
        text = "[Sink]\nType=a/b\n";
        assert_true(def_file_parse(f, "x.sink", text, strlen(text), error, sizeof(error)) < 0);
        assert_string_equal(error, "x.sink:2: invalid Type=\"a/b\": a sink type such as file or nats");
}

static void test_def_files(void **state) {
        DefFiles d = {};
        char *dropins[] = { (char *) "/etc/x.sink.d/a.conf", (char *) "/run/x.sink.d/b.conf", NULL };
        char buf[256];

        assert_false(def_files_defined(&d));
        assert_true(def_files_equal(&d, NULL, NULL));
        assert_int_equal(def_files_set(&d, "/etc/x.sink", NULL), 0);
        assert_true(def_files_defined(&d));
        assert_true(def_files_equal(&d, "/etc/x.sink", NULL));
        assert_true(def_files_equal(&d, "/etc/x.sink", (char *[]) { NULL }));
        assert_false(def_files_equal(&d, "/run/x.sink", NULL));
        assert_false(def_files_equal(&d, "/etc/x.sink", dropins));
        assert_string_equal(def_files_describe(&d, buf, sizeof(buf)), "/etc/x.sink");
        assert_int_equal(def_files_set(&d, "/etc/x.sink", dropins), 0);
        assert_true(def_files_equal(&d, "/etc/x.sink", dropins));
        assert_false(def_files_equal(&d, "/etc/x.sink", dropins + 1));
        assert_string_equal(def_files_describe(&d, buf, sizeof(buf)), "/etc/x.sink and 2 drop-ins");
        def_files_done(&d);
        assert_false(def_files_defined(&d));
}

static void test_strv_split(void **state) {
        char **l = NULL;

        assert_int_equal(strv_split("/a::/b:", ':', &l), 0);
        assert_string_equal(l[0], "/a");
        assert_string_equal(l[1], "/b");
        assert_null(l[2]);
        l = strv_free(l);
        assert_int_equal(strv_split("", ':', &l), 0);
        assert_null(l[0]);
        l = strv_free(l);
        assert_int_equal(strv_split(":", ':', &l), 0);
        assert_null(l[0]);
        strv_free(l);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse_basic),    cmocka_unit_test(test_parse_verbatim),
                cmocka_unit_test(test_parse_continuation), cmocka_unit_test(test_parse_reset),
                cmocka_unit_test(test_parse_errors),   cmocka_unit_test(test_enumerate),
                cmocka_unit_test(test_strv_split),     cmocka_unit_test(test_sink_parse),
                cmocka_unit_test(test_def_files),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
