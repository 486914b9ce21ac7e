/* SPDX-License-Identifier: MIT */
/* The PE section table of a UKI (efi/pe.c), as abctl reads it from a file
 * an operator gives it: every section found must lie inside the file. */
#include <assert.h>

#include "../../efi/efi.h"
#include "fuzz.h"

FUZZ_QUIET

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static const char *const names[] = { ".cmdline", ".osrel", ".linux", ".initrd" };
        uint8_t *buf = malloc(size ? size : 1);
        memcpy(buf, data, size);
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
                uint64_t off, len;
                if (efi_pe_find_section(buf, size, size, names[i], &off, &len) >= 0)
                        assert(off <= size && len <= size - off);
        }
        free(buf);
        return 0;
}
