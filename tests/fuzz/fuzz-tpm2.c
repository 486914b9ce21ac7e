/* SPDX-License-Identifier: MIT */
/* TPM 2.0 responses (init/tpm2.c): what a TPM, or whatever sits on its bus,
 * answers to TPM2_GetCapability(TPM_CAP_PCRS) and TPM2_PCR_Event. Both
 * parsers get every input; whatever they accept must be self-consistent,
 * and must turn into an event log record that fits. */
#include <assert.h>

#include "../../init/tpm2.h"
#include "fuzz.h"

FUZZ_QUIET

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct tpm2_banks b;
        struct tpm2_digests d;
        uint32_t rc;
        int r;

        r = tpm2_parse_get_pcr_banks(data, size, &b, &rc);
        assert(r == 0 || r == -EBADMSG || r == -EREMOTEIO);
        if (r == 0) {
                assert(b.n <= TPM2_BANKS_MAX);
                for (unsigned i = 0; i < b.n; i++)
                        (void) tpm2_bank_has_pcr(&b.bank[i], TPM2_PCR_ABSWITCH);
        }
        if (r == -EREMOTEIO)
                assert(rc != 0 && size == 10);

        r = tpm2_parse_pcr_event(data, size, &d, &rc);
        assert(r == 0 || r == -EBADMSG || r == -EREMOTEIO);
        if (r == 0) {
                char rec[2048];
                assert(d.n <= TPM2_BANKS_MAX);
                for (unsigned i = 0; i < d.n; i++)
                        assert(d.d[i].size == tpm2_alg_digest_size(d.d[i].alg) && d.d[i].size > 0);
                r = tpm2_cel_record(rec, sizeof(rec), TPM2_PCR_ABSWITCH, &d, "abswitch:fuzz");
                assert(r > 0 && (size_t) r < sizeof(rec) && rec[0] == 0x1e && rec[r - 1] == '\n');
        }
        return 0;
}
