/* SPDX-License-Identifier: MIT */
/* PE/COFF section lookup (Microsoft PE format: DOS stub, "PE\0\0", COFF
 * file header, optional header, section table). See efi.h. */

#include "../common/macro.h"
#include "../common/unaligned.h"
#include "efi.h"

/* The DOS stub's pointer to "PE\0\0" and the COFF file header after it:
 * the offset of the optional header (e_lfanew + 24), its declared size and
 * the number of sections. -EBADMSG when the first n bytes do not hold them. */
static int pe_headers(const uint8_t *h, size_t n, uint64_t *ret_opt, uint64_t *ret_opt_size, unsigned *ret_sections) {
        if (n < 0x40 || h[0] != 'M' || h[1] != 'Z')
                return -EBADMSG;
        uint64_t pe = le32(h + 0x3c);
        if (pe > n || n - pe < 24 || memcmp(h + pe, "PE\0\0", 4) != 0)
                return -EBADMSG;
        const uint8_t *coff = h + pe + 4;
        *ret_sections = le16(coff + 2);
        *ret_opt_size = le16(coff + 16);
        *ret_opt = pe + 24;
        return 0;
}

int efi_pe_find_section(const void *head, size_t n, uint64_t file_size, const char *name, uint64_t *ret_offset,
                        uint64_t *ret_size) {
        const uint8_t *h = head;
        size_t namelen = strlen(name);
        uint64_t opt, opt_size;
        unsigned sections;

        if (namelen == 0 || namelen > 8)
                return -EINVAL;
        if (pe_headers(h, n, &opt, &opt_size, &sections) < 0)
                return -EBADMSG;
        uint64_t table = opt + opt_size;
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

/* ---- Authenticode ----------------------------------------------------------
 *
 * Offsets in the optional header (PE format, "Optional Header Windows-
 * Specific Fields" and "Optional Header Data Directories"): CheckSum and
 * SizeOfHeaders are at the same place in PE32 and PE32+; the data
 * directories and their count move by 16 bytes in PE32+. */
#define OPT_SIZE_OF_HEADERS 60u
#define OPT_CHECKSUM        64u
#define DIR_SECURITY        4u   /* IMAGE_DIRECTORY_ENTRY_SECURITY */

static int add_range(struct efi_pe_authenticode *a, uint64_t offset, uint64_t size, uint64_t file_size) {
        if (offset > file_size || size > file_size - offset)
                return -EBADMSG;
        if (size == 0)
                return 0;
        if (a->n_ranges >= ELEMENTSOF(a->range))
                return -EBADMSG;
        a->range[a->n_ranges++] = (struct efi_pe_range) { offset, size };
        return 0;
}

int efi_pe_authenticode(const void *image, size_t n, struct efi_pe_authenticode *ret) {
        const uint8_t *h = image;
        struct efi_pe_authenticode a = {};
        uint64_t opt, opt_size;
        unsigned sections;
        int r;

        if (pe_headers(h, n, &opt, &opt_size, &sections) < 0)
                return -EBADMSG;
        if (opt_size > n - opt || opt_size < 2)
                return -EBADMSG;
        uint16_t magic = le16(h + opt);
        uint64_t dirs, count_at;
        if (magic == 0x10b)
                count_at = opt + 92, dirs = opt + 96;
        else if (magic == 0x20b)
                count_at = opt + 108, dirs = opt + 112;
        else
                return -EBADMSG;
        /* The directories must lie inside the optional header, as declared. */
        if (dirs > opt + opt_size)
                return -EBADMSG;
        uint64_t n_dirs = le32(h + count_at);
        if (n_dirs > (opt + opt_size - dirs) / 8)
                return -EBADMSG;
        uint64_t headers = le32(h + opt + OPT_SIZE_OF_HEADERS);
        uint64_t checksum = opt + OPT_CHECKSUM;
        uint64_t table = opt + opt_size;
        if (sections > EFI_PE_SECTIONS_MAX || table + (uint64_t) sections * 40 > n)
                return -EBADMSG;

        /* Headers: up to CheckSum, then past it to the security directory
         * entry (if there is one), then past that entry to SizeOfHeaders. */
        r = add_range(&a, 0, checksum, n);
        if (r < 0)
                return r;
        uint64_t sum = headers;
        if (n_dirs <= DIR_SECURITY) {
                /* No certificate table entry: EDK2 treats it as not signed. */
                if (headers < checksum + 4)
                        return -EBADMSG;
                r = add_range(&a, checksum + 4, headers - (checksum + 4), n);
        } else {
                uint64_t sec = dirs + DIR_SECURITY * 8;
                if (headers < sec + 8)
                        return -EBADMSG;
                r = add_range(&a, checksum + 4, sec - (checksum + 4), n);
                if (r >= 0)
                        r = add_range(&a, sec + 8, headers - (sec + 8), n);
                a.cert_offset = le32(h + sec);
                a.cert_size = le32(h + sec + 4);
                if (a.cert_size == 0)
                        a.cert_offset = 0;
                else if (a.cert_offset > n || a.cert_size > n - a.cert_offset)
                        return -EBADMSG;
        }
        if (r < 0)
                return r;

        /* Sections with raw data, by PointerToRawData; a stable insertion
         * sort as EDK2's, so equal offsets keep the table's order. */
        uint32_t off[EFI_PE_SECTIONS_MAX], len[EFI_PE_SECTIONS_MAX];
        unsigned k = 0;
        for (unsigned i = 0; i < sections; i++) {
                const uint8_t *s = h + table + (size_t) i * 40;
                uint32_t raw = le32(s + 16), ptr = le32(s + 20);
                if (raw == 0)
                        continue;
                unsigned pos = k++;
                while (pos > 0 && ptr < off[pos - 1]) {
                        off[pos] = off[pos - 1];
                        len[pos] = len[pos - 1];
                        pos--;
                }
                off[pos] = ptr;
                len[pos] = raw;
        }
        for (unsigned i = 0; i < k; i++) {
                r = add_range(&a, off[i], len[i], n);
                if (r < 0)
                        return r;
                sum += len[i];
        }

        /* What follows: from the count of bytes hashed (not from the last
         * section's end: the specification's rule, which EDK2 follows) to
         * the certificate table, taken as the end of the file. */
        if (n > sum) {
                if (n - sum > a.cert_size)
                        r = add_range(&a, sum, n - sum - a.cert_size, n);
                else if (n - sum < a.cert_size)
                        /* EDK2: mImageSize < CertSize + SumOfBytesHashed fails the hash. */
                        return -EBADMSG;
        }
        if (r < 0)
                return r;
        *ret = a;
        return 0;
}

#define WIN_CERT_TYPE_PKCS_SIGNED_DATA 0x0002u
#define WIN_CERT_TYPE_EFI_GUID         0x0EF1u
/* EFI_CERT_TYPE_PKCS7_GUID 4aafd29d-68df-49ee-8aa9-347d375665a7, as bytes. */
static const uint8_t cert_type_pkcs7[16] = { 0x9d, 0xd2, 0xaf, 0x4a, 0xdf, 0x68, 0xee, 0x49,
                                             0x8a, 0xa9, 0x34, 0x7d, 0x37, 0x56, 0x65, 0xa7 };

int efi_pe_signatures(const void *image, size_t n, const struct efi_pe_authenticode *a,
                      struct efi_pe_signature *ret, size_t max) {
        const uint8_t *h = image;
        size_t found = 0;

        if (a->cert_size == 0)
                return 0;
        if (a->cert_offset > n || a->cert_size > n - a->cert_offset)
                return -EBADMSG;
        uint64_t pos = a->cert_offset, end = a->cert_offset + a->cert_size;
        for (unsigned index = 0; pos < end; index++) {
                /* WIN_CERTIFICATE: dwLength, wRevision, wCertificateType. */
                if (end - pos <= 8)
                        return -EBADMSG;
                uint64_t len = le32(h + pos);
                uint16_t type = le16(h + pos + 6);
                if (len < 8 || len > end - pos)
                        return -EBADMSG;
                uint64_t data = pos + 8, size = len - 8;
                bool pkcs7 = false;
                /* An entry of a signature type too short for its header
                 * ends EDK2's walk early, which refuses the image. */
                if (type == WIN_CERT_TYPE_PKCS_SIGNED_DATA) {
                        if (size == 0)
                                return -EBADMSG;
                        pkcs7 = true;
                } else if (type == WIN_CERT_TYPE_EFI_GUID) {
                        if (size <= 16)
                                return -EBADMSG;
                        pkcs7 = memcmp(h + data, cert_type_pkcs7, 16) == 0;
                        data += 16, size -= 16;
                }
                if (pkcs7) {
                        if (found >= max)
                                return -E2BIG;
                        ret[found++] = (struct efi_pe_signature) { data, size, index };
                }
                /* The next entry starts 8-byte aligned (PE format 4.7). */
                pos += len + (len % 8 ? 8 - len % 8 : 0);
        }
        if (pos != end)
                return -EBADMSG;
        return (int) found;
}
