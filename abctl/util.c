/* SPDX-License-Identifier: MIT */
/* Small helpers of abctl: checked paths, the write-all loop, the UKI's pin
 * with a reason. See abctl.h. */

#define _GNU_SOURCE 1 /* vasprintf */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>

#include "../common/log.h"
#include "../efi/uki.h"
#include "abctl.h"

int abctl_path(char **ret, const char *fmt, ...) {
        va_list ap;
        char *p;

        va_start(ap, fmt);
        int n = vasprintf(&p, fmt, ap);
        va_end(ap);
        if (n < 0)
                return -ENOMEM;
        /* A longer name fails in every system call: say so now, before
         * anything is written, rather than half-way. */
        if (n >= PATH_MAX) {
                free(p);
                return -ENAMETOOLONG;
        }
        *ret = p;
        return 0;
}

int abctl_uki_roothash(const char *path, char ret[static ROOTHASH_HEX_MAX + 1]) {
        int r = uki_pinned_roothash(path, ret);
        switch (r) {
        case 0:
                return 0;
        case -EBADF:
                return log_error_errno(r, "The UKI %s is not a regular file", path);
        case -EBADMSG:
                return log_error_errno(r, "%s is not a PE file, so not a UKI (build it with initramfs/mkuki)", path);
        case -ENODATA:
                return log_error_errno(r, "The UKI %s has no .cmdline section", path);
        case -E2BIG:
                return log_error_errno(r, "The .cmdline section of %s is larger than %d bytes", path, UKI_SECTION_MAX);
        case -ENOKEY:
                return log_error_errno(r, "The UKI %s pins no valid ab.roothash= on its command line", path);
        default:
                return log_error_errno(r, "Cannot read the UKI %s: %m", path);
        }
}
