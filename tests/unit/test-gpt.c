/* SPDX-License-Identifier: MIT */
#include <fcntl.h>
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

/* The reference layout in miniature, A committed at priority 2, B priority 1. */
static int make_image(void **state) {
        snprintf(img, sizeof(img), "/tmp/abswitch-gpt-%d.img", getpid());
        return run("rm -f %s && truncate -s 8M %s && sgdisk -n 1:1M:+2M -t 1:EF00 -c 1:esp "
                   "-n 2:0:+1M -t 2:" ROOT " -c 2:system-a -n 3:0:+512K -t 3:" VERITY " -c 3:system-a-verity "
                   "-n 4:0:+1M -t 4:" ROOT " -c 4:system-b -n 5:0:+512K -t 5:" VERITY " -c 5:system-b-verity "
                   "-A 2:set:49 -A 2:set:56 -A 4:set:48 -A 4:set:56 -A 2:set:60 %s >/dev/null",
                   img, img, img);
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

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_read, make_image, remove_image),
                cmocka_unit_test_setup_teardown(test_write_readback_cgpt_sgdisk, make_image, remove_image),
                cmocka_unit_test_setup_teardown(test_corrupt_primary_repaired, make_image, remove_image),
                cmocka_unit_test_setup_teardown(test_corrupt_backup_repaired, make_image, remove_image),
                cmocka_unit_test_setup_teardown(test_both_corrupt, make_image, remove_image),
                cmocka_unit_test_setup_teardown(test_backup_location_inside_partition, make_image, remove_image),
                cmocka_unit_test_setup_teardown(test_power_cut_every_write, make_image, remove_image),
        };
        return cmocka_run_group_tests_name("gpt", tests, NULL, NULL);
}
