/* SPDX-License-Identifier: MIT */
/* PE/COFF section lookup (Microsoft PE format: DOS stub, "PE\0\0", COFF
 * file header, optional header, section table). See efi.h. */

#include "../common/macro.h"
#include "../common/unaligned.h"
#include "efi.h"

int efi_pe_find_section(const void *head, size_t n, uint64_t file_size, const char *name, uint64_t *ret_offset,
                        uint64_t *ret_size) {
        const uint8_t *h = head;
        size_t namelen = strlen(name);

        if (namelen == 0 || namelen > 8)
                return -EINVAL;
        if (n < 0x40 || h[0] != 'M' || h[1] != 'Z')
                return -EBADMSG;
        uint32_t pe = le32(h + 0x3c);
        if (pe > n || n - pe < 24 || memcmp(h + pe, "PE\0\0", 4) != 0)
                return -EBADMSG;
        const uint8_t *coff = h + pe + 4;
        unsigned sections = le16(coff + 2);
        size_t opt = le16(coff + 16);
        size_t table = (size_t) pe + 24 + opt;
        if (table > n || sections > 96 || (n - table) / 40 < sections)
                return -EBADMSG;

        for (unsigned i = 0; i < sections; i++) {
                const uint8_t *s = h + table + (size_t) i * 40;
                if (memcmp(s, name, namelen) != 0 || (namelen < 8 && s[namelen] != 0))
                        continue;
                uint64_t vsize = le32(s + 8), raw = le32(s + 16), off = le32(s + 20);
                uint64_t size = vsize && vsize < raw ? vsize : raw;
                if (off > file_size || size > file_size - off)
                        return -EBADMSG;
                *ret_offset = off;
                *ret_size = size;
                return 0;
        }
        return -ENOENT;
}
