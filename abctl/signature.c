/* SPDX-License-Identifier: MIT */
/* The UKI's Authenticode signature against db and dbx, as the firmware
 * (EDK2's DxeImageVerificationLib) will check it at boot: a thin adapter
 * between efi/ (the PE digest ranges, the certificate table, the
 * signature lists and the decision, all pure) and OpenSSL's libcrypto
 * (PKCS#7 SignedData, X.509 chains). libcrypto because it is what EDK2
 * itself and sbsigntool verify with, so the edge cases (partial chains,
 * no time checks, any key purpose) behave the same; mbedtls 2.28, which
 * abctl links for TLS, has no PKCS#7. See signature.h. */

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pkcs7.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <sys/param.h>

#include "../common/hex.h"
#include "../common/log.h"
#include "../common/macro.h"
#include "../efi/efi.h"
#include "signature.h"

static void PKCS7_freep(PKCS7 **p) {
        PKCS7_free(*p);
}
static void X509_STORE_freep(X509_STORE **p) {
        X509_STORE_free(*p);
}
static void BIO_freep(BIO **p) {
        BIO_free(*p);
}
static void EVP_MD_CTX_freep(EVP_MD_CTX **p) {
        EVP_MD_CTX_free(*p);
}
static void ASN1_OBJECT_freep(ASN1_OBJECT **p) {
        ASN1_OBJECT_free(*p);
}
static void X509_ALGOR_freep(X509_ALGOR **p) {
        X509_ALGOR_free(*p);
}
static void ASN1_OCTET_STRING_freep(ASN1_OCTET_STRING **p) {
        ASN1_OCTET_STRING_free(*p);
}
static void sk_X509_freep(STACK_OF(X509) **p) {
        sk_X509_free(*p);
}

#define HELP "Sign it with a key whose certificate is in db (initramfs/mkuki --sign-key KEY --sign-cert CERT)"

/* ---- Secure Boot state and the databases --------------------------------- */

/* SecureBoot = 1 and SetupMode != 1 (UEFI 2.10 3.3: in setup mode the
 * firmware does not check). A variable that is there but not one byte
 * is taken as "on": checking then costs an install of an unsigned UKI,
 * not checking could cost the next boot. */
static bool secure_boot_on(const char *efivars, const char **ret_why) {
        _cleanup_free_ void *sb = NULL, *setup = NULL;
        size_t n_sb = 0, n_setup = 0;

        int r = efi_var_read(efivars, "SecureBoot", EFI_GLOBAL_GUID, NULL, &sb, &n_sb);
        if (r == -ENOENT) {
                *ret_why = "there is no SecureBoot variable (not booted with UEFI Secure Boot support)";
                return false;
        }
        if (r >= 0 && n_sb == 1 && ((uint8_t *) sb)[0] == 0) {
                *ret_why = "SecureBoot is 0";
                return false;
        }
        r = efi_var_read(efivars, "SetupMode", EFI_GLOBAL_GUID, NULL, &setup, &n_setup);
        if (r >= 0 && n_setup == 1 && ((uint8_t *) setup)[0] == 1) {
                *ret_why = "the firmware is in setup mode (SetupMode is 1)";
                return false;
        }
        return true;
}

struct sigdb {
        const char *name;
        void *raw;
        size_t size;
        struct efi_sig *sigs;
        size_t n;
        X509 **certs;   /* parsed X509 entries (NULL where not X509 or not DER) */
};

static void sigdb_done(struct sigdb *d) {
        for (size_t i = 0; d->certs && i < d->n; i++)
                X509_free(d->certs[i]);
        free(d->certs);
        free(d->sigs);
        free(d->raw);
        *d = (struct sigdb) {};
}

/* A missing variable is an empty database, as EDK2 has it. */
static int sigdb_load(const char *efivars, const char *name, struct sigdb *ret) {
        struct sigdb d = { .name = name };
        int r = efi_var_read(efivars, name, EFI_IMAGE_SECURITY_DATABASE_GUID, NULL, &d.raw, &d.size);
        if (r == -ENOENT) {
                *ret = d;
                return 0;
        }
        if (r == -E2BIG)
                return log_error_errno(r, "The Secure Boot database %s is larger than abctl reads (%u bytes): cannot "
                                       "tell whether the firmware would start this UKI", name, EFI_VARIABLE_SIZE_MAX);
        if (r < 0)
                return log_error_errno(r, "Cannot read the Secure Boot database %s from %s: %m", name, efivars);
        r = efi_siglist_parse(d.raw, d.size, &d.sigs, &d.n);
        if (r < 0) {
                sigdb_done(&d);
                return log_error_errno(r, "The Secure Boot database %s in %s is not a valid EFI_SIGNATURE_LIST "
                                       "sequence: cannot tell whether the firmware would start this UKI", name, efivars);
        }
        d.certs = d.n ? calloc(d.n, sizeof(X509 *)) : NULL;
        if (d.n && !d.certs) {
                sigdb_done(&d);
                return log_error_errno(-ENOMEM, "Out of memory");
        }
        for (size_t i = 0; i < d.n; i++) {
                const unsigned char *p = d.sigs[i].data;
                if (d.sigs[i].type == EFI_SIG_X509 && d.sigs[i].size <= INT32_MAX)
                        d.certs[i] = d2i_X509(NULL, &p, (long) d.sigs[i].size);
        }
        ERR_clear_error();
        *ret = d;
        return 0;
}

/* "db entry 2 (list 1, X509 CN=...)" */
static void describe_entry(const struct sigdb *d, int i, char *buf, size_t size);

/* ---- names ------------------------------------------------------------------- */

static void name_of(const X509_NAME *n, char *buf, size_t size) {
        int i = n ? X509_NAME_get_index_by_NID(n, NID_commonName, -1) : -1;
        unsigned char *utf8 = NULL;
        if (i >= 0 && ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(n, i))) >= 0) {
                (void) snprintf(buf, size, "CN=%s", (const char *) utf8);
                OPENSSL_free(utf8);
        } else if (n)
                (void) X509_NAME_oneline(n, buf, (int) size);
        else
                (void) snprintf(buf, size, "(no name)");
}

static void describe_cert(const X509 *x, char *buf, size_t size) {
        char subject[160], issuer[160];
        name_of(X509_get_subject_name(x), subject, sizeof(subject));
        name_of(X509_get_issuer_name(x), issuer, sizeof(issuer));
        (void) snprintf(buf, size, "\"%s\" (issued by \"%s\")", subject, issuer);
}

static void describe_entry(const struct sigdb *d, int i, char *buf, size_t size) {
        if (i < 0 || (size_t) i >= d->n || !d->certs) {
                (void) snprintf(buf, size, "%s (no entry)", d->name);
                return;
        }
        const struct efi_sig *s = &d->sigs[i];
        char what[400] = "";
        if (s->type == EFI_SIG_X509 && d->certs[i])
                describe_cert(d->certs[i], what, sizeof(what));
        else {
                hex_encode(s->data, MIN(s->size, (size_t) 32), what);
        }
        (void) snprintf(buf, size, "%s entry %d (signature list %u, %s %s)", d->name, i, s->list,
                        efi_sig_type_to_string(s->type), what);
}

/* ---- the image's digest -------------------------------------------------------- */

static int image_digest(const uint8_t *img, const struct efi_pe_authenticode *a, const EVP_MD *md,
                        uint8_t ret[static EVP_MAX_MD_SIZE], unsigned *ret_len) {
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        if (!ctx || EVP_DigestInit_ex(ctx, md, NULL) != 1)
                return -ENOMEM;
        for (size_t i = 0; i < a->n_ranges; i++)
                if (EVP_DigestUpdate(ctx, img + a->range[i].offset, a->range[i].size) != 1)
                        return -EIO;
        return EVP_DigestFinal_ex(ctx, ret, ret_len) == 1 ? 0 : -EIO;
}

static EfiSigType hash_sig_type(const EVP_MD *md) {
        switch (EVP_MD_get_type(md)) {
        case NID_sha1:
                return EFI_SIG_SHA1;
        case NID_sha256:
                return EFI_SIG_SHA256;
        case NID_sha384:
                return EFI_SIG_SHA384;
        case NID_sha512:
                return EFI_SIG_SHA512;
        default:
                return _EFI_SIG_TYPE_INVALID;
        }
}

/* ---- one signature: PKCS#7 with SpcIndirectDataContent ------------------------ */

struct spc {
        const EVP_MD *md;               /* the digest algorithm the signature says */
        const uint8_t *digest;          /* the image digest it signs */
        size_t digest_len;
        const uint8_t *content;         /* SpcIndirectDataContent's value: what the signature covers */
        size_t content_len;
};

/* The next DER element of [*p, end): its header must be definite and its
 * value inside. Returns its tag; *p moves to the value, *ret_len its size. */
static int der_next(const unsigned char **p, const unsigned char *end, long *ret_len) {
        long len;
        int tag, cls;
        if (*p >= end)
                return -EBADMSG;
        int r = ASN1_get_object(p, &len, &tag, &cls, end - *p);
        if (r & 0x80 || r == 0x21 || cls != V_ASN1_UNIVERSAL || len < 0 || len > end - *p)
                return -EBADMSG;
        *ret_len = len;
        return tag;
}

/* Authenticode (Microsoft, "Windows Authenticode Portable Executable
 * Signature Format"): SignedData whose content is SPC_INDIRECT_DATA_OBJID
 * 1.3.6.1.4.1.311.2.1.4, a SEQUENCE { SpcAttributeTypeAndOptionalValue,
 * DigestInfo { AlgorithmIdentifier, OCTET STRING digest } }. The signed
 * bytes are that SEQUENCE's value, without its tag and length. */
static int spc_parse(PKCS7 *p7, struct spc *ret) {
        _cleanup_(ASN1_OBJECT_freep) ASN1_OBJECT *spc_oid = OBJ_txt2obj("1.3.6.1.4.1.311.2.1.4", 1);
        if (!spc_oid)
                return -ENOMEM;
        if (!PKCS7_type_is_signed(p7) || !p7->d.sign || !p7->d.sign->contents ||
            !p7->d.sign->contents->type || OBJ_cmp(p7->d.sign->contents->type, spc_oid) != 0)
                return -EBADMSG;
        const ASN1_TYPE *other = p7->d.sign->contents->d.other;
        if (!other || other->type != V_ASN1_SEQUENCE || !other->value.sequence)
                return -EBADMSG;
        const unsigned char *p = other->value.sequence->data;
        const unsigned char *end = p + other->value.sequence->length;
        long len;

        if (der_next(&p, end, &len) != V_ASN1_SEQUENCE)
                return -EBADMSG;
        const unsigned char *content = p;
        end = p + len;
        /* SpcAttributeTypeAndOptionalValue: skipped. */
        if (der_next(&p, end, &len) != V_ASN1_SEQUENCE)
                return -EBADMSG;
        p += len;
        if (der_next(&p, end, &len) != V_ASN1_SEQUENCE)
                return -EBADMSG;
        const unsigned char *di_end = p + len;
        _cleanup_(X509_ALGOR_freep) X509_ALGOR *alg = d2i_X509_ALGOR(NULL, &p, di_end - p);
        if (!alg)
                return -EBADMSG;
        _cleanup_(ASN1_OCTET_STRING_freep) ASN1_OCTET_STRING *digest = d2i_ASN1_OCTET_STRING(NULL, &p, di_end - p);
        if (!digest)
                return -EBADMSG;
        const ASN1_OBJECT *oid;
        X509_ALGOR_get0(&oid, NULL, NULL, alg);
        const EVP_MD *md = EVP_get_digestbyobj(oid);
        /* The algorithms EDK2 hashes images with (HashPeImageByType). */
        if (!md || hash_sig_type(md) < 0)
                return -EOPNOTSUPP;
        if (ASN1_STRING_length(digest) != EVP_MD_get_size(md))
                return -EBADMSG;
        /* Points into other->value, which lives as long as p7. */
        ret->md = md;
        ret->digest = p - ASN1_STRING_length(digest);
        ret->digest_len = (size_t) ASN1_STRING_length(digest);
        ret->content = content;
        ret->content_len = (size_t) (end - content);
        return 0;
}

/* EDK2's Pkcs7Verify: the signature over content verifies with anchor as
 * the one trusted certificate, the chain built from the certificates the
 * signature carries; a chain may end at anchor wherever it is in it
 * (partial chains), no validity dates, any key usage. */
static bool verify_with(PKCS7 *p7, const struct spc *s, X509 *anchor) {
        _cleanup_(X509_STORE_freep) X509_STORE *store = X509_STORE_new();
        _cleanup_(BIO_freep) BIO *in = BIO_new_mem_buf(s->content, (int) s->content_len);
        if (!store || !in || X509_STORE_add_cert(store, anchor) != 1)
                return false;
        (void) X509_STORE_set_flags(store, X509_V_FLAG_PARTIAL_CHAIN | X509_V_FLAG_NO_CHECK_TIME);
        (void) X509_STORE_set_purpose(store, X509_PURPOSE_ANY);
        bool ok = PKCS7_verify(p7, NULL, store, in, NULL, PKCS7_BINARY) == 1;
        ERR_clear_error();
        return ok;
}

/* The certificate's TBSCertificate as it was encoded (EDK2's
 * X509GetTBSCert hashes those bytes; i2d_re_X509_tbs would encode it anew,
 * which differs for a certificate that is not strict DER). i2d_X509 gives
 * the encoding the certificate was parsed from; the TBS is the first
 * element of its outer SEQUENCE. */
static int tbs_der(X509 *x, unsigned char **ret_der, const unsigned char **ret_tbs, long *ret_len) {
        unsigned char *der = NULL;
        int n = i2d_X509(x, &der);
        if (n <= 0)
                return -EBADMSG;
        const unsigned char *p = der, *tbs;
        long len;
        int tag, class;
        if (ASN1_get_object(&p, &len, &tag, &class, n) & 0x80 || tag != V_ASN1_SEQUENCE)
                goto bad;
        tbs = p;
        if (ASN1_get_object(&p, &len, &tag, &class, n - (p - der)) & 0x80 || tag != V_ASN1_SEQUENCE)
                goto bad;
        *ret_der = der;
        *ret_tbs = tbs;
        *ret_len = (long) (p - tbs) + len;
        return 0;
bad:
        OPENSSL_free(der);
        ERR_clear_error();
        return -EBADMSG;
}

/* The dbx entry revoking certificate x by the hash of its TBSCertificate
 * (EFI_CERT_X509_SHA256/384/512, as EDK2's IsCertHashFoundInDbx), or -1. */
static int dbx_tbs_hash(X509 *x, const struct sigdb *dbx) {
        static const struct {
                EfiSigType type;
                const EVP_MD *(*md)(void);
        } algs[] = { { EFI_SIG_X509_SHA256, EVP_sha256 }, { EFI_SIG_X509_SHA384, EVP_sha384 },
                     { EFI_SIG_X509_SHA512, EVP_sha512 } };
        unsigned char *der = NULL;
        const unsigned char *tbs;
        long len;
        int found = -1;

        if (tbs_der(x, &der, &tbs, &len) < 0)
                return -1;
        for (size_t i = 0; i < ELEMENTSOF(algs) && found < 0; i++) {
                uint8_t h[EVP_MAX_MD_SIZE];
                unsigned hl = 0;
                if (EVP_Digest(tbs, (size_t) len, h, &hl, algs[i].md(), NULL) == 1)
                        found = efi_siglist_find(dbx->sigs, dbx->n, algs[i].type, h, hl);
        }
        OPENSSL_free(der);
        return found;
}

struct checked {
        struct efi_sb_signature_facts f;
        char signer[400];       /* who signed, for the message */
        const char *why_unusable;
};

static void check_signature(const uint8_t *img, const struct efi_pe_authenticode *a, const struct efi_pe_signature *sig,
                            const struct sigdb *db, const struct sigdb *dbx, struct checked *ret) {
        struct checked c = { .f = { .dbx_cert = -1, .dbx_cert_hash = -1, .db_cert = -1, .db_cert_revoked = -1,
                                    .dbx_image_hash = -1, .db_image_hash = -1 } };
        const unsigned char *p = img + sig->offset;
        struct spc spc;
        uint8_t digest[EVP_MAX_MD_SIZE];
        unsigned digest_len;

        (void) snprintf(c.signer, sizeof(c.signer), "(unknown)");
        _cleanup_(PKCS7_freep) PKCS7 *p7 = sig->size <= INT32_MAX ? d2i_PKCS7(NULL, &p, (long) sig->size) : NULL;
        ERR_clear_error();
        if (!p7) {
                c.why_unusable = "not a PKCS#7 structure";
                *ret = c;
                return;
        }
        int r = spc_parse(p7, &spc);
        if (r < 0) {
                c.why_unusable = r == -EOPNOTSUPP ? "its digest algorithm is none of SHA-1/256/384/512"
                                                  : "not an Authenticode signature (no SpcIndirectDataContent)";
                *ret = c;
                return;
        }
        if (image_digest(img, a, spc.md, digest, &digest_len) < 0) {
                c.why_unusable = "the image could not be hashed";
                *ret = c;
                return;
        }
        c.f.usable = true;
        c.f.digest_matches = digest_len == spc.digest_len && memcmp(digest, spc.digest, digest_len) == 0;

        _cleanup_(sk_X509_freep) STACK_OF(X509) *signers = PKCS7_get0_signers(p7, NULL, PKCS7_BINARY);
        ERR_clear_error();
        if (signers && sk_X509_num(signers) > 0)
                describe_cert(sk_X509_value(signers, 0), c.signer, sizeof(c.signer));

        /* dbx: a certificate the signature chains to (AuthenticodeVerify
         * with it as the anchor), then the signers' TBS hashes. */
        for (size_t i = 0; c.f.digest_matches && i < dbx->n && c.f.dbx_cert < 0; i++)
                if (dbx->certs[i] && verify_with(p7, &spc, dbx->certs[i]))
                        c.f.dbx_cert = (int) i;
        for (int i = 0; signers && i < sk_X509_num(signers) && c.f.dbx_cert_hash < 0; i++)
                c.f.dbx_cert_hash = dbx_tbs_hash(sk_X509_value(signers, i), dbx);
        /* EDK2's IsForbiddenByDbx refuses a signature whose signer
         * certificate it cannot get, whatever else allows the image. */
        c.f.no_signer = !signers || sk_X509_num(signers) == 0;

        /* db: the first certificate it chains to, unless that one is revoked by hash. */
        for (size_t i = 0; c.f.digest_matches && i < db->n && c.f.db_cert < 0; i++)
                if (db->certs[i] && verify_with(p7, &spc, db->certs[i])) {
                        c.f.db_cert = (int) i;
                        c.f.db_cert_revoked = dbx_tbs_hash(db->certs[i], dbx);
                }
        EfiSigType ht = hash_sig_type(spc.md);
        c.f.dbx_image_hash = efi_siglist_find(dbx->sigs, dbx->n, ht, digest, digest_len);
        c.f.db_image_hash = efi_siglist_find(db->sigs, db->n, ht, digest, digest_len);
        *ret = c;
}

/* ---- the check ------------------------------------------------------------------ */

int abctl_check_uki_signature(const char *efivars, const char *label, const void *uki, size_t size) {
        _cleanup_(sigdb_done) struct sigdb db = {}, dbx = {};
        struct efi_pe_authenticode a;
        struct efi_pe_signature sigs[EFI_PE_SIGNATURES_MAX];
        struct checked checked[EFI_PE_SIGNATURES_MAX];
        struct efi_sb_signature_facts facts[EFI_PE_SIGNATURES_MAX];
        struct efi_sb_decision d;
        const char *why_off = NULL;
        char entry[600] = "";
        int r;

        if (!secure_boot_on(efivars, &why_off)) {
                log_info("Secure Boot is off (%s): the UKI's signature is not checked", why_off);
                return 0;
        }
        (void) OPENSSL_init_crypto(OPENSSL_INIT_NO_LOAD_CONFIG, NULL);

        r = efi_pe_authenticode(uki, size, &a);
        if (r < 0)
                return log_error_errno(-EKEYREJECTED, "Secure Boot is on and the firmware would refuse the UKI of %s: its "
                                       "PE headers or sections are malformed or lie outside the file, so it cannot be "
                                       "hashed. Build it again (initramfs/mkuki)", label);
        int n = efi_pe_signatures(uki, size, &a, sigs, ELEMENTSOF(sigs));
        if (n == -E2BIG)
                return log_error_errno(-EKEYREJECTED, "The UKI of %s carries more than %u signatures; abctl does not "
                                       "check so many. Sign it once with a db key", label, EFI_PE_SIGNATURES_MAX);
        if (n < 0)
                return log_error_errno(-EKEYREJECTED, "Secure Boot is on and the firmware would refuse the UKI of %s: "
                                       "its certificate table (the signatures) is corrupt. %s", label, HELP);
        /* EDK2 takes an image with a certificate table as signed, and skips
         * entries that are not PKCS#7: with none left, nothing can allow it,
         * not even its digest in db (that counts for unsigned images only). */
        if (n == 0 && a.cert_size > 0)
                return log_error_errno(-EKEYREJECTED, "Secure Boot is on and the firmware would refuse the UKI of %s: "
                                       "its certificate table holds no Authenticode (PKCS#7) signature. %s", label,
                                       HELP);
        r = sigdb_load(efivars, "db", &db);
        if (r >= 0)
                r = sigdb_load(efivars, "dbx", &dbx);
        if (r < 0)
                return r;

        int dbx_hash = -1, db_hash = -1;
        uint8_t sha256[EVP_MAX_MD_SIZE];
        unsigned sha256_len = 0;
        r = image_digest(uki, &a, EVP_sha256(), sha256, &sha256_len);
        if (r < 0)
                return log_error_errno(r, "Hashing the UKI of %s failed", label);
        if (n == 0) {
                dbx_hash = efi_siglist_find(dbx.sigs, dbx.n, EFI_SIG_SHA256, sha256, sha256_len);
                db_hash = efi_siglist_find(db.sigs, db.n, EFI_SIG_SHA256, sha256, sha256_len);
        }
        for (int i = 0; i < n; i++) {
                check_signature(uki, &a, &sigs[i], &db, &dbx, &checked[i]);
                facts[i] = checked[i].f;
        }
        efi_sb_decide(facts, (size_t) n, dbx_hash, db_hash, &d);

        char hex[65];
        hex_encode(sha256, MIN(sha256_len, (size_t) 32), hex);
        const char *signer = d.signature >= 0 ? checked[d.signature].signer : n > 0 ? checked[0].signer : "";
        const struct sigdb *which = d.verdict == EFI_SB_ALLOWED_DB_CERT || d.verdict == EFI_SB_ALLOWED_DB_HASH ? &db : &dbx;
        if (d.entry >= 0)
                describe_entry(which, d.entry, entry, sizeof(entry));

        switch (d.verdict) {
        case EFI_SB_ALLOWED_DB_CERT:
                log_info("Secure Boot: the UKI of %s is signed by %s, which chains to %s: the firmware will start it",
                         label, signer, entry);
                return 0;
        case EFI_SB_ALLOWED_DB_HASH:
                log_info("Secure Boot: the UKI of %s is %s; its digest is allowed by %s: the firmware will start it",
                         label, n ? "signed by a certificate not in db" : "not signed", entry);
                return 0;
        case EFI_SB_REFUSED_NOT_SIGNED:
                return log_error_errno(-EKEYREJECTED, "Secure Boot is on and the firmware would refuse the UKI of %s: it "
                                       "is not signed, and its SHA-256 digest %s is not in db. %s", label, hex, HELP);
        case EFI_SB_REFUSED_NO_DB_SIGNER:
                if (d.signature < 0 && n > 0 && !checked[0].f.usable)
                        return log_error_errno(-EKEYREJECTED, "Secure Boot is on and the firmware would refuse the UKI "
                                               "of %s: its signature is unusable (%s), and its digest is not in db. %s",
                                               label, checked[0].why_unusable, HELP);
                return log_error_errno(-EKEYREJECTED, "Secure Boot is on and the firmware would refuse the UKI of %s: it "
                                       "is signed by %s, which chains to no certificate in db (%zu %s), and its "
                                       "digest is not in db. %s", label, signer, db.n, db.n == 1 ? "entry" : "entries", HELP);
        case EFI_SB_REFUSED_DIGEST_MISMATCH:
                return log_error_errno(-EKEYREJECTED, "Secure Boot is on and the firmware would refuse the UKI of %s: it "
                                       "carries a signature by %s, but not over this file (the UKI was changed after "
                                       "it was signed). Sign it again after the last change. %s", label, signer, HELP);
        case EFI_SB_REFUSED_DBX_CERT:
                return log_error_errno(-EKEYREJECTED, "Secure Boot is on and the firmware would refuse the UKI of %s: it "
                                       "is signed by %s, and its chain holds a certificate revoked by %s. %s with a key "
                                       "that is not revoked", label, signer, entry, HELP);
        case EFI_SB_REFUSED_DBX_CERT_HASH:
                return log_error_errno(-EKEYREJECTED, "Secure Boot is on and the firmware would refuse the UKI of %s: it "
                                       "is signed by %s, and a certificate of that signature is revoked by %s. %s with "
                                       "a key that is not revoked", label, signer, entry, HELP);
        case EFI_SB_REFUSED_DBX_HASH:
                return log_error_errno(-EKEYREJECTED, "Secure Boot is on and the firmware would refuse the UKI of %s%s%s: "
                                       "this very image is revoked, its digest is %s. Install a newer image",
                                       label, n ? ", signed by " : " (not signed)", n ? signer : "", entry);
        case EFI_SB_REFUSED_NO_SIGNER:
                return log_error_errno(-EKEYREJECTED, "Secure Boot is on and the firmware would refuse the UKI of %s: "
                                       "signature %d in it carries no certificate of its signer. %s", label,
                                       d.signature, HELP);
        default:
                return log_error_errno(-EINVAL, "Secure Boot: no decision on the UKI of %s", label);
        }
}
