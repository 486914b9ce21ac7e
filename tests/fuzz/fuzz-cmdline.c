/* SPDX-License-Identifier: MIT */
/* The kernel command line (efi/cmdline.c): the parser must accept any
 * bytes, keep every field within bounds and never fail but on memory. */
#include <assert.h>

#include "../../efi/cmdline.h"
#include "fuzz.h"

FUZZ_QUIET

static void count(void *u, const char *param, const char *why) {
        (void) param, (void) why;
        ++*(unsigned *) u;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char *s = fuzz_string(data, size);
        struct cmdline c;
        unsigned complaints = 0;
        assert(cmdline_parse(s, &c, count, &complaints) == 0);
        assert(strlen(c.roothash) == 0 || (strlen(c.roothash) >= 40 && strlen(c.roothash) <= ROOTHASH_HEX_MAX));
        assert(c.slot == _SLOT_INVALID || c.slot == SLOT_A || c.slot == SLOT_B);
        assert(c.verity_error >= 0 && c.verity_error < _VERITY_ERROR_MAX);
        assert(memchr(c.init, 0, sizeof(c.init)));
        free(s);
        return 0;
}
