/* SPDX-License-Identifier: MIT */
/* The boot manager's variables as the init reads them (efi/bootvars.c,
 * efi/bootmgr.c): BootNext, BootOrder and two Boot#### entries cut from the
 * input and written into a stand-in efivarfs directory, then planned the
 * way the init plans. Whatever the firmware left there, the plan must name
 * distinct entries and never create one that exists. */
#include <assert.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../efi/efi.h"
#include "fuzz.h"

FUZZ_QUIET

static char dir[64];

static void put(const char *name, const uint8_t *d, size_t n) {
        char p[160];
        snprintf(p, sizeof(p), "%s/%s-%s", dir, name, EFI_GLOBAL_GUID);
        int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        assert(fd >= 0);
        assert(write(fd, d, n) == (ssize_t) n);
        close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (!dir[0]) {
                snprintf(dir, sizeof(dir), "/tmp/abswitch-fuzz-XXXXXX");
                assert(mkdtemp(dir));
        }
        /* Four values, each prefixed by a 16-bit little-endian length (mod 512). */
        static const char *const names[] = { "BootNext", "BootOrder", "Boot1000", "Boot1001" };
        for (size_t i = 0; i < 4; i++) {
                char p[160];
                snprintf(p, sizeof(p), "%s/%s-%s", dir, names[i], EFI_GLOBAL_GUID);
                (void) unlink(p);
                if (size < 2)
                        continue;
                size_t n = (data[0] | (size_t) data[1] << 8) % 512;
                data += 2, size -= 2;
                if (n > size)
                        n = size;
                if (n > 0)
                        put(names[i], data, n);
                data += n, size -= n;
        }
        struct efi_boot_vars v;
        (void) efi_boot_vars_read(dir, "6cfd7ef9-36f4-4048-bae8-6d2b0fdcea0d", &v);
        const char *paths[2] = { "\\EFI\\abswitch\\boot-a.efi", "\\EFI\\abswitch\\boot-b.efi" };
        struct efi_boot_plan plan;
        if (efi_boot_plan(v.entries, v.n_entries, v.order, v.order_len, paths, (const bool[2]) { true, v.n_entries & 1 }, 0, 1, &plan) >= 0) {
                assert(plan.entry[0] != plan.entry[1] || plan.entry[0] < 0);
                /* Every number the plan adds to BootOrder names an entry, or one
                 * about to be created (what was there already is not ours to judge). */
                for (size_t j = 0; j < plan.order_len; j++) {
                        bool named = false;
                        for (size_t i = 0; i < v.n_entries; i++)
                                named |= v.entries[i].id == plan.order[j];
                        for (size_t i = 0; i < v.order_len; i++)
                                named |= v.order[i] == plan.order[j];
                        for (int s = 0; s < 2; s++)
                                named |= plan.create[s] && plan.entry[s] == plan.order[j];
                        assert(named);
                }
                for (size_t i = 0; i < v.n_entries; i++)
                        for (int s = 0; s < 2; s++)
                                assert(!plan.create[s] || plan.entry[s] != (int) v.entries[i].id);
        }
        efi_boot_vars_done(&v);
        return 0;
}
