/* SPDX-License-Identifier: MIT */
/* Pure: building load options, planning Boot#### entries and BootOrder. */

#include <ctype.h>

#include "../common/macro.h"
#include "../common/unaligned.h"
#include "efi.h"

int efi_guid_from_string(const char *s, uint8_t g[static 16]) {
        /* 8-4-4-4-12; the first three groups little-endian (EFI_GUID). */
        static const int order[16] = { 3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15 };
        uint8_t raw[16];
        int n = 0;

        if (!s || strlen(s) != 36)
                return -EINVAL;
        for (int i = 0; i < 36; i++) {
                if (i == 8 || i == 13 || i == 18 || i == 23) {
                        if (s[i] != '-')
                                return -EINVAL;
                        continue;
                }
                if (!isxdigit((unsigned char) s[i]) || !isxdigit((unsigned char) s[i + 1]))
                        return -EINVAL;
                char b[3] = { s[i], s[i + 1], 0 };
                raw[n++] = (uint8_t) strtoul(b, NULL, 16);
                i++;
        }
        for (int i = 0; i < 16; i++)
                g[order[i]] = raw[i];
        return 0;
}

/* ASCII only: our descriptions and paths are ours. */
static int put_ucs2(uint8_t *p, const char *s) {
        size_t n = 0;
        for (; *s; s++) {
                if ((unsigned char) *s >= 0x80)
                        return -EINVAL;
                n += put16(p + n, (uint16_t) (*s == '/' ? '\\' : *s));
        }
        n += put16(p + n, 0);
        return (int) n;
}

int efi_load_option_build(const char *desc, const struct efi_partition *esp, const char *path, void **ret,
                          size_t *ret_size) {
        size_t dl = strlen(desc), pl = strlen(path);
        if (dl > 128 || pl > 512)
                return -E2BIG;
        size_t fp_len = 42 + 4 + (pl + 1) * 2 + 4;
        size_t total = 6 + (dl + 1) * 2 + fp_len;
        uint8_t *b = calloc(1, total), *p = b;
        int k;
        if (!b)
                return -ENOMEM;

        p += put32(p, LOAD_OPTION_ACTIVE);
        p += put16(p, (uint16_t) fp_len);
        if ((k = put_ucs2(p, desc)) < 0)
                goto inval;
        p += k;
        /* HD(number, GPT, guid, start, size): UEFI 10.3.5.1 */
        *p++ = 0x04, *p++ = 0x01;
        p += put16(p, 42);
        p += put32(p, esp->number);
        p += put64(p, esp->start);
        p += put64(p, esp->size);
        memcpy(p, esp->guid, 16), p += 16;
        *p++ = 0x02, *p++ = 0x02;
        /* File(path): UEFI 10.3.5.4 */
        *p++ = 0x04, *p++ = 0x04;
        p += put16(p, (uint16_t) (4 + (pl + 1) * 2));
        if ((k = put_ucs2(p, path)) < 0)
                goto inval;
        p += k;
        *p++ = 0x7f, *p++ = 0xff;
        p += put16(p, 4);

        *ret = b;
        *ret_size = (size_t) (p - b);
        return 0;
inval:
        free(b);
        return -EINVAL;
}

static bool have_id(const struct efi_boot_entry *e, size_t n, uint16_t id) {
        for (size_t i = 0; i < n; i++)
                if (e[i].id == id)
                        return true;
        return false;
}

int efi_boot_plan(const struct efi_boot_entry *e, size_t n, const uint16_t *order, size_t order_len,
                  const char *const paths[2], const bool want[2], int first, int second, struct efi_boot_plan *ret) {
        struct efi_boot_plan p = { .entry = { -1, -1 } };
        uint16_t next_free = 0;

        if (order_len > ELEMENTSOF(p.order) - 2)
                return -E2BIG;

        for (int s = 0; s < 2; s++) {
                /* Prefer an entry already in BootOrder, then any. */
                for (int pass = 0; pass < 2 && p.entry[s] < 0; pass++)
                        for (size_t i = 0; i < n; i++) {
                                if (!e[i].on_esp || !e[i].active || !e[i].path || strcasecmp(e[i].path, paths[s]) != 0)
                                        continue;
                                bool in_order = false;
                                for (size_t j = 0; j < order_len; j++)
                                        in_order |= order[j] == e[i].id;
                                if (pass == 0 && !in_order)
                                        continue;
                                p.entry[s] = e[i].id;
                                break;
                        }
                if (p.entry[s] < 0 && want[s]) {
                        /* A free number, past the ones firmware hands out first. */
                        uint16_t id = next_free ? next_free : 0x1000;
                        while (have_id(e, n, id) || (s == 1 && p.create[0] && p.entry[0] == id))
                                id++;
                        p.entry[s] = id;
                        p.create[s] = true;
                        next_free = (uint16_t) (id + 1);
                }
        }

        /* BootOrder: ours in the wanted order, then everything else as it
         * was. Only numbers that name an entry, or one about to be created:
         * firmware drops a number without an entry at every boot, and
         * putting it back every boot wears NVRAM. */
        size_t k = 0;
        const int lead[2] = { first, second };
        for (int i = 0; i < 2; i++)
                if (lead[i] >= 0 && lead[i] < 2 && p.entry[lead[i]] >= 0 && (i == 0 || lead[1] != lead[0]))
                        p.order[k++] = (uint16_t) p.entry[lead[i]];
        for (size_t j = 0; j < order_len; j++) {
                bool dup = false;
                for (size_t i = 0; i < k; i++)
                        dup |= p.order[i] == order[j];
                if (!dup)
                        p.order[k++] = order[j];
        }
        /* The entries of slots that can boot must be somewhere in BootOrder,
         * or firmware may never try them. */
        for (int s = 0; s < 2; s++) {
                bool in = false;
                if (!want[s] || p.entry[s] < 0)
                        continue;
                for (size_t i = 0; i < k; i++)
                        in |= p.order[i] == p.entry[s];
                if (!in)
                        p.order[k++] = (uint16_t) p.entry[s];
        }
        p.order_len = k;
        p.order_changed = k != order_len || memcmp(p.order, order, k * sizeof(uint16_t)) != 0;
        *ret = p;
        return 0;
}
