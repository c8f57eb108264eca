/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sys/stat.h>
#include <sys/uio.h>
/* No CODE_FILE=/CODE_LINE=/CODE_FUNC= of log.c itself on every entry. */
#define SD_JOURNAL_SUPPRESS_LOCATION 1
#include <systemd/sd-journal.h>
#include <unistd.h>

#include "log.h"

#define LOG_FIELDS_MAX 16

static int max_level = LOG_INFO;
static bool journal_stream = false;

static void detect_journal_stream(void);
static const char *console_prefix = NULL;

static const char *const level_names[] = {
        [LOG_EMERG] = "emerg", [LOG_ALERT] = "alert",   [LOG_CRIT] = "crit", [LOG_ERR] = "err",
        [LOG_WARNING] = "warning", [LOG_NOTICE] = "notice", [LOG_INFO] = "info", [LOG_DEBUG] = "debug",
};

int log_level_from_string(const char *s) {
        if (!s)
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(level_names); i++)
                if (strcasecmp(s, level_names[i]) == 0)
                        return (int) i;
        if (strcasecmp(s, "error") == 0)
                return LOG_ERR;
        if (strcasecmp(s, "warn") == 0)
                return LOG_WARNING;
        if (s[0] >= '0' && s[0] <= '7' && s[1] == '\0')
                return s[0] - '0';
        return -EINVAL;
}

void log_setup(void) {
        const char *e = getenv("DPIPE_LOG_LEVEL");
        int l;

        detect_journal_stream();

        if (isempty(e))
                return;
        l = log_level_from_string(e);
        if (l < 0) {
                fprintf(stderr, "<4>Unknown DPIPE_LOG_LEVEL=%s, ignoring.\n", e);
                return;
        }
        max_level = l;
}

void log_set_max_level(int level) {
        max_level = level;
}

void log_set_console_prefix(const char *name) {
        console_prefix = name;
}

int log_get_max_level(void) {
        return max_level;
}

/* Under systemd, stderr is a stream to journald and $JOURNAL_STREAM names it (device:inode). Only
 * then do we send events that carry structured fields (DPIPE_SOURCE=) to journald directly; every
 * other line still goes to stderr, which journald reads as well. */
static void detect_journal_stream(void) {
        const char *e = getenv("JOURNAL_STREAM");
        unsigned long long dev, ino;
        struct stat st;

        journal_stream = false;
        if (isempty(e) || sscanf(e, "%llu:%llu", &dev, &ino) != 2)
                return;
        if (fstat(STDERR_FILENO, &st) < 0)
                return;
        journal_stream = (unsigned long long) st.st_dev == dev && (unsigned long long) st.st_ino == ino;
}

/* One entry with MESSAGE=, PRIORITY=, SYSLOG_IDENTIFIER= and the caller's fields. */
static int log_journal_send(int level, const char *message, const char *const *fields, size_t n_fields) {
        char priority[16], identifier[64 + 18];
        struct iovec iov[3 + LOG_FIELDS_MAX];
        _cleanup_free_ char *msg = NULL;
        size_t n = 0;

        if (asprintf(&msg, "MESSAGE=%s", message) < 0)
                return -ENOMEM;
        snprintf(priority, sizeof(priority), "PRIORITY=%i", level);
        snprintf(identifier, sizeof(identifier), "SYSLOG_IDENTIFIER=%s", program_invocation_short_name);
        iov[n++] = (struct iovec) { .iov_base = msg, .iov_len = strlen(msg) };
        iov[n++] = (struct iovec) { .iov_base = priority, .iov_len = strlen(priority) };
        iov[n++] = (struct iovec) { .iov_base = identifier, .iov_len = strlen(identifier) };
        for (size_t i = 0; i < n_fields && n < ELEMENTSOF(iov); i++)
                if (fields[i])
                        iov[n++] = (struct iovec) { .iov_base = (char *) fields[i], .iov_len = strlen(fields[i]) };
        return sd_journal_sendv(iov, (int) n);
}

static int log_internalv(int level, int error, const char *const *fields, size_t n_fields, const char *format,
                         va_list ap) {
        char buf[2048];
        int saved = errno;

        /* %m in the format is taken from the error we were given, not from whatever errno is now. */
        errno = error;
        vsnprintf(buf, sizeof(buf), format, ap);

        /* One event, one line: fold any embedded newline so that journald keeps it together. */
        for (char *p = buf; *p; p++)
                if (*p == '\n' || *p == '\r')
                        *p = ' ';

        if (n_fields > 0 && journal_stream && log_journal_send(level, buf, fields, n_fields) >= 0) {
                errno = saved;
                return -error;
        }

        if (console_prefix)
                fprintf(stderr, "%s: %s\n", console_prefix, buf);
        else
                fprintf(stderr, "<%i>%s\n", level, buf);
        errno = saved;
        return -error;
}

int log_internal(int level, int error, const char *file, int line, const char *func, const char *format, ...) {
        va_list ap;
        int r;

        (void) file;
        (void) line;
        (void) func;

        va_start(ap, format);
        r = log_internalv(level, error, NULL, 0, format, ap);
        va_end(ap);
        return r;
}

int log_fields_internal(int level, int error, const char *const *fields, size_t n_fields, const char *format, ...) {
        va_list ap;
        int r;

        va_start(ap, format);
        r = log_internalv(level, error, fields, n_fields, format, ap);
        va_end(ap);
        return r;
}

int log_source_internal(int level, int error, const char *source, const char *format, ...) {
        char field[16 + 256];
        const char *fields[1] = { field };
        va_list ap;
        int r;

        snprintf(field, sizeof(field), "DPIPE_SOURCE=%s", source);
        va_start(ap, format);
        r = log_internalv(level, error, fields, 1, format, ap);
        va_end(ap);
        return r;
}
