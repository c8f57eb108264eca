/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "bus-json.h"
#include "json-util.h"
#include "macro.h"

static struct json_object *json_new_u64(uint64_t u) {
        return u <= INT64_MAX ? json_object_new_int64((int64_t) u) : json_object_new_uint64(u);
}

/* One basic value of type type; the message is positioned at it. */
static int read_basic_json(sd_bus_message *m, char type, struct json_object **ret) {
        union {
                uint8_t y;
                int16_t n;
                uint16_t q;
                int32_t i;
                uint32_t u;
                int64_t x;
                uint64_t t;
                double d;
                int b;
                const char *s;
        } v = {};
        struct json_object *o;
        int r;

        r = sd_bus_message_read_basic(m, type, &v);
        if (r < 0)
                return r;
        switch (type) {
        case 's':
        case 'o':
        case 'g':
                o = json_object_new_string(v.s);
                break;
        case 'b':
                o = json_object_new_boolean(v.b);
                break;
        case 'y':
                o = json_object_new_int64(v.y);
                break;
        case 'n':
                o = json_object_new_int64(v.n);
                break;
        case 'q':
                o = json_object_new_int64(v.q);
                break;
        case 'i':
                o = json_object_new_int64(v.i);
                break;
        case 'u':
                o = json_object_new_int64(v.u);
                break;
        case 'x':
                o = json_object_new_int64(v.x);
                break;
        case 't':
                o = json_new_u64(v.t);
                break;
        case 'd':
                /* json-c would write NaN and Infinity as they are, and nothing could read it back. */
                if (isnan(v.d))
                        return -EDOM;
                if (isinf(v.d))
                        return -ERANGE;
                o = json_object_new_double(v.d);
                break;
        default:
                return -EOPNOTSUPP;
        }
        if (!o)
                return -ENOMEM;
        *ret = o;
        return 0;
}

/* The value inside the variant the message is positioned in, of signature contents. */
static int read_contents_json(sd_bus_message *m, const char *contents, BusJsonFlags flags, struct json_object **ret) {
        _cleanup_json_ struct json_object *a = NULL;
        const char *s;
        int r;

        if (strlen(contents) == 1 && strchr("sogbynqiuxtd", contents[0]))
                return read_basic_json(m, contents[0], ret);
        if (!(flags & BUS_JSON_ARRAYS) || strlen(contents) != 2 || contents[0] != 'a' || !strchr("sog", contents[1]))
                return -EOPNOTSUPP;

        a = json_object_new_array();
        if (!a)
                return -ENOMEM;
        r = sd_bus_message_enter_container(m, 'a', contents + 1);
        if (r < 0)
                return r;
        while ((r = sd_bus_message_read_basic(m, contents[1], &s)) > 0) {
                struct json_object *e = json_object_new_string(s);

                if (!e || json_object_array_add(a, e) < 0) {
                        json_object_put(e);
                        return -ENOMEM;
                }
        }
        if (r < 0)
                return r;
        r = sd_bus_message_exit_container(m);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(a);
        return 0;
}

int bus_message_read_dict_json(sd_bus_message *m, BusJsonFlags flags, struct json_object **ret,
                               const char **ret_bad_key, const char **ret_bad_type) {
        _cleanup_json_ struct json_object *o = json_object_new_object();
        int r;

        if (!o)
                return -ENOMEM;
        r = sd_bus_message_enter_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
                struct json_object *v = NULL;
                const char *key, *contents;

                r = sd_bus_message_read_basic(m, 's', &key);
                if (r < 0)
                        return r;
                r = sd_bus_message_peek_type(m, NULL, &contents);
                if (r < 0)
                        return r;
                r = sd_bus_message_enter_container(m, 'v', contents);
                if (r < 0)
                        return r;
                r = read_contents_json(m, contents, flags, &v);
                if (r == -EOPNOTSUPP && (flags & BUS_JSON_SKIP_UNSUPPORTED))
                        r = sd_bus_message_skip(m, contents);
                else if ((r == -EDOM || r == -ERANGE) && (flags & BUS_JSON_SKIP_UNSUPPORTED))
                        r = 0; /* read already, and left out */
                else if (r == -EOPNOTSUPP || r == -EDOM || r == -ERANGE) {
                        if (ret_bad_key)
                                *ret_bad_key = key;
                        if (ret_bad_type)
                                *ret_bad_type = contents;
                        return r;
                }
                if (r < 0)
                        return r;
                if (v && json_object_object_add(o, key, v) < 0) {
                        json_object_put(v);
                        return -ENOMEM;
                }
                r = sd_bus_message_exit_container(m); /* v */
                if (r >= 0)
                        r = sd_bus_message_exit_container(m); /* e */
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        r = sd_bus_message_exit_container(m);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(o);
        return 0;
}

int bus_message_append_dict_json(sd_bus_message *m, struct json_object *o) {
        int r;

        r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        if (!o)
                return sd_bus_message_close_container(m);
        {
                json_object_object_foreach(o, key, value) {
                        switch (json_object_get_type(value)) {
                        case json_type_string:
                                r = sd_bus_message_append(m, "{sv}", key, "s", json_object_get_string(value));
                                break;
                        case json_type_boolean:
                                r = sd_bus_message_append(m, "{sv}", key, "b", (int) json_object_get_boolean(value));
                                break;
                        case json_type_int:
                                /* Counts, sizes and intervals: "t", as org.dpipe.Pipeline1(5) shows
                                 * them; only a negative number needs "x". */
                                if (json_object_get_int64(value) < 0)
                                        r = sd_bus_message_append(m, "{sv}", key, "x", json_object_get_int64(value));
                                else
                                        r = sd_bus_message_append(m, "{sv}", key, "t", json_object_get_uint64(value));
                                break;
                        case json_type_double:
                                r = sd_bus_message_append(m, "{sv}", key, "d", json_object_get_double(value));
                                break;
                        default:
                                /* null, arrays, objects: their JSON text, which says what they are. */
                                r = sd_bus_message_append(m, "{sv}", key, "s",
                                                          json_object_to_json_string_ext(value, JSON_C_TO_STRING_PLAIN));
                                break;
                        }
                        if (r < 0)
                                return r;
                }
        }
        return sd_bus_message_close_container(m);
}
