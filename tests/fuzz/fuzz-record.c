/* SPDX-License-Identifier: MIT */
/* The boot record (/run/abswitch/boot.json, written by the init but
 * writable by anyone root in /run) through its one reader,
 * common/record.c's boot_record_parse, whatever the fields' types. What it
 * accepts also survives the writer: format, parse again, the same record. */
#include <assert.h>

#include "../../common/record.h"
#include "fuzz.h"

FUZZ_QUIET

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct boot_record r, again;
        char *text = NULL;

        if (boot_record_parse((const char *) data, size, &r) < 0)
                return 0;
        assert(r.identity.n_sources <= BOOT_RECORD_SOURCES_MAX);
        assert(r.efi.boot_current >= -1 && r.efi.boot_current <= 0xFFFF);
        assert(r.efi.boot_next >= -1 && r.efi.boot_next <= 0xFFFF);
        assert(r.efi.boot_current >= 0 || (!r.efi.boot_current_desc && !r.efi.boot_current_path));
        if (boot_record_format(&r, &text) < 0)
                abort();
        assert(boot_record_parse(text, strlen(text), &again) == 0);
        assert(boot_record_equal(&r, &again));
        boot_record_done(&again);
        boot_record_done(&r);
        free(text);
        return 0;
}
