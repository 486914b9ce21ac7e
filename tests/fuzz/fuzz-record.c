/* SPDX-License-Identifier: MIT */
/* The boot record abctl reads (/run/abswitch/boot.json, written by the init
 * but readable by anyone who can write /run): json-c's parser, then the
 * fields abctl takes from it (abctl/record.c), whatever their types. */
#include <assert.h>

#include "../../abctl/abctl.h"
#include "fuzz.h"

FUZZ_QUIET

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char *s = fuzz_string(data, size);
        json_object *o = json_tokener_parse(s);
        if (o) {
                struct abctl_record r;
                abctl_record_from_json(o, &r);
                assert(r.slot == _SLOT_INVALID || r.slot == SLOT_A || r.slot == SLOT_B);
                assert(memchr(r.disk, 0, sizeof(r.disk)) && memchr(r.source, 0, sizeof(r.source)));
                json_object_put(o);
        }
        free(s);
        return 0;
}
