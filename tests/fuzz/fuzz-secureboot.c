/* SPDX-License-Identifier: MIT */
/* What abctl reads of a UKI and of db/dbx before it trusts them
 * (efi/pe.c Authenticode, efi/secureboot.c): the input is taken both as a
 * PE image (hashed ranges, the certificate table walk) and as a db value
 * (EFI_SIGNATURE_LISTs). Everything returned must lie inside the input. */
#include <assert.h>

#include "../../efi/efi.h"
#include "fuzz.h"

FUZZ_QUIET

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        uint8_t *buf = malloc(size ? size : 1);
        memcpy(buf, data, size);

        struct efi_pe_authenticode a;
        if (efi_pe_authenticode(buf, size, &a) >= 0) {
                assert(a.n_ranges <= ELEMENTSOF(a.range));
                for (size_t i = 0; i < a.n_ranges; i++)
                        assert(a.range[i].offset <= size && a.range[i].size <= size - a.range[i].offset);
                assert(a.cert_offset <= size && a.cert_size <= size - a.cert_offset);
                struct efi_pe_signature s[EFI_PE_SIGNATURES_MAX];
                int n = efi_pe_signatures(buf, size, &a, s, ELEMENTSOF(s));
                for (int i = 0; i < n; i++)
                        assert(s[i].offset >= a.cert_offset && s[i].size > 0 &&
                               s[i].offset + s[i].size <= a.cert_offset + a.cert_size);
        }

        struct efi_sig *sigs = NULL;
        size_t n = 0;
        if (efi_siglist_parse(buf, size, &sigs, &n) >= 0) {
                for (size_t i = 0; i < n; i++) {
                        assert(sigs[i].data > buf && sigs[i].data + sigs[i].size <= buf + size);
                        assert(efi_sig_type_to_string(sigs[i].type));
                        (void) efi_siglist_find(sigs, n, sigs[i].type, sigs[i].data, sigs[i].size);
                }
                free(sigs);
        }
        free(buf);
        return 0;
}
