/* SPDX-License-Identifier: MIT */
/* LD_PRELOAD shim for tests/tools/test_delta.py: pread() of a block device
 * whose loop offset (sysfs) is $FAILPREAD_OFFSET fails with EIO, as a disk
 * with a bad sector would (this host has neither device-mapper's error
 * target nor nbd). Only the glibc abctl honours it; with ASan,
 * ASAN_OPTIONS=verify_asan_link_order=0. */
#define _GNU_SOURCE 1
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

static int fails(int fd) {
        const char *want = getenv("FAILPREAD_OFFSET");
        struct stat st;
        char p[128], buf[64];
        if (!want || fstat(fd, &st) < 0 || !S_ISBLK(st.st_mode))
                return 0;
        (void) snprintf(p, sizeof(p), "/sys/dev/block/%u:%u/loop/offset", major(st.st_rdev), minor(st.st_rdev));
        FILE *f = fopen(p, "re");
        if (!f)
                return 0;
        int hit = fgets(buf, sizeof(buf), f) && strtoull(buf, NULL, 10) == strtoull(want, NULL, 10);
        fclose(f);
        return hit;
}

ssize_t pread64(int fd, void *buf, size_t n, off_t off) {
        static ssize_t (*real)(int, void *, size_t, off_t);
        if (!real)
                real = (ssize_t (*)(int, void *, size_t, off_t)) dlsym(RTLD_NEXT, "pread64");
        if (fails(fd)) {
                errno = EIO;
                return -1;
        }
        return real(fd, buf, n, off);
}

ssize_t pread(int fd, void *buf, size_t n, off_t off) {
        return pread64(fd, buf, n, off);
}
