/* SPDX-License-Identifier: MIT */
/* The damage record (efi/damage.c): round trip, refusals with reasons, the
 * kernel's uevent, and the variable in a stand-in efivarfs directory. */
#include <unistd.h>

#include "unit.h"
#include "../../common/macro.h"
#include "../../efi/damage.h"
#include "../../efi/efi.h"

#define RH "5e1f0c7a9b3d2e4f6a8c0b1d3e5f7a9c5e1f0c7a9b3d2e4f6a8c0b1d3e5f7a9c"

static void test_roundtrip(void **state) {
        struct slot_damage d = { .slot = SLOT_B, .roothash = RH, .time = 1764650000 }, back;
        char text[DAMAGE_TEXT_MAX], why[256] = "";

        assert_int_equal(damage_add(&d, DAMAGE_DATA, 1234), 1);
        assert_int_equal(damage_add(&d, DAMAGE_DATA, 1234), 0);
        assert_int_equal(damage_add(&d, DAMAGE_HASH, 7), 1);
        int n = damage_format(&d, text, sizeof(text));
        assert_true(n > 0);
        assert_string_equal(text, "abswitch-damage 1\nslot=B\nroothash=" RH "\ntime=1764650000\ndata=1234\nhash=7\n");
        assert_int_equal(damage_parse(text, (size_t) n, &back, why, sizeof(why)), 0);
        assert_int_equal(back.slot, SLOT_B);
        assert_string_equal(back.roothash, RH);
        assert_int_equal(back.n, 2);
        assert_int_equal(back.blocks[0].kind, DAMAGE_DATA);
        assert_int_equal(back.blocks[0].block, 1234);
        assert_int_equal(back.blocks[1].kind, DAMAGE_HASH);
        for (uint64_t i = 0; i < DAMAGE_BLOCKS_MAX; i++)
                (void) damage_add(&d, DAMAGE_DATA, 100000 + i);
        assert_int_equal(d.n, DAMAGE_BLOCKS_MAX);
        assert_int_equal(damage_add(&d, DAMAGE_DATA, 1), -E2BIG);
        /* The full record fits its variable. */
        assert_true(damage_format(&d, text, sizeof(text)) > 0);
        assert_int_equal(damage_format(&d, text, 40), -ENOBUFS);
}

static void test_refusals(void **state) {
        static const struct {
                const char *text, *why;
        } bad[] = {
                { "", "empty" },
                { "abswitch-damage 2\nslot=B\n", "does not start with" },
                { "abswitch-damage 1\nslot=C\nroothash=" RH "\ntime=1\n", "neither A nor B" },
                { "abswitch-damage 1\nslot=B\nroothash=XYZ\ntime=1\n", "roothash is not" },
                { "abswitch-damage 1\nslot=B\nroothash=" RH "\ntime=-1\n", "time '-1'" },
                { "abswitch-damage 1\nslot=B\nroothash=" RH "\ntime=1\ndata=1x\n", "data block '1x'" },
                { "abswitch-damage 1\nslot=B\nroothash=" RH "\ntime=1\ndata=99999999999999999999\n", "not a number" },
                { "abswitch-damage 1\nslot=B\nroothash=" RH "\ntime=1\ncolour=red\n", "unknown key" },
                { "abswitch-damage 1\nslot=B\nroothash=" RH "\ntime=1\njunk\n", "not KEY=VALUE" },
                { "abswitch-damage 1\nslot=B\ntime=1\n", "lacks roothash=" },
                { "abswitch-damage 1\nroothash=" RH "\ntime=1\n", "lacks slot=" },
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                struct slot_damage d;
                char why[256] = "";
                assert_int_equal(damage_parse(bad[i].text, strlen(bad[i].text), &d, why, sizeof(why)), -EBADMSG);
                if (!strstr(why, bad[i].why))
                        fail_msg("'%s': '%s' does not say '%s'", bad[i].text, why, bad[i].why);
        }
        char big[DAMAGE_TEXT_MAX + 2];
        memset(big, 'a', sizeof(big));
        struct slot_damage d;
        char why[256] = "";
        assert_int_equal(damage_parse(big, sizeof(big), &d, why, sizeof(why)), -EBADMSG);
        assert_non_null(strstr(why, "more than"));
}

static void test_uevent(void **state) {
        /* As Linux 6.1's verity_handle_err sends it (kobject_uevent_env on the dm disk). */
        static const char ok[] = "change@/devices/virtual/block/dm-0\0ACTION=change\0DEVPATH=/devices/virtual/block/dm-0\0"
                                 "SUBSYSTEM=block\0DM_VERITY_ERR_BLOCK_NR=0,4242\0MAJOR=254\0MINOR=0\0DEVNAME=dm-0\0"
                                 "DEVTYPE=disk\0DISKSEQ=9\0SEQNUM=1234";
        DamageKind k;
        uint64_t b;
        assert_int_equal(damage_parse_uevent(ok, sizeof(ok), 254, 0, &k, &b), 1);
        assert_int_equal(k, DAMAGE_DATA);
        assert_int_equal(b, 4242);
        /* Another device, another event, a malformed value, no terminating NUL. */
        assert_int_equal(damage_parse_uevent(ok, sizeof(ok), 254, 1, &k, &b), 0);
        static const char add[] = "add@/devices/virtual/block/dm-0\0ACTION=add\0SUBSYSTEM=block\0MAJOR=254\0MINOR=0";
        assert_int_equal(damage_parse_uevent(add, sizeof(add), 254, 0, &k, &b), 0);
        static const char hash[] = "change@/x\0ACTION=change\0SUBSYSTEM=block\0DM_VERITY_ERR_BLOCK_NR=1,17\0MAJOR=254\0MINOR=3";
        assert_int_equal(damage_parse_uevent(hash, sizeof(hash), 254, 3, &k, &b), 1);
        assert_int_equal(k, DAMAGE_HASH);
        assert_int_equal(b, 17);
        static const char bad[] = "change@/x\0ACTION=change\0SUBSYSTEM=block\0DM_VERITY_ERR_BLOCK_NR=7,17\0MAJOR=254\0MINOR=3";
        assert_int_equal(damage_parse_uevent(bad, sizeof(bad), 254, 3, &k, &b), 0);
        assert_int_equal(damage_parse_uevent(hash, sizeof(hash) - 1, 254, 3, &k, &b), 0);
}

static void test_variable(void **state) {
        char dir[] = "/tmp/test-damage-XXXXXX", why[256] = "";
        struct slot_damage d = { .slot = SLOT_A, .roothash = RH, .time = 5 }, back;
        assert_non_null(mkdtemp(dir));
        assert_int_equal(damage_read(dir, SLOT_A, &back, why, sizeof(why)), -ENOENT);
        (void) damage_add(&d, DAMAGE_DATA, 3);
        assert_int_equal(damage_write(dir, &d), 1);
        assert_int_equal(damage_write(dir, &d), 0);   /* unchanged: not written again (NVRAM wears) */
        assert_int_equal(damage_read(dir, SLOT_A, &back, why, sizeof(why)), 0);
        assert_int_equal(back.n, 1);
        assert_int_equal(damage_read(dir, SLOT_B, &back, why, sizeof(why)), -ENOENT);
        assert_true(damage_clear(dir, SLOT_A) >= 0);
        assert_int_equal(damage_read(dir, SLOT_A, &back, why, sizeof(why)), -ENOENT);
        (void) rmdir(dir);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_roundtrip),
                cmocka_unit_test(test_refusals),
                cmocka_unit_test(test_uevent),
                cmocka_unit_test(test_variable),
        };
        return cmocka_run_group_tests_name("damage", tests, NULL, NULL);
}
