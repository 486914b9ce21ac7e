/* SPDX-License-Identifier: MIT */
/* The kernel command line and the UKI's pin file (efi/cmdline.c): the
 * parsers must accept any bytes, keep every field within bounds and never
 * fail but on memory (the pin: or on content, with nothing written). */
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

        /* The same bytes as a pin file, then applied over the command line. */
        struct uki_pin pin = { .roothash = "x", .slot = SLOT_B };
        int r = uki_pin_parse(s, &pin, count, &complaints);
        assert(r == 0 || r == -EBADMSG);
        if (r == 0) {
                assert(strlen(pin.roothash) >= 40 && strlen(pin.roothash) <= ROOTHASH_HEX_MAX);
                assert(pin.slot == _SLOT_INVALID || pin.slot == SLOT_A || pin.slot == SLOT_B);
                cmdline_apply_pin(&c, &pin, count, &complaints);
                assert(streq(c.roothash, pin.roothash));
        } else
                assert(streq(pin.roothash, "x") && pin.slot == SLOT_B);
        free(s);
        return 0;
}
