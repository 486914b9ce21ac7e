/* SPDX-License-Identifier: MIT */
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>

#include "unit.h"
#include "../../common/macro.h"
#include "../../efi/efi.h"

/* ---- builders ---------------------------------------------------------------- */

static size_t put_utf16(uint8_t *out, const char *ascii) {
        size_t n = 0;
        for (; *ascii; ascii++) {
                out[n++] = (uint8_t) *ascii;
                out[n++] = 0;
        }
        out[n++] = 0;
        out[n++] = 0;
        return n;
}

static size_t put_le(uint8_t *p, uint64_t v, int bytes) {
        for (int i = 0; i < bytes; i++)
                p[i] = (uint8_t) (v >> (8 * i));
        return (size_t) bytes;
}

/* EFI_LOAD_OPTION with HD(partno, GPT, sig, start, size)/File(path)/End. */
static size_t build_load_option(uint8_t *buf, const char *desc, const char *path, bool hd) {
        uint8_t dp[512];
        size_t d = 0;
        if (hd) {
                dp[d++] = 4, dp[d++] = 1;
                d += put_le(dp + d, 42, 2);
                d += put_le(dp + d, 1, 4);
                d += put_le(dp + d, 2048, 8);
                d += put_le(dp + d, 163840, 8);
                for (int i = 0; i < 16; i++)
                        dp[d++] = (uint8_t) (0x10 + i);
                dp[d++] = 2, dp[d++] = 2;
        }
        if (path) {
                uint8_t tmp[256];
                size_t pl = put_utf16(tmp, path);
                dp[d++] = 4, dp[d++] = 4;
                d += put_le(dp + d, 4 + pl, 2);
                memcpy(dp + d, tmp, pl);
                d += pl;
        }
        dp[d++] = 0x7f, dp[d++] = 0xff, dp[d++] = 4, dp[d++] = 0;

        size_t n = 0;
        n += put_le(buf + n, LOAD_OPTION_ACTIVE, 4);
        n += put_le(buf + n, d, 2);
        n += put_utf16(buf + n, desc);
        memcpy(buf + n, dp, d);
        n += d;
        /* OptionalData, which we ignore */
        buf[n++] = 0xaa;
        return n;
}

/* ---- UTF-16 ------------------------------------------------------------------ */

static void test_utf16(void **state) {
        char *s;
        static const uint8_t ascii[] = { 'a', 0, '\\', 0, 'B', 0, 0, 0 };
        assert_int_equal(efi_utf16_to_utf8(ascii, sizeof(ascii), &s), 0);
        assert_string_equal(s, "a\\B");
        free(s);

        /* no terminator: the size bounds it */
        assert_int_equal(efi_utf16_to_utf8(ascii, 4, &s), 0);
        assert_string_equal(s, "a\\");
        free(s);

        /* empty */
        assert_int_equal(efi_utf16_to_utf8(ascii, 0, &s), 0);
        assert_string_equal(s, "");
        free(s);

        /* é (U+00E9), € (U+20AC), 😀 (U+1F600 as a surrogate pair) */
        static const uint8_t multi[] = { 0xe9, 0x00, 0xac, 0x20, 0x3d, 0xd8, 0x00, 0xde, 0, 0 };
        assert_int_equal(efi_utf16_to_utf8(multi, sizeof(multi), &s), 0);
        assert_string_equal(s, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
        free(s);

        /* odd size, lone surrogates, truncated pair */
        s = NULL;
        assert_int_equal(efi_utf16_to_utf8(ascii, 3, &s), -EBADMSG);
        static const uint8_t lone_hi[] = { 0x3d, 0xd8, 'x', 0 };
        assert_int_equal(efi_utf16_to_utf8(lone_hi, sizeof(lone_hi), &s), -EILSEQ);
        static const uint8_t lone_lo[] = { 0x00, 0xde, 0, 0 };
        assert_int_equal(efi_utf16_to_utf8(lone_lo, sizeof(lone_lo), &s), -EILSEQ);
        static const uint8_t cut_pair[] = { 0x3d, 0xd8 };
        assert_int_equal(efi_utf16_to_utf8(cut_pair, sizeof(cut_pair), &s), -EILSEQ);
        assert_null(s); /* untouched on failure */
}

static void test_u16(void **state) {
        uint16_t v = 0;
        static const uint8_t two[] = { 0x01, 0x10 };
        assert_int_equal(efi_parse_u16(two, 2, &v), 0);
        assert_int_equal(v, 0x1001);
        assert_int_equal(efi_parse_u16(two, 1, &v), -EBADMSG);
        assert_int_equal(efi_parse_u16(two, 0, &v), -EBADMSG);
        static const uint8_t three[] = { 1, 2, 3 };
        assert_int_equal(efi_parse_u16(three, 3, &v), -EBADMSG);

        char name[9];
        efi_boot_option_name(0x1001, name);
        assert_string_equal(name, "Boot1001");
        efi_boot_option_name(0xabc, name);
        assert_string_equal(name, "Boot0ABC");
}

static void test_guid(void **state) {
        /* 4a67b082-0a4c-41cf-b6c7-440b29bb8c4f in EFI byte order */
        static const uint8_t g[16] = { 0x82, 0xb0, 0x67, 0x4a, 0x4c, 0x0a, 0xcf, 0x41,
                                       0xb6, 0xc7, 0x44, 0x0b, 0x29, 0xbb, 0x8c, 0x4f };
        char s[37];
        efi_guid_to_string(g, s);
        assert_string_equal(s, EFI_LOADER_GUID);
}

/* ---- load options ------------------------------------------------------------- */

static void test_load_option(void **state) {
        uint8_t buf[1024];
        struct efi_load_option o;
        size_t n = build_load_option(buf, "abswitch B", "\\EFI\\abswitch\\boot-b.efi", true);

        assert_int_equal(efi_load_option_parse(buf, n, &o), 0);
        assert_int_equal(o.attributes, LOAD_OPTION_ACTIVE);
        assert_string_equal(o.description, "abswitch B");
        assert_string_equal(o.file_path, "\\EFI\\abswitch\\boot-b.efi");
        assert_true(o.has_partition);
        assert_int_equal(o.part_number, 1);
        assert_int_equal(o.part_start, 2048);
        assert_int_equal(o.part_size, 163840);
        assert_int_equal(o.part_format, 2);
        assert_int_equal(o.part_signature[0], 0x10);
        efi_load_option_done(&o);

        /* Without a file path (firmware entries for whole devices). */
        n = build_load_option(buf, "UEFI Misc Device", NULL, true);
        assert_int_equal(efi_load_option_parse(buf, n, &o), 0);
        assert_null(o.file_path);
        efi_load_option_done(&o);

        /* Forward slashes become backslashes. */
        n = build_load_option(buf, "x", "/EFI/abswitch/boot-a.efi", false);
        assert_int_equal(efi_load_option_parse(buf, n, &o), 0);
        assert_string_equal(o.file_path, "\\EFI\\abswitch\\boot-a.efi");
        assert_false(o.has_partition);
        efi_load_option_done(&o);
}

static void test_load_option_split_path(void **state) {
        /* Some firmware splits the path over two file nodes: \EFI + abswitch\boot-a.efi */
        uint8_t buf[512], p1[64], p2[64];
        size_t l1 = put_utf16(p1, "\\EFI"), l2 = put_utf16(p2, "abswitch\\boot-a.efi");
        size_t n = 0, d = 4 + l1 + 4 + l2 + 4;
        n += put_le(buf + n, 1, 4);
        n += put_le(buf + n, d, 2);
        n += put_utf16(buf + n, "split");
        buf[n++] = 4, buf[n++] = 4, n += put_le(buf + n, 4 + l1, 2);
        memcpy(buf + n, p1, l1), n += l1;
        buf[n++] = 4, buf[n++] = 4, n += put_le(buf + n, 4 + l2, 2);
        memcpy(buf + n, p2, l2), n += l2;
        buf[n++] = 0x7f, buf[n++] = 0xff, buf[n++] = 4, buf[n++] = 0;

        struct efi_load_option o;
        assert_int_equal(efi_load_option_parse(buf, n, &o), 0);
        assert_string_equal(o.file_path, "\\EFI\\abswitch\\boot-a.efi");
        efi_load_option_done(&o);
}

static void test_load_option_truncated_everywhere(void **state) {
        uint8_t buf[1024];
        struct efi_load_option o;
        size_t n = build_load_option(buf, "abswitch A", "\\EFI\\abswitch\\boot-a.efi", true);

        /* Cut anywhere before the end node is complete: always an error (the
         * optional data byte after the end node may go). */
        for (size_t cut = 0; cut < n - 1; cut++) {
                uint8_t *copy = malloc(cut ? cut : 1);
                memcpy(copy, buf, cut);
                int r = efi_load_option_parse(copy, cut, &o);
                if (r >= 0)
                        fail_msg("a load option cut to %zu of %zu bytes parsed", cut, n);
                free(copy);
        }
        assert_int_equal(efi_load_option_parse(buf, n - 1, &o), 0);
        efi_load_option_done(&o);
}

static void test_load_option_bad_lengths(void **state) {
        uint8_t buf[1024];
        struct efi_load_option o;
        size_t n = build_load_option(buf, "d", "\\x-a.efi", true);
        size_t dp = 6 + 4; /* attributes, length, "d\0" */

        /* FilePathListLength beyond the buffer */
        uint8_t b2[1024];
        memcpy(b2, buf, n);
        put_le(b2 + 4, 1000, 2);
        assert_int_equal(efi_load_option_parse(b2, n, &o), -EBADMSG);

        /* HD node with a length that is not 42 */
        memcpy(b2, buf, n);
        put_le(b2 + dp + 2, 40, 2);
        assert_int_equal(efi_load_option_parse(b2, n, &o), -EBADMSG);

        /* A node length below the 4-byte header */
        memcpy(b2, buf, n);
        put_le(b2 + dp + 2, 2, 2);
        assert_int_equal(efi_load_option_parse(b2, n, &o), -EBADMSG);

        /* A node running past the list */
        memcpy(b2, buf, n);
        put_le(b2 + dp + 2, 0xffff, 2);
        assert_int_equal(efi_load_option_parse(b2, n, &o), -EBADMSG);

        /* No end node: list length cut to the nodes before it */
        memcpy(b2, buf, n);
        put_le(b2 + 4, (buf[4] | (buf[5] << 8)) - 4, 2);
        assert_int_equal(efi_load_option_parse(b2, n, &o), -EBADMSG);

        /* Description never terminated */
        memset(b2, 'x', sizeof(b2));
        put_le(b2, 1, 4);
        put_le(b2 + 4, 0, 2);
        assert_int_equal(efi_load_option_parse(b2, 200, &o), -EBADMSG);
}

/* ---- the efivarfs reader, on a fake directory --------------------------------- */

static char dir[64];

static void put_var(const char *name, const void *data, size_t size) {
        char p[256];
        snprintf(p, sizeof(p), "%s/%s-%s", dir, name, EFI_LOADER_GUID);
        FILE *f = fopen(p, "we");
        assert_non_null(f);
        assert_int_equal(fwrite(data, 1, size, f), size);
        fclose(f);
}

static int setup_dir(void **state) {
        snprintf(dir, sizeof(dir), "/tmp/abswitch-efivars-XXXXXX");
        return mkdtemp(dir) ? 0 : -1;
}

static int teardown_dir(void **state) {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        return system(cmd) == 0 ? 0 : -1;
}

static void test_efivar_read(void **state) {
        uint8_t v[64];
        size_t n = 0;
        n += put_le(v, 7, 4);
        n += put_utf16(v + n, "\\EFI\\abswitch\\boot-b.efi");
        put_var("LoaderImageIdentifier", v, n);

        uint32_t attr;
        void *val;
        size_t size;
        assert_int_equal(efi_var_read(dir, "LoaderImageIdentifier", EFI_LOADER_GUID, &attr, &val, &size), 0);
        assert_int_equal(attr, 7);
        assert_int_equal(size, n - 4);
        free(val);

        char *s;
        assert_int_equal(efi_var_read_string(dir, "LoaderImageIdentifier", EFI_LOADER_GUID, &s), 0);
        assert_string_equal(s, "\\EFI\\abswitch\\boot-b.efi");
        free(s);

        /* An unterminated value is still terminated for the caller. */
        put_var("NoNul", (const uint8_t[]) { 7, 0, 0, 0, 'a', 0, 'b', 0 }, 8);
        assert_int_equal(efi_var_read_string(dir, "NoNul", EFI_LOADER_GUID, &s), 0);
        assert_string_equal(s, "ab");
        free(s);

        /* Absent; only the attributes; shorter than the attributes; odd UTF-16. */
        assert_int_equal(efi_var_read(dir, "Missing", EFI_LOADER_GUID, NULL, NULL, NULL), -ENOENT);
        put_var("Empty", (const uint8_t[]) { 7, 0, 0, 0 }, 4);
        assert_int_equal(efi_var_read(dir, "Empty", EFI_LOADER_GUID, NULL, &val, &size), 0);
        assert_int_equal(size, 0);
        free(val);
        put_var("Short", (const uint8_t[]) { 7, 0 }, 2);
        assert_int_equal(efi_var_read(dir, "Short", EFI_LOADER_GUID, NULL, NULL, NULL), -EBADMSG);
        put_var("Odd", (const uint8_t[]) { 7, 0, 0, 0, 'a', 0, 'b' }, 7);
        assert_int_equal(efi_var_read_string(dir, "Odd", EFI_LOADER_GUID, &s), -EBADMSG);

        /* Too large to be a variable we read. */
        size_t big = EFI_VARIABLE_SIZE_MAX + 5;
        uint8_t *b = calloc(1, big);
        put_var("Huge", b, big);
        free(b);
        assert_int_equal(efi_var_read(dir, "Huge", EFI_LOADER_GUID, NULL, NULL, NULL), -E2BIG);

        /* Not a regular file. */
        char p[256];
        snprintf(p, sizeof(p), "%s/Dir-%s", dir, EFI_LOADER_GUID);
        assert_int_equal(mkdir(p, 0755), 0);
        assert_int_equal(efi_var_read(dir, "Dir", EFI_LOADER_GUID, NULL, NULL, NULL), -EBADF);
        /* A symlink is refused, not followed. */
        snprintf(p, sizeof(p), "%s/Link-%s", dir, EFI_LOADER_GUID);
        assert_int_equal(symlink("/etc/hostname", p), 0);
        assert_int_equal(efi_var_read(dir, "Link", EFI_LOADER_GUID, NULL, NULL, NULL), -ELOOP);
}


/* ---- writing, and the boot manager plan ---------------------------------------- */

static void test_efivar_write(void **state) {
        uint16_t v = 0x1001;
        assert_int_equal(efi_var_write(dir, "BootNext", EFI_LOADER_GUID, EFI_VARIABLE_NV_BS_RT, &v, 2), 1);
        /* the same again: skipped */
        assert_int_equal(efi_var_write(dir, "BootNext", EFI_LOADER_GUID, EFI_VARIABLE_NV_BS_RT, &v, 2), 0);
        uint32_t attr;
        void *val;
        size_t size;
        assert_int_equal(efi_var_read(dir, "BootNext", EFI_LOADER_GUID, &attr, &val, &size), 0);
        assert_int_equal(attr, 7);
        assert_int_equal(size, 2);
        assert_memory_equal(val, &v, 2);
        free(val);
        /* shorter value replaces a longer one */
        uint8_t one = 9;
        assert_int_equal(efi_var_write(dir, "BootNext", EFI_LOADER_GUID, EFI_VARIABLE_NV_BS_RT, &one, 1), 1);
        assert_int_equal(efi_var_read(dir, "BootNext", EFI_LOADER_GUID, NULL, &val, &size), 0);
        assert_int_equal(size, 1);
        free(val);
        assert_int_equal(efi_var_delete(dir, "BootNext", EFI_LOADER_GUID), 1);
        assert_int_equal(efi_var_delete(dir, "BootNext", EFI_LOADER_GUID), 0);
        assert_int_equal(efi_var_read(dir, "BootNext", EFI_LOADER_GUID, NULL, NULL, NULL), -ENOENT);
}

static void test_load_option_build_roundtrip(void **state) {
        struct efi_partition esp = { .number = 1, .start = 2048, .size = 163840 };
        assert_int_equal(efi_guid_from_string("c44dd0a2-bc6e-4cab-a9ae-d5b0ba975e60", esp.guid), 0);
        void *b;
        size_t n;
        assert_int_equal(efi_load_option_build("abswitch B", &esp, "\\EFI\\abswitch\\boot-b.efi", &b, &n), 0);
        struct efi_load_option o;
        assert_int_equal(efi_load_option_parse(b, n, &o), 0);
        assert_string_equal(o.description, "abswitch B");
        assert_string_equal(o.file_path, "\\EFI\\abswitch\\boot-b.efi");
        assert_int_equal(o.part_start, 2048);
        assert_int_equal(o.part_size, 163840);
        char g[37];
        efi_guid_to_string(o.part_signature, g);
        assert_string_equal(g, "c44dd0a2-bc6e-4cab-a9ae-d5b0ba975e60");
        efi_load_option_done(&o);
        free(b);
        uint8_t bad[16];
        assert_int_equal(efi_guid_from_string("c44dd0a2-bc6e-4cab-a9ae-d5b0ba975e6", bad), -EINVAL);
        assert_int_equal(efi_guid_from_string("c44dd0a2xbc6e-4cab-a9ae-d5b0ba975e60", bad), -EINVAL);
        assert_int_equal(efi_guid_from_string("g44dd0a2-bc6e-4cab-a9ae-d5b0ba975e60", bad), -EINVAL);
        assert_int_equal(efi_load_option_build("\xc3\xa9", &esp, "x", &b, &n), -EINVAL);
}

static const char *const PATHS[2] = { "\\EFI\\abswitch\\boot-a.efi", "\\EFI\\abswitch\\boot-b.efi" };
static const bool BOTH[2] = { true, true };

static void test_boot_plan(void **state) {
        struct efi_boot_plan p;
        /* Fresh firmware: its own entries only. Both ours get created, A first. */
        struct efi_boot_entry fw[] = {
                { .id = 0, .active = true, .description = "UiApp" },
                { .id = 1, .active = true, .description = "UEFI Misc Device" },
        };
        uint16_t order[] = { 0, 1 };
        assert_int_equal(efi_boot_plan(fw, 2, order, 2, PATHS, BOTH, 0, 1, &p), 0);
        assert_true(p.create[0] && p.create[1]);
        assert_int_equal(p.entry[0], 0x1000);
        assert_int_equal(p.entry[1], 0x1001);
        assert_int_equal(p.order_len, 4);
        assert_int_equal(p.order[0], 0x1000);
        assert_int_equal(p.order[1], 0x1001);
        assert_int_equal(p.order[2], 0);
        assert_true(p.order_changed);

        /* Our entries exist (case differs); B committed: B first, nothing created. */
        struct efi_boot_entry ours[] = {
                { .id = 0, .active = true },
                { .id = 0x1000, .active = true, .path = "\\EFI\\ABSWITCH\\BOOT-A.EFI", .on_esp = true },
                { .id = 0x1001, .active = true, .path = "\\EFI\\abswitch\\boot-b.efi", .on_esp = true },
        };
        uint16_t o2[] = { 0x1000, 0x1001, 0 };
        assert_int_equal(efi_boot_plan(ours, 3, o2, 3, PATHS, BOTH, 1, 0, &p), 0);
        assert_false(p.create[0] || p.create[1]);
        assert_int_equal(p.order[0], 0x1001);
        assert_int_equal(p.order[1], 0x1000);
        assert_int_equal(p.order[2], 0);
        assert_true(p.order_changed);
        /* Already right: nothing to write. */
        uint16_t o3[] = { 0x1001, 0x1000, 0 };
        assert_int_equal(efi_boot_plan(ours, 3, o3, 3, PATHS, BOTH, 1, 0, &p), 0);
        assert_false(p.order_changed);
        /* Order left alone (first = -1), but a missing entry is appended. */
        uint16_t o4[] = { 0, 0x1001 };
        assert_int_equal(efi_boot_plan(ours, 3, o4, 2, PATHS, BOTH, -1, -1, &p), 0);
        assert_int_equal(p.order_len, 3);
        assert_int_equal(p.order[2], 0x1000);

        /* An entry with our path on another disk, or inactive, is not ours;
         * the new number skips every number in use. */
        struct efi_boot_entry other[] = {
                { .id = 0x1000, .active = true, .path = "\\EFI\\abswitch\\boot-a.efi", .on_esp = false },
                { .id = 0x1001, .active = false, .path = "\\EFI\\abswitch\\boot-b.efi", .on_esp = true },
        };
        assert_int_equal(efi_boot_plan(other, 2, NULL, 0, PATHS, BOTH, 0, -1, &p), 0);
        assert_true(p.create[0] && p.create[1]);
        assert_int_equal(p.entry[0], 0x1002);
        assert_int_equal(p.entry[1], 0x1003);
}

/* Slot B empty (never installed, no Boot1001): its number never goes into
 * BootOrder, so a normal boot of A finds nothing to write, boot after boot
 * (issue 12, defect 8: firmware drops a number without an entry, the init
 * put it back on every boot). */
static void test_boot_plan_empty_slot(void **state) {
        struct efi_boot_plan p;
        static const bool only_a[2] = { true, false };
        struct efi_boot_entry fw[] = {
                { .id = 0, .active = true, .description = "UiApp" },
                { .id = 0x1000, .active = true, .path = "\\EFI\\abswitch\\boot-a.efi", .on_esp = true },
        };
        uint16_t order[] = { 0x1000, 0 };
        assert_int_equal(efi_boot_plan(fw, 2, order, 2, PATHS, only_a, 0, 1, &p), 0);
        assert_false(p.create[0] || p.create[1]);
        assert_int_equal(p.entry[1], -1);
        assert_int_equal(p.order_len, 2);
        assert_false(p.order_changed);
        /* Even with B asked to lead (it cannot: it has no entry). */
        assert_int_equal(efi_boot_plan(fw, 2, order, 2, PATHS, only_a, 1, 0, &p), 0);
        assert_false(p.order_changed);
        /* Once B is wanted (installed), it gets an entry and a place. */
        assert_int_equal(efi_boot_plan(fw, 2, order, 2, PATHS, BOTH, 0, 1, &p), 0);
        assert_true(p.create[1]);
        assert_int_equal(p.order_len, 3);
        assert_int_equal(p.order[1], p.entry[1]);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_utf16),
                cmocka_unit_test(test_u16),
                cmocka_unit_test(test_guid),
                cmocka_unit_test(test_load_option),
                cmocka_unit_test(test_load_option_split_path),
                cmocka_unit_test(test_load_option_truncated_everywhere),
                cmocka_unit_test(test_load_option_bad_lengths),
                cmocka_unit_test_setup_teardown(test_efivar_read, setup_dir, teardown_dir),
                cmocka_unit_test_setup_teardown(test_efivar_write, setup_dir, teardown_dir),
                cmocka_unit_test(test_load_option_build_roundtrip),
                cmocka_unit_test(test_boot_plan),
                cmocka_unit_test(test_boot_plan_empty_slot),
        };
        return cmocka_run_group_tests_name("efi", tests, NULL, NULL);
}
