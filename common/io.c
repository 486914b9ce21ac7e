/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/param.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io.h"
#include "macro.h"

/* The one EINTR / short-count loop: write(2) when off is NO_OFFSET,
 * pwrite(2) or pread(2) at off otherwise. */
#define NO_OFFSET UINT64_MAX
static int io_full(int fd, bool wr, uint8_t *p, size_t n, uint64_t off) {
        while (n > 0) {
                ssize_t k = !wr              ? pread(fd, p, n, (off_t) off)
                            : off == NO_OFFSET ? write(fd, p, n)
                                               : pwrite(fd, p, n, (off_t) off);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        return k < 0 ? -errno : -EIO;
                p += k, n -= (size_t) k;
                if (off != NO_OFFSET)
                        off += (uint64_t) k;
        }
        return 0;
}

/* io_full does not write through p when wr is set: dropping const is safe. */
int loop_write(int fd, const void *buf, size_t n) {
        return io_full(fd, true, (uint8_t *) buf, n, NO_OFFSET);
}

int pwrite_full(int fd, const void *buf, size_t n, uint64_t off) {
        return io_full(fd, true, (uint8_t *) buf, n, off);
}

int pread_full(int fd, void *buf, size_t n, uint64_t off) {
        return io_full(fd, false, buf, n, off);
}

int read_file_bounded(const char *path, size_t max, char **ret, size_t *ret_size) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        struct stat st;

        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EBADFD;
        if ((uint64_t) st.st_size > max) {
                /* How large, for the caller's message. */
                if (ret_size)
                        *ret_size = (size_t) MIN((uint64_t) st.st_size, (uint64_t) SIZE_MAX);
                return -EFBIG;
        }
        size_t size = (size_t) st.st_size;
        _cleanup_free_ char *b = malloc(size + 1);
        if (!b)
                return -ENOMEM;
        int r = pread_full(fd, b, size, 0);
        if (r < 0)
                return r;
        b[size] = 0;
        *ret = TAKE_PTR(b);
        if (ret_size)
                *ret_size = size;
        return 0;
}

int rename_into_place(const char *tmp, const char *path) {
        if (rename(tmp, path) < 0) {
                int r = -errno;
                (void) unlink(tmp);
                return r;
        }
        /* The directory entry: "a/b" -> "a", "b" -> ".". */
        const char *slash = strrchr(path, '/');
        _cleanup_free_ char *dir = slash ? strndup(path, slash == path ? 1 : (size_t) (slash - path)) : strdup(".");
        _cleanup_close_ int dfd = dir ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -EBADF;
        if (dfd >= 0)
                (void) fsync(dfd);
        return 0;
}

int write_file_atomic(const char *path, const void *data, size_t n) {
        size_t size = strlen(path) + sizeof(".new");
        _cleanup_free_ char *tmp = malloc(size);
        int r;

        if (!tmp)
                return -ENOMEM;
        (void) snprintf(tmp, size, "%s.new", path);
        _cleanup_close_ int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW, 0644);
        if (fd < 0)
                return -errno;
        r = loop_write(fd, data, n);
        if (r >= 0 && fsync(fd) < 0)
                r = -errno;
        if (r < 0) {
                (void) unlink(tmp);
                return r;
        }
        return rename_into_place(tmp, path);
}
