/* SPDX-License-Identifier: MIT */
/* veritysetup's superblock (verity/sb.c): a real one, every field's
 * refusal, and the tree's offset. */
#include "unit.h"
#include "../../common/macro.h"
#include "../../common/unaligned.h"
#include "../../verity/sb.h"

/* The first 120 bytes of a hash device made by veritysetup 2.6.1 (initramfs/
 * mkslot), the rest zero: `veritysetup dump` printed UUID 26422231-2f8d-539e-
 * b28c-df323cac5ada, hash type 1, 34 data blocks of 4096, sha256, salt
 * 264222312f8d539eb28cdf323cac5ada7bb3235d5d76494f9088e532e3bf50a2. */
static const char REAL[] =
        "76657269747900000100000001000000264222312f8d539eb28cdf323cac5ada736861323536000000000000000000000000"
        "0000000000000000000000000000001000000010000022000000000000002000000000000000264222312f8d539eb28cdf32"
        "3cac5ada7bb3235d5d76494f9088e532e3bf50a2";

static void real(uint8_t sb[static VERITY_SB_SIZE]) {
        memset(sb, 0, VERITY_SB_SIZE);
        for (size_t i = 0; i < strlen(REAL) / 2; i++)
                sb[i] = (uint8_t) strtoul((char[]) { REAL[2 * i], REAL[2 * i + 1], 0 }, NULL, 16);
}

static void test_real(void **state) {
        uint8_t buf[VERITY_SB_SIZE];
        struct verity_sb sb;
        char why[256] = "";

        real(buf);
        assert_int_equal(verity_sb_parse(buf, sizeof(buf), &sb, why, sizeof(why)), 0);
        assert_int_equal(sb.version, 1);
        assert_int_equal(sb.hash_type, 1);
        assert_string_equal(sb.algorithm, "sha256");
        assert_int_equal(sb.data_block_size, 4096);
        assert_int_equal(sb.hash_block_size, 4096);
        assert_int_equal(sb.data_blocks, 34);
        assert_int_equal(sb.salt_size, 32);
        assert_memory_equal(sb.salt, buf + 88, 32);
        assert_memory_equal(sb.uuid, buf + 16, 16);
        /* The tree starts in the block after the superblock. */
        assert_int_equal(verity_sb_tree_offset(&sb), 4096);
        sb.hash_block_size = 512;
        assert_int_equal(verity_sb_tree_offset(&sb), 512);
        sb.hash_block_size = 1024;
        assert_int_equal(verity_sb_tree_offset(&sb), 1024);
        /* Hash type 0 (Chrome OS) and other algorithms are libcryptsetup's to judge. */
        buf[12] = 0;
        memcpy(buf + 32, "sha512\0", 7);
        assert_int_equal(verity_sb_parse(buf, sizeof(buf), &sb, why, sizeof(why)), 0);
        assert_int_equal(sb.hash_type, 0);
        assert_string_equal(sb.algorithm, "sha512");
}

static void put32_at(uint8_t *b, size_t off, uint32_t v) {
        (void) put32(b + off, v);
}

static void test_refusals(void **state) {
        static const struct {
                size_t off, len;   /* bytes to change */
                uint64_t value;
                const char *says;
        } bad[] = {
                { 0, 1, 'V', "signature" },
                { 7, 1, 1, "signature" },
                { 8, 4, 0, "version 0" },
                { 8, 4, 2, "version 2" },
                { 12, 4, 2, "hash type 2" },
                { 64, 4, 256, "blocks of 256" },
                { 64, 4, 4097, "blocks of 4097" },
                { 64, 4, 1024 * 1024, "blocks of 1048576" },
                { 68, 4, 0, "(data) and 0 (hash)" },
                { 68, 4, 3 * 1024, "(data) and 3072 (hash)" },
                { 72, 8, 0, "0 data blocks" },
                { 72, 8, UINT64_MAX / 4096 + 1, "data blocks" },
                { 80, 2, 257, "salt of 257 bytes" },
                { 32, 1, 0, "algorithm" },
        };
        uint8_t buf[VERITY_SB_SIZE];
        struct verity_sb sb;
        char why[256];

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                real(buf);
                for (size_t k = 0; k < bad[i].len; k++)
                        buf[bad[i].off + k] = (uint8_t) (bad[i].value >> (8 * k));
                why[0] = 0;
                assert_int_equal(verity_sb_parse(buf, sizeof(buf), &sb, why, sizeof(why)), -EBADMSG);
                if (!strstr(why, bad[i].says))
                        fail_msg("case %zu: \"%s\" does not say \"%s\"", i, why, bad[i].says);
        }
        /* The algorithm's 32 bytes with no NUL. */
        real(buf);
        memset(buf + 32, 'a', 32);
        assert_int_equal(verity_sb_parse(buf, sizeof(buf), &sb, why, sizeof(why)), -EBADMSG);
        assert_non_null(strstr(why, "not terminated"));
        /* Cut short: every length below the superblock's. */
        real(buf);
        for (size_t n = 0; n < VERITY_SB_SIZE; n++) {
                assert_int_equal(verity_sb_parse(buf, n, &sb, why, sizeof(why)), -EBADMSG);
                assert_non_null(strstr(why, "cut short"));
        }
        /* Every power of two from 512 B to 512 KiB is a block size. */
        for (uint32_t bs = 512; bs <= 512 * 1024; bs *= 2) {
                real(buf);
                put32_at(buf, 64, bs);
                put32_at(buf, 68, bs);
                assert_int_equal(verity_sb_parse(buf, sizeof(buf), &sb, why, sizeof(why)), 0);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_real),
                cmocka_unit_test(test_refusals),
        };
        return cmocka_run_group_tests_name("veritysb", tests, NULL, NULL);
}
