/* SPDX-License-Identifier: MIT */
#pragma once

/* efi: EFI variables through efivarfs, and decoding of what they hold.
 *
 * The decoders (efi_utf16_to_utf8, efi_parse_u16, efi_load_option_parse) are
 * pure and distrust their input: firmware and other operating systems write
 * these variables, and a truncated or garbage value must be an error, never
 * an out-of-bounds read. They are hand-written because no library we can
 * link statically decodes EFI_LOAD_OPTION (libefivar is glibc-only and
 * dlopen-heavy); the layouts follow UEFI 2.10, sections 3.1.3 (load options)
 * and 10.3 (device path nodes). */

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EFI_LOADER_GUID "4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"  /* systemd stub and boot loader */
#define EFI_GLOBAL_GUID "8be4df61-93ca-11d2-aa0d-00e098032b8c"  /* BootOrder, Boot####, ... */

#define EFIVARFS_PATH "/sys/firmware/efi/efivars"

/* Anything larger is not a variable we read; refuse rather than allocate. */
#define EFI_VARIABLE_SIZE_MAX (64u * 1024u)

#define EFI_VARIABLE_NON_VOLATILE       0x1u
#define EFI_VARIABLE_BOOTSERVICE_ACCESS 0x2u
#define EFI_VARIABLE_RUNTIME_ACCESS     0x4u

#define LOAD_OPTION_ACTIVE 0x1u

/* Reads <dir>/<name>-<guid>: 4 bytes of attributes, then the value. The
 * value is returned with two NUL bytes appended (not counted in ret_size) so
 * that a UTF-16 string is always terminated. -ENOENT when absent,
 * -EBADMSG when shorter than the attribute header, -E2BIG when too large. */
int efi_var_read(const char *dir, const char *name, const char *guid,
                 uint32_t *ret_attr, void **ret_value, size_t *ret_size);

/* UTF-16LE (possibly NUL-terminated, odd trailing byte refused) to UTF-8.
 * Unpaired surrogates are refused (-EILSEQ); stops at the first NUL. */
int efi_utf16_to_utf8(const void *data, size_t size, char **ret);

/* A variable read as a UTF-16 string: efi_var_read() + efi_utf16_to_utf8(). */
int efi_var_read_string(const char *dir, const char *name, const char *guid, char **ret);

/* A 16-bit little-endian value of exactly two bytes (BootCurrent, BootNext). */
int efi_parse_u16(const void *data, size_t size, uint16_t *ret);

struct efi_load_option {
        uint32_t attributes;
        char *description;
        /* The first hard-drive media node, if any (UEFI 10.3.5.1). */
        bool has_partition;
        uint32_t part_number;
        uint64_t part_start;        /* in logical blocks */
        uint64_t part_size;
        uint8_t part_signature[16]; /* the partition's GUID for GPT */
        uint8_t part_format;        /* 2 = GPT */
        uint8_t part_signature_type;/* 2 = GUID */
        /* File path media nodes, joined, in UTF-8 with backslashes; NULL if none. */
        char *file_path;
};

/* Parses an EFI_LOAD_OPTION. Only the first device path instance is read,
 * as the firmware does. -EBADMSG on any length that does not add up. */
int efi_load_option_parse(const void *data, size_t size, struct efi_load_option *ret);
void efi_load_option_done(struct efi_load_option *o);

/* "Boot0001" for 1. */
void efi_boot_option_name(uint16_t id, char ret[static 9]);

/* GUID bytes (mixed-endian, as on disk and in EFI) to lower-case text. */
void efi_guid_to_string(const uint8_t g[static 16], char ret[static 37]);

/* ---- writing (efivar.c) ---- */

#define EFI_VARIABLE_NV_BS_RT \
        (EFI_VARIABLE_NON_VOLATILE | EFI_VARIABLE_BOOTSERVICE_ACCESS | EFI_VARIABLE_RUNTIME_ACCESS)

/* Writes <dir>/<name>-<guid> in one write of attributes + value, clearing
 * the immutable flag efivarfs sets on existing variables and restoring it.
 * Skips the write when the variable already holds exactly this (NVRAM
 * wears). Returns 1 when written, 0 when skipped. */
int efi_var_write(const char *dir, const char *name, const char *guid, uint32_t attr,
                  const void *value, size_t size);
/* Deletes the variable; 0 also when it was not there. */
int efi_var_delete(const char *dir, const char *name, const char *guid);

/* ---- load options and the boot manager's variables (pure, bootmgr.c) ---- */

struct efi_partition {
        uint32_t number;
        uint64_t start, size;        /* in 512-byte sectors, as sysfs reports them */
        uint8_t guid[16];            /* EFI byte order */
};

/* Text GUID to EFI byte order; -EINVAL if malformed. */
int efi_guid_from_string(const char *s, uint8_t ret[static 16]);

/* An active EFI_LOAD_OPTION: HD(partition)/File(path)/End. path uses backslashes. */
int efi_load_option_build(const char *description, const struct efi_partition *esp, const char *path,
                          void **ret, size_t *ret_size);

/* What the boot manager holds: BootOrder and the parsed Boot#### entries. */
struct efi_boot_entry {
        uint16_t id;
        bool active;
        char *description;
        char *path;                  /* may be NULL */
        bool on_esp;                 /* its HD() node names the ESP we were booted from */
};

struct efi_boot_plan {
        int entry[2];                /* Boot#### id for slot A and B; -1 when missing */
        bool create[2];              /* entry[i] is new: create Boot#### for it */
        uint16_t order[64];          /* the BootOrder to have */
        size_t order_len;
        bool order_changed;
};

/* Plans the entries of the two slots' UKIs (paths[0] for A, paths[1] for B):
 * reuses an entry on the ESP with the same path (case-insensitive), else,
 * for a slot in want (one that can boot), picks a free number for a new
 * one; a slot not wanted and without an entry gets none (-1) and is not put
 * into BootOrder. first is the slot whose entry goes first in BootOrder
 * (the committed one), or -1 to leave the order of our entries alone;
 * second, if >= 0, follows it. Other entries keep their relative order
 * after ours. Every number in the planned BootOrder names an entry. */
int efi_boot_plan(const struct efi_boot_entry *entries, size_t n_entries, const uint16_t *order, size_t order_len,
                  const char *const paths[2], const bool want[2], int first, int second, struct efi_boot_plan *ret);

/* ---- the boot manager's variables through efivarfs (bootvars.c) ---- */

struct efi_boot_vars {
        int boot_next;                  /* -1 when absent */
        uint16_t order[62];
        size_t order_len;
        struct efi_boot_entry *entries;
        size_t n_entries;
};

/* Reads BootNext, BootOrder and every Boot#### that parses; on_esp is set
 * for entries whose HD() node names the partition with GUID esp_uuid.
 * Unreadable values are skipped (reported through the returned count of
 * problems, >= 0). */
int efi_boot_vars_read(const char *dir, const char *esp_uuid, struct efi_boot_vars *ret);
void efi_boot_vars_done(struct efi_boot_vars *v);

/* Creates Boot<plan->entry[slot_index]> for path if the plan says so.
 * Returns 1 when written, 0 when nothing was needed. */
int efi_boot_entry_create(const char *dir, const struct efi_boot_plan *plan, int slot_index,
                          const char *description, const struct efi_partition *esp, const char *path);
/* Writes plan->order as BootOrder when it changed; 1 when written. */
int efi_boot_order_write(const char *dir, const struct efi_boot_plan *plan);
/* Sets BootNext; 1 when written, 0 when it already held id. */
int efi_boot_next_write(const char *dir, uint16_t id);

/* ---- PE/COFF (pe.c, pure) ----
 *
 * Finds a section of a PE image (a UKI) from its headers: head holds the
 * first head_size bytes of the file. Returns the section's file offset and
 * size (the smaller of its virtual and raw sizes). Hand-written: no library
 * we link reads PE, and we need only the section table; every offset is
 * checked against head_size and the sizes against file_size.
 * -EBADMSG: not a PE file; -ENOENT: no such section. */
int efi_pe_find_section(const void *head, size_t head_size, uint64_t file_size, const char *name,
                        uint64_t *ret_offset, uint64_t *ret_size);

/* ---- Authenticode: what the firmware hashes and where the signatures are (pe.c, pure) ----
 *
 * The byte ranges of a PE image that its Authenticode digest covers, in the
 * order they are hashed, exactly as EDK2's DxeImageVerificationLib
 * (HashPeImage) hashes them, since abctl must accept and refuse what that
 * firmware does: the headers up to SizeOfHeaders without the CheckSum field
 * and the certificate-table directory entry; the sections with raw data,
 * sorted by file offset (stable, as EDK2's insertion sort); then, when the
 * file is longer than the bytes hashed so far, from that count to the end
 * of the file minus the certificate table's size (the Authenticode
 * specification's rule, which assumes the sections are contiguous; EDK2
 * and sbsign both follow it). Every range is checked to lie inside the
 * image. Errors: -EBADMSG not a PE image or a range outside it (the
 * firmware would refuse or read out of bounds). */
#define EFI_PE_SECTIONS_MAX 96u  /* the PE format's own limit */
struct efi_pe_range {
        uint64_t offset, size;
};
struct efi_pe_authenticode {
        struct efi_pe_range range[EFI_PE_SECTIONS_MAX + 4];
        size_t n_ranges;
        /* The attribute certificate table (PE format 4.7, a file offset,
         * not an RVA); both 0 when the image is not signed. */
        uint64_t cert_offset, cert_size;
};
int efi_pe_authenticode(const void *image, size_t size, struct efi_pe_authenticode *ret);

/* One signature found in the certificate table: a PKCS#7 SignedData in DER.
 * Both WIN_CERT_TYPE_PKCS_SIGNED_DATA and WIN_CERT_TYPE_EFI_GUID with
 * EFI_CERT_TYPE_PKCS7_GUID count (UEFI 2.10 32.2.4); other entries are
 * skipped, as EDK2 does. */
#define EFI_PE_SIGNATURES_MAX 16u
struct efi_pe_signature {
        uint64_t offset, size;  /* of the DER inside the image */
        unsigned index;         /* its position in the table (0-based, counting skipped entries) */
};
/* Walks the WIN_CERTIFICATE entries of the table a->cert_offset/cert_size:
 * each dwLength >= 8 and inside the table, the next one 8-byte aligned,
 * and the walk must end exactly at the table's end (EDK2 refuses an image
 * whose walk does not). Returns the number of signatures found (0 if none,
 * more than max is -E2BIG); -EBADMSG when the table is corrupt. */
int efi_pe_signatures(const void *image, size_t size, const struct efi_pe_authenticode *a,
                      struct efi_pe_signature *ret, size_t max);

/* ---- Secure Boot databases and the firmware's decision (secureboot.c, pure) ---- */

#define EFI_IMAGE_SECURITY_DATABASE_GUID "d719b2cb-3d3a-4596-a3bc-dad00e67656f"  /* db, dbx */

/* EFI_SIGNATURE_LIST types (UEFI 2.10 32.4.1) that abswitch reads. */
typedef enum EfiSigType {
        EFI_SIG_X509,           /* a DER certificate */
        EFI_SIG_SHA256,         /* an image's SHA-256 Authenticode digest */
        EFI_SIG_SHA1,
        EFI_SIG_SHA384,
        EFI_SIG_SHA512,
        EFI_SIG_X509_SHA256,    /* SHA-256 of a certificate's TBSCertificate + EFI_TIME of revocation */
        EFI_SIG_X509_SHA384,    /* the same with SHA-384 */
        EFI_SIG_X509_SHA512,    /* the same with SHA-512 */
        EFI_SIG_OTHER,          /* a type we do not use (RSA2048 keys, ...): skipped */
        _EFI_SIG_TYPE_MAX,
        _EFI_SIG_TYPE_INVALID = -EINVAL,
} EfiSigType;

const char *efi_sig_type_to_string(EfiSigType t);

struct efi_sig {
        EfiSigType type;
        const uint8_t *data;    /* SignatureData, inside the buffer parsed */
        size_t size;
        uint8_t owner[16];
        unsigned list, index;   /* which EFI_SIGNATURE_LIST (0-based) and which entry in it */
};

/* Parses a db/dbx value: a sequence of EFI_SIGNATURE_LISTs, each with a
 * SignatureListSize >= its 28-byte header + SignatureHeaderSize, a
 * SignatureSize > 16 (the owner GUID and at least a byte) that divides the
 * rest, and the lists exactly filling size; a hash type's SignatureSize
 * must be 16 + the digest's size (an X509_SHA256 one 16 + 32 + 16). Any
 * violation: -EBADMSG, with nothing returned (the firmware's
 * AuthVariableLib refuses such a value when it is written, so one found
 * in efivarfs is not what the firmware holds). An empty value is an empty
 * database. *ret (free() it) points into data. */
int efi_siglist_parse(const void *data, size_t size, struct efi_sig **ret, size_t *ret_n);

/* The first entry of type t whose data equals data/size, or -1. For the
 * EFI_SIG_X509_SHA* types, compares the hash only (not the revocation time). */
int efi_siglist_find(const struct efi_sig *sigs, size_t n, EfiSigType t, const void *data, size_t size);

/* What the caller (abctl/signature.c, with libcrypto) found for one
 * signature of the image: indexes of the db/dbx entries that match, or -1. */
struct efi_sb_signature_facts {
        bool usable;            /* PKCS#7 parsed, its digest algorithm known: else EDK2 skips it */
        bool digest_matches;    /* its SpcIndirectDataContent digest is the image's */
        bool no_signer;         /* it carries no certificate of its signer: EDK2's dbx check refuses it */
        int dbx_cert;           /* dbx X509 in its chain or among its certificates */
        int dbx_cert_hash;      /* dbx X509_SHA256 of a signer certificate (revocation time not compared) */
        int db_cert;            /* the first db X509 it verifies against (in its chain, partial chains allowed) */
        int db_cert_revoked;    /* that db certificate's TBS hash is in dbx (this dbx entry): it does not allow */
        int dbx_image_hash;     /* the image's digest (this signature's algorithm) in dbx */
        int db_image_hash;      /* ... in db */
};

typedef enum EfiSbVerdict {
        EFI_SB_ALLOWED_DB_CERT,        /* signed, the signature chains to a db certificate */
        EFI_SB_ALLOWED_DB_HASH,        /* the image's digest is in db */
        EFI_SB_REFUSED_NOT_SIGNED,     /* no signature, and the digest is not in db */
        EFI_SB_REFUSED_NO_DB_SIGNER,   /* signed, no signature chains to db (or none is usable), digest not in db */
        EFI_SB_REFUSED_DIGEST_MISMATCH, /* signed, but no usable signature is over this image */
        EFI_SB_REFUSED_DBX_CERT,       /* a signer's certificate is in dbx */
        EFI_SB_REFUSED_DBX_CERT_HASH,  /* the signer's or the db certificate's TBS hash is in dbx */
        EFI_SB_REFUSED_DBX_HASH,       /* the image's digest is in dbx */
        EFI_SB_REFUSED_NO_SIGNER,      /* a signature carries no certificate of its signer */
        _EFI_SB_VERDICT_MAX,
        _EFI_SB_VERDICT_INVALID = -EINVAL,
} EfiSbVerdict;

struct efi_sb_decision {
        EfiSbVerdict verdict;
        int signature;          /* the signature that decided (index into facts), -1 for none */
        int entry;              /* the db/dbx entry that decided, -1 for none */
};

/* EDK2's DxeImageVerificationHandler as one pure function. Unsigned
 * (n == 0): dbx_hash, then db_hash (the image's SHA-256 in dbx/db, -1 if
 * not). Signed: for each usable signature in order, a missing signer
 * certificate, a dbx certificate or certificate hash refuses, a db certificate allows unless its own TBS
 * hash is in dbx, the image's digest in dbx refuses, in db allows; a
 * refusal ends the walk, whatever came before. (EDK2 lets a timestamp
 * older than a dbx certificate hash's revocation time through; abctl
 * does not read timestamps and refuses: stricter, never looser.) */
void efi_sb_decide(const struct efi_sb_signature_facts *facts, size_t n, int dbx_hash, int db_hash,
                   struct efi_sb_decision *ret);
bool efi_sb_verdict_allowed(EfiSbVerdict v);
