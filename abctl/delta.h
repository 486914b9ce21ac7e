/* SPDX-License-Identifier: MIT */
#pragma once

/* Delta installs from the dm-verity hash tree (delta.c; the pure part,
 * the tree's geometry and checks, in delta-tree.c).
 *
 * The new image's hash tree names the hash of every 4 KiB block it has:
 * sha256(salt || block) at level 0. A block on this machine (the target
 * slot's old content, the running slot's data partition) with that hash
 * is that block; only the others are fetched, with Range requests. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ranges.h"

#define DELTA_BLOCK 4096u              /* data and hash blocks, the only size mkslot makes */
#define DELTA_DIGEST 32u               /* sha256 */
#define DELTA_HASHES_PER_BLOCK (DELTA_BLOCK / DELTA_DIGEST)
#define DELTA_SB_SIZE 512u             /* veritysetup's superblock, at offset 0 of the tree */
#define DELTA_SALT_MAX 256u
#define DELTA_LEVELS_MAX 10u
#define DELTA_DATA_BLOCKS_MAX (1ull << 36)  /* 256 TiB: no tree size overflows; 6 levels */
/* Range requests for one delta, at most: one each on one kept-alive
 * connection, so each costs a round trip. A small change to an uncompressed
 * EROFS image touches directory and inode blocks all over it (3,039 runs
 * for one package added to the Debian test system): 64 requests there
 * fetched 63% of the image, 4096 fetch 3.2% (README "Delta installs"). */
#define DELTA_MAX_REQUESTS 4096u

/* veritysetup format 1 (cryptsetup's lib/verity): the superblock, then
 * the levels from the top down, level 0 (the data blocks' hashes) last. */
struct delta_tree {
        uint64_t data_blocks;
        uint8_t salt[DELTA_SALT_MAX];
        size_t salt_size;
        unsigned levels;
        uint64_t level_block[DELTA_LEVELS_MAX];   /* the level's first hash block; block 0 holds the superblock */
        uint64_t level_blocks[DELTA_LEVELS_MAX];  /* its number of blocks */
        uint64_t tree_bytes;                      /* superblock and all levels */
};

/* The tree's geometry for data_blocks blocks (at least 2: one block has
 * no tree, its hash is the root). 0, or -EINVAL with why. */
int delta_tree_geometry(uint64_t data_blocks, struct delta_tree *t, char *why, size_t whysize);

/* The superblock sb[0..n) of an image of data_size + hash_size bytes,
 * every field checked (it comes from a registry before anything is
 * verified): signature, version 1, type 1 (salt first), sha256, 4 KiB
 * blocks, data_blocks = data_size / 4 KiB, a salt of at most 256 bytes,
 * a tree that fits hash_size. 0, or -EBADMSG with why saying which. */
int delta_tree_parse(const uint8_t *sb, size_t n, uint64_t data_size, uint64_t hash_size, struct delta_tree *ret,
                     char *why, size_t whysize);

/* How many 4 KiB data blocks the image has whose tree starts with the
 * superblock sb[0..n) (a slot's hash partition): to read only that much of
 * the slot's data partition. 0, or -EBADMSG when it is no format-1 sha256
 * superblock of 4 KiB blocks (then read all of it). */
int delta_sb_data_blocks(const uint8_t *sb, size_t n, uint64_t *ret);

/* Where data block b's hash is, in bytes from the start of the tree. */
uint64_t delta_tree_level0_offset(const struct delta_tree *t, uint64_t b);

/* sha256(salt || block), as dm-verity format 1 hashes a block. */
void delta_hash_block(const struct delta_tree *t, const uint8_t *block, uint8_t ret[static DELTA_DIGEST]);

/* The whole tree (tree_bytes bytes, superblock first) hashes, level by
 * level, to roothash (hex). Then every level-0 hash is trusted. 0, or
 * -EBADMSG with why. */
int delta_tree_verify(const struct delta_tree *t, const uint8_t *tree, const char *roothash, char *why,
                      size_t whysize);

struct ctx;
struct image_source;
struct part_dev;

/* The system image of src into the target slot's partitions (data_fd
 * read-write, hash_fd read-write), from the blocks already on this machine
 * (data_fd's old content, running_path read-only, may be NULL; each read
 * as far as the image its slot's hash partition describes, hash_fd and
 * running_hash_path) and the rest fetched
 * by range. 0 when written (the caller flushes and verifies); -EOPNOTSUPP
 * when a delta is not possible here and the full download should be made
 * (one line says why); another negative errno, logged, to fail. */
int delta_write_system(struct image_source *src, const char *what, int data_fd, int hash_fd,
                       const char *running_path, const char *running_hash_path);
