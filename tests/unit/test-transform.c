/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "json-scan.h"
#include "transform.h"

static const TransformEnv env = { .source = "web\"1", .host = "h1", .ts_us = 1700000000123456 };

/* Runs program on rec: the output bytes, or "FILTERED <step>", "SKIP <reason>", "INVALID <offset>". */
static char *run(const char *program, const char *rec) {
        _cleanup_(transform_freep) Transform *t = NULL;
        _cleanup_free_ char *error = NULL;
        _cleanup_(buffer_done) Buffer out = {};
        TransformResult res;
        char *s = NULL;

        if (transform_compile(program, &t, &error) < 0) {
                fail_msg("%s: %s", program, error);
                return NULL;
        }
        assert_int_equal(buffer_append(&out, "X", 1), 0); /* output is appended */
        assert_int_equal(transform_run(t, rec, strlen(rec), &env, &out, &res), 0);
        switch (res.verdict) {
        case TRANSFORM_EMIT:
                assert_true(json_scan_line_valid(buffer_begin(&out) + 1, buffer_size(&out) - 1));
                assert_int_equal(asprintf(&s, "%.*s", (int) buffer_size(&out) - 1, buffer_begin(&out) + 1) < 0, 0);
                break;
        case TRANSFORM_FILTERED:
                assert_int_equal(buffer_size(&out), 1);
                assert_int_equal(asprintf(&s, "FILTERED %u", res.step) < 0, 0);
                break;
        case TRANSFORM_SKIP:
                assert_int_equal(buffer_size(&out), 1);
                assert_int_equal(asprintf(&s, "SKIP %s", res.reason) < 0, 0);
                break;
        case TRANSFORM_INVALID:
                assert_int_equal(asprintf(&s, "INVALID %zu", res.error_offset) < 0, 0);
                break;
        }
        return s;
}

#define check(program, rec, expected)                                                                  \
        do {                                                                                           \
                _cleanup_free_ char *_got = run(program, rec);                                         \
                if (strcmp(_got, expected) != 0)                                                       \
                        fail_msg("%s on %s:\n got      %s\n expected %s", program, rec, _got, expected); \
        } while (0)

static char *compile_error(const char *program) {
        _cleanup_(transform_freep) Transform *t = NULL;
        char *error = NULL;

        assert_int_equal(transform_compile(program, &t, &error), -EINVAL);
        assert_null(t);
        assert_non_null(error);
        return error;
}

#define check_error(program, expected)                                                                 \
        do {                                                                                           \
                _cleanup_free_ char *_got = compile_error(program);                                    \
                if (strcmp(_got, expected) != 0)                                                       \
                        fail_msg("%s:\n got      %s\n expected %s", program, _got, expected);           \
        } while (0)

static void test_select(void **state) {
        check("select a,c", "{\"a\":1,\"b\":2,\"c\":[3]}", "{\"a\":1,\"c\":[3]}");
        /* Order is the record's; blanks inside values are kept as sent. */
        check("select c , a", "{ \"a\" : 1 , \"b\" : 2 , \"c\" : [3, 4] }", "{\"a\":1,\"c\":[3, 4]}");
        check("select missing", "{\"a\":1}", "{}");
        check("select a.b", "{\"a\":{\"b\":1,\"c\":2},\"d\":3}", "{\"a\":{\"b\":1}}");
        check("select a.b,a", "{\"a\":{\"b\":1,\"c\":2},\"d\":3}", "{\"a\":{\"b\":1,\"c\":2}}");
        check("select a.b.c", "{\"a\":{\"b\":{\"c\":1,\"d\":2},\"e\":3}}", "{\"a\":{\"b\":{\"c\":1}}}");
        /* A path through something that is no object selects nothing there. */
        check("select a.b", "{\"a\":[{\"b\":1}]}", "{}");
        /* A repeated name: the last one counts, as json-c reads it. */
        check("select a", "{\"a\":1,\"a\":2}", "{\"a\":2}");
}

static void test_drop(void **state) {
        check("drop b", "{\"a\":1,\"b\":2,\"c\":3}", "{\"a\":1,\"c\":3}");
        check("drop a.b, c", "{\"a\":{\"b\":1,\"x\":2},\"c\":3}", "{\"a\":{\"x\":2}}");
        check("drop nothing", "{\"a\":1}", "{\"a\":1}");
        check("drop a.b", "{\"a\":\"b\"}", "{\"a\":\"b\"}");
}

static void test_remove_everything(void **state) {
        check("drop a,b", "{\"a\":1,\"b\":{\"c\":2}}", "{}");
        check("select x", "{\"a\":1,\"b\":{\"c\":2}}", "{}");
        check("drop a.c,a", "{\"a\":{\"c\":1}}", "{}");
        check("drop a", "{}", "{}");
}

static void test_rename(void **state) {
        check("rename a=x", "{\"a\":1,\"b\":2}", "{\"x\":1,\"b\":2}");
        check("rename a=x,b=y", "{\"a\":1,\"b\":2}", "{\"x\":1,\"y\":2}");
        /* The new name replaces a field that had it. */
        check("rename a=b", "{\"a\":1,\"b\":2}", "{\"b\":1}");
        check("rename a.b=a.c", "{\"a\":{\"b\":1,\"d\":2}}", "{\"a\":{\"c\":1,\"d\":2}}");
        /* Moves: up, down, into a new object. */
        check("rename a.b=top", "{\"a\":{\"b\":1,\"d\":2},\"z\":0}", "{\"a\":{\"d\":2},\"z\":0,\"top\":1}");
        check("rename z=a.z", "{\"a\":{\"b\":1},\"z\":0}", "{\"a\":{\"b\":1,\"z\":0}}");
        check("rename z=n.m", "{\"z\":0}", "{\"n\":{\"m\":0}}");
        check("rename a=a.b", "{\"a\":{\"c\":1}}", "{\"a\":{\"b\":{\"c\":1}}}");
        check("rename missing=x", "{\"a\":1}", "{\"a\":1}");
        /* A name that needs escaping is written escaped. */
        check("rename a=\"q\\\"t\"", "{\"a\":1}", "{\"q\\\"t\":1}");
        /* A subtree moved up from deeper than the scan listed is opened when a later step needs it. */
        check("rename a.b=x; drop x.c", "{\"a\":{\"b\":{\"c\":1,\"d\":2}}}", "{\"a\":{},\"x\":{\"d\":2}}");
}

static void test_where(void **state) {
        const char *rec = "{\"n\":5,\"s\":\"abc\",\"f\":2.5,\"t\":true,\"z\":null,\"ns\":\"10\"}";

        check("where n == 5", rec, rec);
        check("where n == 5.0", rec, rec);
        check("where n == 6", rec, "FILTERED 1");
        check("where n != 6", rec, rec);
        check("where n != 5", rec, "FILTERED 1");
        check("where n < 6", rec, rec);
        check("where n < 5", rec, "FILTERED 1");
        check("where n <= 5", rec, rec);
        check("where n <= 4.9", rec, "FILTERED 1");
        check("where n > 4", rec, rec);
        check("where n > 5", rec, "FILTERED 1");
        check("where n >= 5", rec, rec);
        check("where n >= 5.1", rec, "FILTERED 1");
        check("where f > 2", rec, rec);
        /* Numeric when both sides are numbers, also a number in a string; else bytes compare. */
        check("where ns > 9", rec, rec);
        check("where ns > \"9\"", rec, "FILTERED 1");
        check("where s == abc", rec, rec);
        check("where s == \"abc\"", rec, rec);
        check("where s != abc", rec, "FILTERED 1");
        check("where s < abd", rec, rec);
        check("where s > abd", rec, "FILTERED 1");
        check("where s >= abc", rec, rec);
        check("where s <= ab", rec, "FILTERED 1");
        check("where t == true", rec, rec);
        check("where z == null", rec, rec);
        /* A field that is not there: only != holds. */
        check("where missing == 1", rec, "FILTERED 1");
        check("where missing != 1", rec, rec);
        check("select n; where s == abc", rec, "FILTERED 2");
        check("where s == abc; select n", rec, "{\"n\":5}");
        /* Escapes in the record are compared unescaped. */
        check("where s == a/b", "{\"s\":\"a\\/b\"}", "{\"s\":\"a\\/b\"}");
        check("where a.b == 1", "{\"a\":{\"b\":1}}", "{\"a\":{\"b\":1}}");
        check("where a.b == 2", "{\"a\":{\"b\":1}}", "FILTERED 1");
}

static void test_regex(void **state) {
        const char *rec = "{\"msg\":\"GET /index.html 200\",\"n\":503}";

        check("where msg ~ ^GET ", rec, rec);
        check("where msg ~ \"^(GET|POST) /[a-z]+\\\\.html\"", rec, rec);
        check("where msg ~ POST", rec, "FILTERED 1");
        /* A regex that matches nothing at all. */
        check("where msg ~ a^", rec, "FILTERED 1");
        check("where n ~ ^5[0-9]{2}$", rec, rec);
        check("where missing ~ .*", rec, "FILTERED 1");
        check("where msg ~ index;select n", rec, "{\"n\":503}");
}

/* Runs program on a copy of rec in a buffer of exactly its size (no NUL after it): a regex that
 * read past the value's span, or past the record, would see other bytes (or the memory checkers
 * would see the read). */
static char *run_unterminated(const char *program, const char *rec) {
        size_t n = strlen(rec);
        _cleanup_free_ char *copy = malloc(n), *r = NULL;
        _cleanup_(transform_freep) Transform *t = NULL;
        _cleanup_free_ char *error = NULL;
        _cleanup_(buffer_done) Buffer out = {};
        TransformResult res;

        assert_non_null(copy);
        memcpy(copy, rec, n);
        if (transform_compile(program, &t, &error) < 0) {
                fail_msg("%s: %s", program, error);
                return NULL;
        }
        assert_int_equal(transform_run(t, copy, n, &env, &out, &res), 0);
        if (res.verdict == TRANSFORM_FILTERED)
                return strdup("FILTERED");
        assert_int_equal(res.verdict, TRANSFORM_EMIT);
        assert_int_equal(asprintf(&r, "%.*s", (int) buffer_size(&out), buffer_begin(&out)) < 0, 0);
        return TAKE_PTR(r);
}

#define check_match(program, rec, matches)                                                                 \
        do {                                                                                               \
                _cleanup_free_ char *_got = run_unterminated(program, rec);                                \
                if (strcmp(_got, (matches) ? (rec) : "FILTERED") != 0)                                     \
                        fail_msg("%s on %s: got %s, expected it %s", program, rec, _got,                   \
                                 (matches) ? "to match" : "filtered");                                     \
        } while (0)

static void test_regex_span(void **state) {
        /* The value is matched in place (REG_STARTEND): ^ and $ are its edges, not the record's, and
         * nothing of the bytes around it (quotes, the next member) is seen. */
        const char *rec = "{\"a\":\"abc\",\"b\":\"abcd\",\"n\":503}";

        check_match("where a ~ ^abc$", rec, true);
        check_match("where a ~ \"^abc\\\",\"", rec, false);
        check_match("where a ~ \"^\\\"\"", rec, false);
        check_match("where a ~ c$", rec, true);
        check_match("where a ~ ^a", rec, true);
        check_match("where a ~ ^b", rec, false);
        check_match("where a ~ d", rec, false);
        check_match("where b ~ ^abcd$", rec, true);
        check_match("where n ~ ^503$", rec, true);
        check_match("where n ~ 3}", rec, false);
        /* The last value of the record, a bare number at its very end. */
        check_match("where n ~ 3$", "{\"n\":503}", true);
        check_match("where n ~ ^$", "{\"n\":\"\"}", true);
        check_match("where n ~ .", "{\"n\":\"\"}", false);
        /* Escaped strings are matched unescaped. */
        check_match("where m ~ \"^a\\\"b\\\\\\\\c/$\"", "{\"m\":\"a\\\"b\\\\c\\/\"}", true);
        check_match("where m ~ ^tab\tx$", "{\"m\":\"tab\\tx\"}", true);
        check_match("where m ~ ^é+$", "{\"m\":\"\\u00e9\\u00e9\"}", true);
        check_match("where m ~ ^.$", "{\"m\":\"\\u00e9\"}", true);
        check_match("where m ~ ^..$", "{\"m\":\"\\u00e9\"}", false);
        /* Unicode: characters, not bytes (the span is UTF-8). */
        check_match("where m ~ ^.{3}$", "{\"m\":\"日本語\"}", true);
        check_match("where m ~ ^[^a]語$", "{\"m\":\"本語\"}", true);
        check_match("where m ~ 語$", "{\"m\":\"日本語\",\"x\":1}", true);
        check_match("where m ~ ^😀$", "{\"m\":\"\\ud83d\\ude00\"}", true);
        /* A NUL (\u0000) inside the value does not end it. */
        check_match("where m ~ b$", "{\"m\":\"a\\u0000b\"}", true);
        check_match("where m ~ ^a$", "{\"m\":\"a\\u0000b\"}", false);
        /* An object as received, and one a step changed. */
        check_match("where o ~ ^\\{\"x\":1\\}$", "{\"o\":{\"x\":1}}", true);
        {
                _cleanup_free_ char *got = run_unterminated("drop o.y; where o ~ ^\\{\"x\":1\\}$",
                                                            "{\"o\":{\"x\":1,\"y\":2}}");
                assert_string_equal(got, "{\"o\":{\"x\":1}}");
        }
        /* Comparisons use the same spans. */
        check_match("where a == abc", rec, true);
        check_match("where a < abcd", rec, true);
        check_match("where m == \"a\\\"b\"", "{\"m\":\"a\\\"b\"}", true);
}

static void test_convert(void **state) {
        check("convert a:int,b:int,c:int,d:int,e:int,f:int",
              "{\"a\":\"42\",\"b\":\"-7\",\"c\":3.0,\"d\":true,\"e\":\"1e3\",\"f\":12}",
              "{\"a\":42,\"b\":-7,\"c\":3,\"d\":1,\"e\":1000,\"f\":12}");
        check("convert a:float,b:float,c:float,d:float", "{\"a\":\"2.5\",\"b\":3,\"c\":\".5\",\"d\":1e2}",
              "{\"a\":2.5,\"b\":3.0,\"c\":0.5,\"d\":1e2}");
        check("convert a:bool,b:bool,c:bool,d:bool,e:bool", "{\"a\":\"yes\",\"b\":\"FALSE\",\"c\":1,\"d\":0,\"e\":true}",
              "{\"a\":true,\"b\":false,\"c\":true,\"d\":false,\"e\":true}");
        check("convert a:string,b:string,c:string,d:string,e:string",
              "{\"a\":12,\"b\":true,\"c\":null,\"d\":{\"x\":\"q\"},\"e\":\"s\"}",
              "{\"a\":\"12\",\"b\":\"true\",\"c\":\"null\",\"d\":\"{\\\"x\\\":\\\"q\\\"}\",\"e\":\"s\"}");
        check("convert a.b:int", "{\"a\":{\"b\":\"5\"}}", "{\"a\":{\"b\":5}}");
        check("convert missing:int", "{\"a\":1}", "{\"a\":1}");
        /* A converted value compares as what it became. */
        check("convert n:int; where n > 9", "{\"n\":\"10\"}", "{\"n\":10}");
        check("drop a.y; convert a:string", "{\"a\":{\"x\":1,\"y\":2}}", "{\"a\":\"{\\\"x\\\":1}\"}");
}

static void test_convert_failures(void **state) {
        check("convert n:int", "{\"n\":\"x1\"}", "SKIP step 1 (convert n:int): \"x1\" is not a number");
        check("select n; convert n:int", "{\"n\":2.5}", "SKIP step 2 (convert n:int): 2.5 is not an integer in range");
        check("convert n:int", "{\"n\":\"99999999999999999999\"}",
              "SKIP step 1 (convert n:int): \"99999999999999999999\" is not an integer in range");
        check("convert n:int", "{\"n\":null}", "SKIP step 1 (convert n:int): null can not become an integer");
        check("convert n:float", "{\"n\":\"NaN\"}", "SKIP step 1 (convert n:float): \"NaN\" is not a number");
        check("convert n:float", "{\"n\":[1]}", "SKIP step 1 (convert n:float): an array can not become a number");
        check("convert n:bool", "{\"n\":\"maybe\"}",
              "SKIP step 1 (convert n:bool): \"maybe\" is not a boolean (true/false, yes/no, on/off, 1/0)");
        check("convert n:bool", "{\"n\":2}", "SKIP step 1 (convert n:bool): 2 is not a boolean");
        check("convert a:int,n:int", "{\"a\":\"1\",\"n\":\"\"}", "SKIP step 1 (convert a:int,n:int): \"\" is not a number");
}

static void test_set(void **state) {
        check("set a=hello world", "{\"b\":1}", "{\"b\":1,\"a\":\"hello world\"}");
        check("set a = \"x;y\"", "{\"a\":1}", "{\"a\":\"x;y\"}");
        check("set s=$source; set h=$host; set t=$ts_us", "{}",
              "{\"s\":\"web\\\"1\",\"h\":\"h1\",\"t\":\"1700000000123456\"}");
        check("set m.n=\"$source\"", "{\"m\":{\"k\":1}}", "{\"m\":{\"k\":1,\"n\":\"$source\"}}");
        check("set m.n=v", "{\"m\":3}", "{\"m\":{\"n\":\"v\"}}");
        check("set e=", "{}", "{\"e\":\"\"}");
        check("set t=$ts_us; convert t:int", "{}", "{\"t\":1700000000123456}");
}

static void test_unicode(void **state) {
        check("select größe", "{\"größe\":1,\"b\":2}", "{\"größe\":1}");
        /* Escaped names in the record match the program's unescaped ones. */
        check("select größe", "{\"gr\\u00f6\\u00dfe\":1,\"b\":2}", "{\"gr\\u00f6\\u00dfe\":1}");
        check("rename 名前=name", "{\"名前\":\"太郎\"}", "{\"name\":\"太郎\"}");
        check("where 名前 == 太郎", "{\"名前\":\"太郎\"}", "{\"名前\":\"太郎\"}");
        check("where msg ~ ^é+$", "{\"msg\":\"ééé\"}", "{\"msg\":\"ééé\"}");
        check("set \"a.b\"=1", "{}", "{\"a.b\":\"1\"}");
}

static void test_records(void **state) {
        check("select a", "[1,2]", "SKIP the record is not a JSON object");
        check("select a", "\"a\"", "SKIP the record is not a JSON object");
        check("select a", "{\"a\":1", "INVALID 6");
        check("select a", "{\"a\":NaN}", "INVALID 5");
        check("select a", "{\"a\":\"\xff\"}", "INVALID 6");
        check("select a", "{\"a\":1}\n", "INVALID 7");
        /* Records bigger than the tables were so far grow them. */
        {
                char big[40000];
                size_t n = 0;

                n += (size_t) snprintf(big + n, sizeof(big) - n, "{");
                for (int i = 0; i < 3000; i++)
                        n += (size_t) snprintf(big + n, sizeof(big) - n, "%s\"k%d\":%d", i ? "," : "", i, i);
                (void) snprintf(big + n, sizeof(big) - n, "}");
                check("select k2999,k0", big, "{\"k0\":0,\"k2999\":2999}");
        }
}

static void test_compile_errors(void **state) {
        check_error("", "the program has no steps");
        check_error(" ; ", "the program has no steps");
        check_error("selec a", "step 1 (selec a): column 1: unknown step \"selec\" (known: select, drop, rename, where, convert, set)");
        check_error("select a; rename a", "step 2 (rename a): column 19: expected OLD=NEW");
        check_error("select a;;rename a=", "step 3 (rename a=): column 20: expected a field name");
        check_error("where a = 1", "step 1 (where a = 1): column 9: expected an operator (==, !=, <, <=, >, >= or ~)");
        check_error("where a ==", "step 1 (where a ==): column 11: expected a value after the operator");
        {
                _cleanup_free_ char *e = compile_error("where a ~ (");
                assert_memory_equal(e, "step 1 (where a ~ (): column 11: invalid regular expression: ", 60);
        }
        {
                /* Refused before glibc's compiler spends a GiB on it. */
                _cleanup_free_ char *e = compile_error("select a; where a ~ x++++++++++++++++++++");
                assert_string_equal(e, "step 2 (where a ~ x++++++++++++++++++++): column 21: the regular expression repeats "
                                       "too much (stacked or nested repetitions such as x++ or (x{9}){99} make more than "
                                       "10000 parts)");
        }
        check_error("convert a:integer", "step 1 (convert a:integer): column 11: unknown type \"integer\" (known: int, float, bool, string)");
        check_error("convert a", "step 1 (convert a): column 10: expected FIELD:TYPE");
        check_error("set a=$nope", "step 1 (set a=$nope): column 7: unknown variable \"$nope\" (known: $source, $ts_us, $host; quote a literal $)");
        check_error("set a", "step 1 (set a): column 6: expected FIELD=VALUE");
        check_error("select", "step 1 (select): column 7: select needs a list of fields");
        check_error("select a,", "step 1 (select a,): column 10: expected a field name");
        check_error("select a b", "step 1 (select a b): column 10: expected ',' or the end of the step");
        check_error("select a..b", "step 1 (select a..b): column 10: expected a field name");
        check_error("select \"a", "step 1 (select \"a): column 8: unterminated quoted string");
        check_error("drop größe,;", "step 1 (drop größe,): column 12: expected a field name");
        check_error("select a.b.c.d.e.f.g.h.i", "step 1 (select a.b.c.d.e.f.g.h.i): column 24: a field path has at most 8 parts");
        check_error("select a\x01", "column 9: control character in the program");
        check_error("select \xff", "column 8: the program is not valid UTF-8");
        check_error("select \"a\\u0000\"", "step 1 (select \"a\\u0000\"): column 8: a quoted string may not hold \\u0000");
}

static void test_reuse(void **state) {
        _cleanup_(transform_freep) Transform *t = NULL;
        _cleanup_free_ char *error = NULL;
        _cleanup_(buffer_done) Buffer out = {};
        TransformResult res;
        const char *recs[] = {
                "{\"a\":\"1\",\"b\":{\"c\":2}}",
                "{\"a\":\"x\"}",
                "{\"b\":5}",
                "{\"a\":\"7\",\"level\":\"debug\"}",
        };

        assert_int_equal(transform_compile("where level != debug; convert a:int; rename b.c=c; drop b", &t, &error), 0);
        assert_int_equal(transform_n_steps(t), 4);
        assert_string_equal(transform_step_text(t, 2), "rename b.c=c");
        for (size_t i = 0; i < ELEMENTSOF(recs); i++)
                assert_int_equal(transform_run(t, recs[i], strlen(recs[i]), NULL, &out, &res), 0);
        assert_int_equal(res.verdict, TRANSFORM_FILTERED);
        assert_int_equal(res.step, 1);
        assert_int_equal(buffer_append(&out, "", 1), 0);
        /* Record 2 was skipped (its a is no number), record 4 filtered: only 1 and 3 are out. */
        assert_string_equal(buffer_begin(&out), "{\"a\":1,\"c\":2}{}");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_select),
                cmocka_unit_test(test_drop),
                cmocka_unit_test(test_remove_everything),
                cmocka_unit_test(test_rename),
                cmocka_unit_test(test_where),
                cmocka_unit_test(test_regex),
                cmocka_unit_test(test_regex_span),
                cmocka_unit_test(test_convert),
                cmocka_unit_test(test_convert_failures),
                cmocka_unit_test(test_set),
                cmocka_unit_test(test_unicode),
                cmocka_unit_test(test_records),
                cmocka_unit_test(test_compile_errors),
                cmocka_unit_test(test_reuse),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
