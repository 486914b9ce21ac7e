/* SPDX-License-Identifier: MIT */
/* The dm-verity hash tree's geometry and checks (delta.h): pure, no I/O.
 *
 * The layout is veritysetup's format 1 (cryptsetup lib/verity/verity.c and
 * verity_hash.c, the kernel's Documentation/admin-guide/device-mapper/
 * verity.rst): a 512-byte superblock in hash block 0; then the levels, the
 * top one (a single block, whose hash is the root hash) first and level 0
 * (one 32-byte hash per data block, 128 to a block) last. Level i has
 * ceil(data_blocks / 128^(i+1)) blocks; there are as many levels as it
 * takes for (data_blocks - 1) >> (7 * levels) to be 0. A block's hash is
 * sha256(salt || block). */

#include <errno.h>
#include <mbedtls/sha256.h>
#include <stdio.h>
#include <string.h>

#include "../common/unaligned.h"
#include "delta.h"

#define HASH_PER_BLOCK_BITS 7  /* log2(DELTA_HASHES_PER_BLOCK) */

int delta_tree_geometry(uint64_t data_blocks, struct delta_tree *t, char *why, size_t whysize) {
        unsigned levels = 0;
        uint64_t pos = 1;  /* block 0: the superblock */

        if (data_blocks < 2) {
                (void) snprintf(why, whysize, "an image of %llu block%s has no hash tree to take blocks from",
                                (unsigned long long) data_blocks, data_blocks == 1 ? "" : "s");
                return -EINVAL;
        }
        if (data_blocks > DELTA_DATA_BLOCKS_MAX) {
                (void) snprintf(why, whysize, "an image of %llu blocks is larger than the %llu abctl takes",
                                (unsigned long long) data_blocks, (unsigned long long) DELTA_DATA_BLOCKS_MAX);
                return -EINVAL;
        }
        while (HASH_PER_BLOCK_BITS * levels < 64 && (data_blocks - 1) >> (HASH_PER_BLOCK_BITS * levels))
                levels++;
        if (levels > DELTA_LEVELS_MAX) {
                (void) snprintf(why, whysize, "%llu data blocks need %u tree levels, more than %u",
                                (unsigned long long) data_blocks, levels, DELTA_LEVELS_MAX);
                return -EINVAL;
        }
        t->data_blocks = data_blocks;
        t->levels = levels;
        for (int i = (int) levels - 1; i >= 0; i--) {
                unsigned shift = (unsigned) (i + 1) * HASH_PER_BLOCK_BITS;
                uint64_t s = shift >= 64 ? 1 : (data_blocks >> shift) + ((data_blocks & ((UINT64_C(1) << shift) - 1)) != 0);
                t->level_block[i] = pos;
                t->level_blocks[i] = s;
                pos += s;
        }
        t->tree_bytes = pos * DELTA_BLOCK;
        return 0;
}

int delta_tree_parse(const uint8_t *sb, size_t n, uint64_t data_size, uint64_t hash_size, struct delta_tree *ret,
                     char *why, size_t whysize) {
        struct delta_tree t = {};
        char alg[33];

        if (n < DELTA_SB_SIZE) {
                (void) snprintf(why, whysize, "the superblock is cut short (%zu of %u bytes)", n, DELTA_SB_SIZE);
                return -EBADMSG;
        }
        if (memcmp(sb, "verity\0\0", 8) != 0) {
                (void) snprintf(why, whysize, "no dm-verity superblock (its signature is not \"verity\")");
                return -EBADMSG;
        }
        uint32_t version = le32(sb + 8), type = le32(sb + 12);
        memcpy(alg, sb + 32, 32);
        alg[32] = 0;
        uint32_t dbs = le32(sb + 64), hbs = le32(sb + 68);
        uint64_t blocks = le64(sb + 72);
        uint16_t salt_size = le16(sb + 80);
        if (version != 1 || type != 1) {
                (void) snprintf(why, whysize, "superblock version %u, hash type %u: abctl knows version 1, type 1 "
                                "(veritysetup's default)", version, type);
                return -EBADMSG;
        }
        if (strcmp(alg, "sha256") != 0) {
                (void) snprintf(why, whysize, "the tree hashes with \"%.32s\", not sha256", alg);
                return -EBADMSG;
        }
        if (dbs != DELTA_BLOCK || hbs != DELTA_BLOCK) {
                (void) snprintf(why, whysize, "blocks of %u (data) and %u (hash) bytes, not %u", dbs, hbs, DELTA_BLOCK);
                return -EBADMSG;
        }
        if (data_size % DELTA_BLOCK || blocks != data_size / DELTA_BLOCK) {
                (void) snprintf(why, whysize, "the superblock says %llu data blocks, the image has %llu bytes",
                                (unsigned long long) blocks, (unsigned long long) data_size);
                return -EBADMSG;
        }
        if (salt_size > DELTA_SALT_MAX) {
                (void) snprintf(why, whysize, "a salt of %u bytes, more than %u", salt_size, DELTA_SALT_MAX);
                return -EBADMSG;
        }
        int r = delta_tree_geometry(blocks, &t, why, whysize);
        if (r < 0)
                return -EBADMSG;
        if (t.tree_bytes > hash_size) {
                (void) snprintf(why, whysize, "the tree needs %llu bytes, the image has %llu",
                                (unsigned long long) t.tree_bytes, (unsigned long long) hash_size);
                return -EBADMSG;
        }
        memcpy(t.salt, sb + 88, salt_size);
        t.salt_size = salt_size;
        *ret = t;
        return 0;
}

int delta_sb_data_blocks(const uint8_t *sb, size_t n, uint64_t *ret) {
        if (n < DELTA_SB_SIZE || memcmp(sb, "verity\0\0", 8) != 0 || le32(sb + 8) != 1 || le32(sb + 12) != 1 ||
            memcmp(sb + 32, "sha256\0", 7) != 0 || le32(sb + 64) != DELTA_BLOCK || le32(sb + 68) != DELTA_BLOCK ||
            le64(sb + 72) == 0 || le64(sb + 72) > DELTA_DATA_BLOCKS_MAX)
                return -EBADMSG;
        *ret = le64(sb + 72);
        return 0;
}

uint64_t delta_tree_level0_offset(const struct delta_tree *t, uint64_t b) {
        return t->level_block[0] * DELTA_BLOCK + b * DELTA_DIGEST;
}

void delta_hash_block(const struct delta_tree *t, const uint8_t *block, uint8_t ret[static DELTA_DIGEST]) {
        mbedtls_sha256_context c;
        mbedtls_sha256_init(&c);
        (void) mbedtls_sha256_starts_ret(&c, 0);
        (void) mbedtls_sha256_update_ret(&c, t->salt, t->salt_size);
        (void) mbedtls_sha256_update_ret(&c, block, DELTA_BLOCK);
        (void) mbedtls_sha256_finish_ret(&c, ret);
        mbedtls_sha256_free(&c);
}

static int unhex(char c) {
        return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

int delta_tree_verify(const struct delta_tree *t, const uint8_t *tree, const char *roothash, char *why,
                      size_t whysize) {
        uint8_t root[DELTA_DIGEST], d[DELTA_DIGEST];

        if (strlen(roothash) != 2 * DELTA_DIGEST) {
                (void) snprintf(why, whysize, "the root hash is not %u hex digits", 2 * DELTA_DIGEST);
                return -EBADMSG;
        }
        for (size_t i = 0; i < DELTA_DIGEST; i++) {
                int hi = unhex(roothash[2 * i]), lo = unhex(roothash[2 * i + 1]);
                if (hi < 0 || lo < 0) {
                        (void) snprintf(why, whysize, "the root hash is not hex");
                        return -EBADMSG;
                }
                root[i] = (uint8_t) (hi << 4 | lo);
        }
        for (unsigned l = 0; l < t->levels; l++)
                for (uint64_t j = 0; j < t->level_blocks[l]; j++) {
                        delta_hash_block(t, tree + (t->level_block[l] + j) * DELTA_BLOCK, d);
                        const uint8_t *want = l + 1 == t->levels
                                ? root
                                : tree + t->level_block[l + 1] * DELTA_BLOCK + j * DELTA_DIGEST;
                        if (memcmp(d, want, DELTA_DIGEST) != 0) {
                                (void) snprintf(why, whysize, "hash block %llu of level %u does not match %s",
                                                (unsigned long long) j, l,
                                                l + 1 == t->levels ? "the root hash the UKI pins" : "the level above");
                                return -EBADMSG;
                        }
                }
        return 0;
}
