/* SPDX-License-Identifier: MIT */
/* Thin I/O adapter: reading variables from an efivarfs directory. The
 * directory is a parameter so that tests run against a fake one. */

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
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

/* efivarfs marks variables immutable so that rm -rf cannot brick machines;
 * lift the flag for our own write and put it back (systemd does the same). */
static int immutable_set(const char *path, bool on, bool *ret_was) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW);
        int flags;

        if (fd < 0)
                return -errno;
        if (ioctl(fd, FS_IOC_GETFLAGS, &flags) < 0)
                return errno == ENOTTY || errno == EOPNOTSUPP ? 0 : -errno;
        if (ret_was)
                *ret_was = flags & FS_IMMUTABLE_FL;
        int want = on ? (flags | FS_IMMUTABLE_FL) : (flags & ~FS_IMMUTABLE_FL);
        if (want != flags && ioctl(fd, FS_IOC_SETFLAGS, &want) < 0)
                return -errno;
        return 0;
}

int efi_var_write(const char *dir, const char *name, const char *guid, uint32_t attr, const void *value,
                  size_t size) {
        char path[PATH_MAX];
        _cleanup_free_ void *old = NULL;
        size_t old_size = 0;
        uint32_t old_attr = 0;
        bool was_immutable = false;
        int r;

        if (size > EFI_VARIABLE_SIZE_MAX)
                return -E2BIG;
        if (efi_var_read(dir, name, guid, &old_attr, &old, &old_size) >= 0 && old_attr == attr &&
            old_size == size && old && memcmp(old, value, size) == 0)
                return 0;

        if (snprintf(path, sizeof(path), "%s/%s-%s", dir, name, guid) >= (int) sizeof(path))
                return -ENAMETOOLONG;
        _cleanup_free_ uint8_t *buf = malloc(4 + size);
        if (!buf)
                return -ENOMEM;
        buf[0] = (uint8_t) attr, buf[1] = (uint8_t) (attr >> 8), buf[2] = (uint8_t) (attr >> 16),
        buf[3] = (uint8_t) (attr >> 24);
        memcpy(buf + 4, value, size);

        if (access(path, F_OK) == 0)
                (void) immutable_set(path, false, &was_immutable);

        _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW, 0644);
        if (fd < 0) {
                r = -errno;
                goto restore;
        }
        /* One write: efivarfs turns each write into one SetVariable(). */
        ssize_t k;
        do
                k = write(fd, buf, 4 + size);
        while (k < 0 && errno == EINTR);
        r = k < 0 ? -errno : (size_t) k != 4 + size ? -EIO : 1;
        /* efivarfs replaces the value; a plain file (a fake efivarfs in
         * tests) keeps a longer old tail, so cut that. */
        struct stat st;
        if (r > 0 && fstat(fd, &st) == 0 && st.st_size > (off_t) (4 + size) && ftruncate(fd, (off_t) (4 + size)) < 0)
                r = -errno;
restore:
        if (was_immutable)
                (void) immutable_set(path, true, NULL);
        return r;
}

int efi_var_delete(const char *dir, const char *name, const char *guid) {
        char path[PATH_MAX];

        if (snprintf(path, sizeof(path), "%s/%s-%s", dir, name, guid) >= (int) sizeof(path))
                return -ENAMETOOLONG;
        if (access(path, F_OK) < 0)
                return errno == ENOENT ? 0 : -errno;
        (void) immutable_set(path, false, NULL);
        return unlink(path) < 0 ? -errno : 1;
}
