/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>

#include "json-util.h"

const char *json_get_string(struct json_object *o, const char *key) {
        struct json_object *v;

        if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
                return NULL;
        return json_object_get_string(v);
}

bool json_get_uint64(struct json_object *o, const char *key, uint64_t *ret) {
        struct json_object *v;

        if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
                return false;
        if (json_object_get_int64(v) < 0)
                return false;
        *ret = json_object_get_uint64(v);
        return true;
}

bool json_get_bool(struct json_object *o, const char *key, bool *ret) {
        struct json_object *v;

        if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_boolean))
                return false;
        *ret = json_object_get_boolean(v);
        return true;
}

int json_parse_n(const char *s, size_t len, struct json_object **ret, size_t *ret_error_offset) {
        struct json_tokener *tok;
        struct json_object *o;
        enum json_tokener_error err;
        size_t end;

        if (len > INT32_MAX)
                return -E2BIG;
        tok = json_tokener_new();
        if (!tok)
                return -ENOMEM;
        o = json_tokener_parse_ex(tok, s, (int) len);
        err = json_tokener_get_error(tok);
        end = json_tokener_get_parse_end(tok);
        /* A bare number at the end of input is only complete once the tokener sees a terminator. */
        if (err == json_tokener_continue) {
                o = json_tokener_parse_ex(tok, "", 1);
                err = json_tokener_get_error(tok);
        }
        json_tokener_free(tok);
        /* Note that JSON null is a valid value represented by a NULL object. */
        if (err == json_tokener_success)
                for (size_t i = end; i < len; i++)
                        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n') {
                                err = json_tokener_error_parse_unexpected;
                                end = i;
                                break;
                        }
        if (err != json_tokener_success) {
                json_object_put(o);
                if (ret_error_offset)
                        *ret_error_offset = end;
                return -EBADMSG;
        }
        *ret = o;
        return 0;
}
