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
static LogTarget log_target = LOG_TARGET_STDERR;

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

        log_target = log_target_detect();

        if (isempty(e))
                return;
        l = log_level_from_string(e);
        if (l < 0) {
                log_warning("Unknown DPIPE_LOG_LEVEL=%s, ignoring.", e);
                return;
        }
        max_level = l;
}

void log_set_max_level(int level) {
        max_level = level;
}

void log_set_console_prefix(const char *name) {
        console_prefix = name;
        log_target = LOG_TARGET_CONSOLE;
}

LogTarget log_get_target(void) {
        return log_target;
}

int log_get_max_level(void) {
        return max_level;
}

/* Under systemd, stderr is a stream to journald and $JOURNAL_STREAM names it (device:inode). */
static bool stderr_is_journal_stream(void) {
        const char *e = getenv("JOURNAL_STREAM");
        unsigned long long dev, ino;
        struct stat st;

        if (isempty(e) || sscanf(e, "%llu:%llu", &dev, &ino) != 2)
                return false;
        if (fstat(STDERR_FILENO, &st) < 0)
                return false;
        return (unsigned long long) st.st_dev == dev && (unsigned long long) st.st_ino == ino;
}

/* A service whose stderr goes nowhere useful (closed, /dev/null) but that systemd started
 * ($INVOCATION_ID) on a machine with journald: the journal is where its log belongs. */
static bool stderr_is_void_under_systemd(void) {
        struct stat st, null;

        if (isempty(getenv("INVOCATION_ID")) || access("/run/systemd/journal/socket", W_OK) < 0)
                return false;
        if (fstat(STDERR_FILENO, &st) < 0)
                return true;
        return S_ISCHR(st.st_mode) && stat("/dev/null", &null) >= 0 && st.st_rdev == null.st_rdev;
}

/* One log path per process (never some lines on the stream and others on the native socket,
 * which journalctl would show out of order): the journal under systemd, plain text for a person
 * at a terminal, "<N>" lines elsewhere (a pipe, a file: what journald and syslog read). */
LogTarget log_target_detect(void) {
        const char *e = getenv("DPIPE_LOG_TARGET");

        if (streq_ptr(e, "journal"))
                return LOG_TARGET_JOURNAL;
        if (streq_ptr(e, "console"))
                return LOG_TARGET_CONSOLE;
        if (streq_ptr(e, "stderr"))
                return LOG_TARGET_STDERR;
        if (stderr_is_journal_stream() || stderr_is_void_under_systemd())
                return LOG_TARGET_JOURNAL;
        if (isatty(STDERR_FILENO) > 0)
                return LOG_TARGET_CONSOLE;
        return LOG_TARGET_STDERR;
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

        /* Everything through the native protocol (with its priority and our fields); only if journald
         * refuses the entry does it go to stderr, which is its stream too. */
        if (log_target == LOG_TARGET_JOURNAL && log_journal_send(level, buf, fields, n_fields) >= 0) {
                errno = saved;
                return -error;
        }

        if (log_target == LOG_TARGET_CONSOLE) {
                if (console_prefix)
                        fprintf(stderr, "%s: %s\n", console_prefix, buf);
                else
                        fprintf(stderr, "%s\n", buf);
        } else
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

        if (source)
                snprintf(field, sizeof(field), "DPIPE_SOURCE=%s", source);
        va_start(ap, format);
        r = log_internalv(level, error, fields, source ? 1 : 0, format, ap);
        va_end(ap);
        return r;
}
