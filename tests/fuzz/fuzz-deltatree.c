/* SPDX-License-Identifier: MIT */
/* A delta install's hash tree (abctl/delta-tree.c), fetched from a registry
 * before anything is verified: the input is the image's data size (8 bytes,
 * little endian), the 512-byte superblock, then the tree's levels (from its
 * second 4 KiB block on; the rest of the first is zeros, as veritysetup
 * leaves it, and is not in the input so that a real tree fits the fuzzer's
 * input size limit). Whatever the parser
 * accepts must describe a tree inside the bytes given, which
 * delta_tree_verify then walks without reading past them. */
#include <assert.h>

#include "../../abctl/delta.h"
#include "../../common/unaligned.h"
#include "fuzz.h"

FUZZ_QUIET

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct delta_tree t;
        uint64_t blocks;
        char why[300];

        if (size < 8)
                return 0;
        uint64_t data_size = le64(data);
        size_t n = size - 8 < DELTA_SB_SIZE ? size - 8 : DELTA_BLOCK + size - 8 - DELTA_SB_SIZE;
        uint8_t *tree = calloc(1, n ? n : 1);
        if (!tree)
                abort();
        if (size - 8 < DELTA_SB_SIZE)
                memcpy(tree, data + 8, n);
        else {
                memcpy(tree, data + 8, DELTA_SB_SIZE);
                memcpy(tree + DELTA_BLOCK, data + 8 + DELTA_SB_SIZE, size - 8 - DELTA_SB_SIZE);
        }
        if (delta_sb_data_blocks(tree, n, &blocks) >= 0)
                assert(blocks > 0 && blocks <= DELTA_DATA_BLOCKS_MAX);
        if (delta_tree_parse(tree, n, data_size, n, &t, why, sizeof(why)) < 0) {
                assert(memchr(why, 0, sizeof(why)) && why[0]);
                free(tree);
                return 0;
        }
        assert(t.data_blocks * DELTA_BLOCK == data_size && t.data_blocks >= 2);
        assert(t.tree_bytes <= n && t.salt_size <= DELTA_SALT_MAX);
        assert(t.levels >= 1 && t.levels <= DELTA_LEVELS_MAX);
        assert(delta_tree_level0_offset(&t, t.data_blocks - 1) + DELTA_DIGEST <= t.tree_bytes);
        assert(t.level_blocks[t.levels - 1] == 1);
        (void) delta_tree_verify(&t, tree, "00000000000000000000000000000000000000000000000000000000000000ff", why,
                                 sizeof(why));
        free(tree);
        return 0;
}
