/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "file-tail.h"
#include "macro.h"

#define TAIL_CHUNK (64u * 1024u)
#define LINE_PREFIX "{\"offset\":"
#define LINE_PREFIX_LEN (sizeof(LINE_PREFIX) - 1)
/* The prefix, 20 digits and the comma. */
#define LINE_HEAD_MAX (LINE_PREFIX_LEN + 21)

bool file_line_offset(const char *p, size_t n, uint64_t *ret_offset) {
        uint64_t v = 0;
        size_t i;

        if (n < LINE_PREFIX_LEN + 2 || memcmp(p, LINE_PREFIX, LINE_PREFIX_LEN) != 0)
                return false;
        for (i = LINE_PREFIX_LEN; i < n && p[i] >= '0' && p[i] <= '9'; i++) {
                unsigned d = (unsigned) (p[i] - '0');

                if (v > (UINT64_MAX - d) / 10)
                        return false;
                v = v * 10 + d;
        }
        if (i == LINE_PREFIX_LEN || i >= n || p[i] != ',')
                return false;
        *ret_offset = v;
        return true;
}

static int pread_full(int fd, void *buf, size_t n, uint64_t pos) {
        size_t done = 0;

        while (done < n) {
                ssize_t k = pread(fd, (char *) buf + done, n - done, (off_t) (pos + done));

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (k == 0)
                        return -EIO; /* the file shrank under us */
                done += (size_t) k;
        }
        return 0;
}

/* The position of the last '\n' before `before`: 1 with *ret_pos, 0 if there is none. */
static int find_last_newline(int fd, uint64_t before, uint64_t *ret_pos) {
        char buf[TAIL_CHUNK];

        while (before > 0) {
                size_t n = (size_t) MIN((uint64_t) TAIL_CHUNK, before);
                uint64_t start = before - n;
                const char *nl;
                int r;

                r = pread_full(fd, buf, n, start);
                if (r < 0)
                        return r;
                nl = memrchr(buf, '\n', n);
                if (nl) {
                        *ret_pos = start + (uint64_t) (nl - buf);
                        return 1;
                }
                before = start;
        }
        return 0;
}

/* Checks the line [start, nl): a record's beginning, and '}' before its newline. */
static int line_is_record(int fd, uint64_t start, uint64_t nl, uint64_t *ret_offset) {
        char head[LINE_HEAD_MAX], last;
        size_t n;
        int r;

        if (nl <= start)
                return 0;
        n = (size_t) MIN((uint64_t) sizeof(head), nl - start);
        r = pread_full(fd, head, n, start);
        if (r < 0)
                return r;
        r = pread_full(fd, &last, 1, nl - 1);
        if (r < 0)
                return r;
        if (last != '}' || !file_line_offset(head, n, ret_offset))
                return 0;
        return 1;
}

int file_tail_find(int fd, uint64_t *ret_offset, uint64_t *ret_valid_end) {
        struct stat st;
        uint64_t nl, prev;
        int r;

        if (fstat(fd, &st) < 0)
                return -errno;
        r = find_last_newline(fd, (uint64_t) st.st_size, &nl);
        if (r < 0)
                return r;
        /* From the last newline backwards, line by line: the first whole record line wins; what
         * follows it is torn or foreign. */
        while (r > 0) {
                uint64_t offset;
                int k;

                r = find_last_newline(fd, nl, &prev);
                if (r < 0)
                        return r;
                k = line_is_record(fd, r > 0 ? prev + 1 : 0, nl, &offset);
                if (k < 0)
                        return k;
                if (k > 0) {
                        *ret_offset = offset;
                        *ret_valid_end = nl + 1;
                        return 1;
                }
                nl = prev;
        }
        *ret_valid_end = 0;
        return 0;
}

int file_head_offset(int fd, uint64_t *ret_offset) {
        char head[LINE_HEAD_MAX];
        ssize_t n;

        do
                n = pread(fd, head, sizeof(head), 0);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return -errno;
        return file_line_offset(head, (size_t) n, ret_offset) ? 1 : 0;
}
