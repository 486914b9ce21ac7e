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

/* Reads the regular file at path, of at most max bytes, into *ret (free()
 * it), with a NUL after its *ret_size bytes so that text parses in place
 * (ret_size may be NULL). The file is opened non-blocking, so that a FIFO
 * with no writer is refused rather than waited for. -errno of open(2);
 * -EBADFD not a regular file (a directory, FIFO, device: as systemd's
 * stat_verify_regular); -EFBIG larger than max (*ret_size then says how
 * large); -EIO it shrank while read; -ENOMEM. Nothing else is written to
 * *ret or *ret_size on failure. */
int read_file_bounded(const char *path, size_t max, char **ret, size_t *ret_size);

/* Renames tmp (written and flushed) over path, then flushes the directory
 * entry (best effort: the rename is what must not be half done). When the
 * rename fails, tmp is removed and path is as it was. -errno of rename(2). */
int rename_into_place(const char *tmp, const char *path);

/* Replaces the file at path by n bytes of data (mode 0644 when new): the
 * temporary "<path>.new" is written, fsync'ed and renamed over path, then
 * the directory is flushed (cgpt, bless-boot). A power cut leaves the old
 * content or the new, never a part; a failure leaves the old file and
 * removes the temporary. The temporary is opened O_NOFOLLOW (a symlink
 * planted there is refused, not written through). 0, or -errno. */
int write_file_atomic(const char *path, const void *data, size_t n);
