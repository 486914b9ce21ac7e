/* SPDX-License-Identifier: MIT */
/* veritysetup's superblock (sb.h says why by hand, and its layout). */

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "../common/unaligned.h"
#include "sb.h"

/* VERITY_BLOCK_SIZE_OK's range: a power of two from 512 bytes to 512 KiB. */
static int block_size_ok(uint32_t x) {
        return x >= 512 && x <= 512u * 1024 && (x & (x - 1)) == 0;
}

int verity_sb_parse(const uint8_t *buf, size_t n, struct verity_sb *ret, char *why, size_t why_size) {
        struct verity_sb sb = {};

        if (n < VERITY_SB_SIZE) {
                (void) snprintf(why, why_size, "the superblock is cut short (%zu of %u bytes)", n, VERITY_SB_SIZE);
                return -EBADMSG;
        }
        if (memcmp(buf, "verity\0\0", 8) != 0) {
                (void) snprintf(why, why_size, "no dm-verity superblock (its signature is not \"verity\")");
                return -EBADMSG;
        }
        sb.version = le32(buf + 8);
        sb.hash_type = le32(buf + 12);
        if (sb.version != 1) {
                (void) snprintf(why, why_size, "dm-verity superblock version %u (only version 1 exists)", sb.version);
                return -EBADMSG;
        }
        if (sb.hash_type > 1) {
                (void) snprintf(why, why_size, "dm-verity hash type %u (0 or 1)", sb.hash_type);
                return -EBADMSG;
        }
        memcpy(sb.uuid, buf + 16, sizeof(sb.uuid));
        memcpy(sb.algorithm, buf + 32, 32);
        sb.algorithm[32] = 0;
        if (!sb.algorithm[0] || memchr(buf + 32, 0, 32) == NULL) {
                (void) snprintf(why, why_size, "the hash algorithm's name is empty or not terminated");
                return -EBADMSG;
        }
        sb.data_block_size = le32(buf + 64);
        sb.hash_block_size = le32(buf + 68);
        if (!block_size_ok(sb.data_block_size) || !block_size_ok(sb.hash_block_size)) {
                (void) snprintf(why, why_size, "blocks of %u (data) and %u (hash) bytes: each must be a power of "
                                "two from 512 bytes to 512 KiB", sb.data_block_size, sb.hash_block_size);
                return -EBADMSG;
        }
        sb.data_blocks = le64(buf + 72);
        if (sb.data_blocks == 0 || sb.data_blocks > UINT64_MAX / sb.data_block_size) {
                (void) snprintf(why, why_size, "%llu data blocks", (unsigned long long) sb.data_blocks);
                return -EBADMSG;
        }
        sb.salt_size = le16(buf + 80);
        if (sb.salt_size > VERITY_SALT_MAX) {
                (void) snprintf(why, why_size, "a salt of %u bytes, more than %u", sb.salt_size, VERITY_SALT_MAX);
                return -EBADMSG;
        }
        memcpy(sb.salt, buf + 88, sb.salt_size);
        *ret = sb;
        return 0;
}

uint64_t verity_sb_tree_offset(const struct verity_sb *sb) {
        return ((uint64_t) VERITY_SB_SIZE + sb->hash_block_size - 1) / sb->hash_block_size * sb->hash_block_size;
}
