/* SPDX-License-Identifier: MIT */
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/uio.h>

#include "log.h"

static const char *log_ident = "abswitch";
static enum log_target log_target = LOG_TARGET_STDERR;
static int log_fd = -1;
static const char *log_path = "stderr";
static int log_max_level = LOG_INFO;

void log_setup(const char *ident, enum log_target target) {
        log_close();
        log_ident = ident;
        log_target = target;
        if (target != LOG_TARGET_KMSG)
                return;
        log_fd = open("/dev/kmsg", O_WRONLY | O_NOCTTY | O_CLOEXEC);
        log_path = "/dev/kmsg";
        if (log_fd < 0) {
                log_fd = open("/dev/console", O_WRONLY | O_NOCTTY | O_CLOEXEC);
                log_path = "/dev/console";
        }
        if (log_fd < 0)
                log_path = "stderr";
}

void log_close(void) {
        closep(&log_fd);
        log_fd = -1;
        log_path = "stderr";
}

const char *log_target_path(void) {
        return log_path;
}

void log_set_max_level(int level) {
        log_max_level = level;
}

int log_get_max_level(void) {
        return log_max_level;
}

int log_internal(int level, int error, const char *fmt, ...) {
        int saved = errno;
        char msg[1024], prefix[64];
        va_list ap;

        if (error < 0)
                error = -error;
        if (level > log_max_level)
                return -error;

        /* %m prints the error we were handed, not whatever errno happens to be. */
        errno = error;
        va_start(ap, fmt);
        (void) vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);

        int fd = log_fd >= 0 ? log_fd : STDERR_FILENO;
        if (log_fd >= 0 && streq(log_path, "/dev/kmsg"))
                (void) snprintf(prefix, sizeof(prefix), "<%d>%s: ", level, log_ident);
        else
                (void) snprintf(prefix, sizeof(prefix), "%s: ", log_ident);

        struct iovec iov[] = {
                { .iov_base = prefix, .iov_len = strlen(prefix) },
                { .iov_base = msg,    .iov_len = strlen(msg) },
                { .iov_base = (char *) "\n", .iov_len = 1 },
        };
        (void) writev(fd, iov, ELEMENTSOF(iov));

        errno = saved;
        return -error;
}
