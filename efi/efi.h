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
