/* SPDX-License-Identifier: MIT */
#pragma once

/* Logging. The init logs to /dev/kmsg (one writev per message with a <N>
 * priority prefix, so the lines reach the journal of the booted system and,
 * by the kernel's console loglevel, the console); abctl and the tests log to
 * stderr. Library code (efi/, slots/, verity/) logs at debug level at most:
 * the caller that can explain the failure to a person logs it, once. */

#include <syslog.h>

#include "macro.h"

enum log_target {
        LOG_TARGET_STDERR,
        LOG_TARGET_KMSG,    /* falls back to /dev/console if kmsg cannot be opened */
};

void log_setup(const char *ident, enum log_target target);
void log_set_max_level(int level);
int log_get_max_level(void);
/* Which file log lines go to right now: "/dev/kmsg", "/dev/console" or "stderr". */
const char *log_target_path(void);
void log_close(void);

int log_internal(int level, int error, const char *fmt, ...) _printf_(3, 4);

#define log_full_errno(level, error, ...) log_internal((level), (error), __VA_ARGS__)
#define log_debug(...)   log_internal(LOG_DEBUG, 0, __VA_ARGS__)
#define log_info(...)    log_internal(LOG_INFO, 0, __VA_ARGS__)
#define log_notice(...)  log_internal(LOG_NOTICE, 0, __VA_ARGS__)
#define log_warning(...) log_internal(LOG_WARNING, 0, __VA_ARGS__)
#define log_error(...)   log_internal(LOG_ERR, 0, __VA_ARGS__)
#define log_emerg(...)   log_internal(LOG_EMERG, 0, __VA_ARGS__)
/* These return the error as a negative errno and make %m print it. */
#define log_debug_errno(r, ...)   log_internal(LOG_DEBUG, (r), __VA_ARGS__)
#define log_warning_errno(r, ...) log_internal(LOG_WARNING, (r), __VA_ARGS__)
#define log_error_errno(r, ...)   log_internal(LOG_ERR, (r), __VA_ARGS__)
