/* SPDX-License-Identifier: MIT */
#include <fcntl.h>
#include <inttypes.h>
#include <sys/stat.h>
#include <zlib.h>

#include "unit.h"
#include "../../common/macro.h"
#include "../../slots/slots.h"

#define ROOT "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"
#define VERITY "2C7357ED-EBD2-46D9-AEC1-23D437EC2BF5"

static char img[64];

static int run(const char *fmt, ...) _printf_(1, 2);
static int run(const char *fmt, ...) {
        char cmd[1024];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(cmd, sizeof(cmd), fmt, ap);
        va_end(ap);
        return system(cmd);
}

static char *capture(const char *fmt, ...) _printf_(1, 2);
static char *capture(const char *fmt, ...) {
        char cmd[1024];
        static char out[8192];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(cmd, sizeof(cmd), fmt, ap);
        va_end(ap);
        FILE *f = popen(cmd, "r");
        size_t n = f ? fread(out, 1, sizeof(out) - 1, f) : 0;
        if (f)
                pclose(f);
        out[n] = 0;
        return out;
}

/* The reference layout in miniature, A committed at priority 2, B priority 1.
 * sgdisk syncs every file system when it saves, seconds on a busy machine:
 * it makes one template per run, each test gets a copy. */
static char template[64];

static int make_image(void **state) {
        snprintf(img, sizeof(img), "/tmp/abswitch-gpt-%d.img", getpid());
        if (!template[0]) {
                snprintf(template, sizeof(template), "/tmp/abswitch-gpt-%d.template", getpid());
                int r = run("rm -f %s && truncate -s 8M %s && sgdisk -n 1:1M:+2M -t 1:EF00 -c 1:esp "
                            "-n 2:0:+1M -t 2:" ROOT " -c 2:system-a -n 3:0:+512K -t 3:" VERITY " -c 3:system-a-verity "
                            "-n 4:0:+1M -t 4:" ROOT " -c 4:system-b -n 5:0:+512K -t 5:" VERITY " -c 5:system-b-verity "
                            "-A 2:set:49 -A 2:set:56 -A 4:set:48 -A 4:set:56 -A 2:set:60 %s >/dev/null",
                            template, template, template);
                if (r != 0) {
                        template[0] = 0;
                        return r;
                }
        }
        return run("cp --sparse=always %s %s", template, img);
}

static int remove_template(void **state) {
        if (template[0])
                (void) unlink(template);
        return 0;
}

static int remove_image(void **state) {
        return unlink(img);
}

static int open_img(void) {
        int fd = open(img, O_RDWR | O_CLOEXEC);
        assert_true(fd >= 0);
        return fd;
}

static void test_read(void **state) {
        _cleanup_close_ int fd = open_img();
        unsigned parts[] = { 2, 4 };
        uint64_t a[2];
        struct gpt_status st;
        assert_int_equal(gpt_get_attrs(fd, parts, a, 2, &st), 0);
        assert_true(st.primary_valid && st.backup_valid && !st.copies_differ);
        assert_int_equal(st.entries, 128);
        struct slot_state sa = slot_state_from_attrs(a[0]), sb = slot_state_from_attrs(a[1]);
        assert_int_equal(sa.priority, 2);
        assert_true(sa.successful);
        assert_int_equal(sb.priority, 1);
        assert_true(a[0] & (1ULL << 60)); /* a bit that is not ours survives */

        unsigned bad[] = { 9 };
        assert_int_equal(gpt_get_attrs(fd, bad, a, 1, NULL), -ENOENT);
        unsigned zero[] = { 0 };
        assert_int_equal(gpt_get_attrs(fd, zero, a, 1, NULL), -ENOENT);
}

static void test_write_readback_cgpt_sgdisk(void **state) {
        _cleanup_close_ int fd = open_img();
        unsigned parts[] = { 4 };
        uint64_t a[1];
        struct gpt_status st;
        assert_int_equal(gpt_get_attrs(fd, parts, a, 1, NULL), 0);
        struct slot_state s = { .priority = 3, .tries = 2, .successful = false, .armed = true };
        a[0] = slot_state_to_attrs(a[0], s);
        assert_int_equal(gpt_set_attrs(fd, parts, a, 1, NULL, &st), 1);
        assert_int_equal(st.flushes, 2);

        /* cgpt reads the ChromeOS fields */
        assert_string_equal(capture("cgpt show -i 4 -P %s", img), "3\n");
        assert_string_equal(capture("cgpt show -i 4 -T %s", img), "2\n");
        assert_string_equal(capture("cgpt show -i 4 -S %s", img), "0\n");
        /* sgdisk sees the bits: 48, 49 (priority 3), 53 (tries 2), 57 (armed) */
        char *out = capture("sgdisk -A 4:show %s", img);
        assert_non_null(strstr(out, "4:48:"));
        assert_non_null(strstr(out, "4:49:"));
        assert_non_null(strstr(out, "4:53:"));
        assert_non_null(strstr(out, "4:57:"));
        assert_null(strstr(out, "4:56:"));
        /* and finds both copies consistent */
        assert_non_null(strstr(capture("sgdisk -v %s", img), "No problems found"));

        /* Writing the same state again writes nothing. */
        assert_int_equal(gpt_set_attrs(fd, parts, a, 1, NULL, &st), 0);
        assert_int_equal(st.writes, 0);
        assert_int_equal(st.flushes, 0);
}

static void corrupt(off_t off) {
        _cleanup_close_ int fd = open_img();
        uint8_t b;
        assert_int_equal(pread(fd, &b, 1, off), 1);
        b ^= 0x5a;
        assert_int_equal(pwrite(fd, &b, 1, off), 1);
}

static void test_corrupt_primary_repaired(void **state) {
        corrupt(512 + 100);  /* inside the primary header, past the fields, covered by nothing... */
        corrupt(1024 + 56);  /* ... and inside entry 1 of the primary array: array CRC fails */
        _cleanup_close_ int fd = open_img();
        unsigned parts[] = { 2 };
        uint64_t a[1];
        struct gpt_status st;
        assert_int_equal(gpt_get_attrs(fd, parts, a, 1, &st), 0);
        assert_false(st.primary_valid);
        assert_true(st.backup_valid);
        assert_int_equal(slot_state_from_attrs(a[0]).priority, 2);

        /* Any write repairs it; here the state does not even change. */
        assert_int_equal(gpt_set_attrs(fd, parts, a, 1, NULL, &st), 0);
        assert_int_equal(st.flushes, 1);
        assert_int_equal(gpt_get_attrs(fd, parts, a, 1, &st), 0);
        assert_true(st.primary_valid && st.backup_valid && !st.copies_differ);
        assert_non_null(strstr(capture("sgdisk -v %s", img), "No problems found"));
}

static void test_corrupt_backup_repaired(void **state) {
        struct stat s;
        assert_int_equal(stat(img, &s), 0);
        corrupt(s.st_size - 512 + 16); /* backup header CRC field */
        _cleanup_close_ int fd = open_img();
        unsigned parts[] = { 4 };
        uint64_t a[1];
        struct gpt_status st;
        assert_int_equal(gpt_get_attrs(fd, parts, a, 1, &st), 0);
        assert_true(st.primary_valid);
        assert_false(st.backup_valid);
        a[0] = slot_state_to_attrs(a[0], (struct slot_state) { .priority = 0 });
        assert_int_equal(gpt_set_attrs(fd, parts, a, 1, NULL, &st), 1);
        assert_int_equal(gpt_get_attrs(fd, parts, a, 1, &st), 0);
        assert_true(st.primary_valid && st.backup_valid && !st.copies_differ);
        assert_non_null(strstr(capture("sgdisk -v %s", img), "No problems found"));
        assert_string_equal(capture("cgpt show -i 4 -P %s", img), "0\n");
}

static void test_both_corrupt(void **state) {
        struct stat s;
        assert_int_equal(stat(img, &s), 0);
        corrupt(512 + 16);
        corrupt(s.st_size - 512 + 16);
        _cleanup_close_ int fd = open_img();
        unsigned parts[] = { 2 };
        uint64_t a[1] = { 0 };
        assert_int_equal(gpt_get_attrs(fd, parts, a, 1, NULL), -EBADMSG);
        assert_int_equal(gpt_set_attrs(fd, parts, a, 1, NULL, NULL), -EBADMSG);
}

/* A primary header with valid CRCs whose alternate LBA points into a
 * partition, and a corrupt backup: repairing the backup "where the primary
 * says" would write a GPT copy over the slot's data. The primary is not
 * trusted, nothing is written (found by tests/fuzz/fuzz-gpt.c). */
static void test_backup_location_inside_partition(void **state) {
        struct stat s;
        assert_int_equal(stat(img, &s), 0);
        corrupt(s.st_size - 512 + 16); /* backup header CRC */
        _cleanup_close_ int fd = open_img();
        uint8_t h[512], data[4096], after[4096];
        assert_int_equal(pread(fd, h, sizeof(h), 512), (ssize_t) sizeof(h));
        uint64_t part2 = 3 * 2048; /* system-a: 1M ESP at 1M, then system-a at 3M */
        assert_int_equal(pread(fd, data, sizeof(data), (off_t) part2 * 512), (ssize_t) sizeof(data));
        memcpy(h + 32, &part2, 8);                     /* AlternateLBA */
        uint32_t hsize;
        memcpy(&hsize, h + 12, 4);
        memset(h + 16, 0, 4);
        uint32_t crc = (uint32_t) crc32(0, h, hsize);
        memcpy(h + 16, &crc, 4);
        assert_int_equal(pwrite(fd, h, sizeof(h), 512), (ssize_t) sizeof(h));

        unsigned parts[] = { 2 };
        uint64_t a[1] = { 0 };
        struct gpt_status st;
        assert_int_equal(gpt_get_attrs(fd, parts, a, 1, &st), -EBADMSG);
        assert_int_equal(gpt_set_attrs(fd, parts, a, 1, NULL, &st), -EBADMSG);
        assert_int_equal(st.writes, 0);
        assert_int_equal(pread(fd, after, sizeof(after), (off_t) part2 * 512), (ssize_t) sizeof(after));
        assert_memory_equal(data, after, sizeof(data));
}

/* ---- power cuts: stop after the k-th write, or tear it in half ---------------- */

struct cut {
        int budget;     /* writes allowed to complete */
        bool tear;      /* the next one writes half its bytes, then the power goes */
        bool dead;
};

static ssize_t cut_pwrite(int fd, const void *buf, size_t n, off_t off, void *u) {
        struct cut *c = u;
        if (c->dead) {
                errno = EIO;
                return -1;
        }
        if (c->budget-- > 0)
                return pwrite(fd, buf, n, off);
        c->dead = true;
        if (c->tear && n > 1)
                (void) pwrite(fd, buf, n / 2, off);
        errno = EIO;
        return -1;
}

static int cut_flush(int fd, void *u) {
        struct cut *c = u;
        return c->dead ? -EIO : (fdatasync(fd) < 0 ? -errno : 0);
}

static void test_power_cut_every_write(void **state) {
        unsigned parts[] = { 2, 4 };
        struct slot_state olds[2] = { { .priority = 2, .successful = true }, { .priority = 1, .successful = true } };
        struct slot_state news[2] = { { .priority = 1, .successful = true }, { .priority = 2, .tries = 2, .armed = true } };
        unsigned points = 0;

        for (int tear = 0; tear < 2; tear++)
        for (int k = 0; k < 8; k++) {
                assert_int_equal(make_image(state), 0);
                _cleanup_close_ int fd = open_img();
                uint64_t a[2];
                assert_int_equal(gpt_get_attrs(fd, parts, a, 2, NULL), 0);
                uint64_t want[2] = { slot_state_to_attrs(a[0], news[0]), slot_state_to_attrs(a[1], news[1]) };
                struct cut c = { .budget = k, .tear = tear };
                struct gpt_io io = { .pwrite = cut_pwrite, .flush = cut_flush, .userdata = &c };
                struct gpt_status st;
                int r = gpt_set_attrs(fd, parts, want, 2, &io, &st);
                if (r >= 0) {
                        assert_false(c.dead);
                        continue; /* the whole update fit in k writes */
                }
                points++;

                /* After the cut: some copy is valid and holds exactly the old or
                 * the new state of both slots, never a mix. */
                uint64_t got[2];
                assert_int_equal(gpt_get_attrs(fd, parts, got, 2, &st), 0);
                struct slot_state g0 = slot_state_from_attrs(got[0]), g1 = slot_state_from_attrs(got[1]);
                bool is_old = slot_state_equal(g0, olds[0]) && slot_state_equal(g1, olds[1]);
                bool is_new = slot_state_equal(g0, news[0]) && slot_state_equal(g1, news[1]);
                assert_true(is_old || is_new);

                /* The next writer repairs whatever copy the cut broke. */
                assert_true(gpt_set_attrs(fd, parts, want, 2, NULL, &st) >= 0);
                assert_int_equal(gpt_get_attrs(fd, parts, got, 2, &st), 0);
                assert_true(st.primary_valid && st.backup_valid && !st.copies_differ);
                assert_int_equal(got[0], want[0]);
                assert_int_equal(got[1], want[1]);
        }
        /* 4 writes (2 per copy), each cut cleanly and torn */
        assert_int_equal(points, 8);
}


/* ---- why a copy was refused ------------------------------------------------------ */

static void put_le(uint8_t *p, uint64_t v, int n) {
        for (int i = 0; i < n; i++)
                p[i] = (uint8_t) (v >> (8 * i));
}

/* Patches n bytes at off of the header at lba to v; with fix, the header
 * CRC32 is recomputed so the check behind it is the one that refuses. */
static void patch_header(uint64_t lba, size_t off, uint64_t v, int n, bool fix) {
        _cleanup_close_ int fd = open_img();
        uint8_t h[512];
        assert_int_equal(pread(fd, h, sizeof(h), (off_t) lba * 512), (ssize_t) sizeof(h));
        put_le(h + off, v, n);
        if (fix) {
                uint32_t hsize = (uint32_t) h[12] | (uint32_t) h[13] << 8;
                if (hsize > sizeof(h))
                        hsize = sizeof(h);
                put_le(h + 16, 0, 4);
                put_le(h + 16, (uint32_t) crc32(0, h, hsize), 4);
        }
        assert_int_equal(pwrite(fd, h, sizeof(h), (off_t) lba * 512), (ssize_t) sizeof(h));
}

static void test_reasons(void **state) {
        /* The 8 MiB image: 16384 sectors, usable 34-16350, primary array at
         * 2-33, backup array at 16351-16382, backup header at 16383. */
        static const struct {
                bool backup;
                size_t off;
                uint64_t value;
                int n;
                bool fix;
                const char *reason;
        } cases[] = {
                { false, 0, 0x5452415020494646ULL, 8, true, "no GPT signature \"EFI PART\" at LBA 1" },
                { false, 8, 0x00020000, 4, true, "header revision 0x00020000, not 1.0" },
                { false, 12, 91, 4, true, "header size 91 is outside 92-512 bytes" },
                { false, 12, 513, 4, true, "header size 513 is outside 92-512 bytes" },
                { false, 16, 0xdeadbeef, 4, false, "header CRC32 0xdeadbeef does not match its contents" },
                { false, 24, 5, 8, true, "MyLBA 5 is not where the header is (LBA 1)" },
                { false, 40, 16351, 8, true, "first usable LBA 16351 is after the last usable LBA 16350" },
                { false, 48, 16384, 8, true, "last usable LBA 16384 is past the end of the disk (16384 sectors)" },
                { false, 32, 16384, 8, true, "AlternateLBA 16384 is past the end of the disk" },
                { false, 84, 100, 4, true, "entry size 100 is not a multiple of 8 of at least 128 bytes" },
                { false, 84, 132, 4, true, "entry size 132 is not a multiple of 8" },
                { false, 80, 0, 4, true, "0 entries of 128 bytes: not 1-4096 entries" },
                { false, 80, 4097, 4, true, "4097 entries of 128 bytes" },
                { false, 72, 1, 8, true, "entry array at LBA 1 (32 sectors) is not on the disk" },
                { false, 72, 16380, 8, true, "entry array at LBA 16380 (32 sectors) is not on the disk" },
                { false, 72, 3, 8, true, "entry array (LBA 3-34) reaches into the usable area (from LBA 34)" },
                { false, 32, 16382, 8, true, "AlternateLBA 16382 leaves no room for the backup entry array" },
                { false, 88, 0x12345678, 4, true, "entry array CRC32 0x12345678 does not match the entries" },
                { true, 72, 16350, 8, true, "entry array (LBA 16350-16381) is not between the usable area" },
                { true, 72, 16352, 8, true, "entry array (LBA 16352-16383) is not between the usable area" },
                { true, 32, 34, 8, true, "AlternateLBA 34 is not before the usable area (from LBA 34)" },
                { true, 24, 1, 8, true, "MyLBA 1 is not where the header is (LBA 16383)" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                assert_int_equal(make_image(state), 0);
                patch_header(cases[i].backup ? 16383 : 1, cases[i].off, cases[i].value, cases[i].n, cases[i].fix);
                _cleanup_close_ int fd = open_img();
                unsigned parts[] = { 2 };
                uint64_t a[1];
                struct gpt_status st;
                assert_int_equal(gpt_get_attrs(fd, parts, a, 1, &st), 0);
                const char *got = cases[i].backup ? st.backup_reason : st.primary_reason;
                const char *other = cases[i].backup ? st.primary_reason : st.backup_reason;
                if (!strstr(got, cases[i].reason))
                        fail_msg("case %zu: reason '%s', expected '%s'", i, got, cases[i].reason);
                assert_true(cases[i].backup ? !st.backup_valid && st.primary_valid
                                            : !st.primary_valid && st.backup_valid);
                assert_string_equal(other, "");
        }
}

/* The backup is looked for where the primary points, then at the last LBA:
 * when both fail, both reasons are kept. */
static void test_reason_backup_both_places(void **state) {
        patch_header(1, 48, 16000, 8, true);        /* primary: usable up to 16000, */
        patch_header(1, 32, 16100, 8, true);        /* backup at 16100 */
        patch_header(16383, 16, 0xdeadbeef, 4, false); /* the real backup's CRC */
        _cleanup_close_ int fd = open_img();
        unsigned parts[] = { 2 };
        uint64_t a[1];
        struct gpt_status st;
        assert_int_equal(gpt_get_attrs(fd, parts, a, 1, &st), 0);
        assert_true(st.primary_valid && !st.backup_valid);
        assert_non_null(strstr(st.backup_reason, "where the primary points: no GPT signature \"EFI PART\" at LBA 16100"));
        assert_non_null(strstr(st.backup_reason, "at the last LBA: header CRC32 0xdeadbeef"));
}

static void test_reasons_both_invalid(void **state) {
        patch_header(1, 16, 0xdeadbeef, 4, false);
        patch_header(16383, 0, 0, 8, false);
        _cleanup_close_ int fd = open_img();
        unsigned parts[] = { 2 };
        uint64_t a[1];
        struct gpt_status st;
        assert_int_equal(gpt_get_attrs(fd, parts, a, 1, &st), -EBADMSG);
        assert_non_null(strstr(st.primary_reason, "header CRC32 0xdeadbeef"));
        assert_non_null(strstr(st.backup_reason, "no GPT signature"));
        struct gpt_table t;
        assert_int_equal(gpt_read_table(fd, &t, &st), -EBADMSG);
        assert_non_null(strstr(st.primary_reason, "header CRC32 0xdeadbeef"));
}

static void test_valid_copies_have_no_reason(void **state) {
        _cleanup_close_ int fd = open_img();
        unsigned parts[] = { 2 };
        uint64_t a[1];
        struct gpt_status st;
        assert_int_equal(gpt_get_attrs(fd, parts, a, 1, &st), 0);
        assert_string_equal(st.primary_reason, "");
        assert_string_equal(st.backup_reason, "");
}

/* ---- partition geometry ---------------------------------------------------------- */

static void test_read_table(void **state) {
        _cleanup_close_ int fd = open_img();
        struct gpt_table t;
        struct gpt_status st;
        assert_int_equal(gpt_read_table(fd, &t, &st), 0);
        assert_int_equal(t.sector_size, 512);
        assert_int_equal(t.sectors, 16384);
        assert_int_equal(t.first_usable, 34);
        assert_int_equal(t.last_usable, 16350);
        assert_int_equal(t.n_parts, 5);
        static const struct { unsigned no; uint64_t first, last; const char *name; } want[] = {
                { 1, 2048, 6143, "esp" },
                { 2, 6144, 8191, "system-a" },
                { 3, 8192, 9215, "system-a-verity" },
                { 4, 10240, 12287, "system-b" },    /* sgdisk aligns to 1 MiB */
                { 5, 12288, 13311, "system-b-verity" },
        };
        for (size_t i = 0; i < ELEMENTSOF(want); i++) {
                assert_int_equal(t.parts[i].partno, want[i].no);
                assert_int_equal(t.parts[i].first, want[i].first);
                assert_int_equal(t.parts[i].last, want[i].last);
                assert_string_equal(t.parts[i].name, want[i].name);
        }
        unsigned used[] = { 1, 2, 3, 4, 5 };
        char why[256] = "";
        assert_int_equal(gpt_check_geometry(&t, used, ELEMENTSOF(used), why, sizeof(why)), 0);
        gpt_table_done(&t);
}

#define T_SECTORS 1034u
#define T_FIRST 34u
#define T_LAST 999u

static struct gpt_table table_of(struct gpt_partition *parts, size_t n) {
        return (struct gpt_table) { .sector_size = 512, .sectors = T_SECTORS, .first_usable = T_FIRST,
                                    .last_usable = T_LAST, .n_parts = n, .parts = parts };
}

/* One partition against the usable range: every first and last around
 * both ends and the extremes; only first <= last inside 34-999 passes. */
static void test_geometry_bounds(void **state) {
        static const uint64_t points[] = { 0, 1, 33, 34, 35, 500, 998, 999, 1000, 1033, 1034, UINT64_MAX - 1, UINT64_MAX };
        unsigned refused = 0;
        for (size_t i = 0; i < ELEMENTSOF(points); i++)
                for (size_t j = 0; j < ELEMENTSOF(points); j++) {
                        struct gpt_partition p = { .partno = 3, .first = points[i], .last = points[j], .name = "system-b" };
                        struct gpt_table t = table_of(&p, 1);
                        unsigned used[] = { 3 };
                        char why[256] = "";
                        bool ok = p.first <= p.last && p.first >= T_FIRST && p.last <= T_LAST;
                        int r = gpt_check_geometry(&t, used, 1, why, sizeof(why));
                        if (ok != (r == 0))
                                fail_msg("%" PRIu64 "-%" PRIu64 ": %d (%s)", p.first, p.last, r, why);
                        if (ok)
                                continue;
                        refused++;
                        assert_int_equal(r, -EUCLEAN);
                        assert_non_null(strstr(why, "partition 3 (system-b, LBA "));
                        if (p.last < p.first)
                                assert_non_null(strstr(why, "ends before it starts: it is empty or negative"));
                        else if (p.last >= T_SECTORS)
                                assert_non_null(strstr(why, "runs past the end of the disk (1034 sectors)"));
                        else
                                assert_non_null(strstr(why, "lies outside the usable LBA 34-999"));
                }
        assert_true(refused > 100);

        /* The same partition unused by us is none of our business. */
        struct gpt_partition p = { .partno = 3, .first = 900, .last = 10 };
        struct gpt_table t = table_of(&p, 1);
        char why[256];
        assert_int_equal(gpt_check_geometry(&t, NULL, 0, why, sizeof(why)), 0);
}

/* A header whose usable range runs past the disk (the header checks refuse
 * it on disk; the pure check does not rely on them). */
static void test_geometry_past_disk_end(void **state) {
        struct gpt_partition p = { .partno = 1, .first = 100, .last = 1034 };
        struct gpt_table t = table_of(&p, 1);
        t.last_usable = 2000;
        unsigned used[] = { 1 };
        char why[256];
        assert_int_equal(gpt_check_geometry(&t, used, 1, why, sizeof(why)), -EUCLEAN);
        assert_string_equal(why, "partition 1 (no name, LBA 100-1034) runs past the end of the disk (1034 sectors)");
        p.last = 1033;
        assert_int_equal(gpt_check_geometry(&t, used, 1, why, sizeof(why)), 0);
}

/* P = 100-199 against every Q with first and last in 90-210: overlap
 * exactly when they share a sector, adjacency allowed, in both table
 * orders, with Q used by us or not; a Q of ours that ends before it starts
 * is refused for that, one of someone else's covers nothing. */
static void test_geometry_pairs(void **state) {
        unsigned overlaps = 0, adjacent = 0;
        for (uint64_t qf = 90; qf <= 210; qf++)
                for (uint64_t ql = 90; ql <= 210; ql++)
                        for (int order = 0; order < 2; order++)
                                for (int q_used = 0; q_used < 2; q_used++) {
                                        struct gpt_partition P = { .partno = 2, .first = 100, .last = 199, .name = "system-a" };
                                        struct gpt_partition Q = { .partno = 4, .first = qf, .last = ql, .name = "system-b" };
                                        struct gpt_partition parts[2] = { order ? Q : P, order ? P : Q };
                                        struct gpt_table t = table_of(parts, 2);
                                        unsigned used[2] = { q_used && order ? 4 : 2, q_used && order ? 2 : 4 };
                                        size_t n_used = q_used ? 2 : 1;
                                        char why[256] = "";
                                        bool negative = ql < qf;
                                        bool overlap = !negative && qf <= 199 && ql >= 100;
                                        bool ok = !(overlap || (negative && q_used));
                                        int r = gpt_check_geometry(&t, used, n_used, why, sizeof(why));
                                        if (ok != (r == 0))
                                                fail_msg("Q %" PRIu64 "-%" PRIu64 " order %d used %d: %d (%s)", qf, ql,
                                                         order, q_used, r, why);
                                        if (ok) {
                                                if (!negative && (ql == 99 || qf == 200))
                                                        adjacent++;
                                                continue;
                                        }
                                        assert_int_equal(r, -EUCLEAN);
                                        if (!overlap)
                                                continue;
                                        overlaps++;
                                        char pa[64], qa[64];
                                        snprintf(pa, sizeof(pa), "partition 2 (system-a, LBA 100-199)");
                                        snprintf(qa, sizeof(qa), "partition 4 (system-b, LBA %" PRIu64 "-%" PRIu64 ")", qf, ql);
                                        char want[160];
                                        snprintf(want, sizeof(want), "%s overlaps %s", order ? qa : pa, order ? pa : qa);
                                        assert_string_equal(why, want);
                                }
        assert_true(overlaps > 1000);
        assert_int_equal(adjacent, 4 * (10 + 11)); /* Q ending at 99 or starting at 200 */
}

/* Two partitions that are not ours may overlap each other: not our disk to
 * judge; one of them overlapping ours is refused; a partno we use that is
 * not in the table is -ENOENT. */
static void test_geometry_others(void **state) {
        struct gpt_partition parts[] = {
                { .partno = 1, .first = 34, .last = 99, .name = "esp" },
                { .partno = 2, .first = 100, .last = 199, .name = "system-a" },
                { .partno = 6, .first = 500, .last = 700, .name = "data" },
                { .partno = 7, .first = 600, .last = 800, .name = "scratch" },
        };
        struct gpt_table t = table_of(parts, ELEMENTSOF(parts));
        unsigned used[] = { 1, 2 };
        char why[256];
        assert_int_equal(gpt_check_geometry(&t, used, 2, why, sizeof(why)), 0);

        parts[3].first = 150;
        assert_int_equal(gpt_check_geometry(&t, used, 2, why, sizeof(why)), -EUCLEAN);
        assert_string_equal(why, "partition 2 (system-a, LBA 100-199) overlaps partition 7 (scratch, LBA 150-800)");

        parts[3].first = 99;  /* the data partition over the ESP's last sector */
        parts[3].last = 99;
        assert_int_equal(gpt_check_geometry(&t, used, 2, why, sizeof(why)), -EUCLEAN);
        assert_string_equal(why, "partition 1 (esp, LBA 34-99) overlaps partition 7 (scratch, LBA 99-99)");

        unsigned missing[] = { 1, 9 };
        parts[3].first = 600;
        parts[3].last = 800;
        assert_int_equal(gpt_check_geometry(&t, missing, 2, why, sizeof(why)), -ENOENT);
        assert_string_equal(why, "partition 9 is not in the partition table");
}

/* On disk: sgdisk refuses to make overlapping partitions, so the entry is
 * patched by hand with both CRCs fixed (the table passes every header
 * check), and read back through gpt_read_table(). */
static void test_geometry_on_disk(void **state) {
        _cleanup_close_ int fd = open_img();
        for (int copy = 0; copy < 2; copy++) {
                uint64_t hdr = copy ? 16383 : 1, arr = copy ? 16351 : 2;
                uint8_t a[128 * 128], h[512];
                assert_int_equal(pread(fd, a, sizeof(a), (off_t) arr * 512), (ssize_t) sizeof(a));
                put_le(a + 3 * 128 + 32, 7000, 8);   /* system-b (entry 4) starts inside system-a */
                assert_int_equal(pwrite(fd, a, sizeof(a), (off_t) arr * 512), (ssize_t) sizeof(a));
                assert_int_equal(pread(fd, h, sizeof(h), (off_t) hdr * 512), (ssize_t) sizeof(h));
                put_le(h + 88, (uint32_t) crc32(0, a, sizeof(a)), 4);
                put_le(h + 16, 0, 4);
                put_le(h + 16, (uint32_t) crc32(0, h, 92), 4);
                assert_int_equal(pwrite(fd, h, sizeof(h), (off_t) hdr * 512), (ssize_t) sizeof(h));
        }
        struct gpt_table t;
        struct gpt_status st;
        assert_int_equal(gpt_read_table(fd, &t, &st), 0);
        assert_true(st.primary_valid && st.backup_valid);
        unsigned used[] = { 1, 2, 3, 4, 5 };
        char why[256];
        assert_int_equal(gpt_check_geometry(&t, used, ELEMENTSOF(used), why, sizeof(why)), -EUCLEAN);
        assert_string_equal(why, "partition 2 (system-a, LBA 6144-8191) overlaps partition 4 (system-b, LBA 7000-12287)");
        gpt_table_done(&t);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_read, make_image, remove_image),
                cmocka_unit_test_setup_teardown(test_write_readback_cgpt_sgdisk, make_image, remove_image),
                cmocka_unit_test_setup_teardown(test_corrupt_primary_repaired, make_image, remove_image),
                cmocka_unit_test_setup_teardown(test_corrupt_backup_repaired, make_image, remove_image),
                cmocka_unit_test_setup_teardown(test_both_corrupt, make_image, remove_image),
                cmocka_unit_test_setup_teardown(test_backup_location_inside_partition, make_image, remove_image),
                cmocka_unit_test_setup_teardown(test_power_cut_every_write, make_image, remove_image),
                cmocka_unit_test_setup_teardown(test_reasons, make_image, remove_image),
                cmocka_unit_test_setup_teardown(test_reason_backup_both_places, make_image, remove_image),
                cmocka_unit_test_setup_teardown(test_reasons_both_invalid, make_image, remove_image),
                cmocka_unit_test_setup_teardown(test_valid_copies_have_no_reason, make_image, remove_image),
                cmocka_unit_test_setup_teardown(test_read_table, make_image, remove_image),
                cmocka_unit_test(test_geometry_bounds),
                cmocka_unit_test(test_geometry_past_disk_end),
                cmocka_unit_test(test_geometry_pairs),
                cmocka_unit_test(test_geometry_others),
                cmocka_unit_test_setup_teardown(test_geometry_on_disk, make_image, remove_image),
        };
        return cmocka_run_group_tests_name("gpt", tests, NULL, remove_template);
}
