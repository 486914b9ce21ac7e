/* SPDX-License-Identifier: MIT */
#pragma once

/* A partition of the slot disk as a block device of its own, so that what
 * is written through it and read back for verification is exactly that
 * partition (blockdev.c):
 *
 *  - a disk that is a block device with partition nodes: the node the
 *    kernel made, found through sysfs (/sys/dev/block/MAJ:MIN/<part>/
 *    partition, dev, uevent's DEVNAME), checked to start and end where the
 *    GPT says;
 *  - a disk that is an image file, or a block device without partition
 *    nodes (a loop device without partition scanning): a loop device over
 *    the partition's byte range (lo_offset, lo_sizelimit), set up to clear
 *    itself when its last user closes it, so no path (not even kill -9)
 *    leaves it behind. */

#include <stdbool.h>
#include <stdint.h>

struct part_dev {
        char *path;     /* /dev/vda3 or /dev/loop4 */
        int hold_fd;    /* our loop device, held open until part_dev_release; -1 for a partition node */
};

#define PART_DEV_NULL ((struct part_dev) { .hold_fd = -1 })

/* Partition partno of disk, start and size in 512-byte sectors as the GPT
 * says. -ESTALE: the kernel's partition differs from the GPT's;
 * -ENODEV: its node is missing or is another device. Logs nothing. */
int part_dev_get(const char *disk, unsigned partno, uint64_t start, uint64_t size, bool writable,
                 struct part_dev *ret);
/* Closes our hold on a loop device (the kernel then clears it); frees. */
void part_dev_release(struct part_dev *p);

/* Flushed to the medium and, for a block device, dropped from the page
 * cache, so that a read after it sees the disk, not memory. */
int blockdev_flush(int fd);
