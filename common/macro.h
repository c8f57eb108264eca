/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Small helpers in the spirit of systemd's macro.h: scope-bound cleanup, ownership transfer,
 * and a few compile-time conveniences. Everything here is header-only. */

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define _cleanup_(x) __attribute__((__cleanup__(x)))
#define _unused_ __attribute__((__unused__))
#define _pure_ __attribute__((__pure__))
#define _printf_(a, b) __attribute__((__format__(printf, a, b)))
#define _likely_(x) (__builtin_expect(!!(x), 1))
#define _unlikely_(x) (__builtin_expect(!!(x), 0))
#define _noreturn_ __attribute__((__noreturn__))
#define _fallthrough_ __attribute__((__fallthrough__))

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#define STRINGIFY(x) XSTRINGIFY(x)
#define XSTRINGIFY(x) #x

/* Take ownership of a pointer/fd: returns the value and resets the variable, so that a _cleanup_
 * handler on it does nothing afterwards. */
#define TAKE_PTR(p)                                                                                     \
        ({                                                                                              \
                __typeof__(p) _take_tmp_ = (p);                                                         \
                (p) = NULL;                                                                             \
                _take_tmp_;                                                                             \
        })
#define TAKE_FD(fd)                                                                                     \
        ({                                                                                              \
                int _take_fd_ = (fd);                                                                   \
                (fd) = -EBADF;                                                                          \
                _take_fd_;                                                                              \
        })

static inline void freep(void *p) {
        free(*(void **) p);
}
#define _cleanup_free_ _cleanup_(freep)
/* free() that returns NULL: p = mfree(p). */
static inline void *mfree(void *p) {
        free(p);
        return NULL;
}

/* close() that keeps errno and accepts negative fds; returns -EBADF so callers can write
 * fd = safe_close(fd). */
static inline int safe_close(int fd) {
        if (fd >= 0) {
                int saved = errno;
                (void) close(fd);
                errno = saved;
        }
        return -EBADF;
}
static inline void closep(int *fd) {
        safe_close(*fd);
}
#define _cleanup_close_ _cleanup_(closep)

/* Defines foo_freep() for a type whose destructor is foo_free(Foo *) and returns NULL. */
#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func)                                                         \
        static inline void func##p(type *p) {                                                           \
                if (*p)                                                                                 \
                        *p = func(*p);                                                                  \
        }

/* Same, for destructors returning void. */
#define DEFINE_TRIVIAL_CLEANUP_FUNC_VOID(type, func)                                                    \
        static inline void func##p(type *p) {                                                           \
                if (*p)                                                                                 \
                        func(*p);                                                                       \
        }

static inline bool streq_ptr(const char *a, const char *b) {
        if (!a || !b)
                return a == b;
        while (*a && *a == *b)
                a++, b++;
        return *a == *b;
}
#define streq(a, b) (strcmp((a), (b)) == 0)
#define isempty(s) (!(s) || !*(s))

/* name_to_string() and name_from_string() over name_table[], indexed by the enum type (systemd's
 * DEFINE_STRING_TABLE_LOOKUP): NULL for a value out of range, -EINVAL for an unknown string. */
#define DEFINE_STRING_TABLE_LOOKUP(name, type)                                                          \
        const char *name##_to_string(type i) {                                                          \
                if (i < 0 || (size_t) i >= ELEMENTSOF(name##_table))                                    \
                        return NULL;                                                                    \
                return name##_table[i];                                                                 \
        }                                                                                               \
        type name##_from_string(const char *s) {                                                        \
                for (size_t i = 0; s && i < ELEMENTSOF(name##_table); i++)                              \
                        if (name##_table[i] && streq(name##_table[i], s))                               \
                                return (type) i;                                                        \
                return (type) -EINVAL;                                                                  \
        }

/* Errno helpers: functions in this project return negative errno values. */
#define RET_NERRNO(expr)                                                                                \
        ({                                                                                              \
                int _r_ = (expr);                                                                       \
                _r_ < 0 ? -errno : _r_;                                                                 \
        })
static inline int negative_errno(void) {
        return errno > 0 ? -errno : -EIO;
}
