/* SPDX-License-Identifier: MIT */
#pragma once

/* Starting a UKI's kernel with kexec_file_load(2) instead of through the
 * firmware: the UKI's .linux (a bzImage, itself an EFI PE image), .initrd
 * and .cmdline sections are what systemd-stub would hand the kernel, so
 * they are what the kernel gets here (each from a memfd). Used by abctl
 * reboot --kexec and by the init's kexec redirect; logs nothing. The
 * caller appends what the new init must know (ab.slot=, ab.kexec=), since
 * the stub's EFI variables still describe the first boot. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cmdline.h"

struct uki_image {
        uint8_t *data;
        size_t size;
};

/* Reads the whole file at path (read_file_bounded). -errno; -EBADFD not a
 * regular file; -EFBIG larger than UKI_SIZE_MAX (uki.h). */
int uki_image_read(const char *path, struct uki_image *ret);
void uki_image_done(struct uki_image *u);

/* The UKI's SHA-256 in lower-case hex (ab.kexec=): abctl reboot --kexec
 * and the init's kexec redirect write it, the init compares it; one
 * function, so the two sides cannot disagree on it. */
void uki_image_sha256_hex(const struct uki_image *u, char ret[static KEXEC_SHA256_HEX + 1]);

struct uki_kexec_parts {
        const uint8_t *kernel, *initrd;   /* point into the image; initrd NULL when it has none */
        size_t kernel_size, initrd_size;
        char *cmdline;                    /* .cmdline (trimmed) + " " + extra; free() it */
};

/* The kernel, initrd and command line of the UKI in u. -EBADMSG: not a PE
 * image; -ENOEXEC: it has no .linux section (ret_missing names it); -ENOMEM. */
int uki_kexec_parts(const struct uki_image *u, const char *extra, struct uki_kexec_parts *ret,
                    const char **ret_missing);
void uki_kexec_parts_done(struct uki_kexec_parts *p);

/* Loads p as the kernel the next reboot(LINUX_REBOOT_CMD_KEXEC) starts
 * (kexec_file_load(2), kernel and initrd from memfds). The kernel's -errno:
 * -EPERM without CAP_SYS_BOOT or under lockdown, -EKEYREJECTED / -ENOKEY /
 * -EBADMSG when the kernel's signature does not verify (kexec signature
 * checks), -ENOSYS / -EOPNOTSUPP without kexec_file_load, -ENOEXEC not a
 * kernel this kernel can load. */
int uki_kexec_load(const struct uki_kexec_parts *p);

/* Removes what uki_kexec_load loaded (KEXEC_FILE_UNLOAD). */
int uki_kexec_unload(void);

/* Whether r from uki_kexec_load means "this kernel will not kexec that
 * image" (policy, signature, no support), as opposed to a broken UKI or an
 * I/O error: then the firmware path is the fallback. */
bool uki_kexec_refused(int r);

/* What an errno of uki_kexec_load means, in words, for the fallback line. */
const char *uki_kexec_strerror(int r);
