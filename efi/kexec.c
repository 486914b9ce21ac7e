/* SPDX-License-Identifier: MIT */
/* A UKI's sections into kexec_file_load(2). See kexec.h. */

#define _GNU_SOURCE 1 /* memfd_create */
#include <fcntl.h>
#include <nettle/sha2.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "../common/hex.h"
#include "../common/io.h"
#include "../common/macro.h"
#include "efi.h"
#include "kexec.h"
#include "uki.h"

#ifndef KEXEC_FILE_UNLOAD
#define KEXEC_FILE_UNLOAD 0x00000001
#endif
#ifndef KEXEC_FILE_NO_INITRAMFS
#define KEXEC_FILE_NO_INITRAMFS 0x00000004
#endif

int uki_image_read(const char *path, struct uki_image *ret) {
        char *data = NULL;
        size_t size = 0;
        int r = read_file_bounded(path, UKI_SIZE_MAX, &data, &size);
        if (r < 0)
                return r;
        *ret = (struct uki_image) { .data = (uint8_t *) data, .size = size };
        return 0;
}

void uki_image_sha256_hex(const struct uki_image *u, char ret[static KEXEC_SHA256_HEX + 1]) {
        struct sha256_ctx c;
        uint8_t md[SHA256_DIGEST_SIZE];

        sha256_init(&c);
        sha256_update(&c, u->size, u->data);
        sha256_digest(&c, sizeof(md), md);
        hex_encode(md, sizeof(md), ret);
}

void uki_image_done(struct uki_image *u) {
        free(u->data);
        *u = (struct uki_image) {};
}

/* The section name of u; -ENOENT when it is missing or empty (an empty
 * .linux is no kernel, an empty .initrd no initrd). */
static int section(const struct uki_image *u, const char *name, const uint8_t **ret, size_t *ret_size) {
        uint64_t off, len;
        int r = efi_pe_find_section(u->data, u->size, u->size, name, &off, &len);
        if (r < 0)
                return r;
        if (len == 0)
                return -ENOENT;
        *ret = u->data + off;
        *ret_size = (size_t) len;
        return 0;
}

int uki_kexec_parts(const struct uki_image *u, const char *extra, struct uki_kexec_parts *ret,
                    const char **ret_missing) {
        struct uki_kexec_parts p = {};
        const uint8_t *cl = NULL;
        size_t cl_size = 0;
        int r;

        r = section(u, ".linux", &p.kernel, &p.kernel_size);
        if (r == -ENOENT) {
                if (ret_missing)
                        *ret_missing = ".linux";
                return -ENOEXEC;
        }
        if (r < 0)
                return r;
        r = section(u, ".initrd", &p.initrd, &p.initrd_size);
        if (r < 0 && r != -ENOENT)
                return r;
        r = section(u, ".cmdline", &cl, &cl_size);
        if (r < 0 && r != -ENOENT)
                return r;
        /* The section may carry a NUL or a newline at its end (objcopy pads
         * nothing, but other UKI builders do); stop at the first NUL. */
        size_t n = strnlen((const char *) (cl ?: (const uint8_t *) ""), cl_size);
        while (n > 0 && (cl[n - 1] == '\n' || cl[n - 1] == ' ' || cl[n - 1] == '\t'))
                n--;
        size_t total = n + 1 + strlen(extra ?: "") + 1;
        p.cmdline = malloc(total);
        if (!p.cmdline)
                return -ENOMEM;
        (void) snprintf(p.cmdline, total, "%.*s%s%s", (int) n, n ? (const char *) cl : "",
                        n && extra && *extra ? " " : "", extra ?: "");
        *ret = p;
        return 0;
}

void uki_kexec_parts_done(struct uki_kexec_parts *p) {
        free(p->cmdline);
        *p = (struct uki_kexec_parts) {};
}

static int memfd_with(const char *name, const uint8_t *data, size_t size) {
        _cleanup_close_ int fd = memfd_create(name, MFD_CLOEXEC);
        if (fd < 0)
                return -errno;
        int r = loop_write(fd, data, size);
        if (r < 0)
                return r;
        return TAKE_FD(fd);
}

int uki_kexec_load(const struct uki_kexec_parts *p) {
        _cleanup_close_ int ifd = -EBADF;
        unsigned long flags = 0;

        _cleanup_close_ int kfd = memfd_with("abswitch-kexec-kernel", p->kernel, p->kernel_size);
        if (kfd < 0)
                return kfd;
        if (p->initrd) {
                ifd = memfd_with("abswitch-kexec-initrd", p->initrd, p->initrd_size);
                if (ifd < 0)
                        return ifd;
        } else
                flags |= KEXEC_FILE_NO_INITRAMFS;
        /* The length counts the terminating NUL (kexec_file_load(2)). */
        if (syscall(SYS_kexec_file_load, kfd, p->initrd ? ifd : -1, strlen(p->cmdline) + 1, p->cmdline, flags) < 0)
                return -errno;
        return 0;
}

int uki_kexec_unload(void) {
        if (syscall(SYS_kexec_file_load, -1, -1, 0UL, NULL, (unsigned long) KEXEC_FILE_UNLOAD) < 0)
                return -errno;
        return 0;
}

/* The kernel's answers that mean "it will not kexec that image", each
 * with its words: one list for uki_kexec_refused and uki_kexec_strerror. */
static const char not_permitted[] = "not permitted (no CAP_SYS_BOOT, kexec disabled by kernel.kexec_load_disabled, "
                                    "or Secure Boot lockdown refused an image it could not verify)";
static const char bad_signature[] = "the kernel image's signature does not verify against the kernel's keyrings";
static const char no_kexec_file[] = "this kernel has no kexec_file_load";
static const struct {
        int error;
        const char *words;
} refusals[] = {
        { EPERM, not_permitted },        { EACCES, not_permitted },
        { EKEYREJECTED, bad_signature }, { ENOKEY, bad_signature },  { EKEYEXPIRED, bad_signature },
        { EKEYREVOKED, bad_signature },  { ENOPKG, bad_signature },  { ELIBBAD, bad_signature },
        { EBADMSG, bad_signature },      { ENOSYS, no_kexec_file },  { EOPNOTSUPP, no_kexec_file },
        { ENOEXEC, "this kernel cannot load that kernel image" },
};

static const char *refusal_words(int r) {
        for (size_t i = 0; i < ELEMENTSOF(refusals); i++)
                if (r == -refusals[i].error)
                        return refusals[i].words;
        return NULL;
}

bool uki_kexec_refused(int r) {
        return refusal_words(r) != NULL;
}

const char *uki_kexec_strerror(int r) {
        return refusal_words(r) ?: strerror(-r);
}
