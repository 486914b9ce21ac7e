/* SPDX-License-Identifier: MIT */
/* abctl install: a new image into the inactive slot.
 *
 * Everything is checked before anything is written: the slot is not the
 * running one, the image and hash tree fit their partitions, the UKI is a
 * PE file pinning a root hash, the image verifies against that hash in full
 * (libcryptsetup, in userspace), and it is not an image that already failed
 * in that slot (unless --force). Then, in this order: the slot is marked
 * not bootable in the GPT, the image and hash tree are written and flushed,
 * the UKI replaces the slot's one on the ESP (temporary file, fsync,
 * rename, directory fsync), and only then the slot gets its trial state and
 * BootNext. A power cut anywhere leaves the new slot unbootable or fully
 * installed, and never touches the running slot. */

#include <ctype.h>
#include <fcntl.h>
#include <libcryptsetup.h>
#include <stdio.h>
#include <linux/if_alg.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "../common/log.h"
#include "../verity/verity.h"
#include "../init/cmdline.h"
#include "abctl.h"

#define COPY_CHUNK (1024 * 1024)

static void crypt_freep(struct crypt_device **cd) {
        if (*cd)
                crypt_free(*cd);
}

/* Reads section name of the UKI (at most 16 KiB) into buf, NUL-terminated. */
static int uki_section(const char *uki, const char *name, char *buf, size_t bufsize, bool quiet) {
        _cleanup_close_ int fd = open(uki, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        static uint8_t head[64 * 1024];
        struct stat st;
        uint64_t off, size;
        int r;

        if (fd < 0)
                return quiet ? -errno : log_error_errno(-errno, "Cannot open the UKI %s: %m", uki);
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
                return quiet ? -EBADF : log_error_errno(-EBADF, "The UKI %s is not a regular file", uki);
        ssize_t n = pread(fd, head, sizeof(head), 0);
        if (n < 0)
                return quiet ? -errno : log_error_errno(-errno, "Cannot read the UKI %s: %m", uki);
        r = efi_pe_find_section(head, (size_t) n, (uint64_t) st.st_size, name, &off, &size);
        if (r < 0 && quiet)
                return r;
        if (r == -EBADMSG)
                return log_error_errno(r, "%s is not a PE file, so not a UKI (build it with initramfs/mkuki)", uki);
        if (r < 0)
                return log_error_errno(r, "The UKI %s has no %s section", uki, name);
        if (size >= bufsize)
                return quiet ? -E2BIG : log_error_errno(-E2BIG, "The %s section of %s is %llu bytes; too large",
                                                        name, uki, (unsigned long long) size);
        n = pread(fd, buf, (size_t) size, (off_t) off);
        if (n != (ssize_t) size)
                return quiet ? -EIO : log_error_errno(-EIO, "Cannot read the %s section of %s", name, uki);
        buf[size] = 0;
        return 0;
}

/* The root hash the UKI pins: ab.roothash= in its .cmdline section. */
static int uki_roothash_full(const char *uki, char ret[static ROOTHASH_HEX_MAX + 1], bool quiet) {
        char line[16 * 1024 + 1];
        struct cmdline c;
        int r;

        r = uki_section(uki, ".cmdline", line, sizeof(line), quiet);
        if (r < 0)
                return r;
        r = cmdline_parse(line, &c, NULL, NULL);
        if (r < 0)
                return quiet ? r : log_error_errno(r, "Cannot parse the command line of %s: %m", uki);
        if (!c.roothash[0])
                return quiet ? -ENOKEY : log_error_errno(-ENOKEY, "The UKI %s pins no valid ab.roothash= (its command line: %s)",
                                                         uki, line);
        memcpy(ret, c.roothash, sizeof(c.roothash));
        return 0;
}

static int uki_roothash(const char *uki, char ret[static ROOTHASH_HEX_MAX + 1]) {
        return uki_roothash_full(uki, ret, false);
}

/* os-release value of key in text, unquoted; false when absent. */
static bool osrel_value(const char *text, const char *key, char *ret, size_t size) {
        size_t kl = strlen(key);
        for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
                if (strncmp(l, key, kl) != 0 || l[kl] != '=')
                        continue;
                const char *v = l + kl + 1;
                size_t n = strcspn(v, "\n");
                if (n >= 2 && (v[0] == '"' || v[0] == '\'') && v[n - 1] == v[0])
                        v++, n -= 2;
                (void) snprintf(ret, size, "%.*s", (int) n, v);
                return true;
        }
        return false;
}

int abctl_uki_info(const char *path, struct uki_info *ret) {
        char osrel[16 * 1024 + 1];
        *ret = (struct uki_info) {};
        if (access(path, F_OK) < 0)
                return -ENOENT;
        if (uki_section(path, ".osrel", osrel, sizeof(osrel), true) >= 0) {
                if (!osrel_value(osrel, "VERSION_ID", ret->version, sizeof(ret->version)))
                        (void) osrel_value(osrel, "IMAGE_VERSION", ret->version, sizeof(ret->version));
                (void) osrel_value(osrel, "PRETTY_NAME", ret->name, sizeof(ret->name));
        }
        (void) uki_roothash_full(path, ret->roothash, true);
        return 0;
}

/* The static abctl's libcryptsetup hashes through the kernel (AF_ALG; the
 * Makefile defines ABSWITCH_CRYPTO_KERNEL for it): when it fails, say so if
 * that is why, rather than blame the image. A libcryptsetup with a
 * userspace backend (a host build) has no such reason. */
static bool no_kernel_hashing(void) {
#ifndef ABSWITCH_CRYPTO_KERNEL
        return false;
#endif
        _cleanup_close_ int alg = socket(AF_ALG, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        if (alg >= 0)
                return false;
        log_error_errno(-errno, "The kernel's AF_ALG hash interface is not available (%m), and "
                        "libcryptsetup hashes through it: load it with 'modprobe algif_hash'");
        return true;
}

/* Verifies every block of the image against the root hash, in userspace. */
static int verify_image(const char *img, const char *hash, const char *roothash) {
        _cleanup_(crypt_freep) struct crypt_device *cd = NULL;
        unsigned char key[64];
        size_t len;
        int r;

        r = verity_unhex(roothash, key, sizeof(key), &len);
        if (r < 0)
                return log_error_errno(r, "The UKI's root hash '%s' is not hex", roothash);
        verity_log_to_debug();
        r = crypt_init_data_device(&cd, hash, img);
        if (r < 0)
                return log_error_errno(r, "Cannot open %s and %s: %m", img, hash);
        /* CRYPT_VERITY_CHECK_HASH: without it, activation without a device
         * name checks nothing at all (found by test_install_refuses_mismatched_hash). */
        struct crypt_params_verity p = { .data_device = img, .flags = CRYPT_VERITY_CHECK_HASH };
        r = crypt_load(cd, CRYPT_VERITY, &p);
        if (r < 0 && no_kernel_hashing())
                return r;
        if (r < 0)
                return log_error_errno(r, "%s holds no dm-verity superblock (make it with initramfs/mkslot)", hash);
        if ((size_t) crypt_get_volume_key_size(cd) != len)
                return log_error_errno(-EINVAL, "The UKI's root hash has %zu bytes; the hash tree uses %d", len,
                                       crypt_get_volume_key_size(cd));
        struct crypt_params_verity info;
        struct stat st;
        if (crypt_get_verity_info(cd, &info) >= 0 && stat(img, &st) >= 0 &&
            (uint64_t) st.st_size < info.data_size * info.data_block_size)
                return log_error_errno(-EBADMSG, "%s is truncated: it has %lld bytes, its hash tree covers %llu",
                                       img, (long long) st.st_size,
                                       (unsigned long long) (info.data_size * info.data_block_size));
        /* No device name: libcryptsetup checks the whole tree and all data in userspace. */
        r = crypt_activate_by_volume_key(cd, NULL, (const char *) key, len, 0);
        /* libcryptsetup: -EPERM for the root hash, -EFAULT for a block below it. */
        if (r == -EPERM || r == -EFAULT)
                return log_error_errno(r, "%s does not verify against the root hash the UKI pins: "
                                       "this image and this UKI do not belong together", img);
        if (r < 0 && no_kernel_hashing())
                return r;
        if (r < 0)
                return log_error_errno(r, "Verifying %s failed: %m", img);
        return 0;
}

#define ESP_MOUNT "/run/abswitch/esp"

/* The mounted ESP, or the layout's ESP mounted by us (then *ret_mounted). */
const char *abctl_esp_mounted(const struct ctx *c) {
        static const char *const candidates[] = { "/efi", "/boot/efi", "/boot" };
        char p[512];
        if (c->esp)
                return c->esp;
        for (size_t i = 0; i < ELEMENTSOF(candidates); i++) {
                (void) snprintf(p, sizeof(p), "%s/EFI/abswitch", candidates[i]);
                if (access(p, F_OK) == 0)
                        return candidates[i];
        }
        return NULL;
}

const char *abctl_esp_find(const struct ctx *c, bool *ret_mounted) {
        char dev[340];
        *ret_mounted = false;
        const char *esp = abctl_esp_mounted(c);
        if (esp)
                return esp;
        if (!c->layout.esp_present)
                return NULL;
        /* /dev/vda + 1 -> /dev/vda1; /dev/nvme0n1 + 1 -> /dev/nvme0n1p1 */
        size_t n = strlen(c->layout.disk);
        bool digit = n > 0 && isdigit((unsigned char) c->layout.disk[n - 1]);
        (void) snprintf(dev, sizeof(dev), "%s%s%u", c->layout.disk, digit ? "p" : "", c->layout.esp_partno);
        (void) mkdir("/run/abswitch", 0755);
        (void) mkdir(ESP_MOUNT, 0700);
        if (mount(dev, ESP_MOUNT, "vfat", MS_NOSUID | MS_NODEV | MS_NOEXEC, "umask=0077") < 0) {
                log_warning_errno(-errno, "Cannot mount the ESP %s on %s: %m", dev, ESP_MOUNT);
                return NULL;
        }
        *ret_mounted = true;
        log_info("Mounted the ESP %s on %s", dev, ESP_MOUNT);
        return ESP_MOUNT;
}

static void uki_file(const char *esp, Slot s, char *ret, size_t size) {
        (void) snprintf(ret, size, "%s/EFI/abswitch/boot-%s.efi", esp, slot_to_lower(s));
}

static int copy_into(int disk, const char *src, uint64_t offset, const char *what, uint64_t *done, uint64_t total) {
        _cleanup_close_ int fd = open(src, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        _cleanup_free_ uint8_t *buf = malloc(COPY_CHUNK);
        bool tty = isatty(STDERR_FILENO);

        if (fd < 0 || !buf)
                return log_error_errno(fd < 0 ? -errno : -ENOMEM, "Cannot read %s: %m", src);
        for (uint64_t pos = 0;;) {
                ssize_t n = read(fd, buf, COPY_CHUNK);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return log_error_errno(-errno, "Reading %s failed: %m", src);
                if (n == 0)
                        break;
                for (ssize_t w = 0; w < n;) {
                        ssize_t k = pwrite(disk, buf + w, (size_t) (n - w), (off_t) (offset + pos + (uint64_t) w));
                        if (k < 0 && errno == EINTR)
                                continue;
                        if (k <= 0)
                                return log_error_errno(k < 0 ? -errno : -EIO, "Writing %s failed: %m", what);
                        w += k;
                }
                pos += (uint64_t) n;
                *done += (uint64_t) n;
                if (tty)
                        fprintf(stderr, "\rabctl: writing %s: %3llu%%", what,
                                (unsigned long long) (total ? *done * 100 / total : 100));
        }
        if (tty)
                fprintf(stderr, "\n");
        return 0;
}

void abctl_esp_release(bool mounted) {
        if (!mounted)
                return;
        sync();
        (void) umount(ESP_MOUNT);
}

int abctl_replace_file(const char *src, const char *dst) {
        char tmp[600], dir[600];
        _cleanup_close_ int in = open(src, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        _cleanup_free_ uint8_t *buf = malloc(COPY_CHUNK);
        int r = 0;

        if (in < 0 || !buf)
                return log_error_errno(in < 0 ? -errno : -ENOMEM, "Cannot read %s: %m", src);
        (void) snprintf(tmp, sizeof(tmp), "%s.new", dst);
        _cleanup_close_ int out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY, 0644);
        if (out < 0)
                return log_error_errno(-errno, "Cannot create %s (is the ESP mounted read-write?): %m", tmp);
        for (;;) {
                ssize_t n = read(in, buf, COPY_CHUNK);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0) {
                        r = n < 0 ? -errno : 0;
                        break;
                }
                if (write(out, buf, (size_t) n) != n) {
                        r = errno == ENOSPC ? -ENOSPC : -EIO;
                        break;
                }
        }
        if (r >= 0 && fsync(out) < 0)
                r = -errno;
        if (r < 0) {
                (void) unlink(tmp);
                return log_error_errno(r, "Writing %s failed%s: %m", tmp, r == -ENOSPC ? " (the ESP is full)" : "");
        }
        if (rename(tmp, dst) < 0) {
                r = -errno;
                (void) unlink(tmp);
                return log_error_errno(r, "Cannot put %s in place: %m", dst);
        }
        (void) snprintf(dir, sizeof(dir), "%s", dst);
        char *slash = strrchr(dir, '/');
        if (slash)
                *slash = 0;
        _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0)
                (void) fsync(dfd);
        return 0;
}

/* The new UKI is written next to the old one and renamed over it: the ESP
 * must be writable and have room for a whole second copy. */
static int esp_has_room(const char *esp, const char *dst, const char *uki) {
        char dir[600];
        struct statvfs sv;
        struct stat su;

        (void) snprintf(dir, sizeof(dir), "%s", dst);
        char *slash = strrchr(dir, '/');
        if (slash)
                *slash = 0;
        if (stat(uki, &su) < 0)
                return log_error_errno(-errno, "Cannot read %s: %m", uki);
        if (access(dir, W_OK) < 0)
                return log_error_errno(-errno, "The ESP at %s is not writable (%m)%s", esp,
                                       errno == EROFS ? ": it is mounted read-only; remount it read-write" : "");
        if (statvfs(dir, &sv) < 0)
                return log_error_errno(-errno, "Cannot read the free space of the ESP at %s: %m", esp);
        uint64_t free_bytes = (uint64_t) sv.f_bavail * sv.f_frsize, need = (uint64_t) su.st_size + 64 * 1024;
        if (free_bytes < need)
                return log_error_errno(-ENOSPC, "the ESP is full: %s has %llu bytes free, the UKI needs %llu "
                                       "(with a margin); remove old files from it", esp,
                                       (unsigned long long) free_bytes, (unsigned long long) need);
        return 0;
}

int abctl_install(struct ctx *c, const char *prefix, const char *uki) {
        Slot t = c->install_slot >= 0 ? c->install_slot : slot_other(c->running);
        const struct slot_partitions *p = &c->layout.slot[t];
        char img[512], hash[512], roothash[ROOTHASH_HEX_MAX + 1], why[256], dst[600];
        struct slot_op_result res;
        struct stat si, sh;
        int r;

        /* ---- checks: nothing is written until all pass ---- */
        r = slots_apply_op(SLOT_OP_INSTALL, c->st, c->running, t, c->tries, &res, why, sizeof(why));
        if (r < 0)
                return log_error_errno(r, "Refusing to install: %s. Nothing was changed.", why);
        if (!p->present)
                return log_error_errno(-ENOENT, "Refusing to install: slot %s has no partitions on %s. Nothing was changed.",
                                       slot_to_string(t), c->disk);
        (void) snprintf(img, sizeof(img), "%s.img", prefix);
        (void) snprintf(hash, sizeof(hash), "%s.verity", prefix);
        if (stat(img, &si) < 0 || stat(hash, &sh) < 0 || !S_ISREG(si.st_mode) || !S_ISREG(sh.st_mode))
                return log_error_errno(-ENOENT, "Refusing to install: expected %s and %s (from initramfs/mkslot). "
                                       "Nothing was changed.", img, hash);
        if ((uint64_t) si.st_size > p->data_size * 512)
                return log_error_errno(-EFBIG, "Refusing to install: %s (%lld bytes) does not fit slot %s's system "
                                       "partition (%llu bytes). Nothing was changed.", img, (long long) si.st_size, slot_to_string(t),
                                       (unsigned long long) p->data_size * 512);
        if ((uint64_t) sh.st_size > p->hash_size * 512)
                return log_error_errno(-EFBIG, "Refusing to install: %s (%lld bytes) does not fit slot %s's verity "
                                       "partition (%llu bytes). Nothing was changed.", hash, (long long) sh.st_size, slot_to_string(t),
                                       (unsigned long long) p->hash_size * 512);
        r = uki_roothash(uki, roothash);
        if (r < 0)
                return log_error_errno(r, "Refusing to install. Nothing was changed.");
        r = verify_image(img, hash, roothash);
        if (r < 0)
                return log_error_errno(r, "Refusing to install. Nothing was changed.");

        bool mounted;
        const char *esp = abctl_esp_find(c, &mounted);
        if (!esp)
                return log_error_errno(-ENOENT, "Refusing to install: cannot find the ESP with EFI/abswitch in /efi, "
                                       "/boot/efi or /boot, nor mount it; mount it or pass --esp DIR. "
                                       "Nothing was changed.");
        uki_file(esp, t, dst, sizeof(dst));

        /* An image that already failed in this slot is not retried by accident. */
        char old[ROOTHASH_HEX_MAX + 1];
        bool failed = c->st[t].priority == 0 && !c->st[t].successful;
        if (failed && access(dst, F_OK) == 0 && uki_roothash(dst, old) >= 0 && streq(old, roothash) && !c->force) {
                abctl_esp_release(mounted);
                return log_error_errno(-EALREADY, "Refusing to install: this image (root hash %.16s...) already failed "
                                       "in slot %s. Install it anyway with --force. Nothing was changed.", roothash,
                                       slot_to_string(t));
        }
        /* The UKI goes in last, after the image: make sure now that it can. */
        r = esp_has_room(esp, dst, uki);
        if (r < 0) {
                abctl_esp_release(mounted);
                return log_error_errno(r, "Refusing to install. Nothing was changed.");
        }

        /* ---- writes ---- */
        struct slot_state interim[_SLOT_MAX] = { c->st[0], c->st[1] };
        interim[t] = (struct slot_state) {};   /* not bootable while half-written */
        r = slots_state_write(&c->layout, interim, NULL);
        if (r < 0)
                return log_error_errno(r, "Failed to mark slot %s not bootable before writing it: %m. Nothing was written.",
                                       slot_to_string(t));
        c->st[t] = interim[t];

        _cleanup_close_ int disk = open(c->disk, O_WRONLY | O_CLOEXEC | O_NOCTTY);
        if (disk < 0)
                return log_error_errno(-errno, "Cannot open %s for writing: %m (slot %s stays not bootable)", c->disk,
                                       slot_to_string(t));
        uint64_t done = 0, total = (uint64_t) si.st_size + (uint64_t) sh.st_size;
        char what[64];
        (void) snprintf(what, sizeof(what), "slot %s", slot_to_string(t));
        r = copy_into(disk, img, p->data_start * 512, what, &done, total);
        if (r >= 0)
                r = copy_into(disk, hash, p->hash_start * 512, what, &done, total);
        if (r >= 0 && fdatasync(disk) < 0)
                r = log_error_errno(-errno, "Flushing %s failed: %m", c->disk);
        if (r < 0)
                return log_error_errno(r, "Install interrupted; slot %s stays not bootable, slot %s is untouched.",
                                       slot_to_string(t), slot_to_string(c->running));

        r = abctl_replace_file(uki, dst);
        abctl_esp_release(mounted);
        if (r < 0)
                return log_error_errno(r, "Install interrupted; slot %s stays not bootable, slot %s is untouched.",
                                       slot_to_string(t), slot_to_string(c->running));

        printf("Installed %s into slot %s (root hash %.16s..., verified), UKI %s\n", prefix, slot_to_string(t),
               roothash, dst);
        return abctl_apply(c, SLOT_OP_INSTALL, t);
}
