/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "filter.h"
#include "json-util.h"

typedef struct FilterTerm {
        const char *key;
        struct json_object *value;
        const char *needle; /* text every matching row contains, or NULL */
        size_t needle_len;
} FilterTerm;

struct Filter {
        struct json_object *where;
        FilterTerm *terms;
        size_t n_terms;
        struct json_tokener *tok;
};

Filter *filter_free(Filter *f) {
        if (!f)
                return NULL;
        json_object_put(f->where);
        free(f->terms);
        if (f->tok)
                json_tokener_free(f->tok);
        free(f);
        return NULL;
}

/* A string value that needs no escaping appears verbatim in the row text of any row that matches
 * (rows are written compactly, with '/' and non-ASCII unescaped), whatever type the field has. */
static bool plain_text(const char *s, size_t n) {
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char) s[i];
                if (c < 0x20 || c == '"' || c == '\\')
                        return false;
        }
        return true;
}

int filter_new(struct json_object *where, Filter **ret) {
        _cleanup_(filter_freep) Filter *f = NULL;
        size_t i = 0;

        if (where && !json_object_is_type(where, json_type_object))
                return -EINVAL;
        f = calloc(1, sizeof(Filter));
        if (!f)
                return -ENOMEM;
        f->where = json_object_get(where);
        f->n_terms = where ? (size_t) json_object_object_length(where) : 0;
        if (f->n_terms > 0) {
                f->terms = calloc(f->n_terms, sizeof(FilterTerm));
                f->tok = json_tokener_new();
                if (!f->terms || !f->tok)
                        return -ENOMEM;
                json_object_object_foreach(where, key, value) {
                        FilterTerm *t = &f->terms[i++];
                        t->key = key;
                        t->value = value;
                        if (json_object_is_type(value, json_type_string)) {
                                const char *s = json_object_get_string(value);
                                size_t n = (size_t) json_object_get_string_len(value);
                                if (n > 0 && plain_text(s, n)) {
                                        t->needle = s;
                                        t->needle_len = n;
                                }
                        }
                }
        }
        *ret = TAKE_PTR(f);
        return 0;
}

bool filter_is_empty(const Filter *f) {
        return !f || f->n_terms == 0;
}

static bool is_scalar(struct json_object *v) {
        return !json_object_is_type(v, json_type_object) && !json_object_is_type(v, json_type_array);
}

static bool value_matches(struct json_object *have, struct json_object *want) {
        struct json_object *s, *o;

        if (json_object_equal(have, want))
                return true;
        /* Scalars compare by their JSON text against a string. */
        if (json_object_is_type(have, json_type_string) && is_scalar(want))
                s = have, o = want;
        else if (json_object_is_type(want, json_type_string) && is_scalar(have))
                s = want, o = have;
        else
                return false;
        if (json_object_is_type(o, json_type_string))
                return false;
        return streq(json_object_get_string(s), json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
}

int filter_match(Filter *f, const char *row, size_t len) {
        _cleanup_json_ struct json_object *o = NULL;
        bool match = true;

        if (filter_is_empty(f))
                return 1;

        for (size_t i = 0; i < f->n_terms; i++)
                if (f->terms[i].needle && !memmem(row, len, f->terms[i].needle, f->terms[i].needle_len))
                        return 0;

        json_tokener_reset(f->tok);
        o = json_tokener_parse_ex(f->tok, row, (int) len);
        if (!o)
                return 0;

        for (size_t i = 0; i < f->n_terms && match; i++) {
                struct json_object *v;
                if (!json_object_object_get_ex(o, f->terms[i].key, &v))
                        match = false;
                else
                        match = value_matches(v, f->terms[i].value);
        }
        return match;
}
