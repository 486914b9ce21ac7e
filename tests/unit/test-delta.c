/* SPDX-License-Identifier: MIT */
/* The pure parts of delta installs: coalescing ranges under a bound
 * (abctl/ranges.c), the hash tree's geometry, level-0 offsets, superblock
 * checks and verification up to the root hash (abctl/delta-tree.c). The
 * geometry is checked against the sizes veritysetup writes. */
#include "unit.h"

#include <errno.h>

#include "../../abctl/delta.h"
#include "../../abctl/ranges.h"
#include "../../common/unaligned.h"

#define B DELTA_BLOCK

/* ---- ranges ---- */

static void test_coalesce_touching_always_merged(void **state) {
        (void) state;
        struct oci_range r[] = { { 0, B }, { B, B }, { 2 * B, B }, { 10 * B, B } };
        struct range_request q[4];
        size_t n;
        assert_int_equal(ranges_coalesce(r, 4, 64, q, &n), 0);
        assert_int_equal(n, 2);
        assert_int_equal(q[0].first, 0);
        assert_int_equal(q[0].count, 3);
        assert_int_equal(q[0].offset, 0);
        assert_int_equal(q[0].length, 3 * B);
        assert_int_equal(q[1].first, 3);
        assert_int_equal(q[1].offset, 10 * B);
}

static void test_coalesce_bound_merges_smallest_gaps(void **state) {
        (void) state;
        /* gaps after each range: 5 B, 1 B, 3 B, 2 B */
        struct oci_range r[] = { { 0, B }, { 6 * B, B }, { 8 * B, B }, { 12 * B, B }, { 15 * B, B } };
        struct range_request q[5];
        size_t n;
        /* Two requests: the three smallest gaps (1, 2, 3) are filled, the 5 B one is not. */
        assert_int_equal(ranges_coalesce(r, 5, 2, q, &n), 6 * B);
        assert_int_equal(n, 2);
        assert_int_equal(q[0].offset, 0);
        assert_int_equal(q[0].length, B);
        assert_int_equal(q[1].first, 1);
        assert_int_equal(q[1].count, 4);
        assert_int_equal(q[1].offset, 6 * B);
        assert_int_equal(q[1].length, 10 * B);
        /* One request: everything, filler included. */
        assert_int_equal(ranges_coalesce(r, 5, 1, q, &n), 11 * B);
        assert_int_equal(n, 1);
        assert_int_equal(q[0].length, 16 * B);
        /* A bound of 0 is taken as 1. */
        assert_int_equal(ranges_coalesce(r, 5, 0, q, &n), 11 * B);
        assert_int_equal(n, 1);
        /* No bound hit: no filler. */
        assert_int_equal(ranges_coalesce(r, 5, 5, q, &n), 0);
        assert_int_equal(n, 5);
}

static void test_coalesce_bound_enumerated(void **state) {
        (void) state;
        /* Ranges at pseudo-random gaps; for every bound the count is
         * min(bound, n), every range is in exactly one request, in order,
         * and each request spans its ranges exactly. */
        enum { N = 200 };
        struct oci_range r[N];
        struct range_request q[N];
        uint64_t at = 0, x = 12345;
        for (size_t i = 0; i < N; i++) {
                x = x * 6364136223846793005ull + 1442695040888963407ull;
                at += (x >> 60) * B;          /* a gap of 0..15 blocks */
                r[i] = (struct oci_range) { at, ((x >> 40) % 4 + 1) * B };
                at += r[i].length;
        }
        char why[100];
        assert_int_equal(ranges_check(r, N, at, why, sizeof(why)), 0);
        size_t touching = 0;
        for (size_t i = 0; i + 1 < N; i++)
                touching += r[i].offset + r[i].length == r[i + 1].offset;
        uint64_t last_filler = UINT64_MAX;
        for (unsigned bound = 1; bound <= N; bound++) {
                size_t n, next = 0;
                uint64_t filler = ranges_coalesce(r, N, bound, q, &n), sum = 0;
                assert_true(n <= bound);
                assert_int_equal(n, bound < N - touching ? bound : N - touching);
                for (size_t k = 0; k < n; k++) {
                        assert_int_equal(q[k].first, next);
                        next += q[k].count;
                        const struct oci_range *l = &r[q[k].first + q[k].count - 1];
                        assert_int_equal(q[k].offset, r[q[k].first].offset);
                        assert_int_equal(q[k].offset + q[k].length, l->offset + l->length);
                        sum += q[k].length;
                }
                assert_int_equal(next, N);
                uint64_t want = 0;
                for (size_t i = 0; i < N; i++)
                        want += r[i].length;
                assert_int_equal(sum - want, filler);
                /* More requests never fetch more filler. */
                assert_true(filler <= last_filler);
                last_filler = filler;
        }
        assert_int_equal(last_filler, 0);
}

static void test_ranges_check(void **state) {
        (void) state;
        char why[200];
        struct oci_range ok[] = { { 0, 10 }, { 10, 5 }, { 20, 80 } };
        assert_int_equal(ranges_check(ok, 3, 100, why, sizeof(why)), 0);
        assert_int_equal(ranges_check(ok, 3, 99, why, sizeof(why)), -EINVAL);
        assert_non_null(strstr(why, "range 2 (20+80) ends past the 99 bytes"));
        struct oci_range overlap[] = { { 0, 10 }, { 9, 5 } };
        assert_int_equal(ranges_check(overlap, 2, 100, why, sizeof(why)), -EINVAL);
        assert_non_null(strstr(why, "starts before range 0 ends"));
        struct oci_range empty[] = { { 0, 0 } };
        assert_int_equal(ranges_check(empty, 1, 100, why, sizeof(why)), -EINVAL);
        struct oci_range wrap[] = { { UINT64_MAX - 1, 4 } };
        assert_int_equal(ranges_check(wrap, 1, UINT64_MAX, why, sizeof(why)), -EINVAL);
        assert_int_equal(ranges_check(NULL, 0, 0, why, sizeof(why)), 0);
}

static void test_ranges_append(void **state) {
        (void) state;
        struct oci_range r[4];
        size_t n = 0;
        ranges_append(r, &n, 0, B);
        ranges_append(r, &n, B, B);
        ranges_append(r, &n, 3 * B, B);
        assert_int_equal(n, 2);
        assert_int_equal(r[0].length, 2 * B);
        assert_int_equal(r[1].offset, 3 * B);
}

/* ---- the tree ---- */

static void test_geometry(void **state) {
        (void) state;
        struct delta_tree t;
        char why[200];
        /* data blocks -> levels, blocks per level (top first), tree bytes as veritysetup writes them
         * (the e2e slot-b-commit image: 672 blocks, a 32768-byte .verity; the Debian one: 35718, 1167360). */
        static const struct {
                uint64_t blocks;
                unsigned levels;
                uint64_t level0_block, level0_blocks, bytes;
        } cases[] = {
                { 2, 1, 1, 1, 2 * B },
                { 128, 1, 1, 1, 2 * B },
                { 129, 2, 2, 2, 4 * B },
                { 672, 2, 2, 6, 32768 },
                { 16384, 2, 2, 128, 130 * B },
                { 16385, 3, 4, 129, (1 + 1 + 2 + 129) * (uint64_t) B },
                { 35718, 3, 5, 280, 1167360 },
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                assert_int_equal(delta_tree_geometry(cases[i].blocks, &t, why, sizeof(why)), 0);
                assert_int_equal(t.levels, cases[i].levels);
                assert_int_equal(t.level_block[0], cases[i].level0_block);
                assert_int_equal(t.level_blocks[0], cases[i].level0_blocks);
                assert_int_equal(t.level_blocks[t.levels - 1], 1);
                assert_int_equal(t.level_block[t.levels - 1], 1);
                assert_int_equal(t.tree_bytes, cases[i].bytes);
                /* level 0 is last: its hashes end the tree */
                assert_true(delta_tree_level0_offset(&t, cases[i].blocks - 1) + DELTA_DIGEST <= t.tree_bytes);
                assert_int_equal(delta_tree_level0_offset(&t, 0), cases[i].level0_block * B);
                assert_int_equal(delta_tree_level0_offset(&t, 130), cases[i].level0_block * B + 130 * DELTA_DIGEST);
        }
        assert_int_equal(delta_tree_geometry(1, &t, why, sizeof(why)), -EINVAL);
        assert_int_equal(delta_tree_geometry(0, &t, why, sizeof(why)), -EINVAL);
        assert_int_equal(delta_tree_geometry(UINT64_MAX, &t, why, sizeof(why)), -EINVAL);
}

static void superblock(uint8_t *sb, uint64_t blocks) {
        memset(sb, 0, DELTA_SB_SIZE);
        memcpy(sb, "verity\0\0", 8);
        put32(sb + 8, 1);
        put32(sb + 12, 1);
        memcpy(sb + 32, "sha256", 6);
        put32(sb + 64, B);
        put32(sb + 68, B);
        put64(sb + 72, blocks);
        put16(sb + 80, 32);
        for (int i = 0; i < 32; i++)
                sb[88 + i] = (uint8_t) (0xa0 + i);
}

/* A whole image of `blocks` data blocks and its tree, built level by level. */
static uint8_t *build_tree(uint64_t blocks, uint8_t **ret_data, char roothash[65], struct delta_tree *ret) {
        char why[200];
        uint8_t *data = calloc(blocks, B), root[DELTA_DIGEST];
        for (uint64_t b = 0; b < blocks; b++)
                memset(data + b * B, (int) (b % 7), B / 2);
        assert_int_equal(delta_tree_geometry(blocks, ret, why, sizeof(why)), 0);
        uint8_t *tree = calloc(1, ret->tree_bytes);
        superblock(tree, blocks);
        assert_int_equal(delta_tree_parse(tree, ret->tree_bytes, blocks * B, ret->tree_bytes, ret, why, sizeof(why)), 0);
        for (uint64_t b = 0; b < blocks; b++)
                delta_hash_block(ret, data + b * B, tree + delta_tree_level0_offset(ret, b));
        for (unsigned l = 1; l < ret->levels; l++)
                for (uint64_t j = 0; j < ret->level_blocks[l - 1]; j++)
                        delta_hash_block(ret, tree + (ret->level_block[l - 1] + j) * B,
                                         tree + ret->level_block[l] * B + j * DELTA_DIGEST);
        delta_hash_block(ret, tree + ret->level_block[ret->levels - 1] * B, root);
        for (int i = 0; i < 32; i++)
                sprintf(roothash + 2 * i, "%02x", root[i]);
        *ret_data = data;
        return tree;
}

static void test_verify(void **state) {
        (void) state;
        char rh[65], why[200];
        struct delta_tree t;
        uint8_t *data;
        uint8_t *tree = build_tree(300, &data, rh, &t);
        assert_int_equal(t.levels, 2);
        assert_int_equal(delta_tree_verify(&t, tree, rh, why, sizeof(why)), 0);
        /* Any level-0 byte changed: the level above does not match. */
        tree[delta_tree_level0_offset(&t, 299)] ^= 1;
        assert_int_equal(delta_tree_verify(&t, tree, rh, why, sizeof(why)), -EBADMSG);
        assert_non_null(strstr(why, "hash block 2 of level 0 does not match the level above"));
        tree[delta_tree_level0_offset(&t, 299)] ^= 1;
        /* Another root hash, or not one. */
        char other[65];
        memcpy(other, rh, 65);
        other[0] = other[0] == '0' ? '1' : '0';
        assert_int_equal(delta_tree_verify(&t, tree, other, why, sizeof(why)), -EBADMSG);
        assert_non_null(strstr(why, "the root hash the UKI pins"));
        assert_int_equal(delta_tree_verify(&t, tree, "abc", why, sizeof(why)), -EBADMSG);
        other[5] = 'x';
        assert_int_equal(delta_tree_verify(&t, tree, other, why, sizeof(why)), -EBADMSG);
        /* A data block hashes to its level-0 entry. */
        uint8_t d[DELTA_DIGEST];
        delta_hash_block(&t, data + 17 * B, d);
        assert_memory_equal(d, tree + delta_tree_level0_offset(&t, 17), DELTA_DIGEST);
        free(tree);
        free(data);
}

static void test_parse_refusals(void **state) {
        (void) state;
        uint8_t sb[DELTA_SB_SIZE];
        struct delta_tree t;
        char why[200];
        const uint64_t blocks = 672, data = blocks * B, hash = 32768;
        static const struct {
                size_t off;
                int width;     /* 1, 2, 4, 8: a field set to value; 0: a byte xored */
                uint64_t value;
                const char *says;
        } cases[] = {
                { 0, 0, 1, "no dm-verity superblock" },
                { 8, 4, 2, "superblock version 2, hash type 1" },
                { 12, 4, 0, "superblock version 1, hash type 0" },
                { 32, 0, 's' ^ 'm', "hashes with \"mha256\"" },
                { 64, 4, 512, "blocks of 512 (data)" },
                { 68, 4, 8192, "and 8192 (hash)" },
                { 72, 8, 673, "the superblock says 673 data blocks" },
                { 72, 8, 1, "the superblock says 1 data blocks" },
                { 80, 2, 257, "a salt of 257 bytes" },
        };
        superblock(sb, blocks);
        assert_int_equal(delta_tree_parse(sb, sizeof(sb), data, hash, &t, why, sizeof(why)), 0);
        assert_int_equal(t.salt_size, 32);
        assert_int_equal(t.salt[31], 0xa0 + 31);
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                superblock(sb, blocks);
                uint8_t *p = sb + cases[i].off;
                switch (cases[i].width) {
                case 0: p[0] ^= (uint8_t) cases[i].value; break;
                case 2: put16(p, (uint16_t) cases[i].value); break;
                case 4: put32(p, (uint32_t) cases[i].value); break;
                case 8: put64(p, cases[i].value); break;
                }
                why[0] = 0;
                assert_int_equal(delta_tree_parse(sb, sizeof(sb), data, hash, &t, why, sizeof(why)), -EBADMSG);
                if (!strstr(why, cases[i].says))
                        fail_msg("case %zu: \"%s\" does not say \"%s\"", i, why, cases[i].says);
        }
        superblock(sb, blocks);
        assert_int_equal(delta_tree_parse(sb, 100, data, hash, &t, why, sizeof(why)), -EBADMSG);
        assert_non_null(strstr(why, "cut short"));
        /* A tree larger than the image's hash part, or data not whole blocks. */
        assert_int_equal(delta_tree_parse(sb, sizeof(sb), data, hash - B, &t, why, sizeof(why)), -EBADMSG);
        assert_non_null(strstr(why, "the tree needs 32768 bytes"));
        assert_int_equal(delta_tree_parse(sb, sizeof(sb), data + 1, hash, &t, why, sizeof(why)), -EBADMSG);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_coalesce_touching_always_merged),
                cmocka_unit_test(test_coalesce_bound_merges_smallest_gaps),
                cmocka_unit_test(test_coalesce_bound_enumerated),
                cmocka_unit_test(test_ranges_check),
                cmocka_unit_test(test_ranges_append),
                cmocka_unit_test(test_geometry),
                cmocka_unit_test(test_verify),
                cmocka_unit_test(test_parse_refusals),
        };
        return cmocka_run_group_tests_name("delta", tests, NULL, NULL);
}
