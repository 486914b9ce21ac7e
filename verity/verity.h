/* SPDX-License-Identifier: MIT */
#pragma once

/* verity: set up a dm-verity device with libcryptsetup, proven against a
 * pinned root hash before anything uses it. */

#include <stddef.h>

enum verity_policy {
        VERITY_POLICY_RESTART,   /* restart_on_corruption */
        VERITY_POLICY_PANIC,     /* panic_on_corruption */
        VERITY_POLICY_EIO,       /* the kernel's default: I/O error */
};

struct verity_setup {
        const char *data_dev;    /* the file system */
        const char *hash_dev;    /* veritysetup format: superblock at offset 0 */
        const char *root_hash;   /* hex */
        const char *name;        /* device-mapper name, e.g. "abswitch-root" */
        enum verity_policy policy;
};

/* Returns 0 and the /dev/mapper path on success.
 *  -EINVAL     the root hash is not hex, or not the hash tree's digest size
 *  -EKEYREJECTED  the hash tree does not verify against the root hash (the
 *              image is not the one the UKI pins, or it is corrupt)
 *  other -errno  from libcryptsetup (bad superblock: -EINVAL/-ENOENT ...)
 * why gets a short human explanation when it fails. */
int verity_open(const struct verity_setup *s, char **ret_path, char *why, size_t why_size);

/* A root hash in hex to bytes: -EINVAL unless an even number of hex digits
 * that fits max bytes. */
int verity_unhex(const char *s, unsigned char *out, size_t max, size_t *ret_len);

/* Removes a device set up by verity_open (on a failure path). */
int verity_close(const char *name);

/* Routes libcryptsetup's messages into our log at debug level. */
void verity_log_to_debug(void);
