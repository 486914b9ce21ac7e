/* SPDX-License-Identifier: MIT */
/* EFI variable values (efi/parse.c): load options with their device paths,
 * UTF-16 strings, 16-bit values, exactly as efivarfs hands them over. The
 * first byte picks the parser. */
#include <assert.h>

#include "../../efi/efi.h"
#include "fuzz.h"

FUZZ_QUIET

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size < 1)
                return 0;
        uint8_t which = data[0];
        data++, size--;
        /* A private copy: the parsers must not read past size. */
        uint8_t *buf = malloc(size ? size : 1);
        memcpy(buf, data, size);
        if (which % 3 == 0) {
                struct efi_load_option o;
                if (efi_load_option_parse(buf, size, &o) >= 0) {
                        assert(o.description);
                        /* Each UTF-16 unit (2 bytes) is at most 3 bytes of UTF-8,
                         * plus a backslash joining each node (4 bytes or more). */
                        if (o.file_path)
                                assert(strlen(o.file_path) <= size * 2);
                        efi_load_option_done(&o);
                }
        } else if (which % 3 == 1) {
                char *s = NULL;
                if (efi_utf16_to_utf8(buf, size, &s) >= 0) {
                        assert(s);
                        free(s);
                }
        } else {
                uint16_t v;
                int r = efi_parse_u16(buf, size, &v);
                assert((r >= 0) == (size == 2));
        }
        free(buf);
        return 0;
}
