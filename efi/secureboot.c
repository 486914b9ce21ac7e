/* SPDX-License-Identifier: MIT */
/* Secure Boot's databases (db, dbx: EFI_SIGNATURE_LISTs, UEFI 2.10 32.4.1)
 * and the firmware's decision on an image, as EDK2's
 * DxeImageVerificationLib makes it. Pure: the caller reads the variables
 * and does the cryptography (abctl/signature.c). See efi.h. */

#include "../common/macro.h"
#include "../common/unaligned.h"
#include "efi.h"

/* The signature types' GUIDs as bytes (mixed-endian), UEFI 2.10 32.4.1. */
static const struct {
        EfiSigType type;
        uint8_t guid[16];
        size_t size;    /* SignatureData's size, 0 for any */
        const char *name;
} types[] = {
        /* a5c059a1-94e4-4aa7-87b5-ab155c2bf072 */
        { EFI_SIG_X509, { 0xa1, 0x59, 0xc0, 0xa5, 0xe4, 0x94, 0xa7, 0x4a,
                          0x87, 0xb5, 0xab, 0x15, 0x5c, 0x2b, 0xf0, 0x72 }, 0, "X509" },
        /* c1c41626-504c-4092-aca9-41f936934328 */
        { EFI_SIG_SHA256, { 0x26, 0x16, 0xc4, 0xc1, 0x4c, 0x50, 0x92, 0x40,
                            0xac, 0xa9, 0x41, 0xf9, 0x36, 0x93, 0x43, 0x28 }, 32, "SHA256" },
        /* 826ca512-cf10-4ac9-b187-be01496631bd */
        { EFI_SIG_SHA1, { 0x12, 0xa5, 0x6c, 0x82, 0x10, 0xcf, 0xc9, 0x4a,
                          0xb1, 0x87, 0xbe, 0x01, 0x49, 0x66, 0x31, 0xbd }, 20, "SHA1" },
        /* ff3e5307-9fd0-48c9-85f1-8ad56c701e01 */
        { EFI_SIG_SHA384, { 0x07, 0x53, 0x3e, 0xff, 0xd0, 0x9f, 0xc9, 0x48,
                            0x85, 0xf1, 0x8a, 0xd5, 0x6c, 0x70, 0x1e, 0x01 }, 48, "SHA384" },
        /* 093e0fae-a6c4-4f50-9f1b-d41e2b89c19a */
        { EFI_SIG_SHA512, { 0xae, 0x0f, 0x3e, 0x09, 0xc4, 0xa6, 0x50, 0x4f,
                            0x9f, 0x1b, 0xd4, 0x1e, 0x2b, 0x89, 0xc1, 0x9a }, 64, "SHA512" },
        /* 3bd2a492-96c0-4079-b420-fcf98ef103ed: hash + EFI_TIME (16 bytes) */
        { EFI_SIG_X509_SHA256, { 0x92, 0xa4, 0xd2, 0x3b, 0xc0, 0x96, 0x79, 0x40,
                                 0xb4, 0x20, 0xfc, 0xf9, 0x8e, 0xf1, 0x03, 0xed }, 32 + 16, "X509_SHA256" },
        /* 7076876e-80c2-4ee6-aad2-28b349a6865b */
        { EFI_SIG_X509_SHA384, { 0x6e, 0x87, 0x76, 0x70, 0xc2, 0x80, 0xe6, 0x4e,
                                 0xaa, 0xd2, 0x28, 0xb3, 0x49, 0xa6, 0x86, 0x5b }, 48 + 16, "X509_SHA384" },
        /* 446dbf63-2502-4cda-bcfa-2465d2b0fe9d */
        { EFI_SIG_X509_SHA512, { 0x63, 0xbf, 0x6d, 0x44, 0x02, 0x25, 0xda, 0x4c,
                                 0xbc, 0xfa, 0x24, 0x65, 0xd2, 0xb0, 0xfe, 0x9d }, 64 + 16, "X509_SHA512" },
};

const char *efi_sig_type_to_string(EfiSigType t) {
        for (size_t i = 0; i < ELEMENTSOF(types); i++)
                if (types[i].type == t)
                        return types[i].name;
        return t == EFI_SIG_OTHER ? "other" : NULL;
}

#define LIST_HEADER 28u  /* SignatureType, SignatureListSize, SignatureHeaderSize, SignatureSize */

int efi_siglist_parse(const void *data, size_t size, struct efi_sig **ret, size_t *ret_n) {
        const uint8_t *p = data;
        size_t n = 0, cap = 0;

        /* First pass: check every length and count the entries. */
        for (size_t pos = 0; pos < size;) {
                if (size - pos < LIST_HEADER)
                        return -EBADMSG;
                uint64_t list = le32(p + pos + 16), header = le32(p + pos + 20), each = le32(p + pos + 24);
                if (list > size - pos || list < LIST_HEADER || header > list - LIST_HEADER || each <= 16)
                        return -EBADMSG;
                uint64_t body = list - LIST_HEADER - header;
                if (body % each != 0)
                        return -EBADMSG;
                for (size_t i = 0; i < ELEMENTSOF(types); i++)
                        if (memcmp(p + pos, types[i].guid, 16) == 0 && types[i].size && each != 16 + types[i].size)
                                return -EBADMSG;
                cap += (size_t) (body / each);
                pos += (size_t) list;
        }

        _cleanup_free_ struct efi_sig *sigs = cap ? calloc(cap, sizeof(*sigs)) : NULL;
        if (cap && !sigs)
                return -ENOMEM;
        unsigned li = 0;
        for (size_t pos = 0; pos < size; li++) {
                size_t list = le32(p + pos + 16), header = le32(p + pos + 20), each = le32(p + pos + 24);
                EfiSigType t = EFI_SIG_OTHER;
                for (size_t i = 0; i < ELEMENTSOF(types); i++)
                        if (memcmp(p + pos, types[i].guid, 16) == 0)
                                t = types[i].type;
                size_t count = (list - LIST_HEADER - header) / each;
                const uint8_t *e = p + pos + LIST_HEADER + header;
                for (size_t i = 0; i < count; i++, e += each) {
                        struct efi_sig *s = &sigs[n++];
                        s->type = t;
                        memcpy(s->owner, e, 16);
                        s->data = e + 16;
                        s->size = each - 16;
                        s->list = li;
                        s->index = (unsigned) i;
                }
                pos += list;
        }
        *ret = TAKE_PTR(sigs);
        *ret_n = n;
        return 0;
}

int efi_siglist_find(const struct efi_sig *sigs, size_t n, EfiSigType t, const void *data, size_t size) {
        for (size_t i = 0; i < n; i++) {
                /* the X509_SHA* types end in a 16-byte EFI_TIME of revocation */
                bool tbs = t == EFI_SIG_X509_SHA256 || t == EFI_SIG_X509_SHA384 || t == EFI_SIG_X509_SHA512;
                size_t have = tbs ? (sigs[i].size >= 16 ? sigs[i].size - 16 : 0) : sigs[i].size;
                if (sigs[i].type == t && have == size && sigs[i].size >= have && memcmp(sigs[i].data, data, size) == 0)
                        return (int) i;
        }
        return -1;
}

bool efi_sb_verdict_allowed(EfiSbVerdict v) {
        return v == EFI_SB_ALLOWED_DB_CERT || v == EFI_SB_ALLOWED_DB_HASH;
}

void efi_sb_decide(const struct efi_sb_signature_facts *facts, size_t n, int dbx_hash, int db_hash,
                   struct efi_sb_decision *ret) {
        /* Not signed: the image's SHA-256 must be in db and not in dbx. */
        if (n == 0) {
                if (dbx_hash >= 0)
                        *ret = (struct efi_sb_decision) { EFI_SB_REFUSED_DBX_HASH, -1, dbx_hash };
                else if (db_hash >= 0)
                        *ret = (struct efi_sb_decision) { EFI_SB_ALLOWED_DB_HASH, -1, db_hash };
                else
                        *ret = (struct efi_sb_decision) { EFI_SB_REFUSED_NOT_SIGNED, -1, -1 };
                return;
        }

        /* Signed: EDK2's loop over the certificate table. A dbx match
         * anywhere ends it refused, even after a signature that verified. */
        struct efi_sb_decision allowed = { _EFI_SB_VERDICT_INVALID, -1, -1 }, revoked = allowed;
        bool any_usable = false, any_matching = false;
        for (size_t i = 0; i < n; i++) {
                const struct efi_sb_signature_facts *f = &facts[i];
                if (!f->usable)
                        continue;
                any_usable = true;
                any_matching = any_matching || f->digest_matches;
                if (f->no_signer) {
                        *ret = (struct efi_sb_decision) { EFI_SB_REFUSED_NO_SIGNER, (int) i, -1 };
                        return;
                }
                if (f->dbx_cert >= 0) {
                        *ret = (struct efi_sb_decision) { EFI_SB_REFUSED_DBX_CERT, (int) i, f->dbx_cert };
                        return;
                }
                if (f->dbx_cert_hash >= 0) {
                        *ret = (struct efi_sb_decision) { EFI_SB_REFUSED_DBX_CERT_HASH, (int) i, f->dbx_cert_hash };
                        return;
                }
                if (allowed.verdict < 0 && f->db_cert >= 0 && f->digest_matches) {
                        if (f->db_cert_revoked < 0)
                                allowed = (struct efi_sb_decision) { EFI_SB_ALLOWED_DB_CERT, (int) i, f->db_cert };
                        else if (revoked.verdict < 0)
                                revoked = (struct efi_sb_decision) { EFI_SB_REFUSED_DBX_CERT_HASH, (int) i,
                                                                     f->db_cert_revoked };
                }
                if (f->dbx_image_hash >= 0) {
                        *ret = (struct efi_sb_decision) { EFI_SB_REFUSED_DBX_HASH, (int) i, f->dbx_image_hash };
                        return;
                }
                if (allowed.verdict < 0 && f->db_image_hash >= 0)
                        allowed = (struct efi_sb_decision) { EFI_SB_ALLOWED_DB_HASH, (int) i, f->db_image_hash };
        }
        if (allowed.verdict >= 0)
                *ret = allowed;
        else if (revoked.verdict >= 0)
                *ret = revoked;
        else if (any_usable && !any_matching)
                *ret = (struct efi_sb_decision) { EFI_SB_REFUSED_DIGEST_MISMATCH, -1, -1 };
        else
                *ret = (struct efi_sb_decision) { EFI_SB_REFUSED_NO_DB_SIGNER, -1, -1 };
}
