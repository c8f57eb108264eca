/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The transform engine (see transform.h). A record is never turned into a tree of allocated
 * objects: the validating scan lists its members (key and value spans in the input), those become
 * nodes of a small table reused from record to record, the steps relink and mark the nodes, and
 * the output is copied together from the input's bytes and the few bytes the steps generated. */

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <locale.h>
#include <math.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json-scan.h"
#include "regex-bytes.h"
#include "transform.h"
#include "utf8.h"

/* ASan's regexec() interceptor reads the subject up to its NUL, whatever REG_STARTEND says: in a
 * build with it, a value is matched as a terminated copy (else a value that ends where its buffer
 * does is reported as read past). */
#if defined(__SANITIZE_ADDRESS__)
#define REGEXEC_WANTS_NUL 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define REGEXEC_WANTS_NUL 1
#endif
#endif

#define PATH_COMPONENTS_MAX 8u
/* The most parts a `where ~` pattern may expand to (regex_expanded_size()). */
#define TRANSFORM_REGEX_SIZE_MAX 10000u
/* A record's members are listed one level deeper than the program reaches when it is the data of an
 * envelope (transform_run_listed()). */
_Static_assert(PATH_COMPONENTS_MAX + 1 <= JSON_SCAN_MEMBERS_DEPTH_MAX, "an envelope level");

typedef struct Name {
        char *text; /* unescaped UTF-8, no NUL inside */
        size_t len;
        int32_t id; /* the same for every Name of the same text in the program */
        char *json; /* as a JSON string, quotes included: how it is written as a key */
        size_t json_len;
} Name;

typedef struct Path {
        Name c[PATH_COMPONENTS_MAX];
        unsigned n;
} Path;

typedef enum StepType {
        STEP_SELECT,
        STEP_DROP,
        STEP_RENAME,
        STEP_WHERE,
        STEP_CONVERT,
        STEP_SET,
} StepType;

typedef enum Op {
        OP_EQ,
        OP_NE,
        OP_LT,
        OP_LE,
        OP_GT,
        OP_GE,
        OP_MATCH,
} Op;

typedef enum ConvType {
        CONV_INT,
        CONV_FLOAT,
        CONV_BOOL,
        CONV_STRING,
} ConvType;

typedef enum SetKind {
        SET_LITERAL,
        SET_SOURCE,
        SET_TS_US,
        SET_HOST,
} SetKind;

typedef struct Step {
        StepType type;
        unsigned number;  /* its place in the program, 1-based (blank pieces count) */
        char *text;       /* as written, trimmed, for messages */
        Path *paths;      /* select/drop/convert: the fields; rename: old, new, old, new...; where/set: one */
        size_t n_paths;
        ConvType *conv;   /* convert: one per path */
        Op op;            /* where */
        char *value;      /* where: the value (unescaped); set: the literal as a JSON string */
        size_t value_len;
        bool value_is_number;
        double value_number;
        regex_t regex;
        bool regex_compiled;
        bool regex_bytes; /* compiled rewritten for the C locale (common/regex-bytes.h) */
        SetKind set_kind;
        uint64_t top_ids; /* select: when every field is a top-level name with id < 64, their ids */
} Step;

typedef struct Node {
        const char *key;   /* the key as written out: a JSON string with its quotes */
        int32_t id;        /* which of the program's names the key is (Name.id), -1 if none */
        const char *value; /* the value's bytes (in the input), or NULL when in_arena */
        size_t value_off;  /* in_arena: where the value starts in the arena */
        uint32_t key_len, value_len;
        int32_t parent, first, last, next; /* the tree: children list and next sibling (-1: none) */
        uint32_t mark;     /* select: marked in this pass */
        uint8_t type;      /* JsonScanType */
        bool key_escaped, value_escaped;
        bool listed;       /* an object whose members are nodes */
        bool dirty;        /* an object whose members changed: written from its nodes */
        bool in_arena;
        bool mark_full;    /* select: keep it whole (not just the selected fields inside it) */
} Node;

struct Transform {
        locale_t utf8; /* regexes see UTF-8 characters, whatever the process' locale (or 0) */
        locale_t bytes; /* the C locale, for regexes rewritten to run byte by byte (or 0) */
        Step *steps;
        unsigned n_steps;
        unsigned max_depth;

        /* per record, reused */
        JsonScanMembers members, sub;
        Node *nodes;
        size_t n_nodes, allocated_nodes;
        Buffer arena;   /* values the steps generated */
        Buffer subject; /* a value as text, for comparisons and regexec() */
        uint32_t epoch;
        size_t input_len;   /* of the record being run */
        size_t max_key_len; /* the longest key the program writes (a JSON string) */

        /* The distinct names of the program: each node's key is matched against them once, and
         * every lookup after that compares ids. first_byte[b]: the names starting with byte b
         * (bit = id, for the first 64 names). */
        const Name **names;
        size_t n_names;
        uint64_t first_byte[256];
        uint64_t empty_names;
        char reason[256];
};

/* ---- compiling ---- */

static void name_done(Name *n) {
        free(n->text);
        free(n->json);
        *n = (Name) {};
}

static void path_done(Path *p) {
        for (unsigned i = 0; i < p->n; i++)
                name_done(&p->c[i]);
        p->n = 0;
}

static void step_done(Step *s) {
        free(s->text);
        for (size_t i = 0; i < s->n_paths; i++)
                path_done(&s->paths[i]);
        free(s->paths);
        free(s->conv);
        free(s->value);
        if (s->regex_compiled)
                regfree(&s->regex);
        *s = (Step) {};
}

Transform *transform_free(Transform *t) {
        if (!t)
                return NULL;
        for (unsigned i = 0; i < t->n_steps; i++)
                step_done(&t->steps[i]);
        free(t->steps);
        free(t->names);
        if (t->utf8)
                freelocale(t->utf8);
        if (t->bytes)
                freelocale(t->bytes);
        json_scan_members_done(&t->members);
        json_scan_members_done(&t->sub);
        free(t->nodes);
        buffer_done(&t->arena);
        buffer_done(&t->subject);
        free(t);
        return NULL;
}

unsigned transform_n_steps(const Transform *t) {
        return t->n_steps;
}

const char *transform_step_text(const Transform *t, unsigned i) {
        return i < t->n_steps ? t->steps[i].text : NULL;
}

typedef struct Parser {
        const char *program;
        size_t pos, end; /* the step being parsed: program[pos..end) */
        unsigned step;   /* 1-based */
        size_t step_start;
        char *error;     /* set on the first error */
} Parser;

static bool is_blank_char(char c) {
        return c == ' ' || c == '\t';
}

static void parser_skip_blanks(Parser *p) {
        while (p->pos < p->end && is_blank_char(p->program[p->pos]))
                p->pos++;
}

static size_t column_of(const char *s, size_t offset) {
        size_t col = 1;

        /* Characters, not bytes: continuation bytes of UTF-8 do not count. */
        for (size_t i = 0; i < offset; i++)
                if (((unsigned char) s[i] & 0xc0) != 0x80)
                        col++;
        return col;
}

/* The step's text for a message: trimmed, and cut (at a character boundary) if long. */
static void step_excerpt(const char *program, size_t start, size_t end, char *buf, size_t size) {
        size_t n;

        while (start < end && is_blank_char(program[start]))
                start++;
        while (end > start && is_blank_char(program[end - 1]))
                end--;
        n = end - start;
        if (n + 1 > size) {
                n = size - 4;
                while (n > 0 && ((unsigned char) program[start + n] & 0xc0) == 0x80)
                        n--;
                (void) snprintf(buf, size, "%.*s...", (int) n, program + start);
                return;
        }
        memcpy(buf, program + start, n);
        buf[n] = 0;
}

static int parser_fail(Parser *p, size_t at, const char *fmt, ...) _printf_(3, 4);
static int parser_fail(Parser *p, size_t at, const char *fmt, ...) {
        char what[256], step[72];
        va_list ap;

        if (p->error)
                return -EINVAL;
        va_start(ap, fmt);
        (void) vsnprintf(what, sizeof(what), fmt, ap);
        va_end(ap);
        step_excerpt(p->program, p->step_start, p->end, step, sizeof(step));
        if (asprintf(&p->error, "step %u (%s): column %zu: %s", p->step, step, column_of(p->program, at), what) < 0) {
                p->error = NULL;
                return -ENOMEM;
        }
        return -EINVAL;
}

/* The end of the quoted string starting at s[i] == '"' (the index after its closing quote), or 0. */
static size_t quoted_end(const char *s, size_t i, size_t end) {
        for (i++; i < end; i++) {
                if (s[i] == '\\')
                        i++;
                else if (s[i] == '"')
                        return i + 1;
        }
        return 0;
}

static int name_set(Name *n, const char *text, size_t len) {
        Buffer b = {};

        n->text = strndup(text, len);
        if (!n->text)
                return -ENOMEM;
        n->len = len;
        if (buffer_append_json_string(&b, text, len) < 0 || buffer_append(&b, "", 1) < 0) {
                buffer_done(&b);
                return -ENOMEM;
        }
        n->json = b.data; /* head is 0: appended into a fresh buffer */
        n->json_len = buffer_size(&b) - 1;
        return 0;
}

/* A quoted string at p->pos (JSON syntax), unescaped into a new string. */
static int parse_quoted(Parser *p, char **ret, size_t *ret_len) {
        size_t start = p->pos, e = quoted_end(p->program, p->pos, p->end);
        _cleanup_free_ char *buf = NULL;
        int k;

        if (e == 0)
                return parser_fail(p, start, "unterminated quoted string");
        buf = malloc(e - start + 1);
        if (!buf)
                return -ENOMEM;
        k = json_scan_string_unescape(p->program + start, e - start, buf, e - start + 1);
        if (k < 0)
                return parser_fail(p, start, "invalid quoted string (JSON string syntax)");
        if ((size_t) k != strlen(buf))
                return parser_fail(p, start, "a quoted string may not hold \\u0000");
        p->pos = e;
        *ret = TAKE_PTR(buf);
        *ret_len = (size_t) k;
        return 0;
}

/* Bytes that end a field name written without quotes. */
static bool name_delimiter(char c) {
        return (unsigned char) c < 0x20 || strchr(" ,=:;.\"<>!~", c);
}

static int parse_path(Parser *p, Path *ret) {
        Path path = {};
        int r;

        for (;;) {
                size_t start = p->pos;
                _cleanup_free_ char *text = NULL;
                size_t len;

                if (path.n >= PATH_COMPONENTS_MAX) {
                        path_done(&path);
                        return parser_fail(p, start, "a field path has at most %u parts", PATH_COMPONENTS_MAX);
                }
                if (p->pos < p->end && p->program[p->pos] == '"') {
                        r = parse_quoted(p, &text, &len);
                        if (r < 0) {
                                path_done(&path);
                                return r;
                        }
                } else {
                        while (p->pos < p->end && !name_delimiter(p->program[p->pos]))
                                p->pos++;
                        if (p->pos == start) {
                                path_done(&path);
                                return parser_fail(p, start, "expected a field name");
                        }
                        len = p->pos - start;
                        text = strndup(p->program + start, len);
                        if (!text) {
                                path_done(&path);
                                return -ENOMEM;
                        }
                }
                r = name_set(&path.c[path.n], text, len);
                if (r < 0) {
                        path_done(&path);
                        return r;
                }
                path.n++;
                if (p->pos < p->end && p->program[p->pos] == '.') {
                        p->pos++;
                        continue;
                }
                *ret = path;
                return 0;
        }
}

static int step_add_path(Step *s, size_t *allocated, Path *path) {
        if (s->n_paths >= *allocated) {
                size_t k = MAX(*allocated * 2, (size_t) 4);
                Path *n = reallocarray(s->paths, k, sizeof(Path));
                ConvType *c;

                if (!n)
                        return -ENOMEM;
                s->paths = n;
                c = reallocarray(s->conv, k, sizeof(ConvType));
                if (!c)
                        return -ENOMEM;
                s->conv = c;
                *allocated = k;
        }
        s->paths[s->n_paths++] = *path;
        *path = (Path) {};
        return 0;
}

/* The value of where/set: a quoted string, or the rest of the step with blanks trimmed. */
static int parse_value(Parser *p, char **ret, size_t *ret_len, bool *ret_quoted) {
        size_t e = p->end;

        parser_skip_blanks(p);
        if (p->pos < p->end && p->program[p->pos] == '"') {
                int r = parse_quoted(p, ret, ret_len);
                if (r < 0)
                        return r;
                parser_skip_blanks(p);
                if (p->pos < p->end)
                        return parser_fail(p, p->pos, "unexpected text after the quoted value");
                *ret_quoted = true;
                return 0;
        }
        while (e > p->pos && is_blank_char(p->program[e - 1]))
                e--;
        *ret = strndup(p->program + p->pos, e - p->pos);
        if (!*ret)
                return -ENOMEM;
        *ret_len = e - p->pos;
        *ret_quoted = false;
        p->pos = p->end;
        return 0;
}

/* JSON number syntax: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static bool is_json_number(const char *s, size_t n) {
        size_t i = 0;

        if (i < n && s[i] == '-')
                i++;
        if (i < n && s[i] == '0')
                i++;
        else if (i < n && s[i] >= '1' && s[i] <= '9')
                while (i < n && s[i] >= '0' && s[i] <= '9')
                        i++;
        else
                return false;
        if (i < n && s[i] == '.') {
                size_t d = ++i;
                while (i < n && s[i] >= '0' && s[i] <= '9')
                        i++;
                if (i == d)
                        return false;
        }
        if (i < n && (s[i] == 'e' || s[i] == 'E')) {
                size_t d;
                i++;
                if (i < n && (s[i] == '+' || s[i] == '-'))
                        i++;
                d = i;
                while (i < n && s[i] >= '0' && s[i] <= '9')
                        i++;
                if (i == d)
                        return false;
        }
        return i == n;
}

/* A number written as JSON writes it, as a double. */
static bool parse_number(const char *s, size_t n, double *ret) {
        char buf[64];
        char *e;
        double d;
        size_t i = s[0] == '-';

        /* An integer of up to 15 digits is exact as a double: no strtod() (most numbers compared
         * are such, and strtod() was a tenth of a four-step transform's instructions). */
        if (n > i && n - i <= 15 && (s[i] != '0' || n - i == 1)) {
                int64_t v = 0;
                size_t k;

                for (k = i; k < n && s[k] >= '0' && s[k] <= '9'; k++)
                        v = v * 10 + (s[k] - '0');
                if (k == n) {
                        *ret = (double) (i ? -v : v);
                        return true;
                }
        }
        if (n == 0 || n >= sizeof(buf) || !is_json_number(s, n))
                return false;
        memcpy(buf, s, n);
        buf[n] = 0;
        d = strtod(buf, &e);
        if (*e != 0 || !isfinite(d))
                return false;
        *ret = d;
        return true;
}

static int parse_list(Parser *p, Step *s) {
        size_t allocated = 0;
        int r;

        for (;;) {
                Path a = {};

                parser_skip_blanks(p);
                r = parse_path(p, &a);
                if (r < 0)
                        return r;
                r = step_add_path(s, &allocated, &a);
                if (r < 0) {
                        path_done(&a);
                        return r;
                }
                parser_skip_blanks(p);
                if (s->type == STEP_RENAME) {
                        Path b = {};

                        if (p->pos >= p->end || p->program[p->pos] != '=')
                                return parser_fail(p, p->pos, "expected OLD=NEW");
                        p->pos++;
                        parser_skip_blanks(p);
                        r = parse_path(p, &b);
                        if (r < 0)
                                return r;
                        r = step_add_path(s, &allocated, &b);
                        if (r < 0) {
                                path_done(&b);
                                return r;
                        }
                        parser_skip_blanks(p);
                } else if (s->type == STEP_CONVERT) {
                        static const char *const types[] = { [CONV_INT] = "int", [CONV_FLOAT] = "float",
                                                             [CONV_BOOL] = "bool", [CONV_STRING] = "string" };
                        size_t start;
                        bool found = false;

                        if (p->pos >= p->end || p->program[p->pos] != ':')
                                return parser_fail(p, p->pos, "expected FIELD:TYPE");
                        p->pos++;
                        parser_skip_blanks(p);
                        start = p->pos;
                        while (p->pos < p->end && !name_delimiter(p->program[p->pos]))
                                p->pos++;
                        for (size_t i = 0; i < ELEMENTSOF(types); i++)
                                if (p->pos - start == strlen(types[i]) &&
                                    memcmp(p->program + start, types[i], p->pos - start) == 0) {
                                        s->conv[s->n_paths - 1] = (ConvType) i;
                                        found = true;
                                }
                        if (!found)
                                return parser_fail(p, start, "unknown type \"%.*s\" (known: int, float, bool, string)",
                                                   (int) MIN(p->pos - start, (size_t) 32), p->program + start);
                        parser_skip_blanks(p);
                }
                if (p->pos >= p->end)
                        return 0;
                if (p->program[p->pos] != ',')
                        return parser_fail(p, p->pos, "expected ',' or the end of the step");
                p->pos++;
        }
}

/* Replaces the step's regex (compiled in UTF-8) with its rewriting for the C locale, which glibc
 * runs without allocating per call, where the rewriting is exact (common/regex-bytes.h). */
static int regex_to_bytes(Step *s, locale_t bytes) {
        _cleanup_free_ char *pattern = NULL;
        locale_t old;
        regex_t re;
        int k;

        if (!bytes)
                return 0;
        pattern = regex_bytes_translate(s->value);
        if (!pattern)
                return errno == ENOMEM ? -ENOMEM : 0;
        old = uselocale(bytes);
        k = regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB);
        (void) uselocale(old);
        if (k != 0)
                return k == REG_ESPACE ? -ENOMEM : 0; /* (can not happen: then it stays in UTF-8) */
        regfree(&s->regex);
        s->regex = re;
        s->regex_bytes = true;
        return 0;
}

static int parse_where(Parser *p, Step *s, locale_t utf8, locale_t bytes) {
        static const struct {
                const char *text;
                Op op;
        } ops[] = {
                /* two-character operators first */
                { "==", OP_EQ }, { "!=", OP_NE }, { "<=", OP_LE }, { ">=", OP_GE },
                { "<", OP_LT },  { ">", OP_GT },  { "~", OP_MATCH },
        };
        size_t allocated = 0, op_at;
        Path a = {};
        bool quoted, found = false;
        int r;

        parser_skip_blanks(p);
        r = parse_path(p, &a);
        if (r < 0)
                return r;
        r = step_add_path(s, &allocated, &a);
        if (r < 0) {
                path_done(&a);
                return r;
        }
        parser_skip_blanks(p);
        op_at = p->pos;
        for (size_t i = 0; i < ELEMENTSOF(ops); i++) {
                size_t n = strlen(ops[i].text);
                if (p->end - p->pos >= n && memcmp(p->program + p->pos, ops[i].text, n) == 0) {
                        s->op = ops[i].op;
                        p->pos += n;
                        found = true;
                        break;
                }
        }
        if (!found)
                return parser_fail(p, op_at, "expected an operator (==, !=, <, <=, >, >= or ~)");
        parser_skip_blanks(p);
        if (p->pos >= p->end)
                return parser_fail(p, p->pos, "expected a value after the operator");
        {
                size_t value_at = p->pos;

                r = parse_value(p, &s->value, &s->value_len, &quoted);
                if (r < 0)
                        return r;
                if (s->op == OP_MATCH) {
                        locale_t old;
                        int k;

                        /* Compiling a pattern that repeats repetitions takes time and memory that
                         * grow with their product (x followed by 20 '+' takes a GiB): such a
                         * pattern is refused before it is compiled. */
                        if (regex_expanded_size(s->value) > TRANSFORM_REGEX_SIZE_MAX)
                                return parser_fail(p, value_at,
                                                   "the regular expression repeats too much (stacked or nested repetitions "
                                                   "such as x++ or (x{9}){99} make more than %u parts)",
                                                   TRANSFORM_REGEX_SIZE_MAX);
                        old = utf8 ? uselocale(utf8) : 0;
                        k = regcomp(&s->regex, s->value, REG_EXTENDED | REG_NOSUB);

                        if (old)
                                (void) uselocale(old);
                        if (k != 0) {
                                char msg[128];

                                (void) regerror(k, &s->regex, msg, sizeof(msg));
                                return parser_fail(p, value_at, "invalid regular expression: %s", msg);
                        }
                        s->regex_compiled = true;
                        r = regex_to_bytes(s, bytes);
                        if (r < 0)
                                return r;
                } else
                        /* Quoted, a value is a string even if it looks like a number. */
                        s->value_is_number = !quoted && parse_number(s->value, s->value_len, &s->value_number);
        }
        return 0;
}

static int parse_set(Parser *p, Step *s) {
        size_t allocated = 0, value_at;
        _cleanup_free_ char *value = NULL;
        Buffer b = {};
        size_t len;
        Path a = {};
        bool quoted;
        int r;

        parser_skip_blanks(p);
        r = parse_path(p, &a);
        if (r < 0)
                return r;
        r = step_add_path(s, &allocated, &a);
        if (r < 0) {
                path_done(&a);
                return r;
        }
        parser_skip_blanks(p);
        if (p->pos >= p->end || p->program[p->pos] != '=')
                return parser_fail(p, p->pos, "expected FIELD=VALUE");
        p->pos++;
        parser_skip_blanks(p);
        value_at = p->pos;
        r = parse_value(p, &value, &len, &quoted);
        if (r < 0)
                return r;
        s->set_kind = SET_LITERAL;
        if (!quoted && len > 0 && value[0] == '$') {
                if (streq(value, "$source"))
                        s->set_kind = SET_SOURCE;
                else if (streq(value, "$ts_us"))
                        s->set_kind = SET_TS_US;
                else if (streq(value, "$host"))
                        s->set_kind = SET_HOST;
                else
                        return parser_fail(p, value_at,
                                           "unknown variable \"%.32s\" (known: $source, $ts_us, $host; quote a literal $)",
                                           value);
                return 0;
        }
        if (buffer_append_json_string(&b, value, len) < 0) {
                buffer_done(&b);
                return -ENOMEM;
        }
        s->value = b.data;
        s->value_len = buffer_size(&b);
        return 0;
}

static int parse_step(Parser *p, Step *s, locale_t utf8, locale_t bytes) {
        static const struct {
                const char *word;
                StepType type;
        } words[] = {
                { "select", STEP_SELECT }, { "drop", STEP_DROP },       { "rename", STEP_RENAME },
                { "where", STEP_WHERE },   { "convert", STEP_CONVERT }, { "set", STEP_SET },
        };
        char text[72];
        size_t start, e = p->end;
        bool found = false;

        parser_skip_blanks(p);
        while (e > p->pos && is_blank_char(p->program[e - 1]))
                e--;
        s->text = strndup(p->program + p->pos, e - p->pos);
        if (!s->text)
                return -ENOMEM;
        start = p->pos;
        while (p->pos < p->end && p->program[p->pos] >= 'a' && p->program[p->pos] <= 'z')
                p->pos++;
        for (size_t i = 0; i < ELEMENTSOF(words); i++)
                if (p->pos - start == strlen(words[i].word) && memcmp(p->program + start, words[i].word, p->pos - start) == 0) {
                        s->type = words[i].type;
                        found = true;
                }
        if (!found || (p->pos < p->end && !is_blank_char(p->program[p->pos]))) {
                size_t n = strcspn(p->program + start, " \t;");
                step_excerpt(p->program, start, start + MIN(MIN(n, p->end - start), (size_t) 32), text, sizeof(text));
                return parser_fail(p, start, "unknown step \"%s\" (known: select, drop, rename, where, convert, set)",
                                   text);
        }
        parser_skip_blanks(p);
        if (p->pos >= p->end)
                return parser_fail(p, p->pos, "%s needs %s", s->text,
                                   s->type == STEP_RENAME    ? "OLD=NEW,..."
                                   : s->type == STEP_CONVERT ? "FIELD:TYPE,..."
                                   : s->type == STEP_WHERE   ? "FIELD OP VALUE"
                                   : s->type == STEP_SET     ? "FIELD=VALUE"
                                                             : "a list of fields");
        switch (s->type) {
        case STEP_WHERE:
                return parse_where(p, s, utf8, bytes);
        case STEP_SET:
                return parse_set(p, s);
        default:
                return parse_list(p, s);
        }
}

static int transform_number_names(Transform *t) {
        size_t allocated = 0;

        for (unsigned i = 0; i < t->n_steps; i++)
                for (size_t p = 0; p < t->steps[i].n_paths; p++)
                        for (unsigned c = 0; c < t->steps[i].paths[p].n; c++) {
                                Name *n = &t->steps[i].paths[p].c[c];
                                size_t k;

                                for (k = 0; k < t->n_names; k++)
                                        if (t->names[k]->len == n->len && memcmp(t->names[k]->text, n->text, n->len) == 0)
                                                break;
                                n->id = (int32_t) k;
                                if (k < t->n_names)
                                        continue;
                                if (t->n_names >= allocated) {
                                        size_t a = MAX(allocated * 2, (size_t) 8);
                                        const Name **v = reallocarray(t->names, a, sizeof(Name *));
                                        if (!v)
                                                return -ENOMEM;
                                        t->names = v;
                                        allocated = a;
                                }
                                t->names[t->n_names++] = n;
                                if (k < 64) {
                                        if (n->len == 0)
                                                t->empty_names |= UINT64_C(1) << k;
                                        else
                                                t->first_byte[(uint8_t) n->text[0]] |= UINT64_C(1) << k;
                                }
                        }
        /* A select of top-level names only is one walk over the record's fields. */
        for (unsigned i = 0; i < t->n_steps; i++) {
                Step *st = &t->steps[i];
                uint64_t ids = 0;
                size_t p;

                if (st->type != STEP_SELECT)
                        continue;
                for (p = 0; p < st->n_paths; p++) {
                        if (st->paths[p].n != 1 || st->paths[p].c[0].id >= 64)
                                break;
                        ids |= UINT64_C(1) << st->paths[p].c[0].id;
                }
                st->top_ids = p == st->n_paths ? ids : 0;
        }
        return 0;
}

int transform_compile(const char *program, Transform **ret, char **ret_error) {
        _cleanup_(transform_freep) Transform *t = NULL;
        Parser p = { .program = program };
        size_t n, i = 0, allocated = 0;
        unsigned piece = 0;
        int r;

        assert(program);
        assert(ret);
        assert(ret_error);

        *ret_error = NULL;
        n = strlen(program);
        p.end = n;
        p.step = 1;
        if (n > TRANSFORM_PROGRAM_MAX)
                return asprintf(ret_error, "the program is longer than %u bytes", TRANSFORM_PROGRAM_MAX) < 0 ? -ENOMEM
                                                                                                         : -EINVAL;
        if (!utf8_is_valid_n(program, n)) {
                size_t at = utf8_valid_prefix(program, n);
                return asprintf(ret_error, "column %zu: the program is not valid UTF-8", column_of(program, at)) < 0
                               ? -ENOMEM
                               : -EINVAL;
        }
        for (size_t k = 0; k < n; k++)
                if ((unsigned char) program[k] < 0x20 && program[k] != '\t')
                        return asprintf(ret_error, "column %zu: control character in the program",
                                        column_of(program, k)) < 0
                                       ? -ENOMEM
                                       : -EINVAL;

        t = calloc(1, sizeof(Transform));
        if (!t)
                return -ENOMEM;
        t->max_depth = 1;
        /* (If C.UTF-8 is missing, regexes work in the process' locale.) */
        t->utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t) 0);
        t->bytes = t->utf8 ? newlocale(LC_ALL_MASK, "C", (locale_t) 0) : 0;

        while (i <= n) {
                size_t start = i, e = i;

                /* A step ends at a ';' that is not inside a quoted string. */
                while (e < n && program[e] != ';') {
                        if (program[e] == '"') {
                                size_t q = quoted_end(program, e, n);
                                if (q == 0) {
                                        p.step = piece + 1;
                                        p.step_start = start;
                                        p.end = n;
                                        r = parser_fail(&p, e, "unterminated quoted string");
                                        *ret_error = p.error;
                                        return r;
                                }
                                e = q;
                        } else
                                e++;
                }
                piece++;
                i = e + 1;

                /* Blank pieces (a trailing ';') are no steps. */
                {
                        size_t k = start;
                        while (k < e && is_blank_char(program[k]))
                                k++;
                        if (k == e)
                                continue;
                }
                if (t->n_steps >= allocated) {
                        size_t a = MAX(allocated * 2, (size_t) 4);
                        Step *s = reallocarray(t->steps, a, sizeof(Step));
                        if (!s)
                                return -ENOMEM;
                        t->steps = s;
                        allocated = a;
                }
                t->steps[t->n_steps] = (Step) { .number = piece };
                p.step = piece;
                p.step_start = p.pos = start;
                p.end = e;
                r = parse_step(&p, &t->steps[t->n_steps], t->utf8, t->bytes);
                t->n_steps++; /* freed with t, even half-parsed */
                if (r < 0) {
                        *ret_error = TAKE_PTR(p.error);
                        return r;
                }
                for (size_t k = 0; k < t->steps[t->n_steps - 1].n_paths; k++) {
                        const Path *path = &t->steps[t->n_steps - 1].paths[k];

                        t->max_depth = MAX(t->max_depth, path->n);
                        for (unsigned c = 0; c < path->n; c++)
                                t->max_key_len = MAX(t->max_key_len, path->c[c].json_len);
                }
        }
        if (t->n_steps == 0)
                return asprintf(ret_error, "the program has no steps") < 0 ? -ENOMEM : -EINVAL;
        r = transform_number_names(t);
        if (r < 0)
                return r;
        t->members.max_depth = t->max_depth;
        t->sub.max_depth = 1;
        *ret = TAKE_PTR(t);
        return 0;
}

/* ---- running ---- */

static int node_new(Transform *t, int32_t *ret) {
        if (t->n_nodes >= t->allocated_nodes) {
                size_t k = MAX(t->allocated_nodes * 2, (size_t) 64);
                Node *n;

                if (k > INT32_MAX)
                        return -ENOMEM;
                n = reallocarray(t->nodes, k, sizeof(Node));
                if (!n)
                        return -ENOMEM;
                t->nodes = n;
                t->allocated_nodes = k;
        }
        t->nodes[t->n_nodes] = (Node) { .parent = -1, .first = -1, .last = -1, .next = -1, .id = -1 };
        *ret = (int32_t) t->n_nodes++;
        return 0;
}

static void node_append(Transform *t, int32_t parent, int32_t i) {
        Node *p = &t->nodes[parent], *n = &t->nodes[i];

        n->parent = parent;
        n->next = -1;
        if (p->last >= 0)
                t->nodes[p->last].next = i;
        else
                p->first = i;
        p->last = i;
}

static void node_unlink(Transform *t, int32_t i, int32_t prev) {
        Node *n = &t->nodes[i], *p = &t->nodes[n->parent];

        if (prev >= 0)
                t->nodes[prev].next = n->next;
        else
                p->first = n->next;
        if (p->last == i)
                p->last = prev;
        n->next = -1;
}

/* The object i and those holding it are written out from their nodes now. */
static void node_touch(Transform *t, int32_t i) {
        for (; i >= 0 && !t->nodes[i].dirty; i = t->nodes[i].parent)
                t->nodes[i].dirty = true;
}

static inline bool bytes_equal(const char *a, const char *b, size_t n) {
        uint64_t x, y, u, v;

        /* Names are short: two overlapping words (4 or 8 bytes) compared, not a call, and no byte
         * outside either span read. */
        if (n >= 8 && n <= 16) {
                memcpy(&x, a, 8), memcpy(&y, b, 8), memcpy(&u, a + n - 8, 8), memcpy(&v, b + n - 8, 8);
                return ((x ^ y) | (u ^ v)) == 0;
        }
        if (n >= 4 && n < 8) {
                uint32_t x4, y4, u4, v4;

                memcpy(&x4, a, 4), memcpy(&y4, b, 4), memcpy(&u4, a + n - 4, 4), memcpy(&v4, b + n - 4, 4);
                return ((x4 ^ y4) | (u4 ^ v4)) == 0;
        }
        if (n < 4) {
                for (size_t k = 0; k < n; k++)
                        if (a[k] != b[k])
                                return false;
                return true;
        }
        return memcmp(a, b, n) == 0;
}

/* Which of the program's names a key of the record (a JSON string span) is, -1 if none. */
static inline __attribute__((always_inline)) int32_t name_id(const Transform *t, const char *key, uint32_t key_len,
                                                             bool escaped) {
        size_t len = key_len - 2;
        uint64_t candidates;

        if (escaped) {
                for (size_t k = 0; k < t->n_names; k++)
                        if (json_scan_string_equal(key, key_len, t->names[k]->text))
                                return (int32_t) k;
                return -1;
        }
        if (t->n_names > 64) {
                for (size_t k = 0; k < t->n_names; k++)
                        if (t->names[k]->len == len && bytes_equal(t->names[k]->text, key + 1, len))
                                return (int32_t) k;
                return -1;
        }
        candidates = len == 0 ? t->empty_names : t->first_byte[(uint8_t) key[1]];
        while (candidates != 0) {
                unsigned k = (unsigned) __builtin_ctzll(candidates);

                if (t->names[k]->len == len && bytes_equal(t->names[k]->text, key + 1, len))
                        return (int32_t) k;
                candidates &= candidates - 1;
        }
        return -1;
}

static inline bool node_is(const Node *n, const Name *c) {
        return n->id == c->id;
}

static const char *node_value(const Transform *t, const Node *n) {
        return n->in_arena ? t->arena.data + n->value_off : n->value;
}

/* Lists the members of object node i (one that was deeper than the scan listed, moved up by a
 * rename): a scan of that value alone. */
static int node_expand(Transform *t, int32_t i) {
        int r;

        if (t->nodes[i].listed)
                return 0;
        assert(t->nodes[i].type == JSON_SCAN_OBJECT && !t->nodes[i].in_arena);
        r = json_scan_line_members(t->nodes[i].value, t->nodes[i].value_len, &t->sub, NULL);
        if (r < 0)
                return r == -ENOMEM ? r : -EIO; /* (validated before: can not happen) */
        t->nodes[i].listed = true;
        for (size_t k = 0; k < t->sub.n; k++) {
                const JsonScanMember *m = &t->sub.members[k];
                int32_t j;

                r = node_new(t, &j);
                if (r < 0)
                        return r;
                t->nodes[j].key = m->key;
                t->nodes[j].key_len = m->key_len;
                t->nodes[j].key_escaped = m->key_escaped;
                t->nodes[j].id = name_id(t, m->key, m->key_len, m->key_escaped);
                t->nodes[j].value = m->value;
                t->nodes[j].value_len = m->value_len;
                t->nodes[j].type = m->type;
                t->nodes[j].value_escaped = m->value_escaped;
                node_append(t, i, j);
        }
        return 0;
}

/* The child of parent named c (the last one, if the name repeats, as json-c reads it), with the
 * sibling before it in *ret_prev. -1 if none. */
static int32_t node_child(Transform *t, int32_t parent, const Name *c, int32_t *ret_prev) {
        int32_t found = -1, found_prev = -1, prev = -1;

        for (int32_t i = t->nodes[parent].first; i >= 0; prev = i, i = t->nodes[i].next)
                if (node_is(&t->nodes[i], c)) {
                        found = i;
                        found_prev = prev;
                }
        if (ret_prev)
                *ret_prev = found_prev;
        return found;
}

/* The node at the first n parts of path, -1 if there is none (or -ENOMEM, < -1). */
static int32_t node_lookup(Transform *t, const Path *path, unsigned n, int32_t *ret_prev) {
        int32_t i = 0;

        for (unsigned k = 0; k < n; k++) {
                if (t->nodes[i].type != JSON_SCAN_OBJECT)
                        return -1;
                if (!t->nodes[i].listed) {
                        int r = node_expand(t, i);
                        if (r < 0)
                                return -ENOMEM;
                }
                i = node_child(t, i, &path->c[k], ret_prev);
                if (i < 0)
                        return -1;
        }
        return i;
}

/* The object at the first n parts of path, created (and whatever is there replaced) if needed. */
static int32_t node_ensure_object(Transform *t, const Path *path, unsigned n) {
        int32_t i = 0;

        for (unsigned k = 0; k < n; k++) {
                int32_t prev, c = node_child(t, i, &path->c[k], &prev);
                int r;

                if (c >= 0 && t->nodes[c].type == JSON_SCAN_OBJECT) {
                        r = node_expand(t, c);
                        if (r < 0)
                                return -ENOMEM;
                        i = c;
                        continue;
                }
                if (c >= 0)
                        node_unlink(t, c, prev);
                r = node_new(t, &c);
                if (r < 0)
                        return -ENOMEM;
                t->nodes[c].key = path->c[k].json;
                t->nodes[c].key_len = (uint32_t) path->c[k].json_len;
                t->nodes[c].id = path->c[k].id;
                t->nodes[c].type = JSON_SCAN_OBJECT;
                t->nodes[c].listed = true;
                node_append(t, i, c);
                node_touch(t, c);
                i = c;
        }
        return i;
}

/* Stores a generated value (JSON bytes) for node i. */
static int node_set_value(Transform *t, int32_t i, const char *json, size_t len, JsonScanType type, bool escaped) {
        size_t off = buffer_size(&t->arena);
        Node *n;

        if (buffer_append(&t->arena, json, len) < 0)
                return -ENOMEM;
        n = &t->nodes[i];
        n->in_arena = true;
        n->value = NULL;
        n->value_off = off;
        n->value_len = (uint32_t) len;
        n->type = (uint8_t) type;
        n->value_escaped = escaped;
        n->listed = false;
        n->dirty = false;
        n->first = n->last = -1;
        node_touch(t, n->parent);
        return 0;
}

/* Copies are short (a key, a number): inline below a few bytes instead of a call, as two
 * overlapping words (4 or 8 bytes), which read and write no byte outside the spans. */
static inline char *put(char *o, const char *p, size_t n) {
        if (n >= 8 && n <= 16) {
                uint64_t a, b;

                memcpy(&a, p, 8), memcpy(&b, p + n - 8, 8);
                memcpy(o, &a, 8), memcpy(o + n - 8, &b, 8);
                return o + n;
        }
        if (n >= 4 && n < 8) {
                uint32_t a, b;

                memcpy(&a, p, 4), memcpy(&b, p + n - 4, 4);
                memcpy(o, &a, 4), memcpy(o + n - 4, &b, 4);
                return o + n;
        }
        if (n < 4) {
                for (size_t k = 0; k < n; k++)
                        o[k] = p[k];
                return o + n;
        }
        return (char *) memcpy(o, p, n) + n;
}

static char *write_object_raw(const Transform *t, int32_t i, char *o) {
        bool first = true;

        *o++ = '{';
        for (int32_t c = t->nodes[i].first; c >= 0; c = t->nodes[c].next) {
                const Node *n = &t->nodes[c];

                if (!first)
                        *o++ = ',';
                first = false;
                o = put(o, n->key, n->key_len);
                *o++ = ':';
                if (n->type == JSON_SCAN_OBJECT && n->dirty)
                        o = write_object_raw(t, c, o);
                else
                        o = put(o, node_value(t, n), n->value_len);
        }
        *o++ = '}';
        return o;
}

/* Appends the object node i to out. Room for it is reserved once: every span of the input and of
 * the arena is written at most once, plus the keys the program brought and the punctuation. */
static int write_object(const Transform *t, int32_t i, size_t input_len, Buffer *out) {
        size_t bound = input_len + buffer_size(&t->arena) + t->n_nodes * (t->max_key_len + 4) + 2;
        char *o, *e;

        if (buffer_reserve(out, bound) < 0)
                return -ENOMEM;
        o = buffer_tail(out);
        e = write_object_raw(t, i, o);
        assert((size_t) (e - o) <= bound);
        buffer_advance(out, (size_t) (e - o));
        return 0;
}

/* The value of node i as text in t->subject (NUL-terminated): a string unescaped, anything else as
 * written. Returns its length, or -ENOMEM. */
static ssize_t node_text(Transform *t, int32_t i, const char **ret) {
        const Node *n = &t->nodes[i];
        const char *v = node_value(t, n);
        int k;

        buffer_clear(&t->subject);
        if (n->type == JSON_SCAN_OBJECT && n->dirty) {
                if (write_object(t, i, t->input_len, &t->subject) < 0 || buffer_append(&t->subject, "", 1) < 0)
                        return -ENOMEM;
                *ret = t->subject.data;
                return (ssize_t) buffer_size(&t->subject) - 1;
        }
        if (buffer_reserve(&t->subject, (size_t) n->value_len + 1) < 0)
                return -ENOMEM;
        if (n->type == JSON_SCAN_STRING && !n->value_escaped) {
                memcpy(t->subject.data, v + 1, n->value_len - 2);
                t->subject.data[n->value_len - 2] = 0;
                *ret = t->subject.data;
                return (ssize_t) n->value_len - 2;
        }
        if (n->type == JSON_SCAN_STRING) {
                /* Unescaping never makes a string longer. */
                k = json_scan_string_unescape(v, n->value_len, t->subject.data, (size_t) n->value_len + 1);
                if (k < 0)
                        return -EIO;
                *ret = t->subject.data;
                return k;
        }
        memcpy(t->subject.data, v, n->value_len);
        t->subject.data[n->value_len] = 0;
        *ret = t->subject.data;
        return (ssize_t) n->value_len;
}

/* The value of node i as text, as node_text() makes it, but in place where it can be (a string
 * without escapes, a number, a literal, an object as received): not NUL-terminated then. Only an
 * escaped string and an object a step changed are written into t->subject. Returns its length, or
 * -ENOMEM. */
static ssize_t node_span(Transform *t, int32_t i, const char **ret) {
        const Node *n = &t->nodes[i];
        const char *v = node_value(t, n);

        if (n->type == JSON_SCAN_STRING && !n->value_escaped) {
                *ret = v + 1;
                return (ssize_t) n->value_len - 2;
        }
        if (n->type != JSON_SCAN_STRING && !(n->type == JSON_SCAN_OBJECT && n->dirty)) {
                *ret = v;
                return (ssize_t) n->value_len;
        }
        return node_text(t, i, ret);
}

static int compare_bytes(const char *a, size_t na, const char *b, size_t nb) {
        int c = memcmp(a, b, MIN(na, nb));

        if (c != 0)
                return c;
        return na < nb ? -1 : na > nb;
}

/* Evaluates a where step on the record: 1 holds, 0 does not, negative errno. */
static int where_holds(Transform *t, const Step *s) {
        locale_t old;
        const char *text;
        ssize_t len;
        int32_t i;
        int c;

        i = node_lookup(t, &s->paths[0], s->paths[0].n, NULL);
        if (i < -1)
                return -ENOMEM;
        if (i < 0)
                return s->op == OP_NE; /* a field that is not there equals nothing */

        if (s->op == OP_MATCH) {
                /* REG_STARTEND: the value's bytes are matched where they are (no copy, no NUL
                 * needed; a NUL from \u0000 is a character like any other). The span starts at
                 * text[0], so that ^ matches at its start and $ at its end. */
                regmatch_t span[1];

                len = node_span(t, i, &text);
                if (len < 0)
                        return (int) len;
#ifdef REGEXEC_WANTS_NUL
                if (text != t->subject.data) {
                        buffer_clear(&t->subject);
                        if (buffer_append(&t->subject, text, (size_t) len) < 0 || buffer_append(&t->subject, "", 1) < 0)
                                return -ENOMEM;
                        text = t->subject.data;
                }
#endif
                span[0] = (regmatch_t) { .rm_so = 0, .rm_eo = (regoff_t) len };
                if (s->regex_bytes)
                        old = uselocale(t->bytes);
                else
                        old = t->utf8 ? uselocale(t->utf8) : 0;
                c = regexec(&s->regex, text, 1, span, REG_STARTEND);
                if (old)
                        (void) uselocale(old);
                return c == 0;
        }

        if (s->value_is_number) {
                const Node *n = &t->nodes[i];
                const char *v = node_value(t, n);
                double d;
                bool numeric = false;

                if (n->type == JSON_SCAN_NUMBER)
                        numeric = parse_number(v, n->value_len, &d);
                else if (n->type == JSON_SCAN_STRING && !n->value_escaped)
                        /* A number in a string (CSV fields are strings) compares as a number too. */
                        numeric = parse_number(v + 1, n->value_len - 2, &d);
                if (numeric) {
                        c = d < s->value_number ? -1 : d > s->value_number;
                        goto verdict;
                }
        }
        len = node_span(t, i, &text);
        if (len < 0)
                return (int) len;
        c = compare_bytes(text, (size_t) len, s->value, s->value_len);
verdict:
        switch (s->op) {
        case OP_EQ:
                return c == 0;
        case OP_NE:
                return c != 0;
        case OP_LT:
                return c < 0;
        case OP_LE:
                return c <= 0;
        case OP_GT:
                return c > 0;
        case OP_GE:
                return c >= 0;
        default:
                return 0;
        }
}

static bool word_is(const char *s, size_t n, const char *word) {
        if (strlen(word) != n)
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = s[i];
                if (c >= 'A' && c <= 'Z')
                        c = (char) (c - 'A' + 'a');
                if (c != word[i])
                        return false;
        }
        return true;
}

/* Whether s[0..n) is all ASCII digits, 8 bytes at a time (as json-scan.c's scan_digits(): a byte is
 * a digit when its high nibble is 3 and adding 6 keeps it so; a carry out of a byte >= 0xfa only
 * spoils bytes after one that is no digit anyway). */
static bool all_digits(const char *s, size_t n) {
        const uint64_t ones = UINT64_C(0x0101010101010101);

        for (; n >= 8; s += 8, n -= 8) {
                uint64_t w;

                memcpy(&w, s, sizeof(w));
                if ((((w & (ones * 0xf0)) ^ (ones * 0x30)) | (((w + ones * 0x06) & (ones * 0xf0)) ^ (ones * 0x30))) != 0)
                        return false;
        }
        for (; n > 0; s++, n--)
                if (*s < '0' || *s > '9')
                        return false;
        return true;
}

/* An integer written in a string: [+-]?[0-9]+ within int64. */
static bool parse_int64(const char *s, size_t n, int64_t *ret) {
        uint64_t v = 0, limit;
        bool neg = false;
        size_t i = 0;

        if (i < n && (s[i] == '-' || s[i] == '+'))
                neg = s[i++] == '-';
        if (i == n)
                return false;
        if (n - i <= 18) {
                /* No overflow possible: no check per digit. */
                for (; i < n; i++) {
                        if (s[i] < '0' || s[i] > '9')
                                return false;
                        v = v * 10 + (unsigned) (s[i] - '0');
                }
                *ret = neg ? -(int64_t) v : (int64_t) v;
                return true;
        }
        limit = neg ? (uint64_t) INT64_MAX + 1 : (uint64_t) INT64_MAX;
        for (; i < n; i++) {
                unsigned d;

                if (s[i] < '0' || s[i] > '9')
                        return false;
                d = (unsigned) (s[i] - '0');
                if (v > (limit - d) / 10)
                        return false;
                v = v * 10 + d;
        }
        *ret = neg ? (int64_t) (0 - v) : (int64_t) v;
        return true;
}

/* A decimal number in a string, more liberal than JSON ("+1", ".5", "5.", "007"); no hex, no NaN or
 * Infinity, no blanks. */
static bool parse_decimal(const char *s, size_t n, double *ret) {
        char buf[64], *e;
        double d;

        if (n == 0 || n >= sizeof(buf))
                return false;
        for (size_t i = 0; i < n; i++)
                if (!s[i] || !strchr("0123456789+-.eE", s[i]))
                        return false;
        memcpy(buf, s, n);
        buf[n] = 0;
        d = strtod(buf, &e);
        if (*e != 0 || e == buf || !isfinite(d))
                return false;
        *ret = d;
        return true;
}

/* Writes d the shortest way that reads back as the same double, as JSON. */
static int format_double(double d, char buf[static 40], bool want_point) {
        int n = snprintf(buf, 40, "%.15g", d);

        if (strtod(buf, NULL) != d)
                n = snprintf(buf, 40, "%.17g", d);
        if (want_point && !strpbrk(buf, ".eE"))
                n += snprintf(buf + n, 40 - (size_t) n, ".0");
        return n;
}

static const char *type_name(uint8_t type) {
        switch (type) {
        case JSON_SCAN_OBJECT:
                return "an object";
        case JSON_SCAN_ARRAY:
                return "an array";
        case JSON_SCAN_NULL:
                return "null";
        default:
                return "this value";
        }
}

/* Converts node i; 1 done, 0 failed (t->reason says why), negative errno. */
static int convert_node(Transform *t, int32_t i, ConvType to) {
        const Node *n = &t->nodes[i];
        const char *v = node_value(t, n), *text = NULL;
        uint8_t type = n->type;
        char buf[40], shown[48];
        ssize_t len = 0;
        double d;
        int64_t k;
        int w;

        if (type == JSON_SCAN_STRING) {
                /* (Read before anything is appended to the arena it may point into.) */
                len = node_span(t, i, &text);
                if (len < 0)
                        return (int) len;
                /* For a message: the value as sent, cut short. */
                (void) snprintf(shown, sizeof(shown), "%.*s%s", (int) MIN(n->value_len, (uint32_t) 40), v,
                                n->value_len > 40 ? "..." : "");
        }

        switch (to) {
        case CONV_INT:
                if (type == JSON_SCAN_NUMBER) {
                        size_t neg = v[0] == '-';

                        /* Digits only and at most 18 of them: an integer in range already,
                         * nothing to write. */
                        if (n->value_len - neg <= 18 && all_digits(v + neg, n->value_len - neg))
                                return 1;
                        if (parse_int64(v, n->value_len, &k))
                                return 1;
                        if (!parse_number(v, n->value_len, &d))
                                d = NAN;
                } else if (type == JSON_SCAN_STRING) {
                        if (parse_int64(text, (size_t) len, &k))
                                goto write_int;
                        if (!parse_decimal(text, (size_t) len, &d)) {
                                (void) snprintf(t->reason, sizeof(t->reason), "%s is not a number", shown);
                                return 0;
                        }
                } else if (type == JSON_SCAN_TRUE || type == JSON_SCAN_FALSE) {
                        k = type == JSON_SCAN_TRUE;
                        goto write_int;
                } else {
                        (void) snprintf(t->reason, sizeof(t->reason), "%s can not become an integer", type_name(type));
                        return 0;
                }
                /* In range first, so that the cast is defined; then integral (no trunc(): that
                 * would need libm in builds that do not inline it). */
                if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0) || (double) (int64_t) d != d) {
                        (void) snprintf(t->reason, sizeof(t->reason), "%.*s is not an integer in range",
                                        type == JSON_SCAN_STRING ? (int) strlen(shown) : (int) MIN(n->value_len, (uint32_t) 40),
                                        type == JSON_SCAN_STRING ? shown : v);
                        return 0;
                }
                k = (int64_t) d;
        write_int:
                w = snprintf(buf, sizeof(buf), "%" PRIi64, k);
                return node_set_value(t, i, buf, (size_t) w, JSON_SCAN_NUMBER, false) < 0 ? -ENOMEM : 1;

        case CONV_FLOAT:
                if (type == JSON_SCAN_NUMBER) {
                        if (memchr(v, '.', n->value_len) || memchr(v, 'e', n->value_len) || memchr(v, 'E', n->value_len))
                                return 1;
                        if (n->value_len + 2 > sizeof(buf)) {
                                if (!parse_number(v, n->value_len, &d))
                                        return 1; /* a huge integer: a number it stays */
                                w = format_double(d, buf, true);
                        } else {
                                memcpy(buf, v, n->value_len);
                                memcpy(buf + n->value_len, ".0", 2);
                                w = (int) n->value_len + 2;
                        }
                } else if (type == JSON_SCAN_STRING) {
                        if (!parse_decimal(text, (size_t) len, &d)) {
                                (void) snprintf(t->reason, sizeof(t->reason), "%s is not a number", shown);
                                return 0;
                        }
                        w = format_double(d, buf, true);
                } else if (type == JSON_SCAN_TRUE || type == JSON_SCAN_FALSE) {
                        w = snprintf(buf, sizeof(buf), "%s", type == JSON_SCAN_TRUE ? "1.0" : "0.0");
                } else {
                        (void) snprintf(t->reason, sizeof(t->reason), "%s can not become a number", type_name(type));
                        return 0;
                }
                return node_set_value(t, i, buf, (size_t) w, JSON_SCAN_NUMBER, false) < 0 ? -ENOMEM : 1;

        case CONV_BOOL: {
                bool b;

                if (type == JSON_SCAN_TRUE || type == JSON_SCAN_FALSE)
                        return 1;
                if (type == JSON_SCAN_STRING) {
                        if (word_is(text, (size_t) len, "true") || word_is(text, (size_t) len, "yes") ||
                            word_is(text, (size_t) len, "on") || word_is(text, (size_t) len, "1"))
                                b = true;
                        else if (word_is(text, (size_t) len, "false") || word_is(text, (size_t) len, "no") ||
                                 word_is(text, (size_t) len, "off") || word_is(text, (size_t) len, "0"))
                                b = false;
                        else {
                                (void) snprintf(t->reason, sizeof(t->reason),
                                                "%s is not a boolean (true/false, yes/no, on/off, 1/0)", shown);
                                return 0;
                        }
                } else if (type == JSON_SCAN_NUMBER && parse_number(v, n->value_len, &d) && (d == 0 || d == 1))
                        b = d == 1;
                else {
                        (void) snprintf(t->reason, sizeof(t->reason), "%.*s is not a boolean",
                                        type == JSON_SCAN_NUMBER ? (int) MIN(n->value_len, (uint32_t) 40) : (int) strlen(type_name(type)),
                                        type == JSON_SCAN_NUMBER ? v : type_name(type));
                        return 0;
                }
                return node_set_value(t, i, b ? "true" : "false", b ? 4 : 5, b ? JSON_SCAN_TRUE : JSON_SCAN_FALSE,
                                      false) < 0
                               ? -ENOMEM
                               : 1;
        }

        case CONV_STRING: {
                size_t off;

                if (type == JSON_SCAN_STRING)
                        return 1;
                if (type == JSON_SCAN_OBJECT || type == JSON_SCAN_ARRAY) {
                        /* The JSON text of the value, as a string. */
                        len = node_text(t, i, &text);
                        if (len < 0)
                                return (int) len;
                        off = buffer_size(&t->arena);
                        if (buffer_append_json_string(&t->arena, text, (size_t) len) < 0)
                                return -ENOMEM;
                        /* Stored in place: node_set_value() would copy it once more. */
                        t->nodes[i].in_arena = true;
                        t->nodes[i].value = NULL;
                        t->nodes[i].value_off = off;
                        t->nodes[i].value_len = (uint32_t) (buffer_size(&t->arena) - off);
                        t->nodes[i].type = JSON_SCAN_STRING;
                        t->nodes[i].value_escaped = true;
                        t->nodes[i].listed = t->nodes[i].dirty = false;
                        t->nodes[i].first = t->nodes[i].last = -1;
                        node_touch(t, t->nodes[i].parent);
                        return 1;
                }
                /* Numbers and literals hold nothing that needs escaping. */
                off = buffer_size(&t->arena);
                if (buffer_reserve(&t->arena, (size_t) n->value_len + 2) < 0)
                        return -ENOMEM;
                n = &t->nodes[i];
                v = node_value(t, n);
                t->arena.data[t->arena.tail] = '"';
                memcpy(t->arena.data + t->arena.tail + 1, v, n->value_len);
                t->arena.data[t->arena.tail + 1 + n->value_len] = '"';
                buffer_advance(&t->arena, (size_t) n->value_len + 2);
                t->nodes[i].in_arena = true;
                t->nodes[i].value = NULL;
                t->nodes[i].value_off = off;
                t->nodes[i].value_len += 2;
                t->nodes[i].type = JSON_SCAN_STRING;
                t->nodes[i].value_escaped = false;
                node_touch(t, t->nodes[i].parent);
                return 1;
        }
        }
        return 0;
}

/* select: marks the nodes on the selected paths, then removes every unmarked one below root. */
static void select_sweep(Transform *t, int32_t parent) {
        int32_t prev = -1, next;

        for (int32_t i = t->nodes[parent].first; i >= 0; i = next) {
                Node *n = &t->nodes[i];

                next = n->next;
                if (n->mark != t->epoch) {
                        node_unlink(t, i, prev);
                        node_touch(t, parent);
                        continue;
                }
                if (!n->mark_full)
                        select_sweep(t, i);
                prev = i;
        }
}

static int run_select(Transform *t, const Step *s) {
        t->epoch++;
        if (s->top_ids != 0) {
                /* Top-level names only: one walk over the record's fields, the last of each name
                 * kept (as a lookup of each would find it). */
                int32_t last[64];
                uint64_t seen = 0;

                for (int32_t c = t->nodes[0].first; c >= 0; c = t->nodes[c].next) {
                        int32_t id = t->nodes[c].id;

                        if (id >= 0 && id < 64 && (s->top_ids >> id & 1)) {
                                last[id] = c;
                                seen |= UINT64_C(1) << id;
                        }
                }
                while (seen != 0) {
                        unsigned id = (unsigned) __builtin_ctzll(seen);

                        t->nodes[last[id]].mark = t->epoch;
                        t->nodes[last[id]].mark_full = true;
                        seen &= seen - 1;
                }
                select_sweep(t, 0);
                return 0;
        }
        for (size_t p = 0; p < s->n_paths; p++) {
                const Path *path = &s->paths[p];
                int32_t on_path[PATH_COMPONENTS_MAX], i = 0;
                unsigned k;

                /* Only a path that is there keeps the objects along it. */
                for (k = 0; k < path->n; k++) {
                        if (t->nodes[i].type != JSON_SCAN_OBJECT)
                                break;
                        if (node_expand(t, i) < 0)
                                return -ENOMEM;
                        i = node_child(t, i, &path->c[k], NULL);
                        if (i < 0)
                                break;
                        on_path[k] = i;
                }
                if (k < path->n)
                        continue;
                for (k = 0; k < path->n; k++) {
                        Node *n = &t->nodes[on_path[k]];

                        if (n->mark != t->epoch) {
                                n->mark = t->epoch;
                                n->mark_full = false;
                        }
                        if (k == path->n - 1)
                                n->mark_full = true;
                }
        }
        select_sweep(t, 0);
        return 0;
}

static int run_drop(Transform *t, const Step *s) {
        for (size_t p = 0; p < s->n_paths; p++) {
                int32_t prev = -1, i = node_lookup(t, &s->paths[p], s->paths[p].n, &prev), parent;

                if (i < -1)
                        return -ENOMEM;
                if (i < 0)
                        continue;
                parent = t->nodes[i].parent;
                node_unlink(t, i, prev);
                node_touch(t, parent);
        }
        return 0;
}

static bool same_prefix(const Path *a, const Path *b) {
        if (a->n != b->n)
                return false;
        for (unsigned k = 0; k + 1 < a->n; k++)
                if (a->c[k].len != b->c[k].len || memcmp(a->c[k].text, b->c[k].text, a->c[k].len) != 0)
                        return false;
        return true;
}

static int run_rename(Transform *t, const Step *s) {
        for (size_t p = 0; p + 1 < s->n_paths; p += 2) {
                const Path *from = &s->paths[p], *to = &s->paths[p + 1];
                const Name *last = &to->c[to->n - 1];
                int32_t prev = -1, i = node_lookup(t, from, from->n, &prev), parent, target, other, other_prev;

                if (i < -1)
                        return -ENOMEM;
                if (i < 0)
                        continue;
                parent = t->nodes[i].parent;
                if (same_prefix(from, to)) {
                        /* Within the same object: renamed where it is; a field of the new name goes. */
                        target = parent;
                        for (int32_t c = t->nodes[parent].first, cp = -1; c >= 0;) {
                                int32_t next = t->nodes[c].next;
                                if (c != i && node_is(&t->nodes[c], last)) {
                                        node_unlink(t, c, cp);
                                        c = next;
                                        continue;
                                }
                                cp = c;
                                c = next;
                        }
                } else {
                        node_unlink(t, i, prev);
                        node_touch(t, parent);
                        target = node_ensure_object(t, to, to->n - 1);
                        if (target < 0)
                                return -ENOMEM;
                        while ((other = node_child(t, target, last, &other_prev)) >= 0)
                                node_unlink(t, other, other_prev);
                        node_append(t, target, i);
                }
                t->nodes[i].key = last->json;
                t->nodes[i].key_len = (uint32_t) last->json_len;
                t->nodes[i].id = last->id;
                t->nodes[i].key_escaped = false;
                node_touch(t, target);
        }
        return 0;
}

static int run_set(Transform *t, const Step *s, const TransformEnv *env) {
        const Path *path = &s->paths[0];
        const Name *last = &path->c[path->n - 1];
        _cleanup_(buffer_done) Buffer unused = {};
        char num[32];
        const char *json;
        size_t len;
        int32_t parent, i;
        Buffer *b = &t->subject;

        switch (s->set_kind) {
        case SET_LITERAL:
                json = s->value;
                len = s->value_len;
                break;
        case SET_TS_US:
                len = (size_t) snprintf(num, sizeof(num), "\"%" PRIu64 "\"", env ? env->ts_us : 0);
                json = num;
                break;
        default: {
                const char *v = (s->set_kind == SET_SOURCE ? (env ? env->source : NULL) : (env ? env->host : NULL)) ?: "";

                buffer_clear(b);
                if (buffer_append_json_string(b, v, strlen(v)) < 0)
                        return -ENOMEM;
                json = buffer_begin(b);
                len = buffer_size(b);
                break;
        }
        }

        parent = node_ensure_object(t, path, path->n - 1);
        if (parent < 0)
                return -ENOMEM;
        i = node_child(t, parent, last, NULL);
        if (i < 0) {
                int r = node_new(t, &i);
                if (r < 0)
                        return r;
                t->nodes[i].key = last->json;
                t->nodes[i].key_len = (uint32_t) last->json_len;
                t->nodes[i].id = last->id;
                node_append(t, parent, i);
        }
        return node_set_value(t, i, json, len, JSON_SCAN_STRING, true);
}

unsigned transform_depth(const Transform *t) {
        return t->max_depth;
}

/* The steps on the nodes built, and the output. */
static int transform_steps(Transform *t, size_t len, const TransformEnv *env, Buffer *out, TransformResult *ret);

/* The node table from the record's members: members[first..] down to where the subtree of the
 * record (of depth base; 0 for a record listed on its own, first 0 then) ends. A member's parent is
 * the last member before it one level up (the list is in document order); members deeper than the
 * program reaches (a listing made deeper than needed) are left out. */
/* Member m of a listed record becomes node i, the last child of node parent; depth is its depth
 * below the record. */
static inline void node_add_member(Transform *t, int32_t i, const JsonScanMember *m, int32_t parent, unsigned depth) {
        t->nodes[i] = (Node) {
                .key = m->key,
                .key_len = m->key_len,
                .value = m->value,
                .value_len = m->value_len,
                .parent = parent,
                .first = -1,
                .last = -1,
                .next = -1,
                .type = m->type,
                .key_escaped = m->key_escaped,
                .value_escaped = m->value_escaped,
                .id = name_id(t, m->key, m->key_len, m->key_escaped),
                .listed = m->type == JSON_SCAN_OBJECT && depth < t->max_depth,
        };
        if (t->nodes[parent].last >= 0)
                t->nodes[t->nodes[parent].last].next = i;
        else
                t->nodes[parent].first = i;
        t->nodes[parent].last = i;
}

static int nodes_build(Transform *t, const char *rec, size_t len, const JsonScanMember *members, size_t n_members,
                       size_t first, unsigned base) {
        int32_t open[PATH_COMPONENTS_MAX + 1], i = 1;

        if (n_members - first + 1 > t->allocated_nodes) {
                Node *n;

                if (n_members - first + 64 > INT32_MAX)
                        return -ENOMEM;
                n = reallocarray(t->nodes, n_members - first + 64, sizeof(Node));
                if (!n)
                        return -ENOMEM;
                t->nodes = n;
                t->allocated_nodes = n_members - first + 64;
        }
        /* The nodes: 0 is the record itself. */
        t->epoch = 0;
        buffer_clear(&t->arena);
        t->input_len = len;
        t->nodes[0] = (Node) {
                .parent = -1,
                .first = -1,
                .last = -1,
                .next = -1,
                .id = -1,
                .type = JSON_SCAN_OBJECT,
                .listed = true,
                .dirty = true,
                .value = rec,
                .value_len = (uint32_t) len,
        };
        if (base == 0) {
                /* A record listed on its own (the common case): member k is node k + 1, its
                 * parent's node is known from the list, and no member is deeper than the
                 * program reaches (the listing went just that deep). */
                for (size_t k = 0; k < n_members; k++)
                        node_add_member(t, (int32_t) (k + 1), &members[k], members[k].parent + 1, members[k].depth);
                t->n_nodes = n_members + 1;
                return 0;
        }
        open[0] = 0;
        for (size_t k = first; k < n_members && members[k].depth > base; k++) {
                const JsonScanMember *m = &members[k];
                unsigned d = m->depth - base;
                int32_t parent;

                if (d > t->max_depth)
                        continue;
                parent = open[d - 1];
                node_add_member(t, i, m, parent, d);
                open[d] = i;
                i++;
        }
        t->n_nodes = (size_t) i;
        return 0;
}

int transform_run_listed(Transform *t, const char *rec, size_t len, const JsonScanMember *members, size_t n_members,
                         ssize_t root, const TransformEnv *env, Buffer *out, TransformResult *ret) {
        int r;

        assert(t);
        assert(rec);
        assert(members || n_members == 0);
        assert(root < (ssize_t) n_members);
        assert(root < 0 || members[root].type == JSON_SCAN_OBJECT);
        assert(out);
        assert(ret);

        *ret = (TransformResult) {};
        if (len > UINT32_MAX)
                return -E2BIG;
        r = nodes_build(t, rec, len, members, n_members, (size_t) (root + 1), root >= 0 ? members[root].depth : 0);
        if (r < 0)
                return r;
        return transform_steps(t, len, env, out, ret);
}

int transform_run(Transform *t, const char *rec, size_t len, const TransformEnv *env, Buffer *out,
                  TransformResult *ret) {
        size_t at = 0;
        int r;

        assert(t);
        assert(rec || len == 0);
        assert(out);
        assert(ret);

        *ret = (TransformResult) {};
        r = json_scan_line_members(rec, len, &t->members, &at);
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                ret->verdict = TRANSFORM_INVALID;
                ret->error_offset = r == -EBADMSG ? at : 0;
                return 0;
        }
        if (r != JSON_SCAN_OBJECT) {
                ret->verdict = TRANSFORM_SKIP;
                ret->reason = "the record is not a JSON object";
                return 0;
        }
        r = nodes_build(t, rec, len, t->members.members, t->members.n, 0, 0);
        if (r < 0)
                return r;
        return transform_steps(t, len, env, out, ret);
}

static int transform_steps(Transform *t, size_t len, const TransformEnv *env, Buffer *out, TransformResult *ret) {
        size_t mark;
        int r;

        for (unsigned k = 0; k < t->n_steps; k++) {
                const Step *s = &t->steps[k];

                switch (s->type) {
                case STEP_SELECT:
                        r = run_select(t, s);
                        break;
                case STEP_DROP:
                        r = run_drop(t, s);
                        break;
                case STEP_RENAME:
                        r = run_rename(t, s);
                        break;
                case STEP_WHERE:
                        r = where_holds(t, s);
                        if (r == 0) {
                                ret->verdict = TRANSFORM_FILTERED;
                                ret->step = s->number;
                                return 0;
                        }
                        break;
                case STEP_CONVERT:
                        for (size_t p = 0; p < s->n_paths; p++) {
                                int32_t i = node_lookup(t, &s->paths[p], s->paths[p].n, NULL);
                                if (i < -1)
                                        return -ENOMEM;
                                if (i < 0)
                                        continue; /* a field that is not there is not converted */
                                r = convert_node(t, i, s->conv[p]);
                                if (r < 0)
                                        return r;
                                if (r == 0) {
                                        char why[sizeof(t->reason)];

                                        memcpy(why, t->reason, sizeof(why));
                                        (void) snprintf(t->reason, sizeof(t->reason), "step %u (%.80s): %.160s", s->number,
                                                        s->text, why);
                                        ret->verdict = TRANSFORM_SKIP;
                                        ret->step = s->number;
                                        ret->reason = t->reason;
                                        return 0;
                                }
                        }
                        r = 0;
                        break;
                case STEP_SET:
                        r = run_set(t, s, env);
                        break;
                default:
                        r = -EINVAL;
                }
                if (r < 0)
                        return r;
        }

        mark = out->tail;
        r = write_object(t, 0, len, out);
        if (r < 0) {
                out->tail = mark;
                return r;
        }
        ret->verdict = TRANSFORM_EMIT;
        return 0;
}
