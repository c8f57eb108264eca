/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Logging: one line per event, one path per process, chosen once by log_setup():
 *   - under systemd (stderr is the stream $JOURNAL_STREAM names, or stderr goes nowhere and
 *     systemd started us) every line goes to journald natively, with PRIORITY= and our fields;
 *   - on a terminal, plain text for a person, without "<N>";
 *   - anywhere else (a pipe, a file) on stderr prefixed with the syslog level as "<N>", which
 *     journald and syslog read.
 * $DPIPE_LOG_TARGET=journal|console|stderr forces one. No timestamps of our own. The threshold
 * comes from $DPIPE_LOG_LEVEL (debug|info|notice|warning|err, or 0-7).
 *
 * The *_errno() variants format %m from the error given, and return -abs(error), so that
 *     return log_error_errno(r, "Failed to open %s: %m", path);
 * both logs and propagates. Library code in common/ logs at debug level at most. */

#include <stdarg.h>
#include <syslog.h>

#include "macro.h"

typedef enum LogTarget {
        LOG_TARGET_STDERR,  /* "<N>message" on stderr */
        LOG_TARGET_CONSOLE, /* "message" (or "name: message" for the tools) on stderr */
        LOG_TARGET_JOURNAL, /* journald's native protocol */
} LogTarget;

void log_setup(void);                      /* reads $DPIPE_LOG_LEVEL, picks the target */
LogTarget log_target_detect(void);
LogTarget log_get_target(void);
void log_set_max_level(int level);
/* For interactive tools (dpipectl, dpipe-client): always print "<name>: message" on stderr,
 * wherever it goes. Daemons leave this alone. */
void log_set_console_prefix(const char *name);
int log_get_max_level(void);
int log_level_from_string(const char *s); /* -EINVAL on unknown names */

/* Optional prefix for every line, e.g. the name of the object the process serves; NULL for none. */
int log_internal(int level, int error, const char *file, int line, const char *func, const char *format, ...)
        _printf_(6, 7);

#define log_full_errno(level, error, ...)                                                               \
        ({                                                                                              \
                int _level_ = (level), _e_ = (error);                                                   \
                _e_ = _e_ < 0 ? -_e_ : _e_;                                                             \
                (log_get_max_level() >= _level_)                                                        \
                        ? log_internal(_level_, _e_, __FILE__, __LINE__, __func__, __VA_ARGS__)         \
                        : -_e_;                                                                         \
        })
#define log_full(level, ...) (void) log_full_errno((level), 0, __VA_ARGS__)

#define log_debug(...) log_full(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_full(LOG_INFO, __VA_ARGS__)
#define log_notice(...) log_full(LOG_NOTICE, __VA_ARGS__)
#define log_warning(...) log_full(LOG_WARNING, __VA_ARGS__)
#define log_error(...) log_full(LOG_ERR, __VA_ARGS__)

#define log_debug_errno(error, ...) log_full_errno(LOG_DEBUG, error, __VA_ARGS__)
#define log_info_errno(error, ...) log_full_errno(LOG_INFO, error, __VA_ARGS__)
#define log_notice_errno(error, ...) log_full_errno(LOG_NOTICE, error, __VA_ARGS__)
#define log_warning_errno(error, ...) log_full_errno(LOG_WARNING, error, __VA_ARGS__)
#define log_error_errno(error, ...) log_full_errno(LOG_ERR, error, __VA_ARGS__)

/* Events with structured fields: like log_*(), and under journald the entry also carries the
 * given fields, each a "KEY=value" string (KEY in upper case, as journald wants; NULL entries are
 * skipped, so optional fields can be left out in place). Elsewhere only the message is printed:
 * put what a reader needs into the message too. */
int log_fields_internal(int level, int error, const char *const *fields, size_t n_fields, const char *format, ...)
        _printf_(5, 6);
#define log_fields_full_errno(level, error, fields, n_fields, ...)                                     \
        ({                                                                                              \
                int _level_ = (level), _e_ = (error);                                                   \
                _e_ = _e_ < 0 ? -_e_ : _e_;                                                             \
                (log_get_max_level() >= _level_)                                                        \
                        ? log_fields_internal(_level_, _e_, (fields), (n_fields), __VA_ARGS__)          \
                        : -_e_;                                                                         \
        })
#define log_fields_full(level, fields, n_fields, ...)                                                   \
        (void) log_fields_full_errno((level), 0, (fields), (n_fields), __VA_ARGS__)

/* Events of one source: like log_*(), and under journald the entry also carries the field
 * DPIPE_SOURCE=<name>, so that `journalctl DPIPE_SOURCE=demo` tells one source's story (source NULL:
 * no field, for code that serves other things than sources too). Elsewhere the line goes to stderr
 * as usual. */
int log_source_internal(int level, int error, const char *source, const char *format, ...) _printf_(4, 5);
#define log_source_full_errno(level, error, source, ...)                                                \
        ({                                                                                              \
                int _level_ = (level), _e_ = (error);                                                   \
                _e_ = _e_ < 0 ? -_e_ : _e_;                                                             \
                (log_get_max_level() >= _level_) ? log_source_internal(_level_, _e_, (source), __VA_ARGS__) \
                                                 : -_e_;                                                \
        })
#define log_source_full(level, source, ...) (void) log_source_full_errno((level), 0, (source), __VA_ARGS__)
#define log_source_debug(source, ...) log_source_full(LOG_DEBUG, source, __VA_ARGS__)
#define log_source_info(source, ...) log_source_full(LOG_INFO, source, __VA_ARGS__)
#define log_source_notice(source, ...) log_source_full(LOG_NOTICE, source, __VA_ARGS__)
#define log_source_warning(source, ...) log_source_full(LOG_WARNING, source, __VA_ARGS__)
#define log_source_error(source, ...) log_source_full(LOG_ERR, source, __VA_ARGS__)
#define log_source_warning_errno(source, error, ...) log_source_full_errno(LOG_WARNING, error, source, __VA_ARGS__)
#define log_source_error_errno(source, error, ...) log_source_full_errno(LOG_ERR, error, source, __VA_ARGS__)

/* For out-of-memory: logs once at err and returns -ENOMEM. */
#define log_oom() log_full_errno(LOG_ERR, ENOMEM, "Out of memory.")
