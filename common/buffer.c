/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buffer.h"

void buffer_done(Buffer *b) {
        free(b->data);
        *b = (Buffer) {};
}

int buffer_reserve(Buffer *b, size_t n) {
        size_t need, a;
        char *p;

        if (b->allocated - b->tail >= n)
                return 0;

        /* Move the unconsumed bytes to the front before growing: a buffer that is mostly consumed
         * needs no new memory. */
        if (b->head > 0) {
                size_t len = b->tail - b->head;
                memmove(b->data, b->data + b->head, len);
                b->head = 0;
                b->tail = len;
                if (b->allocated - b->tail >= n)
                        return 0;
        }

        need = b->tail + n;
        if (need < b->tail)
                return -ENOMEM;
        a = b->allocated ? b->allocated : 4096;
        while (a < need) {
                if (a > SIZE_MAX / 2)
                        return -ENOMEM;
                a *= 2;
        }
        p = realloc(b->data, a);
        if (!p)
                return -ENOMEM;
        b->data = p;
        b->allocated = a;
        return 0;
}

int buffer_resize(Buffer *b, size_t allocated) {
        size_t len = buffer_size(b);
        char *p;

        if (allocated < len)
                return -EINVAL;
        if (b->head > 0) {
                memmove(b->data, b->data + b->head, len);
                b->head = 0;
                b->tail = len;
        }
        if (allocated == b->allocated)
                return 0;
        if (allocated == 0) {
                buffer_done(b);
                return 0;
        }
        p = realloc(b->data, allocated);
        if (!p)
                return -ENOMEM;
        b->data = p;
        b->allocated = allocated;
        return 0;
}

int buffer_append(Buffer *b, const void *p, size_t n) {
        int r;

        if (n == 0)
                return 0;
        r = buffer_reserve(b, n);
        if (r < 0)
                return r;
        memcpy(b->data + b->tail, p, n);
        b->tail += n;
        return 0;
}

int buffer_append_str(Buffer *b, const char *s) {
        return buffer_append(b, s, strlen(s));
}

int buffer_printf(Buffer *b, const char *fmt, ...) {
        va_list ap;
        int n, r;

        va_start(ap, fmt);
        n = vsnprintf(NULL, 0, fmt, ap);
        va_end(ap);
        if (n < 0)
                return -EINVAL;
        r = buffer_reserve(b, (size_t) n + 1);
        if (r < 0)
                return r;
        va_start(ap, fmt);
        vsnprintf(b->data + b->tail, (size_t) n + 1, fmt, ap);
        va_end(ap);
        b->tail += (size_t) n;
        return 0;
}

int buffer_append_json_string(Buffer *b, const char *s, size_t n) {
        static const char hex[] = "0123456789abcdef";
        char *o;
        int r;

        /* Worst case every byte becomes \u00XX. */
        r = buffer_reserve(b, n * 6 + 2);
        if (r < 0)
                return r;
        o = b->data + b->tail;
        *o++ = '"';
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char) s[i];
                switch (c) {
                case '"':
                        *o++ = '\\', *o++ = '"';
                        break;
                case '\\':
                        *o++ = '\\', *o++ = '\\';
                        break;
                case '\n':
                        *o++ = '\\', *o++ = 'n';
                        break;
                case '\r':
                        *o++ = '\\', *o++ = 'r';
                        break;
                case '\t':
                        *o++ = '\\', *o++ = 't';
                        break;
                default:
                        if (c < 0x20) {
                                *o++ = '\\', *o++ = 'u', *o++ = '0', *o++ = '0';
                                *o++ = hex[c >> 4], *o++ = hex[c & 15];
                        } else
                                *o++ = (char) c;
                }
        }
        *o++ = '"';
        b->tail = (size_t) (o - b->data);
        return 0;
}

ssize_t buffer_read_fd(Buffer *b, int fd, size_t min_room) {
        ssize_t n;
        int r;

        r = buffer_reserve(b, min_room);
        if (r < 0)
                return r;
        n = read(fd, b->data + b->tail, b->allocated - b->tail);
        if (n < 0)
                return errno == EINTR ? -EAGAIN : -errno;
        b->tail += (size_t) n;
        return n;
}

ssize_t buffer_write_fd(Buffer *b, int fd) {
        ssize_t n;

        if (buffer_size(b) == 0)
                return 0;
        n = write(fd, buffer_begin(b), buffer_size(b));
        if (n < 0) {
                if (errno == EAGAIN || errno == EINTR)
                        return 0;
                return -errno;
        }
        buffer_consume(b, (size_t) n);
        return n;
}
