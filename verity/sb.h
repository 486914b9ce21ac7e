/* SPDX-License-Identifier: MIT */
#pragma once

/* veritysetup's on-disk superblock (format 1), parsed: pure, no I/O.
 *
 * By hand, not through libcryptsetup: crypt_load() is the library's only
 * reader, and it reads these 512 bytes with O_DIRECT after opening the hash
 * device three times (device_open, device_block_size, device_alignment),
 * which is 16-30 ms of the init's boot under emulation. The init reads the
 * block once and hands the fields to crypt_format() with
 * CRYPT_VERITY_NO_HEADER, which sets up the same table without I/O; abctl's
 * delta installs read the same fields from a registry's tree. The checks
 * are VERITY_read_sb()'s (cryptsetup 2.6 lib/verity/verity.c), so nothing
 * libcryptsetup would refuse gets through, and the layout is its
 * struct verity_sb:
 *
 *   0 signature "verity\0\0"   8 version (1)   12 hash type (0 Chrome OS, 1 normal)
 *  16 uuid[16]   32 algorithm[32], NUL-padded   64 data block size   68 hash block size
 *  72 data blocks (u64)   80 salt size (u16)   88 salt[256]   344 padding to 512
 *
 * all little-endian. */

#include <stddef.h>
#include <stdint.h>

#define VERITY_SB_SIZE 512u
#define VERITY_SALT_MAX 256u

struct verity_sb {
        uint32_t version;
        uint32_t hash_type;
        uint8_t uuid[16];
        char algorithm[33];
        uint32_t data_block_size, hash_block_size;
        uint64_t data_blocks;
        uint16_t salt_size;
        uint8_t salt[VERITY_SALT_MAX];
};

/* buf[0..n): 0, or -EBADMSG with why naming the field that is wrong. */
int verity_sb_parse(const uint8_t *buf, size_t n, struct verity_sb *ret, char *why, size_t why_size);

/* Where the tree's first hash block is, in bytes: the superblock fills
 * block 0 (rounded up to a hash block, as libcryptsetup places it). */
uint64_t verity_sb_tree_offset(const struct verity_sb *sb);
