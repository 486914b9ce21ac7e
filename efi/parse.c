/* SPDX-License-Identifier: MIT */
/* Pure decoders for EFI variable values. See efi.h for why by hand. */

#include <stdio.h>

#include "../common/macro.h"
#include "../common/unaligned.h"
#include "efi.h"

/* Appends one code point as UTF-8; out has room for 4 more bytes. */
static size_t utf8_put(char *out, uint32_t c) {
        if (c < 0x80) {
                out[0] = (char) c;
                return 1;
        }
        if (c < 0x800) {
                out[0] = (char) (0xc0 | (c >> 6));
                out[1] = (char) (0x80 | (c & 0x3f));
                return 2;
        }
        if (c < 0x10000) {
                out[0] = (char) (0xe0 | (c >> 12));
                out[1] = (char) (0x80 | ((c >> 6) & 0x3f));
                out[2] = (char) (0x80 | (c & 0x3f));
                return 3;
        }
        out[0] = (char) (0xf0 | (c >> 18));
        out[1] = (char) (0x80 | ((c >> 12) & 0x3f));
        out[2] = (char) (0x80 | ((c >> 6) & 0x3f));
        out[3] = (char) (0x80 | (c & 0x3f));
        return 4;
}

int efi_utf16_to_utf8(const void *data, size_t size, char **ret) {
        const uint8_t *p = data;

        if (size % 2 != 0)
                return -EBADMSG;

        /* Each UTF-16 unit becomes at most 3 bytes; a pair (2 units) 4. */
        _cleanup_free_ char *out = malloc(size / 2 * 3 + 1);
        if (!out)
                return -ENOMEM;

        size_t n = 0;
        for (size_t i = 0; i + 1 < size; i += 2) {
                uint32_t c = le16(p + i);
                if (c == 0)
                        break;
                if (c >= 0xd800 && c <= 0xdbff) {
                        if (i + 3 >= size)
                                return -EILSEQ;
                        uint32_t lo = le16(p + i + 2);
                        if (lo < 0xdc00 || lo > 0xdfff)
                                return -EILSEQ;
                        c = 0x10000 + ((c - 0xd800) << 10) + (lo - 0xdc00);
                        i += 2;
                } else if (c >= 0xdc00 && c <= 0xdfff)
                        return -EILSEQ;
                n += utf8_put(out + n, c);
        }
        out[n] = 0;
        *ret = TAKE_PTR(out);
        return 0;
}

int efi_parse_u16(const void *data, size_t size, uint16_t *ret) {
        if (size != 2)
                return -EBADMSG;
        *ret = le16(data);
        return 0;
}

void efi_boot_option_name(uint16_t id, char ret[static 9]) {
        (void) snprintf(ret, 9, "Boot%04X", id);
}

void efi_guid_to_string(const uint8_t g[static 16], char ret[static 37]) {
        (void) snprintf(ret, 37,
                        "%08x-%04x-%04x-%02x%02x-%02x%02x%02x%02x%02x%02x",
                        le32(g), le16(g + 4), le16(g + 6), g[8], g[9],
                        g[10], g[11], g[12], g[13], g[14], g[15]);
}

void efi_load_option_done(struct efi_load_option *o) {
        if (!o)
                return;
        free(o->description);
        free(o->file_path);
        *o = (struct efi_load_option) {};
}

#define DP_END          0x7f
#define DP_END_ENTIRE   0xff
#define DP_MEDIA        0x04
#define DP_MEDIA_HD     0x01
#define DP_MEDIA_FILE   0x04
#define DP_HD_LENGTH    42

/* Appends a file path node's text to *path, with one backslash between. */
static int path_append(char **path, const uint8_t *data, size_t size) {
        _cleanup_free_ char *piece = NULL;
        int r = efi_utf16_to_utf8(data, size, &piece);
        if (r < 0)
                return r;
        for (char *c = piece; *c; c++)
                if (*c == '/')
                        *c = '\\';
        if (!*path) {
                *path = TAKE_PTR(piece);
                return 0;
        }
        size_t a = strlen(*path), b = strlen(piece);
        bool sep = (a == 0 || (*path)[a - 1] != '\\') && piece[0] != '\\';
        char *n = realloc(*path, a + sep + b + 1);
        if (!n)
                return -ENOMEM;
        if (sep)
                n[a++] = '\\';
        memcpy(n + a, piece, b + 1);
        *path = n;
        return 0;
}

int efi_load_option_parse(const void *data, size_t size, struct efi_load_option *ret) {
        const uint8_t *p = data;
        _cleanup_(efi_load_option_done) struct efi_load_option o = {};
        int r;

        /* UINT32 Attributes; UINT16 FilePathListLength; CHAR16 Description[]; ... */
        if (size < 6)
                return -EBADMSG;
        o.attributes = le32(p);
        size_t fpl = le16(p + 4);

        size_t d = 6, dend = 0;
        for (size_t i = d; i + 1 < size; i += 2)
                if (le16(p + i) == 0) {
                        dend = i;
                        break;
                }
        if (dend == 0)
                return -EBADMSG;  /* description not terminated */
        r = efi_utf16_to_utf8(p + d, dend - d, &o.description);
        if (r < 0)
                return r;

        size_t off = dend + 2;
        if (fpl > size - off)
                return -EBADMSG;
        size_t end = off + fpl;

        bool terminated = false;
        while (off < end) {
                if (end - off < 4)
                        return -EBADMSG;
                uint8_t type = p[off], sub = p[off + 1];
                size_t len = le16(p + off + 2);
                if (len < 4 || len > end - off)
                        return -EBADMSG;
                if (type == DP_END) {
                        /* End of this instance (0x01) or of the whole path
                         * (0xff): either way the first instance is done. */
                        terminated = true;
                        break;
                }
                if (type == DP_MEDIA && sub == DP_MEDIA_HD && !o.has_partition) {
                        if (len != DP_HD_LENGTH)
                                return -EBADMSG;
                        const uint8_t *h = p + off + 4;
                        o.has_partition = true;
                        o.part_number = le32(h);
                        o.part_start = le64(h + 4);
                        o.part_size = le64(h + 12);
                        memcpy(o.part_signature, h + 20, 16);
                        o.part_format = h[36];
                        o.part_signature_type = h[37];
                } else if (type == DP_MEDIA && sub == DP_MEDIA_FILE) {
                        r = path_append(&o.file_path, p + off + 4, len - 4);
                        if (r < 0)
                                return r;
                }
                off += len;
        }
        if (!terminated)
                return -EBADMSG;

        *ret = o;
        /* o is cleaned up on return (cppcheck does not know cleanup attributes). */
        // cppcheck-suppress unreadVariable
        o = (struct efi_load_option) {}; // NOLINT(clang-analyzer-deadcode.DeadStores): see above
        return 0;
}
