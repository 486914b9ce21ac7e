/* SPDX-License-Identifier: MIT */
/* The root hash as the command line hands it to verity_open (verity/verity.c):
 * hex of at most 64 bytes, anything else refused. */
#include <assert.h>
#include <ctype.h>

#include "../../verity/verity.h"
#include "fuzz.h"

FUZZ_QUIET

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char *s = fuzz_string(data, size);
        unsigned char key[64];
        size_t len = 0;
        if (verity_unhex(s, key, sizeof(key), &len) >= 0) {
                assert(len * 2 == strlen(s) && len > 0 && len <= sizeof(key));
                for (size_t i = 0; s[i]; i++)
                        assert(isxdigit((unsigned char) s[i]));
        }
        free(s);
        return 0;
}
