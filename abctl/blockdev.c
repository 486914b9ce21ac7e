/* SPDX-License-Identifier: MIT */
/* Partitions of the slot disk as block devices. See blockdev.h. */

#define _GNU_SOURCE 1
#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/loop.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "../common/macro.h"
#include "abctl.h"
#include "blockdev.h"

static void closedirp(DIR **d) {
        if (*d)
                (void) closedir(*d);
}

/* The first line of a small sysfs file. */
static int read_line(const char *path, char *buf, size_t size) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        ssize_t n = read(fd, buf, size - 1);
        if (n < 0)
                return -errno;
        buf[n] = 0;
        buf[strcspn(buf, "\n")] = 0;
        return 0;
}

static int read_u64(const char *dir, const char *name, uint64_t *ret) {
        _cleanup_free_ char *p = NULL;
        char line[64], *end;
        int r = abctl_path(&p, "%s/%s", dir, name);
        if (r < 0)
                return r;
        r = read_line(p, line, sizeof(line));
        if (r < 0)
                return r;
        errno = 0;
        unsigned long long v = strtoull(line, &end, 10);
        if (errno || end == line || *end)
                return -EBADMSG;
        *ret = v;
        return 0;
}

/* The kernel's node for partition partno of the block device st: -ENOENT
 * when the kernel has no such partition. */
static int partition_node(const struct stat *st, unsigned partno, uint64_t start, uint64_t size, char **ret) {
        _cleanup_free_ char *sys = NULL;
        int r = abctl_path(&sys, "/sys/dev/block/%u:%u", major(st->st_rdev), minor(st->st_rdev));
        if (r < 0)
                return r;
        _cleanup_(closedirp) DIR *d = opendir(sys);
        if (!d)
                return errno == ENOENT ? -ENOENT : -errno;
        for (struct dirent *de; (de = readdir(d));) {
                _cleanup_free_ char *part = NULL, *uevent = NULL, *node = NULL;
                uint64_t no, pstart, psize;
                char buf[512];

                if (de->d_name[0] == '.')
                        continue;
                if (abctl_path(&part, "%s/%s", sys, de->d_name) < 0)
                        return -ENOMEM;
                if (read_u64(part, "partition", &no) < 0 || no != partno)
                        continue;
                /* The kernel read the table when the disk appeared: a
                 * partition it placed elsewhere is not the GPT's. */
                if (read_u64(part, "start", &pstart) < 0 || read_u64(part, "size", &psize) < 0 ||
                    pstart != start || psize != size)
                        return -ESTALE;
                if (abctl_path(&uevent, "%s/uevent", part) < 0)
                        return -ENOMEM;
                _cleanup_close_ int fd = open(uevent, O_RDONLY | O_CLOEXEC | O_NOCTTY);
                ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
                if (n < 0)
                        return -ENODEV;
                buf[n] = 0;
                const char *name = strstr(buf, "DEVNAME=");
                if (!name)
                        return -ENODEV;
                name += strlen("DEVNAME=");
                r = abctl_path(&node, "/dev/%.*s", (int) strcspn(name, "\n"), name);
                if (r < 0)
                        return r;
                /* The node must be that partition, not a stale or other device. */
                char dev[32];
                unsigned ma, mi;
                struct stat ns;
                _cleanup_free_ char *devfile = NULL;
                if (abctl_path(&devfile, "%s/dev", part) < 0)
                        return -ENOMEM;
                if (read_line(devfile, dev, sizeof(dev)) < 0 || sscanf(dev, "%u:%u", &ma, &mi) != 2)
                        return -ENODEV;
                if (stat(node, &ns) < 0 || !S_ISBLK(ns.st_mode) || ns.st_rdev != makedev(ma, mi))
                        return -ENODEV;
                *ret = TAKE_PTR(node);
                return 0;
        }
        return -ENOENT;
}

/* A loop device over size bytes of backing at offset, cleared by the
 * kernel when its last user closes it. */
static int loop_attach(const char *backing, uint64_t offset, uint64_t size, bool writable, struct part_dev *ret) {
        int mode = (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NOCTTY;
        _cleanup_close_ int bfd = open(backing, mode);
        if (bfd < 0)
                return -errno;
        _cleanup_close_ int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC | O_NOCTTY);
        if (ctl < 0)
                return -errno;
        /* Another process may take the free device between asking and
         * configuring it (EBUSY): ask again. */
        for (unsigned attempt = 0; attempt < 64; attempt++) {
                _cleanup_free_ char *path = NULL;
                int n = ioctl(ctl, LOOP_CTL_GET_FREE);
                if (n < 0)
                        return -errno;
                if (abctl_path(&path, "/dev/loop%d", n) < 0)
                        return -ENOMEM;
                _cleanup_close_ int fd = open(path, mode);
                if (fd < 0 && errno == ENOENT) {
                        /* devtmpfs makes the node a moment after loop-control does. */
                        (void) usleep(10 * 1000);
                        continue;
                }
                if (fd < 0)
                        return -errno;
                struct loop_config cfg = {
                        .fd = (uint32_t) bfd,
                        .info = { .lo_offset = offset, .lo_sizelimit = size,
                                  .lo_flags = LO_FLAGS_AUTOCLEAR | (writable ? 0 : LO_FLAGS_READ_ONLY) },
                };
                if (ioctl(fd, LOOP_CONFIGURE, &cfg) < 0) {
                        if (errno == EBUSY)
                                continue;
                        if (errno != EINVAL && errno != ENOTTY)
                                return -errno;
                        /* Before Linux 5.8: attach, then set the range. */
                        if (ioctl(fd, LOOP_SET_FD, bfd) < 0) {
                                if (errno == EBUSY)
                                        continue;
                                return -errno;
                        }
                        if (ioctl(fd, LOOP_SET_STATUS64, &cfg.info) < 0) {
                                int r = -errno;
                                (void) ioctl(fd, LOOP_CLR_FD, 0);
                                return r;
                        }
                }
                /* A backing file shorter than the GPT says gives a shorter device. */
                uint64_t got;
                if (ioctl(fd, BLKGETSIZE64, &got) < 0)
                        return -errno;
                if (got != size)
                        return -ERANGE;  /* closing fd clears the device */
                *ret = (struct part_dev) { .path = TAKE_PTR(path), .hold_fd = TAKE_FD(fd) };
                return 0;
        }
        return -EBUSY;
}

int part_dev_get(const char *disk, unsigned partno, uint64_t start, uint64_t size, bool writable,
                 struct part_dev *ret) {
        struct stat st;
        if (stat(disk, &st) < 0)
                return -errno;
        if (S_ISBLK(st.st_mode)) {
                char *node = NULL;
                int r = partition_node(&st, partno, start, size, &node);
                if (r >= 0) {
                        *ret = (struct part_dev) { .path = node, .hold_fd = -1 };
                        return 0;
                }
                if (r != -ENOENT)
                        return r;
        } else if (!S_ISREG(st.st_mode))
                return -ENOTBLK;
        return loop_attach(disk, start * 512, size * 512, writable, ret);
}

void part_dev_release(struct part_dev *p) {
        if (p->hold_fd >= 0)
                (void) close(p->hold_fd);
        free(p->path);
        *p = PART_DEV_NULL;
}

int blockdev_flush(int fd) {
        struct stat st;
        if (fdatasync(fd) < 0)
                return -errno;
        if (fstat(fd, &st) == 0 && S_ISBLK(st.st_mode) && ioctl(fd, BLKFLSBUF, 0) < 0)
                return -errno;
        return 0;
}
