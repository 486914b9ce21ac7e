/* SPDX-License-Identifier: MIT */
/* version_compare (common/version.c) on versions from an image's .osrel or
 * OCI config, which anyone who builds an image writes: the input split at
 * its first two NULs into up to three strings. Nothing is read past a
 * string's end (ASan), and the result is an order on them: -1, 0 or 1,
 * reflexive, antisymmetric and transitive. */
#include <assert.h>

#include "../../common/version.h"
#include "fuzz.h"

FUZZ_QUIET

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char *s = fuzz_string(data, size);
        const char *v[3] = { s, "", "" };
        char *end = s + size;

        for (int i = 1; i < 3; i++) {
                char *nul = memchr(v[i - 1], 0, (size_t) (end - v[i - 1]));
                if (!nul || nul == end)
                        break;
                v[i] = nul + 1;
        }
        int ab = version_compare(v[0], v[1]), bc = version_compare(v[1], v[2]), ac = version_compare(v[0], v[2]);
        assert(ab >= -1 && ab <= 1);
        assert(version_compare(v[0], v[0]) == 0);
        assert(version_compare(v[1], v[0]) == -ab);
        assert(version_compare(v[2], v[1]) == -bc);
        if (ab <= 0 && bc <= 0)
                assert(ac <= 0);
        if (ab == 0 && bc == 0)
                assert(ac == 0);
        free(s);
        return 0;
}
