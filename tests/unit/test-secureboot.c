/* SPDX-License-Identifier: MIT */
/* Secure Boot's pure parts (efi/pe.c Authenticode, efi/secureboot.c): the
 * byte ranges EDK2 hashes, the certificate table walk, EFI_SIGNATURE_LIST
 * parsing and the firmware's decision, on images and lists built here. The
 * same code on real sbsign'ed UKIs and efitools' lists is in
 * tests/tools/test_signature.py. */
#include "unit.h"

#include "../../common/macro.h"
#include "../../efi/efi.h"

static void put16(uint8_t *p, uint16_t v) {
        p[0] = (uint8_t) v, p[1] = (uint8_t) (v >> 8);
}
static void put32(uint8_t *p, uint32_t v) {
        for (int i = 0; i < 4; i++)
                p[i] = (uint8_t) (v >> (8 * i));
}

/* ---- a PE image builder ------------------------------------------------------ */

#define PE_OFF 0x80u
struct sec {
        uint32_t ptr, raw;
};
struct pe {
        uint8_t *buf;
        size_t size;
        uint64_t opt, checksum, secdir, headers;
};

/* PE32+ (or PE32) with n_dirs directories, the sections' file ranges, and a
 * file of size bytes; SizeOfHeaders = headers. */
static struct pe pe_build(bool plus, uint32_t n_dirs, const struct sec *secs, unsigned n, uint32_t headers, size_t size) {
        struct pe p = { .buf = calloc(1, size), .size = size, .headers = headers };
        assert_non_null(p.buf);
        uint32_t dirs_at = plus ? 112 : 96;
        uint16_t opt_size = (uint16_t) (dirs_at + 8 * n_dirs);
        p.buf[0] = 'M', p.buf[1] = 'Z';
        put32(p.buf + 0x3c, PE_OFF);
        memcpy(p.buf + PE_OFF, "PE\0\0", 4);
        put16(p.buf + PE_OFF + 4 + 2, (uint16_t) n);
        put16(p.buf + PE_OFF + 4 + 16, opt_size);
        p.opt = PE_OFF + 24;
        put16(p.buf + p.opt, plus ? 0x20b : 0x10b);
        put32(p.buf + p.opt + 60, headers);
        put32(p.buf + p.opt + (plus ? 108 : 92), n_dirs);
        p.checksum = p.opt + 64;
        p.secdir = p.opt + dirs_at + 32;
        uint64_t table = p.opt + opt_size;
        for (unsigned i = 0; i < n; i++) {
                uint8_t *s = p.buf + table + 40 * i;
                memcpy(s, ".sec", 4);
                s[4] = (uint8_t) ('0' + i);
                put32(s + 8, secs[i].raw);
                put32(s + 16, secs[i].raw);
                put32(s + 20, secs[i].ptr);
        }
        return p;
}

static void pe_sign_table(struct pe *p, uint32_t offset, uint32_t size) {
        put32(p->buf + p->secdir, offset);
        put32(p->buf + p->secdir + 4, size);
}

static void expect_ranges(const struct efi_pe_authenticode *a, const struct efi_pe_range *want, size_t n) {
        assert_int_equal(a->n_ranges, n);
        for (size_t i = 0; i < n; i++) {
                assert_int_equal(a->range[i].offset, want[i].offset);
                assert_int_equal(a->range[i].size, want[i].size);
        }
}

static void test_ranges_unsigned(void **state) {
        const struct sec secs[] = { { 0x400, 0x200 }, { 0x600, 0x400 } };
        struct pe p = pe_build(true, 16, secs, 2, 0x400, 0xa00 + 5);
        struct efi_pe_authenticode a;
        assert_int_equal(efi_pe_authenticode(p.buf, p.size, &a), 0);
        /* Headers without CheckSum and the security entry; sections; the 5 bytes after them. */
        const struct efi_pe_range want[] = {
                { 0, p.checksum }, { p.checksum + 4, p.secdir - p.checksum - 4 }, { p.secdir + 8, 0x400 - p.secdir - 8 },
                { 0x400, 0x200 }, { 0x600, 0x400 }, { 0xa00, 5 },
        };
        expect_ranges(&a, want, ELEMENTSOF(want));
        assert_int_equal(a.cert_size, 0);
        assert_int_equal(a.cert_offset, 0);
        free(p.buf);
}

static void test_ranges_sorted_stable_and_empty_skipped(void **state) {
        /* Table order: B, empty, A, A' (same offset as A): hashed A, A', B. */
        const struct sec secs[] = { { 0x800, 0x100 }, { 0x300, 0 }, { 0x400, 0x200 }, { 0x400, 0x10 } };
        struct pe p = pe_build(true, 16, secs, 4, 0x400, 0x900);
        struct efi_pe_authenticode a;
        assert_int_equal(efi_pe_authenticode(p.buf, p.size, &a), 0);
        assert_int_equal(a.n_ranges, 3 + 3 + 1);
        assert_int_equal(a.range[3].offset, 0x400);
        assert_int_equal(a.range[3].size, 0x200);
        assert_int_equal(a.range[4].offset, 0x400);
        assert_int_equal(a.range[4].size, 0x10);
        assert_int_equal(a.range[5].offset, 0x800);
        /* The rest starts at the count hashed (0x400 + 0x310), not at the last section's end. */
        assert_int_equal(a.range[6].offset, 0x710);
        assert_int_equal(a.range[6].size, 0x900 - 0x710);
        free(p.buf);
}

static void test_ranges_signed(void **state) {
        const struct sec secs[] = { { 0x400, 0x200 } };
        /* Padding after the section, then a 0x40-byte certificate table at the end. */
        struct pe p = pe_build(true, 16, secs, 1, 0x400, 0x608 + 0x40);
        pe_sign_table(&p, 0x608, 0x40);
        struct efi_pe_authenticode a;
        assert_int_equal(efi_pe_authenticode(p.buf, p.size, &a), 0);
        assert_int_equal(a.cert_offset, 0x608);
        assert_int_equal(a.cert_size, 0x40);
        assert_int_equal(a.n_ranges, 5);
        assert_int_equal(a.range[4].offset, 0x600);
        assert_int_equal(a.range[4].size, 8);
        free(p.buf);

        /* The table right after the last section: nothing follows. */
        p = pe_build(true, 16, secs, 1, 0x400, 0x600 + 0x40);
        pe_sign_table(&p, 0x600, 0x40);
        assert_int_equal(efi_pe_authenticode(p.buf, p.size, &a), 0);
        assert_int_equal(a.n_ranges, 4);
        /* A table larger than what follows the hashed bytes: EDK2 fails the hash. */
        pe_sign_table(&p, 0x5f0, 0x50);
        assert_int_equal(efi_pe_authenticode(p.buf, p.size, &a), -EBADMSG);
        /* A table outside the file. */
        pe_sign_table(&p, 0x600, 0x41);
        assert_int_equal(efi_pe_authenticode(p.buf, p.size, &a), -EBADMSG);
        pe_sign_table(&p, 0xffffffffu, 0x10);
        assert_int_equal(efi_pe_authenticode(p.buf, p.size, &a), -EBADMSG);
        free(p.buf);
}

static void test_ranges_pe32_and_few_directories(void **state) {
        const struct sec secs[] = { { 0x400, 0x200 } };
        struct pe p = pe_build(false, 16, secs, 1, 0x400, 0x600);
        struct efi_pe_authenticode a;
        assert_int_equal(efi_pe_authenticode(p.buf, p.size, &a), 0);
        assert_int_equal(a.range[1].offset, p.checksum + 4);
        assert_int_equal(a.range[1].size, p.secdir - p.checksum - 4);
        free(p.buf);

        /* Four directories: no security entry; the headers are hashed past CheckSum whole. */
        p = pe_build(true, 4, secs, 1, 0x400, 0x600);
        assert_int_equal(efi_pe_authenticode(p.buf, p.size, &a), 0);
        const struct efi_pe_range want[] = { { 0, p.checksum }, { p.checksum + 4, 0x400 - p.checksum - 4 },
                                             { 0x400, 0x200 } };
        expect_ranges(&a, want, ELEMENTSOF(want));
        assert_int_equal(a.cert_size, 0);
        free(p.buf);
}

static void test_ranges_refused(void **state) {
        const struct sec secs[] = { { 0x400, 0x200 } };
        struct efi_pe_authenticode a;
        struct pe p = pe_build(true, 16, secs, 1, 0x400, 0x600);

        /* Every truncation: refused, never read past the end (ASan). */
        for (size_t n = 0; n < p.size; n++)
                assert_int_equal(efi_pe_authenticode(p.buf, n, &a), -EBADMSG);
        assert_int_equal(efi_pe_authenticode(p.buf, p.size, &a), 0);

        put16(p.buf + p.opt, 0x107);  /* magic */
        assert_int_equal(efi_pe_authenticode(p.buf, p.size, &a), -EBADMSG);
        put16(p.buf + p.opt, 0x20b);
        put32(p.buf + p.opt + 108, 17);  /* more directories than the optional header holds */
        assert_int_equal(efi_pe_authenticode(p.buf, p.size, &a), -EBADMSG);
        put32(p.buf + p.opt + 108, 16);
        put32(p.buf + p.opt + 60, (uint32_t) p.secdir + 4);  /* SizeOfHeaders inside the security entry */
        assert_int_equal(efi_pe_authenticode(p.buf, p.size, &a), -EBADMSG);
        put32(p.buf + p.opt + 60, 0x601);  /* SizeOfHeaders past the end */
        assert_int_equal(efi_pe_authenticode(p.buf, p.size, &a), -EBADMSG);
        put32(p.buf + p.opt + 60, 0x400);
        p.buf[0] = 'X';
        assert_int_equal(efi_pe_authenticode(p.buf, p.size, &a), -EBADMSG);
        free(p.buf);

        const struct sec out[] = { { 0x400, 0x201 } };  /* a section past the end */
        p = pe_build(true, 16, out, 1, 0x400, 0x600);
        assert_int_equal(efi_pe_authenticode(p.buf, p.size, &a), -EBADMSG);
        free(p.buf);
        const struct sec wrap[] = { { 0xfffffff0u, 0x20 } };  /* offset + size wraps */
        p = pe_build(true, 16, wrap, 1, 0x400, 0x600);
        assert_int_equal(efi_pe_authenticode(p.buf, p.size, &a), -EBADMSG);
        free(p.buf);
}

/* ---- the certificate table ---------------------------------------------------- */

static const uint8_t pkcs7_guid[16] = { 0x9d, 0xd2, 0xaf, 0x4a, 0xdf, 0x68, 0xee, 0x49,
                                        0x8a, 0xa9, 0x34, 0x7d, 0x37, 0x56, 0x65, 0xa7 };

/* A WIN_CERTIFICATE at p: length, revision 0x200, type, data; returns the aligned length. */
static size_t win_cert(uint8_t *p, uint16_t type, const uint8_t *guid, size_t data) {
        size_t len = 8 + (guid ? 16 : 0) + data;
        put32(p, (uint32_t) len);
        put16(p + 4, 0x200);
        put16(p + 6, type);
        if (guid)
                memcpy(p + 8, guid, 16);
        memset(p + 8 + (guid ? 16 : 0), 0x30, data);
        return len + (len % 8 ? 8 - len % 8 : 0);
}

static void test_signatures_walk(void **state) {
        uint8_t img[1024] = {};
        static const uint8_t other_guid[16] = { 1 };
        size_t at = 256, n = 0;
        n += win_cert(img + at + n, 0x0002, NULL, 13);        /* PKCS, padded to 8 */
        n += win_cert(img + at + n, 0x0EF1, other_guid, 8);   /* a GUID type we skip */
        n += win_cert(img + at + n, 0x0001, NULL, 4);         /* X.509 type: skipped, as EDK2 */
        n += win_cert(img + at + n, 0x0EF1, pkcs7_guid, 20);  /* PKCS7 by GUID */
        struct efi_pe_authenticode a = { .cert_offset = at, .cert_size = n };
        struct efi_pe_signature s[4];
        assert_int_equal(efi_pe_signatures(img, sizeof(img), &a, s, 4), 2);
        assert_int_equal(s[0].offset, at + 8);
        assert_int_equal(s[0].size, 13);
        assert_int_equal(s[0].index, 0);
        assert_int_equal(s[1].offset, at + 24 + 32 + 16 + 24);
        assert_int_equal(s[1].size, 20);
        assert_int_equal(s[1].index, 3);
        assert_int_equal(efi_pe_signatures(img, sizeof(img), &a, s, 1), -E2BIG);

        /* The table must end where the walk ends. */
        a.cert_size = n - 8;
        assert_int_equal(efi_pe_signatures(img, sizeof(img), &a, s, 4), -EBADMSG);
        a.cert_size = n + 8;
        assert_int_equal(efi_pe_signatures(img, sizeof(img), &a, s, 4), -EBADMSG);
        /* Unsigned. */
        a.cert_size = 0;
        assert_int_equal(efi_pe_signatures(img, sizeof(img), &a, s, 4), 0);
        /* Outside the image. */
        a = (struct efi_pe_authenticode) { .cert_offset = 1000, .cert_size = 32 };
        assert_int_equal(efi_pe_signatures(img, sizeof(img), &a, s, 4), -EBADMSG);
}

static void test_signatures_bad_entries(void **state) {
        uint8_t img[256] = {};
        struct efi_pe_signature s[4];
        struct efi_pe_authenticode a = { .cert_offset = 64, .cert_size = 32 };

        put32(img + 64, 4);  /* dwLength < 8 */
        assert_int_equal(efi_pe_signatures(img, sizeof(img), &a, s, 4), -EBADMSG);
        put32(img + 64, 40);  /* past the table */
        assert_int_equal(efi_pe_signatures(img, sizeof(img), &a, s, 4), -EBADMSG);
        put32(img + 64, 8);  /* a PKCS entry with no data */
        put16(img + 70, 0x0002);
        a.cert_size = 16;
        assert_int_equal(efi_pe_signatures(img, sizeof(img), &a, s, 4), -EBADMSG);
        put32(img + 64, 24);  /* a GUID entry with no room for data after its GUID */
        put16(img + 70, 0x0EF1);
        a.cert_size = 24;
        assert_int_equal(efi_pe_signatures(img, sizeof(img), &a, s, 4), -EBADMSG);
        a.cert_size = 8;  /* a table too short for one header */
        assert_int_equal(efi_pe_signatures(img, sizeof(img), &a, s, 4), -EBADMSG);
}

/* ---- EFI_SIGNATURE_LIST -------------------------------------------------------- */

static const uint8_t x509_guid[16] = { 0xa1, 0x59, 0xc0, 0xa5, 0xe4, 0x94, 0xa7, 0x4a,
                                       0x87, 0xb5, 0xab, 0x15, 0x5c, 0x2b, 0xf0, 0x72 };
static const uint8_t sha256_guid[16] = { 0x26, 0x16, 0xc4, 0xc1, 0x4c, 0x50, 0x92, 0x40,
                                         0xac, 0xa9, 0x41, 0xf9, 0x36, 0x93, 0x43, 0x28 };

/* A list at p of count entries of each bytes (owner + data), data filled with fill+i. */
static size_t esl(uint8_t *p, const uint8_t *guid, uint32_t header, uint32_t each, unsigned count, uint8_t fill) {
        uint32_t list = 28 + header + each * count;
        memcpy(p, guid, 16);
        put32(p + 16, list);
        put32(p + 20, header);
        put32(p + 24, each);
        memset(p + 28, 0xee, header);
        for (unsigned i = 0; i < count; i++) {
                uint8_t *e = p + 28 + header + each * i;
                memset(e, 0x11, 16);
                memset(e + 16, fill + i, each - 16);
        }
        return list;
}

static void test_siglist_parse(void **state) {
        uint8_t buf[512];
        size_t n = 0;
        n += esl(buf + n, x509_guid, 0, 16 + 40, 2, 0x40);
        n += esl(buf + n, sha256_guid, 4, 16 + 32, 3, 0x80);
        static const uint8_t unknown[16] = { 9 };
        n += esl(buf + n, unknown, 0, 16 + 7, 1, 0xc0);

        struct efi_sig *s = NULL;
        size_t k = 0;
        assert_int_equal(efi_siglist_parse(buf, n, &s, &k), 0);
        assert_int_equal(k, 6);
        assert_int_equal(s[0].type, EFI_SIG_X509);
        assert_int_equal(s[0].size, 40);
        assert_int_equal(s[1].data[0], 0x41);
        assert_int_equal(s[1].list, 0);
        assert_int_equal(s[1].index, 1);
        assert_int_equal(s[2].type, EFI_SIG_SHA256);
        assert_int_equal(s[4].data[0], 0x82);
        assert_int_equal(s[4].list, 1);
        assert_int_equal(s[4].index, 2);
        assert_int_equal(s[5].type, EFI_SIG_OTHER);
        assert_int_equal(s[0].owner[0], 0x11);

        uint8_t want[32];
        memset(want, 0x81, 32);
        assert_int_equal(efi_siglist_find(s, k, EFI_SIG_SHA256, want, 32), 3);
        assert_int_equal(efi_siglist_find(s, k, EFI_SIG_SHA1, want, 20), -1);
        want[31] = 0;
        assert_int_equal(efi_siglist_find(s, k, EFI_SIG_SHA256, want, 32), -1);
        free(s);

        /* Empty: an empty database. */
        assert_int_equal(efi_siglist_parse(buf, 0, &s, &k), 0);
        assert_int_equal(k, 0);
        free(s);

        assert_string_equal(efi_sig_type_to_string(EFI_SIG_X509_SHA256), "X509_SHA256");
        assert_null(efi_sig_type_to_string(_EFI_SIG_TYPE_INVALID));
}

static void test_siglist_refused(void **state) {
        uint8_t buf[256];
        struct efi_sig *s = NULL;
        size_t k = 0, n = esl(buf, x509_guid, 0, 16 + 40, 2, 0x40);

        /* Every truncation refused (and no read past it: ASan). */
        for (size_t i = 1; i < n; i++)
                assert_int_equal(efi_siglist_parse(buf, i, &s, &k), -EBADMSG);
        /* SignatureListSize below its header, past the end. */
        put32(buf + 16, 27);
        assert_int_equal(efi_siglist_parse(buf, n, &s, &k), -EBADMSG);
        put32(buf + 16, (uint32_t) n + 1);
        assert_int_equal(efi_siglist_parse(buf, n, &s, &k), -EBADMSG);
        put32(buf + 16, (uint32_t) n);
        /* SignatureSize of only a GUID, not dividing the rest, zero. */
        put32(buf + 24, 16);
        assert_int_equal(efi_siglist_parse(buf, n, &s, &k), -EBADMSG);
        put32(buf + 24, 17);
        assert_int_equal(efi_siglist_parse(buf, n, &s, &k), -EBADMSG);
        put32(buf + 24, 0);
        assert_int_equal(efi_siglist_parse(buf, n, &s, &k), -EBADMSG);
        /* SignatureHeaderSize past the list. */
        put32(buf + 24, 56);
        put32(buf + 20, 0xfffffff0u);
        assert_int_equal(efi_siglist_parse(buf, n, &s, &k), -EBADMSG);
        put32(buf + 20, 0);
        assert_int_equal(efi_siglist_parse(buf, n, &s, &k), 0);
        free(s);

        /* A SHA-256 list whose entries are not 16 + 32 bytes. */
        n = esl(buf, sha256_guid, 0, 16 + 31, 1, 0);
        assert_int_equal(efi_siglist_parse(buf, n, &s, &k), -EBADMSG);
}

/* ---- the decision, over every combination ---------------------------------------- */

static struct efi_sb_signature_facts facts_from(unsigned bits) {
        /* 9 bits: usable, digest_matches, dbx_cert, dbx_cert_hash, db_cert, db_cert_revoked, dbx hash, db hash,
         * no signer certificate. */
        return (struct efi_sb_signature_facts) {
                .usable = bits & 1, .digest_matches = bits & 2, .no_signer = bits & 256,
                .dbx_cert = bits & 4 ? 0 : -1, .dbx_cert_hash = bits & 8 ? 1 : -1,
                .db_cert = bits & 16 ? 2 : -1, .db_cert_revoked = bits & 32 ? 3 : -1,
                .dbx_image_hash = bits & 64 ? 4 : -1, .db_image_hash = bits & 128 ? 5 : -1,
        };
}

static bool refuses(const struct efi_sb_signature_facts *f) {
        return f->usable && (f->no_signer || f->dbx_cert >= 0 || f->dbx_cert_hash >= 0 || f->dbx_image_hash >= 0);
}
static bool allows(const struct efi_sb_signature_facts *f) {
        return f->usable && ((f->db_cert >= 0 && f->digest_matches && f->db_cert_revoked < 0) || f->db_image_hash >= 0);
}

static void test_decide_unsigned(void **state) {
        struct efi_sb_decision d;
        efi_sb_decide(NULL, 0, -1, -1, &d);
        assert_int_equal(d.verdict, EFI_SB_REFUSED_NOT_SIGNED);
        efi_sb_decide(NULL, 0, -1, 7, &d);
        assert_int_equal(d.verdict, EFI_SB_ALLOWED_DB_HASH);
        assert_int_equal(d.entry, 7);
        efi_sb_decide(NULL, 0, 3, 7, &d);
        assert_int_equal(d.verdict, EFI_SB_REFUSED_DBX_HASH);
        assert_int_equal(d.entry, 3);
}

/* Every combination of two signatures' facts (2^18): allowed exactly when no
 * usable signature hits dbx and one is allowed; a refusal names a usable
 * signature that hits dbx (the first, as EDK2 stops there); unusable
 * signatures never count. */
static void test_decide_every_pair(void **state) {
        for (unsigned x = 0; x < 512; x++)
                for (unsigned y = 0; y < 512; y++) {
                        struct efi_sb_signature_facts f[2] = { facts_from(x), facts_from(y) };
                        struct efi_sb_decision d;
                        efi_sb_decide(f, 2, 9, 9, &d);  /* unsigned-only inputs are ignored */
                        bool dbx = refuses(&f[0]) || refuses(&f[1]);
                        bool ok = !dbx && (allows(&f[0]) || allows(&f[1]));
                        assert_int_equal(efi_sb_verdict_allowed(d.verdict), ok);
                        if (dbx) {
                                int first = refuses(&f[0]) ? 0 : 1;
                                assert_int_equal(d.signature, first);
                                assert_true(d.verdict == EFI_SB_REFUSED_NO_SIGNER || d.verdict == EFI_SB_REFUSED_DBX_CERT ||
                                            d.verdict == EFI_SB_REFUSED_DBX_CERT_HASH ||
                                            d.verdict == EFI_SB_REFUSED_DBX_HASH);
                        } else if (ok) {
                                assert_true(allows(&f[d.signature]));
                                /* The first allowing signature is named, by cert before hash. */
                                assert_int_equal(d.signature, allows(&f[0]) ? 0 : 1);
                                if (d.verdict == EFI_SB_ALLOWED_DB_CERT)
                                        assert_int_equal(d.entry, 2);
                                else
                                        assert_int_equal(d.entry, 5);
                        } else {
                                assert_true(d.verdict == EFI_SB_REFUSED_NO_DB_SIGNER ||
                                            d.verdict == EFI_SB_REFUSED_DIGEST_MISMATCH ||
                                            d.verdict == EFI_SB_REFUSED_DBX_CERT_HASH);
                                if (d.verdict == EFI_SB_REFUSED_DBX_CERT_HASH)  /* a db certificate revoked by hash */
                                        assert_int_equal(d.entry, 3);
                                if (d.verdict == EFI_SB_REFUSED_DIGEST_MISMATCH)
                                        assert_true((f[0].usable || f[1].usable) &&
                                                    !(f[0].usable && f[0].digest_matches) &&
                                                    !(f[1].usable && f[1].digest_matches));
                        }
                }
}

static void test_decide_cases(void **state) {
        struct efi_sb_decision d;
        /* Signed by a db key: allowed by it. */
        struct efi_sb_signature_facts ok = facts_from(1 | 2 | 16);
        efi_sb_decide(&ok, 1, -1, -1, &d);
        assert_int_equal(d.verdict, EFI_SB_ALLOWED_DB_CERT);
        assert_int_equal(d.signature, 0);
        /* Signed by a stranger. */
        struct efi_sb_signature_facts stranger = facts_from(1 | 2);
        efi_sb_decide(&stranger, 1, -1, -1, &d);
        assert_int_equal(d.verdict, EFI_SB_REFUSED_NO_DB_SIGNER);
        /* Changed after signing. */
        struct efi_sb_signature_facts changed = facts_from(1);
        efi_sb_decide(&changed, 1, -1, -1, &d);
        assert_int_equal(d.verdict, EFI_SB_REFUSED_DIGEST_MISMATCH);
        /* Only unusable signatures. */
        struct efi_sb_signature_facts junk = facts_from(2 | 16);
        efi_sb_decide(&junk, 1, -1, -1, &d);
        assert_int_equal(d.verdict, EFI_SB_REFUSED_NO_DB_SIGNER);
        assert_int_equal(d.signature, -1);
        /* A good signature, then one from a revoked key: refused. */
        struct efi_sb_signature_facts two[2] = { facts_from(1 | 2 | 16), facts_from(1 | 2 | 4) };
        efi_sb_decide(two, 2, -1, -1, &d);
        assert_int_equal(d.verdict, EFI_SB_REFUSED_DBX_CERT);
        assert_int_equal(d.signature, 1);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_ranges_unsigned),
                cmocka_unit_test(test_ranges_sorted_stable_and_empty_skipped),
                cmocka_unit_test(test_ranges_signed),
                cmocka_unit_test(test_ranges_pe32_and_few_directories),
                cmocka_unit_test(test_ranges_refused),
                cmocka_unit_test(test_signatures_walk),
                cmocka_unit_test(test_signatures_bad_entries),
                cmocka_unit_test(test_siglist_parse),
                cmocka_unit_test(test_siglist_refused),
                cmocka_unit_test(test_decide_unsigned),
                cmocka_unit_test(test_decide_every_pair),
                cmocka_unit_test(test_decide_cases),
        };
        return cmocka_run_group_tests_name("secureboot", tests, NULL, NULL);
}
