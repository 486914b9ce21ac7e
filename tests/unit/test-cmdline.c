/* SPDX-License-Identifier: MIT */
#include "unit.h"
#include "../../efi/cmdline.h"
#include "../../common/macro.h"

#define HASH64 "1d5dc17caa857cbaac4a1bea501f394912a4e13d5924fe4fed8e4c085ba338ec"

static int complaints;
static char last_param[256], last_why[256];

static void count(void *u, const char *param, const char *why) {
        (void) u;
        complaints++;
        snprintf(last_param, sizeof(last_param), "%s", param);
        snprintf(last_why, sizeof(last_why), "%s", why);
}

static struct cmdline parse(const char *s) {
        struct cmdline c;
        complaints = 0;
        last_param[0] = last_why[0] = 0;
        assert_int_equal(cmdline_parse(s, &c, count, NULL), 0);
        return c;
}

static void test_defaults(void **state) {
        struct cmdline c = parse("");
        assert_int_equal(c.slot, _SLOT_INVALID);
        assert_string_equal(c.roothash, "");
        assert_int_equal(c.identity_sources, IDENTITY_MASK_ALL);
        assert_int_equal(c.timeout_ms, 10000);
        assert_int_equal(c.verity_error, VERITY_ERROR_FALLBACK);
        assert_false(c.debug);
        assert_string_equal(c.init, "/sbin/init");
        assert_int_equal(complaints, 0);

        c = parse(NULL);
        assert_int_equal(c.slot, _SLOT_INVALID);
}

static void test_typical(void **state) {
        struct cmdline c = parse("console=ttyS0 ab.roothash=" HASH64 " ab.slot=B quiet init=/lib/systemd/systemd\n");
        assert_int_equal(c.slot, SLOT_B);
        assert_string_equal(c.roothash, HASH64);
        assert_string_equal(c.init, "/lib/systemd/systemd");
        assert_int_equal(complaints, 0);
}

static void test_slot_values(void **state) {
        static const struct { const char *in; Slot out; int complaints; } t[] = {
                { "ab.slot=A", SLOT_A, 0 },  { "ab.slot=a", SLOT_A, 0 }, { "ab.slot=B", SLOT_B, 0 },
                { "ab.slot=b", SLOT_B, 0 },  { "ab.slot=C", _SLOT_INVALID, 1 }, { "ab.slot=", _SLOT_INVALID, 1 },
                { "ab.slot", _SLOT_INVALID, 1 }, { "ab.slot=AB", _SLOT_INVALID, 1 },
                { "ab.slot=A ab.slot=B", SLOT_B, 0 },       /* last one wins */
                /* A bad value is reported and ignored (README): an earlier good one stays. */
                { "ab.slot=B ab.slot=X", SLOT_B, 1 },
                { "ab.slot=A ab.slot=", SLOT_A, 1 },
                { "ab.slot=B ab.slot", SLOT_B, 1 },
                { "ab.slot=X ab.slot=A", SLOT_A, 1 },
                { "ab.slot=A ab.slot=X ab.slot=B", SLOT_B, 1 },
                { "xab.slot=B", _SLOT_INVALID, 0 },
                { "ab.slotx=B", _SLOT_INVALID, 1 },          /* unknown ab.* parameter */
        };
        for (size_t i = 0; i < ELEMENTSOF(t); i++) {
                struct cmdline c = parse(t[i].in);
                assert_int_equal(c.slot, t[i].out);
                assert_int_equal(complaints, t[i].complaints);
        }
}

static void test_roothash(void **state) {
        struct cmdline c = parse("ab.roothash=" "1D5DC17CAA857CBAAC4A1BEA501F394912A4E13D5924FE4FED8E4C085BA338EC");
        assert_string_equal(c.roothash, HASH64); /* folded to lower case */

        static const char *const bad[] = {
                "ab.roothash=", "ab.roothash", "ab.roothash=xyz",
                "ab.roothash=1d5dc17caa857cbaac4a1bea501f394912a4e13d5924fe4fed8e4c085ba338e",  /* odd */
                "ab.roothash=1d5dc17caa857cbaac4a1bea501f394912a4e13d5924fe4fed8e4c085ba338eg", /* not hex */
                "ab.roothash=1d5dc17c", /* too short */
                "ab.roothash=" HASH64 HASH64 "00", /* too long */
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                c = parse(bad[i]);
                assert_string_equal(c.roothash, "");
                assert_int_equal(complaints, 1);
        }
        /* A later bad value is reported and ignored: the earlier good one
         * stays whole, even when the bad one is partly hex (it was parsed
         * in place once, and left a mix of both). */
        static const char *const later_bad[] = {
                "ab.roothash=nope", "ab.roothash=", "ab.roothash",
                "ab.roothash=ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffzz",
                "ab.roothash=" HASH64 HASH64 "00",
        };
        for (size_t i = 0; i < ELEMENTSOF(later_bad); i++) {
                char line[512];
                snprintf(line, sizeof(line), "ab.roothash=%s %s", HASH64, later_bad[i]);
                c = parse(line);
                assert_string_equal(c.roothash, HASH64);
                assert_int_equal(complaints, 1);
                assert_non_null(strstr(last_why, "keeping the earlier"));
        }
        /* A good value after a bad one is taken. */
        c = parse("ab.roothash=nope ab.roothash=" HASH64);
        assert_string_equal(c.roothash, HASH64);
        assert_int_equal(complaints, 1);
        /* sha512 length is fine */
        c = parse("ab.roothash=" HASH64 HASH64);
        assert_int_equal(strlen(c.roothash), 128);
}

static void test_quotes(void **state) {
        struct cmdline c = parse("\"ab.slot=B\" foo=\"bar baz\" init=\"/sbin/my init\"");
        assert_int_equal(c.slot, SLOT_B);
        assert_string_equal(c.init, "/sbin/my init");
        /* An unterminated quote runs to the end of the line. */
        c = parse("foo=\"bar ab.slot=B");
        assert_int_equal(c.slot, _SLOT_INVALID);
        /* Tabs and newlines separate like spaces. */
        c = parse("\tab.slot=B\n\nab.debug\t");
        assert_int_equal(c.slot, SLOT_B);
        assert_true(c.debug);
}

static void test_double_dash(void **state) {
        struct cmdline c = parse("ab.slot=A -- ab.slot=B single");
        assert_int_equal(c.slot, SLOT_A);
        assert_int_equal(complaints, 0);
}

static void test_identity_sources(void **state) {
        struct cmdline c = parse("ab.identity=boot-current");
        assert_int_equal(c.identity_sources, (1u << IDENTITY_BOOT_CURRENT) | (1u << IDENTITY_DEFAULT));
        c = parse("ab.identity=cmdline,loader-entry-selected");
        assert_int_equal(c.identity_sources,
                         (1u << IDENTITY_CMDLINE) | (1u << IDENTITY_LOADER_ENTRY) | (1u << IDENTITY_DEFAULT));
        c = parse("ab.identity=boot-current,bogus");
        assert_int_equal(c.identity_sources, IDENTITY_MASK_ALL);
        assert_int_equal(complaints, 1);
        c = parse("ab.identity=");
        assert_int_equal(c.identity_sources, IDENTITY_MASK_ALL);
        assert_int_equal(complaints, 1);
        c = parse("ab.identity=,,,");
        assert_int_equal(c.identity_sources, (1u << IDENTITY_DEFAULT));
}

static void test_timeout_policy_init(void **state) {
        struct cmdline c = parse("ab.timeout=3 ab.verity_error=eio ab.debug");
        assert_int_equal(c.timeout_ms, 3000);
        assert_int_equal(c.verity_error, VERITY_ERROR_EIO);
        assert_true(c.debug);
        static const char *const bad[] = { "ab.timeout=0", "ab.timeout=-1", "ab.timeout=3s", "ab.timeout=",
                                           "ab.timeout=3601", "ab.timeout=99999999999999999999",
                                           "ab.verity_error=reboot", "init=sbin/init", "init=" };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                c = parse(bad[i]);
                assert_int_equal(complaints, 1);
                assert_int_equal(c.timeout_ms, 10000);
                assert_int_equal(c.verity_error, VERITY_ERROR_FALLBACK);
                assert_string_equal(c.init, "/sbin/init");
        }
        c = parse("ab.verity_error=panic");
        assert_int_equal(c.verity_error, VERITY_ERROR_PANIC);
        c = parse("ab.verity_error=restart");
        assert_int_equal(c.verity_error, VERITY_ERROR_RESTART);
        c = parse("ab.verity_error=restart ab.verity_error=fallback");
        assert_int_equal(c.verity_error, VERITY_ERROR_FALLBACK);
}

static void test_complaint_names_param(void **state) {
        parse("ab.slot=Q");
        assert_string_equal(last_param, "ab.slot=Q");
        assert_non_null(strstr(last_why, "A or B"));
}

#define HASH64B "ab5dc17caa857cbaac4a1bea501f394912a4e13d5924fe4fed8e4c085ba338ec"

static int pin_parse(const char *text, struct uki_pin *p) {
        complaints = 0;
        last_param[0] = last_why[0] = 0;
        return uki_pin_parse(text, p, count, NULL);
}

static void test_pin_parse(void **state) {
        struct uki_pin p;

        /* What initramfs/mkuki writes. */
        assert_int_equal(pin_parse("# comment\nroothash=" HASH64 "\nslot=B\n", &p), 0);
        assert_string_equal(p.roothash, HASH64);
        assert_int_equal(p.slot, SLOT_B);
        assert_int_equal(complaints, 0);
        assert_int_equal(pin_parse("roothash=" "1D5DC17CAA857CBAAC4A1BEA501F394912A4E13D5924FE4FED8E4C085BA338EC", &p), 0);
        assert_string_equal(p.roothash, HASH64);
        assert_int_equal(p.slot, _SLOT_INVALID);
        assert_int_equal(pin_parse("\n  roothash=" HASH64 "  \r\n\n", &p), 0);
        assert_string_equal(p.roothash, HASH64);

        /* A broken pin trusts nothing: no partial result. */
        static const char *const bad[] = {
                "", "# nothing\n", "slot=A\n", "roothash=xyz\n", "roothash=\n", "roothash\n",
                "roothash=" HASH64 "\nroothash=" HASH64B "\n", "roothash=" HASH64 "\nslot=C\n",
                "roothash=" HASH64 "\nslot=A\nslot=B\n", "roothash=" HASH64 "\nab.slot=A\n",
                "roothash=" HASH64 "\nrubbish\n",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                strcpy(p.roothash, "untouched");
                assert_int_equal(pin_parse(bad[i], &p), -EBADMSG);
                assert_string_equal(p.roothash, "untouched");
                assert_true(complaints >= 1);
                assert_true(startswith(last_param, "pin"));
        }
}

static void test_pin_wins_over_cmdline(void **state) {
        struct uki_pin pin = { .roothash = HASH64, .slot = _SLOT_INVALID };

        /* A boot entry replaced the command line: no ab.roothash= at all. */
        struct cmdline c = parse("ab.slot=B console=ttyS0");
        cmdline_apply_pin(&c, &pin, count, NULL);
        assert_string_equal(c.roothash, HASH64);
        assert_int_equal(c.slot, SLOT_B);
        assert_int_equal(complaints, 0);

        /* The same hash on both: silent. */
        c = parse("ab.roothash=" HASH64);
        cmdline_apply_pin(&c, &pin, count, NULL);
        assert_string_equal(c.roothash, HASH64);
        assert_int_equal(complaints, 0);

        /* A different hash on the command line is reported and ignored. */
        c = parse("ab.roothash=" HASH64B);
        cmdline_apply_pin(&c, &pin, count, NULL);
        assert_string_equal(c.roothash, HASH64);
        assert_int_equal(complaints, 1);
        assert_true(startswith(last_param, "ab.roothash=ab5dc17c"));
        assert_non_null(strstr(last_why, "cannot change what root is trusted"));

        /* A pinned slot wins over ab.slot=; without one, ab.slot= stays. */
        pin.slot = SLOT_A;
        c = parse("ab.slot=B");
        cmdline_apply_pin(&c, &pin, count, NULL);
        assert_int_equal(c.slot, SLOT_A);
        assert_int_equal(complaints, 1);
        assert_string_equal(last_param, "ab.slot=B");
        c = parse("");
        cmdline_apply_pin(&c, &pin, count, NULL);
        assert_int_equal(c.slot, SLOT_A);
        assert_int_equal(complaints, 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_defaults),       cmocka_unit_test(test_typical),
                cmocka_unit_test(test_slot_values),    cmocka_unit_test(test_roothash),
                cmocka_unit_test(test_quotes),         cmocka_unit_test(test_double_dash),
                cmocka_unit_test(test_identity_sources), cmocka_unit_test(test_timeout_policy_init),
                cmocka_unit_test(test_complaint_names_param),
                cmocka_unit_test(test_pin_parse),      cmocka_unit_test(test_pin_wins_over_cmdline),
        };
        return cmocka_run_group_tests_name("cmdline", tests, NULL, NULL);
}
