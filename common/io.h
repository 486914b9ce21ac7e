/* SPDX-License-Identifier: MIT */
#pragma once

/* Whole reads and writes: each retries on EINTR and short counts until all
 * n bytes moved. 0, or -errno; -EIO when the file ends (a read) or the
 * kernel accepts nothing (a write) before that. */

#include <stddef.h>
#include <stdint.h>

int loop_write(int fd, const void *buf, size_t n);
int pwrite_full(int fd, const void *buf, size_t n, uint64_t off);
int pread_full(int fd, void *buf, size_t n, uint64_t off);
