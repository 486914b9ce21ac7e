/* SPDX-License-Identifier: MIT */
/* The damage record (efi/damage.c), read from NVRAM anyone root can write,
 * and dm-verity's uevent: any bytes are refused with a reason or parsed
 * into a record that formats and parses back to itself. */
#include <assert.h>

#include "../../efi/damage.h"
#include "fuzz.h"

FUZZ_QUIET

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct slot_damage d, back;
        char why[256] = "", text[DAMAGE_TEXT_MAX];
        int r = damage_parse((const char *) data, size, &d, why, sizeof(why));
        assert(r == 0 || r == -EBADMSG);
        if (r < 0)
                assert(why[0]);
        else {
                assert(d.slot == SLOT_A || d.slot == SLOT_B);
                assert(d.n <= DAMAGE_BLOCKS_MAX);
                int n = damage_format(&d, text, sizeof(text));
                assert(n > 0);
                assert(damage_parse(text, (size_t) n, &back, why, sizeof(why)) == 0);
                assert(back.slot == d.slot && back.n == d.n && back.time == d.time && streq(back.roothash, d.roothash));
                assert(memcmp(back.blocks, d.blocks, d.n * sizeof(d.blocks[0])) == 0);
        }
        DamageKind k;
        uint64_t b;
        r = damage_parse_uevent(data, size, 254, 0, &k, &b);
        assert(r == 0 || (r == 1 && (k == DAMAGE_DATA || k == DAMAGE_HASH)));
        return 0;
}
