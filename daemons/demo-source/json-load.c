/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <json-c/json.h>
#include <json-c/json_pointer.h>
#include <stdlib.h>
#include <string.h>

#include "json-load.h"
#include "buffer.h"
#include "json-scan.h"
#include "json-util.h"

/* As deep as json-c's default and common/json-scan.h allow, so that every row dpipe-source serves
 * is one the connectors accept. */
#define JSON_LOAD_MAX_DEPTH JSON_SCAN_DEPTH_MAX

typedef enum JsonState {
        JL_START,
        JL_ARRAY_FIRST,  /* after '[' */
        JL_ARRAY_NEXT,   /* after ',' */
        JL_ARRAY_SEP,    /* after an element */
        JL_ARRAY_DONE,   /* after ']' */
        JL_LINES,        /* between objects */
        JL_ELEMENT,      /* inside an element, fed to the tokener */
        JL_DOCUMENT,     /* everything goes to the tokener */
        JL_DOCUMENT_DONE,
} JsonState;

typedef enum JsonShape {
        SHAPE_UNKNOWN,
        SHAPE_ARRAY,
        SHAPE_LINES,
        SHAPE_DOCUMENT,
} JsonShape;

struct JsonLoader {
        Dataset *dataset;
        char *records_pointer;
        struct json_tokener *tok;
        JsonState state;
        JsonState after_element; /* where to go once the element is complete */
        JsonShape shape;

        unsigned long line, column;                 /* of the next byte */
        unsigned long element_line, element_column; /* where the current element began */
        size_t n_objects;                            /* complete top-level objects seen */
        struct json_object *first;                   /* first object, until the shape is known */
        struct json_object *document;
        bool document_resolved;
        bool in_string, in_escape; /* lexical state of the bytes given to the tokener */
        Buffer element;            /* the bytes of the current element, for strict validation */
};

JsonLoader *json_loader_new(Dataset *d, const char *records_pointer) {
        JsonLoader *l;

        l = calloc(1, sizeof(JsonLoader));
        if (!l)
                return NULL;
        l->dataset = d;
        l->line = l->column = 1;
        if (records_pointer) {
                l->records_pointer = strdup(records_pointer);
                if (!l->records_pointer)
                        return json_loader_free(l);
        }
        l->tok = json_tokener_new_ex(JSON_LOAD_MAX_DEPTH);
        if (!l->tok)
                return json_loader_free(l);
        /* UTF-8 is checked by element_validate(): json-c refuses a character split across two chunks. */
        json_tokener_set_flags(l->tok, JSON_TOKENER_STRICT | JSON_TOKENER_ALLOW_TRAILING_CHARS);
        return l;
}

JsonLoader *json_loader_free(JsonLoader *l) {
        if (!l)
                return NULL;
        if (l->tok)
                json_tokener_free(l->tok);
        json_object_put(l->first);
        json_object_put(l->document);
        free(l->records_pointer);
        buffer_done(&l->element);
        free(l);
        return NULL;
}

void json_loader_set_dataset(JsonLoader *l, Dataset *d) {
        l->dataset = d;
}

bool json_loader_can_follow(const JsonLoader *l) {
        return l->shape == SHAPE_LINES || (l->shape == SHAPE_UNKNOWN && !l->records_pointer);
}

const char *json_loader_shape(const JsonLoader *l) {
        switch (l->shape) {
        case SHAPE_ARRAY:
                return "array";
        case SHAPE_LINES:
                return "lines";
        case SHAPE_DOCUMENT:
                return "document";
        default:
                return l->n_objects > 0 ? "lines" : "empty";
        }
}

/* Moves the position over s[0..n). */
static void advance(JsonLoader *l, const char *s, size_t n) {
        const char *end = s + n, *nl;

        while ((nl = memchr(s, '\n', (size_t) (end - s)))) {
                l->line++;
                l->column = 1;
                s = nl + 1;
        }
        l->column += (unsigned long) (end - s);
}

static bool is_blank(char c) {
        return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static int add_row(JsonLoader *l, struct json_object *o) {
        const char *text;

        text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        if (!text)
                return -ENOMEM;
        return dataset_add_row(l->dataset, text, strlen(text));
}

static int add_rows_from_array(JsonLoader *l, struct json_object *a, LoadError *err) {
        size_t n = json_object_array_length(a);
        int r;

        for (size_t i = 0; i < n; i++) {
                struct json_object *o = json_object_array_get_idx(a, i);
                if (!json_object_is_type(o, json_type_object))
                        return load_error_set(err, 0, 0, "record %zu of the records array is not an object", i);
                r = add_row(l, o);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* The one object of a single-object file: a document with exactly one (non-empty) array of objects
 * at its top level holds the records there; any other object is one record. */
static int resolve_single_object(JsonLoader *l, LoadError *err) {
        struct json_object *found = NULL;
        const char *found_key = NULL;
        int r;

        json_object_object_foreach(l->first, key, v) {
                size_t n;
                bool all = true;

                if (!json_object_is_type(v, json_type_array))
                        continue;
                n = json_object_array_length(v);
                for (size_t i = 0; i < n && all; i++)
                        all = json_object_is_type(json_object_array_get_idx(v, i), json_type_object);
                if (n == 0 || !all)
                        continue;
                if (found)
                        return load_error_set(err, 1, 1,
                                              "the document has several arrays of objects (/%s, /%s); choose one with --records=",
                                              found_key, key);
                found = v;
                found_key = key;
        }

        if (found) {
                l->shape = SHAPE_DOCUMENT;
                r = add_rows_from_array(l, found, err);
        } else {
                l->shape = SHAPE_LINES;
                r = add_row(l, l->first);
        }
        json_object_put(l->first);
        l->first = NULL;
        return r;
}

static int element_done(JsonLoader *l, struct json_object *o, LoadError *err) {
        int r = 0;

        if (!json_object_is_type(o, json_type_object)) {
                json_object_put(o);
                return load_error_set(err, l->element_line, l->element_column, "expected a JSON object");
        }
        l->n_objects++;

        if (l->shape == SHAPE_UNKNOWN && l->n_objects == 1) {
                /* One object so far: a document or the first line of JSON Lines; the next object
                 * (or the end of the file) tells. */
                l->first = o;
                return 0;
        }
        if (l->first) {
                l->shape = SHAPE_LINES;
                r = add_row(l, l->first);
                json_object_put(l->first);
                l->first = NULL;
                if (r < 0) {
                        json_object_put(o);
                        return r;
                }
        }
        r = add_row(l, o);
        json_object_put(o);
        return r;
}

/* json-c 0.16 accepts single-quoted member names even in strict mode; JSON does not. Tracks
 * strings over the bytes the tokener consumed and returns the offset of a quote outside of any
 * string, or -1. */
static ssize_t find_single_quote(JsonLoader *l, const char *s, size_t n) {
        for (size_t i = 0; i < n; i++) {
                char c = s[i];

                if (l->in_string) {
                        if (l->in_escape)
                                l->in_escape = false;
                        else if (c == '\\')
                                l->in_escape = true;
                        else if (c == '"')
                                l->in_string = false;
                } else if (c == '"')
                        l->in_string = true;
                else if (c == '\'')
                        return (ssize_t) i;
        }
        return -1;
}

/* json-c's incremental tokener is less strict where a value is split across two parse calls (it takes
 * "0" then "-}" as 0, and lets control characters through in some splits), so whether a file loads
 * would depend on where the reads happen to split it. Each complete element is therefore checked
 * once more, whole, by the strict validator of common/json-scan.h. */
static int element_validate(JsonLoader *l, LoadError *err) {
        size_t off = 0;
        unsigned long line = l->element_line, column = l->element_column;
        const char *e = buffer_begin(&l->element);

        if (json_scan(e, buffer_size(&l->element), NULL, 0, &off) > 0)
                return 0;
        for (size_t i = 0; i < off && i < buffer_size(&l->element); i++)
                if (e[i] == '\n')
                        line++, column = 1;
                else
                        column++;
        return load_error_set(err, line, column, "invalid JSON");
}

static int tokener_error(JsonLoader *l, const char *s, LoadError *err) {
        enum json_tokener_error e = json_tokener_get_error(l->tok);
        size_t end = json_tokener_get_parse_end(l->tok);

        advance(l, s, end);
        return load_error_set(err, l->line, l->column, "%s", json_tokener_error_desc(e));
}

int json_loader_feed(JsonLoader *l, const char *data, size_t n, LoadError *err) {
        const char *s = data, *end = data + n;
        struct json_object *o;
        int r;

        while (s < end) {
                char c = *s;

                switch (l->state) {

                case JL_START:
                        if (is_blank(c))
                                break;
                        if (l->records_pointer) {
                                l->shape = SHAPE_DOCUMENT;
                                l->state = JL_DOCUMENT;
                                l->element_line = l->line;
                                l->element_column = l->column;
                                continue;
                        }
                        if (c == '[') {
                                l->shape = SHAPE_ARRAY;
                                l->state = JL_ARRAY_FIRST;
                                break;
                        }
                        if (c == '{') {
                                l->state = JL_LINES;
                                continue;
                        }
                        return load_error_set(err, l->line, l->column,
                                              "expected '[' (an array of objects) or '{' (objects)");

                case JL_ARRAY_FIRST:
                case JL_ARRAY_NEXT:
                        if (is_blank(c))
                                break;
                        if (c == ']' && l->state == JL_ARRAY_FIRST) {
                                l->state = JL_ARRAY_DONE;
                                break;
                        }
                        l->element_line = l->line;
                        l->element_column = l->column;
                        l->after_element = JL_ARRAY_SEP;
                        l->state = JL_ELEMENT;
                        l->in_string = l->in_escape = false;
                        json_tokener_reset(l->tok);
                        buffer_clear(&l->element);
                        continue;

                case JL_ARRAY_SEP:
                        if (is_blank(c))
                                break;
                        if (c == ',')
                                l->state = JL_ARRAY_NEXT;
                        else if (c == ']')
                                l->state = JL_ARRAY_DONE;
                        else
                                return load_error_set(err, l->line, l->column, "expected ',' or ']' after an array element");
                        break;

                case JL_ARRAY_DONE:
                case JL_DOCUMENT_DONE:
                        if (is_blank(c))
                                break;
                        return load_error_set(err, l->line, l->column, "unexpected data after the end of the %s",
                                              l->state == JL_ARRAY_DONE ? "array" : "document");

                case JL_LINES:
                        if (is_blank(c))
                                break;
                        if (c != '{')
                                return load_error_set(err, l->line, l->column, "expected a JSON object");
                        l->element_line = l->line;
                        l->element_column = l->column;
                        l->after_element = JL_LINES;
                        l->state = JL_ELEMENT;
                        l->in_string = l->in_escape = false;
                        json_tokener_reset(l->tok);
                        buffer_clear(&l->element);
                        continue;

                case JL_ELEMENT:
                case JL_DOCUMENT: {
                        size_t len = (size_t) (end - s), used;
                        ssize_t q;

                        if (len > INT32_MAX)
                                len = INT32_MAX;
                        o = json_tokener_parse_ex(l->tok, s, (int) len);
                        used = json_tokener_get_error(l->tok) == json_tokener_continue ? len
                                                                                      : json_tokener_get_parse_end(l->tok);
                        q = find_single_quote(l, s, used);
                        if (q >= 0) {
                                json_object_put(o);
                                advance(l, s, (size_t) q);
                                return load_error_set(err, l->line, l->column, "single quotes are not JSON");
                        }
                        if (buffer_append(&l->element, s, used) < 0) {
                                json_object_put(o);
                                return load_error_set(err, l->line, l->column, "out of memory");
                        }
                        if (json_tokener_get_error(l->tok) == json_tokener_continue) {
                                advance(l, s, len);
                                s += len;
                                continue;
                        }
                        if (json_tokener_get_error(l->tok) != json_tokener_success)
                                return tokener_error(l, s, err);
                        r = element_validate(l, err);
                        buffer_clear(&l->element);
                        if (r < 0) {
                                json_object_put(o);
                                return r;
                        }
                        advance(l, s, used);
                        s += used;
                        if (l->state == JL_DOCUMENT) {
                                l->document = o;
                                l->state = JL_DOCUMENT_DONE;
                                continue;
                        }
                        l->state = l->after_element;
                        r = element_done(l, o, err);
                        if (r < 0)
                                return r;
                        continue;
                }
                }

                /* The byte was consumed by the state machine itself. */
                s++;
                if (c == '\n') {
                        l->line++;
                        l->column = 1;
                } else
                        l->column++;
        }
        return 0;
}

static int finish_document(JsonLoader *l, LoadError *err) {
        struct json_object *a = NULL;

        if (json_pointer_get(l->document, l->records_pointer, &a) < 0)
                return load_error_set(err, 0, 0, "--records=%s: %s", l->records_pointer,
                                      errno == EINVAL ? "not a valid JSON pointer" : "no such member");
        if (!json_object_is_type(a, json_type_array))
                return load_error_set(err, 0, 0, "--records=%s: not an array", l->records_pointer);
        return add_rows_from_array(l, a, err);
}

int json_loader_finish(JsonLoader *l, bool more_may_follow, LoadError *err) {
        int r;

        switch (l->state) {
        case JL_ELEMENT:
        case JL_DOCUMENT:
                if (more_may_follow && l->state == JL_ELEMENT && l->after_element == JL_LINES)
                        break;
                return load_error_set(err, l->line, l->column, "unexpected end of file inside a JSON value");
        case JL_ARRAY_FIRST:
        case JL_ARRAY_NEXT:
        case JL_ARRAY_SEP:
                return load_error_set(err, l->line, l->column, "unexpected end of file: the array is not closed");
        case JL_DOCUMENT_DONE:
                if (l->document_resolved)
                        break;
                l->document_resolved = true;
                r = finish_document(l, err);
                json_object_put(l->document);
                l->document = NULL;
                if (r < 0)
                        return r;
                break;
        default:
                break;
        }

        if (l->first)
                return resolve_single_object(l, err);
        return 0;
}
