/* SPDX-License-Identifier: MIT */
/* The boot record (common/record.c): every field written, read back equal;
 * the JSON the tests and the bench read; what a hostile file gets. */
#include "unit.h"

#include <fcntl.h>
#include <json-c/json.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../common/macro.h"
#include "../../common/record.h"

/* A record with every field set, none to its absent value. */
static void full(struct boot_record *r) {
        static const char *const names[] = { "cmdline", "stub-image-identifier", "loader-image-identifier",
                                             "loader-entry-selected", "boot-current", "root-hash", "default" };
        static const char *const verdicts[] = { "absent", "absent", "answered", "not-consulted",
                                                "not-consulted", "not-consulted", "not-consulted" };
        boot_record_init(r);
        r->version = BOOT_RECORD_VERSION;
        r->abswitch = "0484315-dirty";
        r->slot = "B";
        r->log = "/dev/kmsg";
        r->identity.source = "loader-image-identifier";
        r->identity.value = "\\EFI\\abswitch\\boot-b.efi";
        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                r->identity.sources[i].name = names[i];
                r->identity.sources[i].verdict = verdicts[i];
        }
        r->identity.n_sources = ELEMENTSOF(names);
        r->efi.booted_via_efi = true;
        r->efi.stub_image = "\\EFI\\abswitch\\boot-b.efi";
        r->efi.loader_image = "\\EFI\\BOOT\\BOOTX64.EFI";
        r->efi.loader_info = "systemd-boot 252";
        r->efi.loader_entry = "abswitch-b.conf";
        r->efi.esp_partuuid = "6B0837AC-1E65-4EDC-94C5-E4B7CDC0428B";
        r->efi.boot_current = 0x0A1F;
        r->efi.boot_current_desc = "abswitch B";
        r->efi.boot_current_path = "\\EFI\\abswitch\\boot-b.efi";
        r->efi.boot_next = 0xFFFF;
        r->partitions.disk = "/dev/vda";
        r->partitions.data = "/dev/vda4";
        r->partitions.hash = "/dev/vda5";
        r->partitions.data_partuuid = "81b62fc8-ade9-40b7-9444-55ab49c1aa3f";
        r->state[0] = (typeof(r->state[0])) { .present = true, .before = { 2, 0, true, false },
                                              .after = { 1, 0, true, false } };
        r->state[1] = (typeof(r->state[1])) { .present = true, .before = { 3, 2, false, true },
                                              .after = { 15, 15, false, true } };
        r->decision.action = "boot";
        r->decision.reason = "trial";
        r->decision.target = "B";
        r->decision.trial = true;
        r->decision.watchdog = true;
        r->decision.gpt_writes = 4;
        r->decision.nvram_writes = 2;
        r->root.device = "/dev/mapper/abswitch-root";
        r->root.fstype = "erofs";
        r->root.roothash = "abd639218603690929f16e6f49870f459d7827964996ed34d7125fa5dce86ff1";
        r->root.roothash_source = "pin";
        r->root.verity_error = "restart";
        r->root.init = "/sbin/init";
        r->timings_ms.init_start = 1578.95;
        for (size_t i = 0; i < BOOT_RECORD_PHASES; i++)
                r->timings_ms.phase[i] = (double) (1 + 17300 * (int) i) / 1000.0; /* 0.001, 17.301, ... */
        r->timings_ms.total = 348.804;
        r->timings_ms.switch_root = 1927.754;
        r->tpm.state = "ready";
        r->tpm.device = "/dev/tpmrm0";
        r->tpm.pcr = 15;
        r->tpm.banks[0] = "sha1";
        r->tpm.banks[1] = "sha256";
        r->tpm.n_banks = 2;
        r->tpm.log = "/run/log/systemd/tpm2-measure.log";
        r->tpm.error = "TPM_RC_LOCKOUT";
        for (size_t i = 0; i < 2; i++) {
                r->tpm.measurements[i].string = i ? "abswitch:root-failed:slot=B" : "abswitch:slot=B:mode=trial";
                r->tpm.measurements[i].digests[0].bank = "sha1";
                r->tpm.measurements[i].digests[0].hex = i ? "00ff" : "ff00";
                r->tpm.measurements[i].digests[1].bank = "sha256";
                r->tpm.measurements[i].digests[1].hex = "abcdef";
                r->tpm.measurements[i].n_digests = 2;
                r->tpm.measurements[i].logged = i == 0;
        }
        r->tpm.n_measurements = 2;
}

static void round_trip(const struct boot_record *in, struct boot_record *out) {
        _cleanup_free_ char *text = NULL;
        assert_int_equal(boot_record_format(in, &text), 0);
        assert_non_null(strchr(text, '\n'));
        assert_int_equal(text[strlen(text) - 1], '\n');
        assert_int_equal(boot_record_parse(text, strlen(text), out), 0);
}

/* Every field, one at a time changed from the full record: the change
 * survives the round trip, and the record differs from the full one (so a
 * field the writer forgot, or the reader, fails here). */
static void test_every_field_round_trips(void **state) {
        struct boot_record a, b;
        full(&a);
        round_trip(&a, &b);
        assert_true(boot_record_equal(&a, &b));
        /* and the strings are copies the parsed record owns, not a's */
        assert_ptr_not_equal(a.slot, b.slot);
        assert_string_equal(b.identity.sources[6].name, "default");
        assert_int_equal(b.efi.boot_current, 0x0A1F);
        assert_int_equal(b.state[1].after.priority, 15);
        boot_record_done(&b);

#define CHANGE(stmt)                                                    \
        do {                                                            \
                struct boot_record x, y, ref;                           \
                full(&x);                                               \
                full(&ref);                                             \
                stmt;                                                   \
                assert_false(boot_record_equal(&x, &ref));              \
                round_trip(&x, &y);                                     \
                if (!boot_record_equal(&x, &y))                         \
                        fail_msg("lost in the round trip: %s", #stmt);  \
                boot_record_done(&y);                                   \
        } while (0)

        CHANGE(x.version = 2);
        CHANGE(x.abswitch = NULL);
        CHANGE(x.slot = "A");
        CHANGE(x.log = "/dev/console");
        CHANGE(x.identity.source = "default");
        CHANGE(x.identity.value = NULL);
        CHANGE(x.identity.sources[3].verdict = "answered");
        CHANGE(x.identity.sources[3].verdict = NULL);
        CHANGE(x.identity.n_sources = 2);
        CHANGE(x.efi.booted_via_efi = false);
        CHANGE(x.efi.stub_image = NULL);
        CHANGE(x.efi.loader_image = "x");
        CHANGE(x.efi.loader_info = NULL);
        CHANGE(x.efi.loader_entry = NULL);
        CHANGE(x.efi.esp_partuuid = NULL);
        CHANGE(x.efi.boot_current = 0);
        CHANGE(x.efi.boot_current = -1; x.efi.boot_current_desc = x.efi.boot_current_path = NULL);
        CHANGE(x.efi.boot_current_desc = "");
        CHANGE(x.efi.boot_current_path = NULL);
        CHANGE(x.efi.boot_next = -1);
        CHANGE(x.efi.boot_next = 1);
        CHANGE(x.partitions.disk = "/dev/nvme0n1");
        CHANGE(x.partitions.data = NULL);
        CHANGE(x.partitions.hash = "");
        CHANGE(x.partitions.data_partuuid = NULL);
        CHANGE(x.state[0].present = false);
        CHANGE(x.state[0].before.priority = 0);
        CHANGE(x.state[0].before.tries = 7);
        CHANGE(x.state[0].before.successful = false);
        CHANGE(x.state[0].before.armed = true);
        CHANGE(x.state[1].present = false);
        CHANGE(x.state[1].after.priority = -1);
        CHANGE(x.state[1].after.tries = 0);
        CHANGE(x.state[1].after.successful = true);
        CHANGE(x.state[1].after.armed = false);
        CHANGE(x.decision.action = "reboot");
        CHANGE(x.decision.reason = NULL);
        CHANGE(x.decision.target = "A");
        CHANGE(x.decision.trial = false);
        CHANGE(x.decision.watchdog = false);
        CHANGE(x.decision.gpt_writes = 0);
        CHANGE(x.decision.nvram_writes = 100000);
        CHANGE(x.root.device = NULL);
        CHANGE(x.root.fstype = "squashfs");
        CHANGE(x.root.roothash = "");
        CHANGE(x.root.roothash_source = NULL);
        CHANGE(x.root.verity_error = "panic");
        CHANGE(x.root.init = "/lib/systemd/systemd");
        CHANGE(x.timings_ms.init_start = 0);
        for (size_t i = 0; i < BOOT_RECORD_PHASES; i++)
                CHANGE(x.timings_ms.phase[i] = 0.333);
        CHANGE(x.timings_ms.total = 123456789.123);
        CHANGE(x.timings_ms.switch_root = 0.1);
        CHANGE(x.tpm.state = "absent");
        CHANGE(x.tpm.device = NULL);
        CHANGE(x.tpm.pcr = -1);
        CHANGE(x.tpm.pcr = 23);
        CHANGE(x.tpm.banks[1] = "sha384");
        CHANGE(x.tpm.n_banks = 1);
        CHANGE(x.tpm.log = NULL);
        CHANGE(x.tpm.error = NULL);
        CHANGE(x.tpm.measurements[1].string = "other");
        CHANGE(x.tpm.measurements[0].digests[1].hex = "00");
        CHANGE(x.tpm.measurements[1].digests[0].bank = "sm3_256");
        CHANGE(x.tpm.measurements[0].n_digests = 1);
        CHANGE(x.tpm.measurements[1].logged = true);
        CHANGE(x.tpm.n_measurements = 1);
#undef CHANGE
}

/* The names the e2e tests and the bench read (tests/e2e, bench/bench.py). */
static void test_json_names(void **state) {
        _cleanup_free_ char *text = NULL;
        struct boot_record r;
        full(&r);
        assert_int_equal(boot_record_format(&r, &text), 0);
        json_object *o = json_tokener_parse(text), *v, *w;
        assert_non_null(o);
        assert_true(json_object_object_get_ex(o, "version", &v));
        assert_int_equal(json_object_get_int(v), 1);
        assert_true(json_object_object_get_ex(o, "slot", &v));
        assert_string_equal(json_object_get_string(v), "B");
        assert_true(json_object_object_get_ex(o, "decision", &v));
        assert_true(json_object_object_get_ex(v, "trial", &w) && json_object_get_boolean(w));
        assert_true(json_object_object_get_ex(v, "gpt_writes", &w) && json_object_get_int(w) == 4);
        assert_true(json_object_object_get_ex(o, "root", &v));
        assert_true(json_object_object_get_ex(v, "roothash_source", &w));
        assert_string_equal(json_object_get_string(w), "pin");
        assert_true(json_object_object_get_ex(o, "efi", &v));
        assert_true(json_object_object_get_ex(v, "BootCurrent", &w));
        assert_string_equal(json_object_get_string(w), "0A1F");
        assert_true(json_object_object_get_ex(v, "BootNext", &w));
        assert_string_equal(json_object_get_string(w), "FFFF");
        assert_true(json_object_object_get_ex(v, "StubImageIdentifier", &w));
        assert_true(json_object_object_get_ex(o, "state", &v));
        assert_true(json_object_object_get_ex(v, "B", &w));
        assert_true(json_object_object_get_ex(w, "after", &w));
        assert_true(json_object_object_get_ex(w, "priority", &w) && json_object_get_int(w) == 15);
        assert_true(json_object_object_get_ex(o, "timings_ms", &v));
        assert_true(json_object_object_get_ex(v, "switch_root_ms", &w));
        assert_true(json_object_object_get_ex(v, "mount", &w));
        json_object_put(o);
        /* pretty-printed, slashes as they are (paths stay readable) */
        assert_non_null(strstr(text, "\"disk\":\"/dev/vda\""));
}

/* Times: three decimals, printed as the microseconds they are (no "%.17g"
 * digits); read back to the microsecond, whatever the file says. */
static void test_timings(void **state) {
        _cleanup_free_ char *text = NULL;
        struct boot_record r, p;
        full(&r);
        r.timings_ms.total = 348.804;
        r.timings_ms.init_start = 0.1;    /* 0.1000000000000000055... as a double */
        r.timings_ms.switch_root = -2.5;
        r.timings_ms.phase[0] = 12.3456;  /* not to the microsecond: rounded */
        assert_int_equal(boot_record_format(&r, &text), 0);
        assert_non_null(strstr(text, "\"total\":348.804,"));
        assert_non_null(strstr(text, "\"init_start_ms\":0.100,"));
        assert_non_null(strstr(text, "\"switch_root_ms\":-2.500"));
        assert_non_null(strstr(text, "\"modules\":12.346,"));
        assert_int_equal(boot_record_parse(text, strlen(text), &p), 0);
        assert_true(p.timings_ms.total == 348.804 && p.timings_ms.phase[0] == 12.346);
        boot_record_done(&p);

        const char *odd = "{\"timings_ms\":{\"total\":1.0004999,\"mount\":1e300,\"verity\":-1e300,"
                          "\"state\":NaN,\"devices\":7,\"identity\":0.0005}}";
        assert_int_equal(boot_record_parse(odd, strlen(odd), &p), 0);
        assert_true(p.timings_ms.total == 1.0);
        assert_true(p.timings_ms.phase[5] == 0.0);  /* mount: beyond any uptime */
        assert_true(p.timings_ms.phase[4] == 0.0);
        assert_true(p.timings_ms.phase[3] == 0.0);
        assert_true(p.timings_ms.phase[2] == 7.0);
        assert_true(p.timings_ms.phase[1] == 0.001);  /* half a microsecond rounds away from zero */
        boot_record_done(&p);
}

/* No BootCurrent: no description or path either; null strings are null. */
static void test_absent_fields(void **state) {
        _cleanup_free_ char *text = NULL;
        struct boot_record r, p;
        boot_record_init(&r);
        assert_int_equal(boot_record_format(&r, &text), 0);
        assert_null(strstr(text, "BootCurrent"));
        assert_null(strstr(text, "BootNext"));
        assert_non_null(strstr(text, "\"slot\":null"));
        assert_int_equal(boot_record_parse(text, strlen(text), &p), 0);
        assert_true(boot_record_equal(&r, &p));
        assert_null(p.slot);
        assert_int_equal(p.efi.boot_current, -1);
        assert_int_equal(p.state[0].before.priority, -1);
        boot_record_done(&p);
}

static void test_hostile_text(void **state) {
        static const char *const bad[] = { "", "[]", "\"A\"", "{", "{\"slot\":\"A\"} trailing", "null", "12" };
        struct boot_record r;
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                assert_int_equal(boot_record_parse(bad[i], strlen(bad[i]), &r), -EBADMSG);

        /* wrong types read as absent, never as something else */
        const char *odd = "{\"slot\":1,\"partitions\":{\"disk\":[\"/dev/vda\"]},\"identity\":\"x\","
                          "\"efi\":{\"BootCurrent\":\"12345\",\"BootCurrentDescription\":\"d\",\"BootNext\":\"00g0\"},"
                          "\"state\":{\"A\":{\"before\":{\"priority\":\"3\",\"tries\":2.5}}},"
                          "\"decision\":{\"trial\":\"yes\"},\"timings_ms\":{\"total\":\"1\",\"mount\":3}}";
        assert_int_equal(boot_record_parse(odd, strlen(odd), &r), 0);
        assert_null(r.slot);
        assert_null(r.partitions.disk);
        assert_null(r.identity.source);
        assert_int_equal(r.efi.boot_current, -1);
        assert_null(r.efi.boot_current_desc);
        assert_int_equal(r.efi.boot_next, -1);
        assert_int_equal(r.state[0].before.priority, -1);
        assert_int_equal(r.state[0].before.tries, -1);
        assert_false(r.decision.trial);
        assert_true(r.timings_ms.total == 0.0);
        assert_true(r.timings_ms.phase[5] == 3.0);
        boot_record_done(&r);

        /* more identity sources than a record holds: the first ones */
        char many[2048] = "{\"identity\":{\"sources\":{";
        for (int i = 0; i < BOOT_RECORD_SOURCES_MAX + 5; i++)
                (void) snprintf(many + strlen(many), sizeof(many) - strlen(many), "%s\"s%d\":\"v\"", i ? "," : "", i);
        strcat(many, "}}}");
        assert_int_equal(boot_record_parse(many, strlen(many), &r), 0);
        assert_int_equal(r.identity.n_sources, BOOT_RECORD_SOURCES_MAX);
        assert_string_equal(r.identity.sources[0].name, "s0");
        boot_record_done(&r);
}

/* The file: written (and rewritten) in place, read back equal; what is not a
 * record's file is refused with the errors abctl explains. */
static void test_write_and_read_file(void **state) {
        char dir[] = "/tmp/test-record-XXXXXX", path[64], sub[64];
        struct boot_record a, b;
        uint64_t size = 0;

        assert_non_null(mkdtemp(dir));
        (void) snprintf(sub, sizeof(sub), "%s/run", dir);
        (void) snprintf(path, sizeof(path), "%s/boot.json", sub);
        full(&a);
        assert_int_equal(boot_record_write(&a, sub), 0);  /* makes the directory */
        assert_int_equal(boot_record_write(&a, sub), 0);  /* and replaces the file */
        assert_int_equal(access(path, F_OK), 0);
        assert_int_equal(boot_record_read(path, BOOT_RECORD_SIZE_MAX, &b, &size), 0);
        assert_true(boot_record_equal(&a, &b));
        assert_true(size > 100);
        boot_record_done(&b);

        assert_int_equal(boot_record_read(path, 100, &b, &size), -EFBIG);
        assert_true(size > 100);
        assert_int_equal(boot_record_read(dir, BOOT_RECORD_SIZE_MAX, &b, NULL), -EBADFD);
        assert_int_equal(boot_record_read("/dev/null", BOOT_RECORD_SIZE_MAX, &b, NULL), -EBADFD);
        (void) snprintf(sub, sizeof(sub), "%s/missing", dir);
        assert_int_equal(boot_record_read(sub, BOOT_RECORD_SIZE_MAX, &b, NULL), -ENOENT);

        (void) snprintf(sub, sizeof(sub), "rm -rf '%s'", dir);
        assert_int_equal(system(sub), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_every_field_round_trips),
                cmocka_unit_test(test_json_names),
                cmocka_unit_test(test_timings),
                cmocka_unit_test(test_absent_fields),
                cmocka_unit_test(test_hostile_text),
                cmocka_unit_test(test_write_and_read_file),
        };
        return cmocka_run_group_tests_name("record", tests, NULL, NULL);
}
