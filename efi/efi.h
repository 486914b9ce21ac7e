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
