/* SPDX-License-Identifier: MIT */
#pragma once

/* The UKI's contract, as a file: what abswitch reads out of a Unified
 * Kernel Image (initramfs/mkuki writes it). The PE sections .osrel (the
 * os-release of the image it boots) and .cmdline (whose ab.* parameters
 * efi/cmdline.h parses; ab.roothash= pins the slot image's dm-verity root
 * hash). Used by abctl on the ESP and on an image to install; logs nothing
 * (the caller says what a failure means). */

#include <stdbool.h>
#include <stddef.h>

#include "cmdline.h"

/* Sections are small text: a larger one is refused, not truncated. */
#define UKI_SECTION_MAX (16 * 1024)

/* A UKI is a kernel and an initramfs: tens of MiB. Anything larger is not
 * one. The one bound for every whole-UKI read: install, the removable-path
 * copy and kexec, so a UKI that installs can also be copied and kexec'd. */
#define UKI_SIZE_MAX (512u * 1024u * 1024u)

/* Reads section name (".cmdline", ".osrel") of the UKI at path into buf,
 * NUL-terminated. Errors:
 *   -errno     path cannot be opened or read
 *   -EBADF     path is not a regular file
 *   -EBADMSG   not a PE file (or a section lies outside it)
 *   -ENODATA   no section of that name
 *   -E2BIG     the section does not fit buf (size - 1 bytes) */
int uki_read_section(const char *path, const char *name, char *buf, size_t size);

/* The root hash the UKI's .cmdline pins (ab.roothash=, lower case). The
 * errors of uki_read_section, or -ENOKEY: no valid ab.roothash= in it. */
int uki_pinned_roothash(const char *path, char ret[static ROOTHASH_HEX_MAX + 1]);

/* The value of key in os-release text (unquoted); false when absent. A
 * value longer than size - 1 is cut there. */
bool uki_osrel_value(const char *osrel, const char *key, char *ret, size_t size);

/* What a UKI says of itself: its version (IMAGE_VERSION from .osrel, else
 * VERSION_ID: what abctl install compares against the committed slot's,
 * common/version.h), PRETTY_NAME, and the root hash its .cmdline pins;
 * empty strings for what is absent. -ENOENT when there is no file at path. */
struct uki_info {
        char version[64], name[128], roothash[ROOTHASH_HEX_MAX + 1];
};
int uki_read_info(const char *path, struct uki_info *ret);
/* The same, of a UKI held in memory (abctl install checks the bytes it
 * will write). */
int uki_info_from_memory(const void *data, size_t size, struct uki_info *ret);
