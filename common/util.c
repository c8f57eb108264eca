/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "io-util.h"
#include "util.h"

uint64_t now_usec(clockid_t clock) {
        struct timespec ts;

        (void) clock_gettime(clock, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / NSEC_PER_USEC;
}

bool source_name_is_valid_n(const char *s, size_t n) {
        if (!s || n == 0 || n > SOURCE_NAME_MAX)
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = s[i];
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                      c == '.' || c == '-'))
                        return false;
        }
        return true;
}

int safe_atou64(const char *s, uint64_t *ret) {
        uint64_t v = 0;

        if (isempty(s))
                return -EINVAL;
        for (const char *p = s; *p; p++) {
                if (*p < '0' || *p > '9')
                        return -EINVAL;
                if (v > (UINT64_MAX - (uint64_t) (*p - '0')) / 10)
                        return -ERANGE;
                v = v * 10 + (uint64_t) (*p - '0');
        }
        *ret = v;
        return 0;
}

int safe_atou32(const char *s, uint32_t *ret) {
        uint64_t v;
        int r;

        r = safe_atou64(s, &v);
        if (r < 0)
                return r;
        if (v > UINT32_MAX)
                return -ERANGE;
        *ret = (uint32_t) v;
        return 0;
}

int parse_size(const char *s, uint64_t *ret) {
        char digits[32];
        unsigned shift = 0;
        size_t n;
        uint64_t v;
        int r;

        if (isempty(s))
                return -EINVAL;
        n = strlen(s);
        switch (s[n - 1]) {
        case 'K': case 'k':
                shift = 10;
                break;
        case 'M': case 'm':
                shift = 20;
                break;
        case 'G': case 'g':
                shift = 30;
                break;
        case 'T': case 't':
                shift = 40;
                break;
        }
        if (shift > 0)
                n--;
        if (n == 0 || n >= sizeof(digits))
                return -EINVAL;
        memcpy(digits, s, n);
        digits[n] = 0;
        r = safe_atou64(digits, &v);
        if (r < 0)
                return r;
        if (v > (UINT64_MAX >> shift))
                return -ERANGE;
        *ret = v << shift;
        return 0;
}

size_t format_u64(char *p, uint64_t v) {
        char tmp[20];
        size_t n = 0;

        do {
                tmp[n++] = (char) ('0' + v % 10);
                v /= 10;
        } while (v > 0);
        for (size_t i = 0; i < n; i++)
                p[i] = tmp[n - 1 - i];
        return n;
}

static const char *first_of_env_list(const char *name, char *buf, size_t size, const char *fallback) {
        const char *e = getenv(name);
        size_t n;

        if (isempty(e))
                return fallback;
        n = strcspn(e, ":");
        if (n == 0 || n >= size)
                return fallback;
        memcpy(buf, e, n);
        buf[n] = 0;
        return buf;
}

const char *default_runtime_dir(void) {
        static char buf[PATH_MAX];
        return first_of_env_list("RUNTIME_DIRECTORY", buf, sizeof(buf), DEFAULT_RUNTIME_DIR);
}

const char *default_state_dir(void) {
        static char buf[PATH_MAX];
        return first_of_env_list("STATE_DIRECTORY", buf, sizeof(buf), DEFAULT_STATE_DIR);
}

char *path_join(const char *a, const char *b) {
        char *p;
        size_t la = strlen(a);

        if (asprintf(&p, "%s%s%s", a, la > 0 && a[la - 1] == '/' ? "" : "/", b) < 0)
                return NULL;
        return p;
}

int mkdir_p(const char *path, mode_t mode) {
        _cleanup_free_ char *p = strdup(path);

        if (!p)
                return -ENOMEM;
        for (char *s = p + 1; *s; s++) {
                if (*s != '/')
                        continue;
                *s = 0;
                if (mkdir(p, mode) < 0 && errno != EEXIST)
                        return -errno;
                *s = '/';
        }
        if (mkdir(p, mode) < 0 && errno != EEXIST)
                return -errno;
        return 0;
}

int write_file_atomic(const char *path, const void *data, size_t size) {
        _cleanup_free_ char *tmp = NULL, *dir = NULL;
        _cleanup_close_ int fd = -EBADF, dfd = -EBADF;
        char *slash;
        int r;

        if (asprintf(&tmp, "%s.tmp.%ld", path, (long) getpid()) < 0)
                return -ENOMEM;
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0)
                return -errno;
        r = loop_write(fd, data, size);
        if (r < 0) {
                (void) unlink(tmp);
                return r;
        }
        if (fsync(fd) < 0 || rename(tmp, path) < 0) {
                r = -errno;
                (void) unlink(tmp);
                return r;
        }
        dir = strdup(path);
        if (!dir)
                return -ENOMEM;
        slash = strrchr(dir, '/');
        if (slash) {
                *(slash == dir ? slash + 1 : slash) = 0;
                dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (dfd >= 0)
                        (void) fsync(dfd);
        }
        return 0;
}

int read_file(const char *path, size_t max_size, char **ret, size_t *ret_size) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *buf = NULL;
        size_t size = 0, allocated = 0;

        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        for (;;) {
                ssize_t n;

                if (allocated - size < 4096) {
                        size_t a = allocated ? allocated * 2 : 8192;
                        char *p;
                        if (a > max_size + 1)
                                a = max_size + 1;
                        if (a <= size)
                                return -EFBIG;
                        p = realloc(buf, a);
                        if (!p)
                                return -ENOMEM;
                        buf = p;
                        allocated = a;
                }
                if (allocated - size <= 1) {
                        /* The buffer holds max_size bytes: the file fits only if it ends here. */
                        char probe;
                        n = read(fd, &probe, 1);
                        if (n < 0 && errno == EINTR)
                                continue;
                        if (n < 0)
                                return -errno;
                        if (n > 0)
                                return -EFBIG;
                        break;
                }
                n = read(fd, buf + size, allocated - size - 1);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        break;
                size += (size_t) n;
                if (size > max_size)
                        return -EFBIG;
        }
        if (!buf) {
                buf = malloc(1);
                if (!buf)
                        return -ENOMEM;
        }
        buf[size] = 0;
        *ret = TAKE_PTR(buf);
        if (ret_size)
                *ret_size = size;
        return 0;
}

const char *dpipe_version(void) {
        return PROJECT_VERSION;
}

char **strv_free(char **l) {
        for (size_t i = 0; l && l[i]; i++)
                free(l[i]);
        free(l);
        return NULL;
}

int strv_split(const char *s, char sep, char ***ret) {
        char **l;
        size_t n = 0;

        l = calloc(strlen(s) / 2 + 2, sizeof(char *));
        if (!l)
                return -ENOMEM;
        for (const char *p = s; *p;) {
                size_t k = strcspn(p, (char[]) { sep, 0 });

                if (k > 0) {
                        l[n] = strndup(p, k);
                        if (!l[n]) {
                                strv_free(l);
                                return -ENOMEM;
                        }
                        n++;
                }
                p += k;
                if (*p)
                        p++;
        }
        *ret = l;
        return 0;
}
