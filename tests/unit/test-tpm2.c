/* SPDX-License-Identifier: MIT */
/* init/tpm2.c against byte vectors. The responses were recorded from
 * swtpm 0.7 (libtpms) over its TCP server: a fresh TPM with four banks, and
 * TPM2_PCR_Event(15, "abc"); the commands are checked against the layouts
 * in TPM 2.0 Part 3 (and were accepted by the same swtpm). */
#include "unit.h"
#include "../../common/macro.h"
#include "../../init/tpm2.h"

static size_t unhex(const char *h, uint8_t *out, size_t size) {
        size_t n = strlen(h) / 2;
        assert_true(n <= size);
        for (size_t i = 0; i < n; i++) {
                unsigned v;
                assert_int_equal(sscanf(h + 2 * i, "%2x", &v), 1);
                out[i] = (uint8_t) v;
        }
        return n;
}

static void hex(const uint8_t *p, size_t n, char *out) {
        for (size_t i = 0; i < n; i++)
                sprintf(out + 2 * i, "%02x", p[i]);
        out[2 * n] = 0;
}

#define CAP_RSP "80010000002b00000000000000000500000004000403ffffff000b03ffffff000c03ffffff000d03ffffff"
#define SHA1_ABC "a9993e364706816aba3e25717850c26c9cd0d89d"
#define SHA256_ABC "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
#define SHA384_ABC "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7"
#define SHA512_ABC                                                                                                     \
        "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e" \
        "2a9ac94fa54ca49f"
#define EVENT_RSP                                                                                                      \
        "8002000000c300000000000000b000000004"                                                                         \
        "0004" SHA1_ABC "000b" SHA256_ABC "000c" SHA384_ABC "000d" SHA512_ABC "0000010000"

static void test_build_get_pcr_banks(void **state) {
        uint8_t buf[64];
        char h[129];
        int n = tpm2_build_get_pcr_banks(buf, sizeof(buf));
        assert_int_equal(n, 22);
        hex(buf, (size_t) n, h);
        /* tag NO_SESSIONS, size 22, TPM_CC_GetCapability, TPM_CAP_PCRS, property 0, count 1 */
        assert_string_equal(h, "8001000000160000017a000000050000000000000001");
        assert_int_equal(tpm2_build_get_pcr_banks(buf, 21), -ENOBUFS);
}

static void test_build_pcr_event(void **state) {
        uint8_t buf[TPM2_BUFFER_MAX];
        char h[129];
        int n = tpm2_build_pcr_event(buf, sizeof(buf), 15, "abc", 3);
        assert_int_equal(n, 32);
        hex(buf, (size_t) n, h);
        /* tag SESSIONS, size, TPM_CC_PCR_Event, PCR 15, authorizationSize 9,
         * TPM_RS_PW, empty nonce, continueSession, empty hmac, TPM2B_EVENT "abc" */
        assert_string_equal(h, "8002000000200000013c0000000f000000094000000900000100000003616263");

        assert_int_equal(tpm2_build_pcr_event(buf, 31, 15, "abc", 3), -ENOBUFS);
        /* TPM2B_EVENT holds at most 1024 bytes. */
        static uint8_t big[TPM2_EVENT_MAX + 1];
        assert_int_equal(tpm2_build_pcr_event(buf, sizeof(buf), 15, big, TPM2_EVENT_MAX), 29 + TPM2_EVENT_MAX);
        assert_int_equal(tpm2_build_pcr_event(buf, sizeof(buf), 15, big, TPM2_EVENT_MAX + 1), -ENOBUFS);
}

static void test_parse_get_pcr_banks(void **state) {
        uint8_t rsp[256];
        size_t n = unhex(CAP_RSP, rsp, sizeof(rsp));
        struct tpm2_banks b;
        uint32_t rc = 1;

        assert_int_equal(tpm2_parse_get_pcr_banks(rsp, n, &b, &rc), 0);
        assert_int_equal(rc, 0);
        assert_int_equal(b.n, 4);
        assert_int_equal(b.bank[0].alg, TPM2_ALG_SHA1);
        assert_int_equal(b.bank[1].alg, TPM2_ALG_SHA256);
        assert_int_equal(b.bank[2].alg, TPM2_ALG_SHA384);
        assert_int_equal(b.bank[3].alg, TPM2_ALG_SHA512);
        assert_int_equal(b.bank[1].pcrs, 0xffffff);
        assert_true(tpm2_bank_has_pcr(&b.bank[1], 15));
        assert_false(tpm2_bank_has_pcr(&b.bank[1], 24));

        /* A bank with PCR 15 not allocated (sha1 of 00 7f ff: PCRs 8-14, 16-23). */
        rsp[22] = 0x00, rsp[23] = 0x7f;
        assert_int_equal(tpm2_parse_get_pcr_banks(rsp, n, &b, &rc), 0);
        assert_false(tpm2_bank_has_pcr(&b.bank[0], 15));
        assert_true(tpm2_bank_has_pcr(&b.bank[0], 14));
        assert_true(tpm2_bank_has_pcr(&b.bank[0], 16));
        assert_false(tpm2_bank_has_pcr(&b.bank[0], 0));
}

static void test_parse_get_pcr_banks_malformed(void **state) {
        uint8_t rsp[256], bad[256];
        size_t n = unhex(CAP_RSP, rsp, sizeof(rsp));
        struct tpm2_banks b = { .n = 99 };
        uint32_t rc;

        /* Every truncation. */
        for (size_t k = 0; k < n; k++) {
                memcpy(bad, rsp, k);
                bad[2] = 0, bad[3] = 0, bad[4] = 0, bad[5] = (uint8_t) k; /* a size that agrees */
                assert_int_equal(tpm2_parse_get_pcr_banks(bad, k, &b, &rc), -EBADMSG);
        }
        /* The size field disagrees with the length. */
        assert_int_equal(tpm2_parse_get_pcr_banks(rsp, n - 1, &b, &rc), -EBADMSG);
        /* A trailing byte. */
        memcpy(bad, rsp, n);
        bad[n] = 0, bad[5]++;
        assert_int_equal(tpm2_parse_get_pcr_banks(bad, n + 1, &b, &rc), -EBADMSG);
        /* Another capability. */
        memcpy(bad, rsp, n);
        bad[14] = 6;
        assert_int_equal(tpm2_parse_get_pcr_banks(bad, n, &b, &rc), -EBADMSG);
        /* A bank twice. */
        memcpy(bad, rsp, n);
        bad[26] = 0x04;
        assert_int_equal(tpm2_parse_get_pcr_banks(bad, n, &b, &rc), -EBADMSG);
        /* More banks than fit, and more than the response holds. */
        memcpy(bad, rsp, n);
        bad[18] = 17;
        assert_int_equal(tpm2_parse_get_pcr_banks(bad, n, &b, &rc), -EBADMSG);
        bad[18] = 5;
        assert_int_equal(tpm2_parse_get_pcr_banks(bad, n, &b, &rc), -EBADMSG);
        /* Another tag. */
        memcpy(bad, rsp, n);
        bad[1] = 0xC4;
        assert_int_equal(tpm2_parse_get_pcr_banks(bad, n, &b, &rc), -EBADMSG);
        /* ret untouched on failure */
        assert_int_equal(b.n, 99);
}

static void test_parse_error_response(void **state) {
        uint8_t rsp[16];
        struct tpm2_digests d;
        struct tpm2_banks b;
        uint32_t rc = 0;
        /* swtpm's answer to TPM2_PCR_Event on a handle that is no PCR:
         * TPM_RC_VALUE for handle 1 (0x184). */
        size_t n = unhex("80010000000a00000184", rsp, sizeof(rsp));
        assert_int_equal(tpm2_parse_pcr_event(rsp, n, &d, &rc), -EREMOTEIO);
        assert_int_equal(rc, 0x184);
        assert_false(tpm2_rc_is_retry(rc));
        assert_int_equal(tpm2_parse_get_pcr_banks(rsp, n, &b, &rc), -EREMOTEIO);

        n = unhex("80010000000a00000922", rsp, sizeof(rsp));
        assert_int_equal(tpm2_parse_pcr_event(rsp, n, &d, &rc), -EREMOTEIO);
        assert_true(tpm2_rc_is_retry(rc));
        /* An error code with a body is no TPM's. */
        n = unhex("80010000000c0000092200", rsp, sizeof(rsp));
        rsp[5] = 11;
        assert_int_equal(tpm2_parse_pcr_event(rsp, 11, &d, &rc), -EBADMSG);
}

static void test_parse_pcr_event(void **state) {
        uint8_t rsp[512];
        size_t n = unhex(EVENT_RSP, rsp, sizeof(rsp));
        struct tpm2_digests d;
        uint32_t rc = 1;
        char h[129];

        assert_int_equal(tpm2_parse_pcr_event(rsp, n, &d, &rc), 0);
        assert_int_equal(rc, 0);
        assert_int_equal(d.n, 4);
        static const struct {
                uint16_t alg;
                const char *hex;
        } want[] = { { TPM2_ALG_SHA1, SHA1_ABC }, { TPM2_ALG_SHA256, SHA256_ABC },
                     { TPM2_ALG_SHA384, SHA384_ABC }, { TPM2_ALG_SHA512, SHA512_ABC } };
        for (unsigned i = 0; i < 4; i++) {
                assert_int_equal(d.d[i].alg, want[i].alg);
                assert_int_equal(d.d[i].size, tpm2_alg_digest_size(want[i].alg));
                hex(d.d[i].bytes, d.d[i].size, h);
                assert_string_equal(h, want[i].hex);
        }
}

static void test_parse_pcr_event_malformed(void **state) {
        uint8_t rsp[512], bad[512];
        size_t n = unhex(EVENT_RSP, rsp, sizeof(rsp));
        struct tpm2_digests d = { .n = 77 };
        uint32_t rc;

        for (size_t k = 0; k < n; k++) {
                memcpy(bad, rsp, k);
                bad[2] = 0, bad[3] = 0, bad[4] = 0, bad[5] = (uint8_t) k;
                assert_int_equal(tpm2_parse_pcr_event(bad, k, &d, &rc), -EBADMSG);
        }
        /* No session tag on a command with a session. */
        memcpy(bad, rsp, n);
        bad[1] = 0x01;
        assert_int_equal(tpm2_parse_pcr_event(bad, n, &d, &rc), -EBADMSG);
        /* An algorithm of unknown digest size. */
        memcpy(bad, rsp, n);
        bad[19] = 0x99;
        assert_int_equal(tpm2_parse_pcr_event(bad, n, &d, &rc), -EBADMSG);
        /* parameterSize beyond the response, and short of the digests. */
        memcpy(bad, rsp, n);
        bad[13] = 0xff;
        assert_int_equal(tpm2_parse_pcr_event(bad, n, &d, &rc), -EBADMSG);
        bad[13] = 0xaf;
        assert_int_equal(tpm2_parse_pcr_event(bad, n, &d, &rc), -EBADMSG);
        /* A digest count the response does not hold. */
        memcpy(bad, rsp, n);
        bad[17] = 5;
        assert_int_equal(tpm2_parse_pcr_event(bad, n, &d, &rc), -EBADMSG);
        /* The same bank twice (sha256 where sha1 was: sizes then disagree
         * with parameterSize, so rewrite as two sha1 digests). */
        memcpy(bad, rsp, n);
        bad[17] = 2;
        bad[42] = 0x04;
        bad[13] = (uint8_t) (4 + 22 + 22);
        assert_int_equal(tpm2_parse_pcr_event(bad, 14 + 4 + 22 + 22 + 5, &d, &rc), -EBADMSG);
        /* The auth area longer than its sizes say. */
        memcpy(bad, rsp, n);
        bad[n] = 0;
        bad[5]++;
        assert_int_equal(tpm2_parse_pcr_event(bad, n + 1, &d, &rc), -EBADMSG);
        assert_int_equal(d.n, 77);
}

static void test_measurement_strings(void **state) {
        char buf[256];
        const char *h = "1d5dc17caa857cbaac4a1bea501f394912a4e13d5924fe4fed8e4c085ba338ec";

        assert_true(tpm2_measurement_boot(buf, sizeof(buf), SLOT_B, "loader-image-identifier", h, true) > 0);
        assert_string_equal(buf, "abswitch:slot=B:source=loader-image-identifier:roothash=1d5dc17caa857cbaac4a1bea501f39"
                                 "4912a4e13d5924fe4fed8e4c085ba338ec:mode=trial");
        assert_true(tpm2_measurement_boot(buf, sizeof(buf), SLOT_A, "cmdline", h, false) > 0);
        assert_string_equal(buf, "abswitch:slot=A:source=cmdline:roothash=1d5dc17caa857cbaac4a1bea501f394912a4e13d5924fe4"
                                 "fed8e4c085ba338ec:mode=committed");
        assert_true(tpm2_measurement_root_failed(buf, sizeof(buf), SLOT_B, "boot-current", h, "verity") > 0);
        assert_string_equal(buf, "abswitch:root-failed:slot=B:source=boot-current:roothash=1d5dc17caa857cbaac4a1bea501f3"
                                 "94912a4e13d5924fe4fed8e4c085ba338ec:step=verity");
        assert_true(tpm2_measurement_root_failed(buf, sizeof(buf), SLOT_A, "default", "", "pin") > 0);
        assert_string_equal(buf, "abswitch:root-failed:slot=A:source=default:roothash=:step=pin");
        assert_true(tpm2_measurement_root_failed(buf, sizeof(buf), SLOT_A, "default", NULL, "pin") > 0);
        assert_string_equal(buf, "abswitch:root-failed:slot=A:source=default:roothash=:step=pin");

        /* A colon or any other separator in a field would make two boots read alike. */
        assert_int_equal(tpm2_measurement_boot(buf, sizeof(buf), SLOT_A, "cmd:line", h, false), -EINVAL);
        assert_int_equal(tpm2_measurement_boot(buf, sizeof(buf), SLOT_A, "cmdline", "ab:cd", false), -EINVAL);
        assert_int_equal(tpm2_measurement_root_failed(buf, sizeof(buf), SLOT_A, "cmdline", h, "a b"), -EINVAL);
        assert_int_equal(tpm2_measurement_boot(buf, sizeof(buf), _SLOT_INVALID, "cmdline", h, false), -EINVAL);
        assert_int_equal(tpm2_measurement_boot(buf, 20, SLOT_A, "cmdline", h, false), -ENOBUFS);
}

static void test_cel_record(void **state) {
        uint8_t rsp[512];
        size_t n = unhex(EVENT_RSP, rsp, sizeof(rsp));
        struct tpm2_digests d;
        uint32_t rc;
        char buf[2048];
        assert_int_equal(tpm2_parse_pcr_event(rsp, n, &d, &rc), 0);
        d.n = 2;

        int len = tpm2_cel_record(buf, sizeof(buf), 15, &d, "abc");
        const char *want = "\x1e{\"pcr\":15,\"digests\":[{\"hashAlg\":\"sha1\",\"digest\":\"" SHA1_ABC
                           "\"},{\"hashAlg\":\"sha256\",\"digest\":\"" SHA256_ABC
                           "\"}],\"content_type\":\"abswitch\",\"content\":{\"string\":\"abc\"}}\n";
        assert_int_equal(len, (int) strlen(want));
        assert_string_equal(buf, want);

        /* Exactly fitting (with the NUL), one byte short. */
        assert_int_equal(tpm2_cel_record(buf, strlen(want) + 1, 15, &d, "abc"), (int) strlen(want));
        assert_int_equal(tpm2_cel_record(buf, strlen(want), 15, &d, "abc"), -ENOBUFS);
        /* Nothing that needs JSON escaping. */
        assert_int_equal(tpm2_cel_record(buf, sizeof(buf), 15, &d, "a\"b"), -EINVAL);
        assert_int_equal(tpm2_cel_record(buf, sizeof(buf), 15, &d, "a\\b"), -EINVAL);
        assert_int_equal(tpm2_cel_record(buf, sizeof(buf), 15, &d, "a\nb"), -EINVAL);
        /* An unknown algorithm is left out. */
        d.d[0].alg = 0x99;
        assert_true(tpm2_cel_record(buf, sizeof(buf), 15, &d, "abc") > 0);
        assert_null(strstr(buf, "sha1"));
        assert_non_null(strstr(buf, "[{\"hashAlg\":\"sha256\""));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_build_get_pcr_banks),
                cmocka_unit_test(test_build_pcr_event),
                cmocka_unit_test(test_parse_get_pcr_banks),
                cmocka_unit_test(test_parse_get_pcr_banks_malformed),
                cmocka_unit_test(test_parse_error_response),
                cmocka_unit_test(test_parse_pcr_event),
                cmocka_unit_test(test_parse_pcr_event_malformed),
                cmocka_unit_test(test_measurement_strings),
                cmocka_unit_test(test_cel_record),
        };
        return cmocka_run_group_tests_name("tpm2", tests, NULL, NULL);
}
