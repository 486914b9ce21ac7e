/* SPDX-License-Identifier: MIT */
/* Thin I/O: the boot manager's variables in an efivarfs directory. */

#include <ctype.h>
#include <dirent.h>

#include "../common/macro.h"
#include "efi.h"

void efi_boot_vars_done(struct efi_boot_vars *v) {
        for (size_t i = 0; v && i < v->n_entries; i++) {
                free(v->entries[i].description);
                free(v->entries[i].path);
        }
        if (v) {
                free(v->entries);
                *v = (struct efi_boot_vars) { .boot_next = -1 };
        }
}

static bool boot_entry_name(const char *file, char name[static 9]) {
        if (strlen(file) != 8 + 1 + 36 || !startswith(file, "Boot") || file[8] != '-' ||
            strcmp(file + 9, EFI_GLOBAL_GUID) != 0)
                return false;
        for (int i = 4; i < 8; i++)
                if (!isxdigit((unsigned char) file[i]))
                        return false;
        memcpy(name, file, 8);
        name[8] = 0;
        return true;
}

int efi_boot_vars_read(const char *dir, const char *esp_uuid, struct efi_boot_vars *ret) {
        struct efi_boot_vars v = { .boot_next = -1 };
        _cleanup_free_ void *val = NULL;
        size_t size;
        uint16_t u;
        int problems = 0, r;

        r = efi_var_read(dir, "BootNext", EFI_GLOBAL_GUID, NULL, &val, &size);
        if (r >= 0 && efi_parse_u16(val, size, &u) >= 0)
                v.boot_next = u;
        else if (r != -ENOENT)
                problems++;
        free(val);
        val = NULL;

        r = efi_var_read(dir, "BootOrder", EFI_GLOBAL_GUID, NULL, &val, &size);
        if (r >= 0 && size % 2 == 0 && size / 2 <= ELEMENTSOF(v.order)) {
                v.order_len = size / 2;
                for (size_t i = 0; i < v.order_len; i++)
                        v.order[i] = (uint16_t) (((uint8_t *) val)[2 * i] | (((uint8_t *) val)[2 * i + 1] << 8));
        } else if (r != -ENOENT)
                problems++;

        DIR *d = opendir(dir);
        struct dirent *de;
        while (d && (de = readdir(d))) {
                char name[9];
                _cleanup_free_ void *opt = NULL;
                struct efi_load_option lo;
                if (!boot_entry_name(de->d_name, name))
                        continue;
                if (efi_var_read(dir, name, EFI_GLOBAL_GUID, NULL, &opt, &size) < 0 ||
                    efi_load_option_parse(opt, size, &lo) < 0) {
                        problems++;
                        continue;
                }
                struct efi_boot_entry *n = realloc(v.entries, (v.n_entries + 1) * sizeof(*n));
                if (!n) {
                        efi_load_option_done(&lo);
                        break;
                }
                char g[37] = "";
                if (lo.has_partition)
                        efi_guid_to_string(lo.part_signature, g);
                v.entries = n;
                v.entries[v.n_entries++] = (struct efi_boot_entry) {
                        .id = (uint16_t) strtoul(name + 4, NULL, 16),
                        .active = lo.attributes & LOAD_OPTION_ACTIVE,
                        .description = TAKE_PTR(lo.description),
                        .path = TAKE_PTR(lo.file_path),
                        .on_esp = lo.has_partition && esp_uuid && strcasecmp(g, esp_uuid) == 0,
                };
                efi_load_option_done(&lo);
        }
        if (d)
                closedir(d);
        *ret = v;
        return problems;
}

int efi_boot_entry_create(const char *dir, const struct efi_boot_plan *plan, int s, const char *description,
                          const struct efi_partition *esp, const char *path) {
        _cleanup_free_ void *opt = NULL;
        size_t size;
        char name[9];
        int r;

        if (!plan->create[s])
                return 0;
        r = efi_load_option_build(description, esp, path, &opt, &size);
        if (r < 0)
                return r;
        efi_boot_option_name((uint16_t) plan->entry[s], name);
        return efi_var_write(dir, name, EFI_GLOBAL_GUID, EFI_VARIABLE_NV_BS_RT, opt, size);
}

int efi_boot_order_write(const char *dir, const struct efi_boot_plan *plan) {
        uint8_t buf[2 * ELEMENTSOF(plan->order)];
        if (!plan->order_changed)
                return 0;
        for (size_t i = 0; i < plan->order_len; i++)
                buf[2 * i] = (uint8_t) plan->order[i], buf[2 * i + 1] = (uint8_t) (plan->order[i] >> 8);
        return efi_var_write(dir, "BootOrder", EFI_GLOBAL_GUID, EFI_VARIABLE_NV_BS_RT, buf, 2 * plan->order_len);
}

int efi_boot_next_write(const char *dir, uint16_t id) {
        return efi_var_write(dir, "BootNext", EFI_GLOBAL_GUID, EFI_VARIABLE_NV_BS_RT, &id, 2);
}
