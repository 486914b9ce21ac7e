/* SPDX-License-Identifier: MIT */
/* Thin I/O adapter: reading variables from an efivarfs directory. The
 * directory is a parameter so that tests run against a fake one. */

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <sys/stat.h>

#include "../common/macro.h"
#include "efi.h"

int efi_var_read(const char *dir, const char *name, const char *guid,
                 uint32_t *ret_attr, void **ret_value, size_t *ret_size) {
        char path[PATH_MAX];
        struct stat st;

        if (snprintf(path, sizeof(path), "%s/%s-%s", dir, name, guid) >= (int) sizeof(path))
                return -ENAMETOOLONG;

        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EBADF;
        /* efivarfs reports the real size (attributes + value). */
        if (st.st_size > (off_t) (EFI_VARIABLE_SIZE_MAX + 4))
                return -E2BIG;

        size_t cap = (size_t) st.st_size > 4 ? (size_t) st.st_size : 4;
        _cleanup_free_ uint8_t *buf = malloc(cap + 1 + 2);
        if (!buf)
                return -ENOMEM;

        /* One read is what efivarfs wants; loop only for EINTR and short reads
         * of regular files in tests. Read one extra byte to notice growth. */
        size_t n = 0;
        for (;;) {
                ssize_t k = read(fd, buf + n, cap + 1 - n);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (k == 0)
                        break;
                n += (size_t) k;
                if (n > cap)
                        return -E2BIG;
        }
        if (n < 4)
                return -EBADMSG;

        uint32_t attr = buf[0] | (buf[1] << 8) | (buf[2] << 16) | ((uint32_t) buf[3] << 24);
        size_t vsize = n - 4;
        memmove(buf, buf + 4, vsize);
        buf[vsize] = buf[vsize + 1] = 0;

        if (ret_attr)
                *ret_attr = attr;
        if (ret_size)
                *ret_size = vsize;
        if (ret_value)
                *ret_value = TAKE_PTR(buf);
        return 0;
}

int efi_var_read_string(const char *dir, const char *name, const char *guid, char **ret) {
        _cleanup_free_ void *v = NULL;
        size_t size;
        int r;

        r = efi_var_read(dir, name, guid, NULL, &v, &size);
        if (r < 0)
                return r;
        return efi_utf16_to_utf8(v, size, ret);
}
