/* SPDX-License-Identifier: MIT */
/* Containers auth files (abctl/auth.c): an operator's or podman login's
 * file, looked up for a registry and repository the first bytes pick. An
 * accepted entry holds NUL-terminated credentials with a user name that is
 * not empty; a refused one leaves nothing behind and a reason. */
#include <assert.h>
#include <errno.h>

#include "../../abctl/auth.h"
#include "fuzz.h"

FUZZ_QUIET

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static const char *const registries[] = { "r.example.com", "r.example.com:5000", "docker.io", "localhost" };
        static const char *const repos[] = { "os", "fleet/os", "a/b/c/d", "library/os" };
        if (size < 1)
                return 0;
        char *s = fuzz_string(data + 1, size - 1), why[300] = "";
        struct registry_auth a;
        int r = registry_auth_lookup(s, size - 1, registries[data[0] & 3], repos[(data[0] >> 2) & 3], &a, why,
                                     sizeof(why));
        assert(r == -EINVAL || r == -ENOMEM || r == 0 || r == 1);
        if (r == 1) {
                assert(a.key[0]);
                assert((a.username == NULL) == (a.password == NULL));
                assert(!a.username || (a.username[0] && !strchr(a.username, ':')));
                assert(!a.identity_token || a.identity_token[0]);
        } else {
                assert(!a.username && !a.password && !a.identity_token && !a.key[0]);
                assert(r == 0 || (memchr(why, 0, sizeof(why)) && why[0]));
        }
        registry_auth_done(&a);
        free(s);
        return 0;
}
