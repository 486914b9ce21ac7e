/* SPDX-License-Identifier: MIT */
#include "unit.h"
#include "../../common/macro.h"
#include "../../slots/slots.h"

static void test_image_names(void **state) {
        static const struct { const char *in; Slot out; } t[] = {
                { "\\EFI\\abswitch\\boot-a.efi", SLOT_A },
                { "\\EFI\\abswitch\\boot-b.efi", SLOT_B },
                { "\\EFI\\ABSWITCH\\BOOT-B.EFI", SLOT_B },
                { "/EFI/abswitch/boot-a.efi", SLOT_A },
                { "boot-b.efi", SLOT_B },
                { "boot-b", SLOT_B },
                { "os-b.conf", SLOT_B },
                { "boot-b+3.efi", SLOT_B },      /* boot counting: tries left */
                { "boot-a+3-1.efi", SLOT_A },    /* tries left, tries done */
                { "boot-a+0-3.efi", SLOT_A },
                { "boot-b+12-10", SLOT_B },
                { "\\EFI\\BOOT\\BOOTX64.EFI", _SLOT_INVALID },
                { "\\EFI\\systemd\\systemd-bootx64.efi", _SLOT_INVALID },
                { "boot-c.efi", _SLOT_INVALID },
                { "boot-ab.efi", _SLOT_INVALID },
                { "boota.efi", _SLOT_INVALID },
                { "-a.efi", _SLOT_INVALID },     /* nothing before the suffix */
                { "a", _SLOT_INVALID },
                { "", _SLOT_INVALID },
                { ".efi", _SLOT_INVALID },
                { "\\EFI\\boot-a\\", _SLOT_INVALID }, /* a directory named like a slot */
                { "boot-a+.efi", _SLOT_INVALID },  /* '+' with no count is not a counter */
                { "boot-a-1.efi", _SLOT_INVALID },
                { "boot-b+x.efi", _SLOT_INVALID },
                { "x-a.efi.efi", _SLOT_INVALID },
                { "x-b.EfI", SLOT_B },
                { NULL, _SLOT_INVALID },
        };
        for (size_t i = 0; i < ELEMENTSOF(t); i++) {
                Slot s = slot_from_image_name(t[i].in);
                if (s != t[i].out)
                        fail_msg("slot_from_image_name(\"%s\") = %d, expected %d", strna(t[i].in), s, t[i].out);
        }
}

/* Each EFI string source takes one of these values. */
enum val { V_ABSENT, V_A, V_B, V_NONE, _V_MAX };
static const char *const val_str[_V_MAX] = { NULL, "\\EFI\\x\\os-a.efi", "\\EFI\\x\\os-b.efi", "\\EFI\\BOOT\\BOOTX64.EFI" };

/* The rule from BRIEF.md, written independently of identity.c. */
static void reference(Slot cmd, enum val stub, enum val loader, bool loader_info, enum val entry,
                      bool have_current, enum val current, Slot hash, unsigned mask, Slot *ret_slot,
                      IdentitySource *ret_src) {
        struct { IdentitySource src; bool usable; Slot slot; } order[] = {
                { IDENTITY_CMDLINE, cmd >= 0, cmd },
                { IDENTITY_STUB_IMAGE, stub == V_A || stub == V_B, stub == V_B ? SLOT_B : SLOT_A },
                { IDENTITY_LOADER_IMAGE, !loader_info && (loader == V_A || loader == V_B), loader == V_B ? SLOT_B : SLOT_A },
                { IDENTITY_LOADER_ENTRY, entry == V_A || entry == V_B, entry == V_B ? SLOT_B : SLOT_A },
                { IDENTITY_BOOT_CURRENT, have_current && (current == V_A || current == V_B), current == V_B ? SLOT_B : SLOT_A },
                { IDENTITY_ROOT_HASH, hash >= 0, hash },
        };
        for (size_t i = 0; i < ELEMENTSOF(order); i++)
                if ((mask & (1u << order[i].src)) && order[i].usable) {
                        *ret_slot = order[i].slot;
                        *ret_src = order[i].src;
                        return;
                }
        *ret_slot = SLOT_A;
        *ret_src = IDENTITY_DEFAULT;
}

static void test_exhaustive(void **state) {
        unsigned n = 0;
        for (int cmd = -1; cmd < _SLOT_MAX; cmd++)
        for (int stub = 0; stub < _V_MAX; stub++)
        for (int loader = 0; loader < _V_MAX; loader++)
        for (int info = 0; info < 2; info++)
        for (int entry = 0; entry < _V_MAX; entry++)
        for (int hc = 0; hc < 2; hc++)
        for (int cur = 0; cur < _V_MAX; cur++)
        for (int hash = -1; hash < _SLOT_MAX; hash++)
        for (unsigned mask = 0; mask < (1u << IDENTITY_DEFAULT); mask++) {
                unsigned m = mask | (1u << IDENTITY_DEFAULT);
                struct identity_facts f = {
                        .cmdline_slot = cmd < 0 ? _SLOT_INVALID : (Slot) cmd,
                        .stub_image_identifier = val_str[stub],
                        .loader_image_identifier = val_str[loader],
                        .loader_info = info ? "systemd-boot 252" : NULL,
                        .loader_entry_selected = val_str[entry],
                        .boot_current = hc ? 1 : -1,
                        .boot_current_path = hc ? val_str[cur] : NULL,
                        .root_hash_slot = hash < 0 ? _SLOT_INVALID : (Slot) hash,
                        .sources = m,
                };
                struct identity id;
                Slot want_slot;
                IdentitySource want_src;

                slot_identity_resolve(&f, &id);
                reference(f.cmdline_slot, stub, loader, info, entry, hc, cur, f.root_hash_slot, m, &want_slot,
                          &want_src);
                assert_int_equal(id.slot, want_slot);
                assert_int_equal(id.source, want_src);

                /* Exactly one source answered, and it is the one returned;
                 * sources after it were not consulted; disabled ones say so. */
                for (int s = 0; s < _IDENTITY_MAX; s++) {
                        if (s == id.source)
                                assert_int_equal(id.verdicts[s], VERDICT_ANSWERED);
                        else if (s > id.source)
                                assert_int_equal(id.verdicts[s], VERDICT_NOT_CONSULTED);
                        else if (!(m & (1u << s)))
                                assert_int_equal(id.verdicts[s], VERDICT_DISABLED);
                        else
                                assert_int_not_equal(id.verdicts[s], VERDICT_ANSWERED);
                }
                /* The value that answered names the slot chosen. */
                if (id.source != IDENTITY_DEFAULT) {
                        assert_non_null(id.value);
                        if (id.source != IDENTITY_CMDLINE && id.source != IDENTITY_ROOT_HASH)
                                assert_int_equal(slot_from_image_name(id.value), id.slot);
                }
                /* Under a boot loader, LoaderImageIdentifier never answers. */
                if (info)
                        assert_int_not_equal(id.source, IDENTITY_LOADER_IMAGE);
                n++;
        }
        /* 3 * 4 * 4 * 2 * 4 * 2 * 4 * 3 * 64 combinations */
        assert_int_equal(n, 3u * 4 * 4 * 2 * 4 * 2 * 4 * 3 * 64);
}

static void test_verdict_details(void **state) {
        struct identity_facts f = {
                .cmdline_slot = _SLOT_INVALID,
                .loader_image_identifier = "\\EFI\\systemd\\systemd-bootx64.efi",
                .loader_info = "systemd-boot 252",
                .loader_entry_selected = "abswitch-b+2-1.efi",
                .boot_current = 3,
                .root_hash_slot = _SLOT_INVALID,
                .sources = IDENTITY_MASK_ALL,
        };
        struct identity id;
        slot_identity_resolve(&f, &id);
        assert_int_equal(id.slot, SLOT_B);
        assert_int_equal(id.source, IDENTITY_LOADER_ENTRY);
        assert_string_equal(id.value, "abswitch-b+2-1.efi");
        assert_int_equal(id.verdicts[IDENTITY_CMDLINE], VERDICT_ABSENT);
        assert_int_equal(id.verdicts[IDENTITY_STUB_IMAGE], VERDICT_ABSENT);
        assert_int_equal(id.verdicts[IDENTITY_LOADER_IMAGE], VERDICT_NAMES_LOADER);
        assert_int_equal(id.verdicts[IDENTITY_BOOT_CURRENT], VERDICT_NOT_CONSULTED);

        /* BootCurrent whose load option has no file path (a firmware entry). */
        f.loader_entry_selected = NULL;
        f.loader_image_identifier = "\\EFI\\BOOT\\BOOTX64.EFI";
        f.loader_info = NULL;
        slot_identity_resolve(&f, &id);
        assert_int_equal(id.source, IDENTITY_DEFAULT);
        assert_int_equal(id.slot, SLOT_A);
        assert_int_equal(id.verdicts[IDENTITY_LOADER_IMAGE], VERDICT_NO_SLOT);
        assert_int_equal(id.verdicts[IDENTITY_BOOT_CURRENT], VERDICT_NO_SLOT);
        assert_int_equal(id.verdicts[IDENTITY_DEFAULT], VERDICT_ANSWERED);
}

static void test_names(void **state) {
        for (int i = 0; i < _IDENTITY_MAX; i++)
                assert_int_equal(identity_source_from_string(identity_source_to_string(i)), i);
        assert_int_equal(identity_source_from_string("nope"), _IDENTITY_INVALID);
        assert_int_equal(identity_source_from_string(NULL), _IDENTITY_INVALID);
        assert_string_equal(slot_to_string(SLOT_A), "A");
        assert_string_equal(slot_to_lower(SLOT_B), "b");
        assert_string_equal(slot_to_string(_SLOT_INVALID), "?");
        assert_int_equal(slot_other(SLOT_A), SLOT_B);
        assert_int_equal(slot_other(SLOT_B), SLOT_A);
        char d[32], h[32];
        slot_partition_labels(SLOT_B, d, h);
        assert_string_equal(d, "system-b");
        assert_string_equal(h, "system-b-verity");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_image_names), cmocka_unit_test(test_exhaustive),
                cmocka_unit_test(test_verdict_details), cmocka_unit_test(test_names),
        };
        return cmocka_run_group_tests_name("identity", tests, NULL, NULL);
}
