/* SPDX-License-Identifier: MIT */
/* A UKI's sections into kexec_file_load(2). See kexec.h. */

#define _GNU_SOURCE 1 /* memfd_create */
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "../common/macro.h"
#include "efi.h"
#include "kexec.h"

#ifndef KEXEC_FILE_UNLOAD
#define KEXEC_FILE_UNLOAD 0x00000001
#endif
#ifndef KEXEC_FILE_NO_INITRAMFS
#define KEXEC_FILE_NO_INITRAMFS 0x00000004
#endif

int uki_image_read(const char *path, struct uki_image *ret) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        struct stat st;

        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EBADF;
        if ((uint64_t) st.st_size > UKI_IMAGE_MAX)
                return -EFBIG;
        size_t size = (size_t) st.st_size;
        _cleanup_free_ uint8_t *data = malloc(size ?: 1);
        if (!data)
                return -ENOMEM;
        for (size_t done = 0; done < size;) {
                ssize_t n = pread(fd, data + done, size - done, (off_t) done);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0)
                        return -EBADMSG; /* the file shrank under us */
                done += (size_t) n;
        }
        *ret = (struct uki_image) { .data = TAKE_PTR(data), .size = size };
        return 0;
}

void uki_image_done(struct uki_image *u) {
        free(u->data);
        *u = (struct uki_image) {};
}

static int section(const struct uki_image *u, const char *name, const uint8_t **ret, size_t *ret_size) {
        uint64_t off, len;
        int r = efi_pe_find_section(u->data, u->size, u->size, name, &off, &len);
        if (r < 0)
                return r;
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
        if (r == -ENOENT || (r >= 0 && p.kernel_size == 0)) {
                if (ret_missing)
                        *ret_missing = ".linux";
                return -ENOEXEC;
        }
        if (r < 0)
                return r;
        r = section(u, ".initrd", &p.initrd, &p.initrd_size);
        if (r == -ENOENT || (r >= 0 && p.initrd_size == 0))
                p.initrd = NULL, p.initrd_size = 0;
        else if (r < 0)
                return r;
        r = section(u, ".cmdline", &cl, &cl_size);
        if (r == -ENOENT)
                cl_size = 0;
        else if (r < 0)
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
        for (size_t done = 0; done < size;) {
                ssize_t n = write(fd, data + done, size - done);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return n < 0 ? -errno : -EIO;
                done += (size_t) n;
        }
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

bool uki_kexec_refused(int r) {
        switch (r) {
        case -EPERM:
        case -EACCES:
        case -EKEYREJECTED:
        case -ENOKEY:
        case -EKEYEXPIRED:
        case -EKEYREVOKED:
        case -ENOPKG:
        case -ELIBBAD:
        case -EBADMSG:
        case -ENOSYS:
        case -EOPNOTSUPP:
        case -ENOEXEC:
                return true;
        default:
                return false;
        }
}

const char *uki_kexec_strerror(int r) {
        switch (r) {
        case -EPERM:
        case -EACCES:
                return "not permitted (no CAP_SYS_BOOT, kexec disabled by kernel.kexec_load_disabled, or "
                       "Secure Boot lockdown refused an image it could not verify)";
        case -EKEYREJECTED:
        case -ENOKEY:
        case -EKEYEXPIRED:
        case -EKEYREVOKED:
        case -ENOPKG:
        case -ELIBBAD:
        case -EBADMSG:
                return "the kernel image's signature does not verify against the kernel's keyrings";
        case -ENOSYS:
        case -EOPNOTSUPP:
                return "this kernel has no kexec_file_load";
        case -ENOEXEC:
                return "this kernel cannot load that kernel image";
        default:
                return strerror(-r);
        }
}
