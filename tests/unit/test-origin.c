/* SPDX-License-Identifier: MIT */
/* A slot's origin (abctl/origin.c): written, read back equal; a stale one
 * (another root hash) and a hostile one refused, each with its reason. */
#include "unit.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../abctl/origin.h"
#include "../../common/macro.h"

#define RH "4f68bce3e8cd4db196e7fbcaf984b7094f68bce3e8cd4db196e7fbcaf984b709"
#define DG "sha256:2c7357edebd246d9aec123d437ec2bf52c7357edebd246d9aec123d437ec2bf5"

static struct slot_origin sample(void) {
        struct slot_origin o = { .kind = ORIGIN_REGISTRY };
        strcpy(o.reference, "registry.example.com:5000/fleet/os:2");
        strcpy(o.digest, DG);
        strcpy(o.roothash, RH);
        strcpy(o.version, "2");
        strcpy(o.installed, "2026-12-02T04:40:00Z");
        return o;
}

static void test_round_trip(void **state) {
        (void) state;
        for (int k = 0; k < _ORIGIN_KIND_MAX; k++) {
                struct slot_origin o = sample(), back;
                char *json = NULL, why[128];
                o.kind = (OriginKind) k;
                if (k == ORIGIN_FILES)
                        memset(o.digest, 0, sizeof(o.digest));
                assert_int_equal(origin_format(&o, &json), 0);
                assert_int_equal(origin_parse(json, strlen(json), &back, why, sizeof(why)), 0);
                assert_memory_equal(&o, &back, sizeof(o));
                free(json);
        }
}

static void test_refusals(void **state) {
        (void) state;
        static const struct {
                const char *json, *why;
        } cases[] = {
                { "[]", "not a JSON object" },
                { "{\"kind\":\"registry\"} x", "not a JSON object" },
                { "{\"kind\":\"ftp\",\"reference\":\"r\"}", "\"kind\"" },
                { "{\"kind\":\"registry\",\"reference\":\"\"}", "\"reference\"" },
                { "{\"kind\":\"registry\",\"reference\":\"r\",\"digest\":\"\"}", "\"digest\"" },
                { "{\"kind\":\"registry\",\"reference\":\"r\",\"digest\":\"sha256:ABC\"}", "\"digest\"" },
                { "{\"kind\":\"files\",\"reference\":\"r\",\"digest\":\"\",\"roothash\":\"xyz\"}", "\"roothash\"" },
                { "{\"kind\":\"files\",\"reference\":\"r\",\"digest\":\"\",\"roothash\":\"" RH "\",\"version\":1}",
                  "\"version\"" },
                { "{\"kind\":\"files\",\"reference\":\"r\",\"digest\":\"\",\"roothash\":\"" RH "\",\"version\":\"1\"}",
                  "\"installed\"" },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                struct slot_origin o;
                char why[128] = "";
                assert_int_equal(origin_parse(cases[i].json, strlen(cases[i].json), &o, why, sizeof(why)), -EBADMSG);
                if (!strstr(why, cases[i].why))
                        fail_msg("case %zu: '%s' does not say %s", i, why, cases[i].why);
        }
        /* A NUL inside a string is not the string. */
        static const char nul[] = "{\"kind\":\"files\",\"reference\":\"a\\u0000b\"}";
        struct slot_origin o;
        assert_int_equal(origin_parse(nul, sizeof(nul) - 1, &o, NULL, 0), -EBADMSG);
}

static void test_file(void **state) {
        (void) state;
        char dir[] = "/tmp/test-origin.XXXXXX", sub[64];
        assert_non_null(mkdtemp(dir));
        (void) snprintf(sub, sizeof(sub), "%s/EFI", dir);
        assert_int_equal(mkdir(sub, 0755), 0);
        (void) snprintf(sub, sizeof(sub), "%s/EFI/abswitch", dir);
        assert_int_equal(mkdir(sub, 0755), 0);

        struct slot_origin o = sample(), back;
        o.installed[0] = 0;  /* stamped by origin_write */
        assert_int_equal(origin_read(dir, SLOT_B, NULL, &back), -ENOENT);
        assert_int_equal(origin_write(dir, SLOT_B, &o), 0);
        assert_int_equal(origin_read(dir, SLOT_B, RH, &back), 0);
        assert_string_equal(back.reference, o.reference);
        assert_int_equal(strlen(back.installed), 20);
        /* Another root hash: the origin of an image no longer there. */
        assert_int_equal(origin_read(dir, SLOT_B, "00" RH, &back), -ESTALE);
        assert_int_equal(origin_read(dir, SLOT_A, NULL, &back), -ENOENT);

        char *path = NULL;
        assert_int_equal(origin_path(dir, SLOT_B, &path), 0);
        assert_non_null(strstr(path, "/EFI/abswitch/boot-b.origin"));
        int fd = open(path, O_WRONLY | O_TRUNC);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, "garbage", 7), 7);
        close(fd);
        assert_int_equal(origin_read(dir, SLOT_B, NULL, &back), -EBADMSG);
        unlink(path);
        free(path);
        (void) snprintf(sub, sizeof(sub), "%s/EFI/abswitch", dir);
        rmdir(sub);
        (void) snprintf(sub, sizeof(sub), "%s/EFI", dir);
        rmdir(sub);
        rmdir(dir);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_round_trip),
                cmocka_unit_test(test_refusals),
                cmocka_unit_test(test_file),
        };
        return cmocka_run_group_tests_name("origin", tests, NULL, NULL);
}
