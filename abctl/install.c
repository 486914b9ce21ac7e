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
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/param.h>
#include <sys/statvfs.h>

#include "../common/log.h"
#include "../verity/verity.h"
#include "../efi/cmdline.h"
#include "abctl.h"
#include "ocifetch.h"

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

/* The size of a regular file or a block device. */
static int file_size(const char *path, uint64_t *ret) {
        struct stat st;
        if (stat(path, &st) < 0)
                return -errno;
        if (!S_ISBLK(st.st_mode)) {
                *ret = (uint64_t) st.st_size;
                return 0;
        }
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0 || ioctl(fd, BLKGETSIZE64, ret) < 0)
                return -errno;
        return 0;
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
        uint64_t img_size = 0;
        if (crypt_get_verity_info(cd, &info) >= 0 && file_size(img, &img_size) >= 0 &&
            img_size < info.data_size * info.data_block_size)
                return log_error_errno(-EBADMSG, "%s is truncated: it has %llu bytes, its hash tree covers %llu",
                                       img, (unsigned long long) img_size,
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

/* /dev/vda + 1 -> /dev/vda1; /dev/nvme0n1 + 1 -> /dev/nvme0n1p1 */
static void partition_node(const char *disk, unsigned partno, char *ret, size_t size) {
        size_t n = strlen(disk);
        bool digit = n > 0 && isdigit((unsigned char) disk[n - 1]);
        (void) snprintf(ret, size, "%s%s%u", disk, digit ? "p" : "", partno);
}

const char *abctl_esp_find(const struct ctx *c, bool *ret_mounted) {
        char dev[340];
        *ret_mounted = false;
        const char *esp = abctl_esp_mounted(c);
        if (esp)
                return esp;
        if (!c->view.layout.esp_present)
                return NULL;
        partition_node(c->view.layout.disk, c->view.layout.esp_partno, dev, sizeof(dev));
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

/* All n bytes at off, through short writes and EINTR. */
static int pwrite_all(int fd, const uint8_t *buf, size_t n, uint64_t off) {
        while (n > 0) {
                ssize_t k = pwrite(fd, buf, n, (off_t) off);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        return k < 0 ? -errno : -EIO;
                buf += k, n -= (size_t) k, off += (uint64_t) k;
        }
        return 0;
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
                int r = pwrite_all(disk, buf, (size_t) n, offset + pos);
                if (r < 0)
                        return log_error_errno(r, "Writing %s failed: %m", what);
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

/* The directory a file name is in ("a/b/c" -> "a/b"). */
static void dir_of(const char *path, char *ret, size_t size) {
        (void) snprintf(ret, size, "%s", path);
        char *slash = strrchr(ret, '/');
        if (slash)
                *slash = 0;
}

/* Renames the written and flushed tmp over dst and flushes the directory. */
static int put_in_place(const char *tmp, const char *dst) {
        char dir[600];
        if (rename(tmp, dst) < 0) {
                int r = -errno;
                (void) unlink(tmp);
                return log_error_errno(r, "Cannot put %s in place: %m", dst);
        }
        dir_of(dst, dir, sizeof(dir));
        _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0)
                (void) fsync(dfd);
        return 0;
}

int abctl_replace_file(const char *src, const char *dst) {
        char tmp[600];
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
        return put_in_place(tmp, dst);
}

/* The new UKI is written next to the old one and renamed over it: the ESP
 * must be writable and have room for a whole second copy. */
static int esp_has_room(const char *esp, const char *dst, uint64_t uki_size) {
        char dir[600];
        struct statvfs sv;

        dir_of(dst, dir, sizeof(dir));
        if (access(dir, W_OK) < 0)
                return log_error_errno(-errno, "The ESP at %s is not writable (%m)%s", esp,
                                       errno == EROFS ? ": it is mounted read-only; remount it read-write" : "");
        if (statvfs(dir, &sv) < 0)
                return log_error_errno(-errno, "Cannot read the free space of the ESP at %s: %m", esp);
        uint64_t free_bytes = (uint64_t) sv.f_bavail * sv.f_frsize, need = uki_size + 64 * 1024;
        if (free_bytes < need)
                return log_error_errno(-ENOSPC, "the ESP is full: %s has %llu bytes free, the UKI needs %llu "
                                       "(with a margin); remove old files from it", esp,
                                       (unsigned long long) free_bytes, (unsigned long long) need);
        return 0;
}

/* The operation is allowed on slot t and t has its partitions. */
static int install_allowed(struct ctx *c, Slot t) {
        struct slot_op_request req = { .op = SLOT_OP_INSTALL_BEGIN, .running = c->running, .target = t,
                                       .tries = c->tries, .force = c->force };
        struct slot_op_result res;
        char why[512];
        int r = slots_apply_op(&req, c->view.st, &res, why, sizeof(why));
        if (r < 0)
                return log_error_errno(r, "Refusing to install: %s. Nothing was changed.", why);
        if (!c->view.layout.slot[t].present)
                return log_error_errno(-ENOENT, "Refusing to install: slot %s has no partitions on %s. Nothing was changed.",
                                       slot_to_string(t), c->disk);
        return 0;
}

/* An image that already failed in this slot (its UKI, dst, pins roothash)
 * is not retried by accident. */
static int failed_before(const struct ctx *c, Slot t, const char *dst, const char *roothash) {
        char old[ROOTHASH_HEX_MAX + 1];
        bool failed = c->view.st[t].priority == 0 && !c->view.st[t].successful;
        if (failed && access(dst, F_OK) == 0 && uki_roothash(dst, old) >= 0 && streq(old, roothash) && !c->force)
                return log_error_errno(-EALREADY, "Refusing to install: this image (root hash %.16s...) already failed "
                                       "in slot %s. Install it anyway with --force", roothash, slot_to_string(t));
        return 0;
}

/* Slot t not bootable in the GPT, before a byte of it is written. */
static int mark_not_bootable(struct ctx *c, Slot t) {
        int r = abctl_apply(c, SLOT_OP_INSTALL_BEGIN, t);
        if (r < 0)
                return log_error_errno(r, "Failed to mark slot %s not bootable before writing it. Nothing was written.",
                                       slot_to_string(t));
        return 0;
}

int abctl_install(struct ctx *c, const char *prefix, const char *uki) {
        Slot t = c->install_slot >= 0 ? c->install_slot : slot_other(c->running);
        const struct slot_partitions *p = &c->view.layout.slot[t];
        char img[512], hash[512], roothash[ROOTHASH_HEX_MAX + 1], dst[600];
        struct stat si, sh;
        int r;

        /* ---- checks: nothing is written until all pass ---- */
        r = install_allowed(c, t);
        if (r < 0)
                return r;
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

        r = failed_before(c, t, dst, roothash);
        /* The UKI goes in last, after the image: make sure now that it can. */
        struct stat su;
        if (r >= 0)
                r = stat(uki, &su) < 0 ? log_error_errno(-errno, "Cannot read %s: %m", uki)
                                       : esp_has_room(esp, dst, (uint64_t) su.st_size);
        if (r < 0) {
                abctl_esp_release(mounted);
                return log_error_errno(r, "Refusing to install. Nothing was changed.");
        }

        /* ---- writes ---- */
        r = mark_not_bootable(c, t);
        if (r < 0)
                return r;

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

/* ---- install from an OCI layout or registry -------------------------------------- */

/* Where the system layer goes: its first data_size bytes to the data
 * partition, the rest (the hash tree) to the verity partition. */
struct system_sink {
        int data_fd, hash_fd;
        uint64_t data_off, hash_off;   /* byte offsets in those fds */
        uint64_t data_size, total;
        uint64_t started_ms, shown_ms;
        const char *what;
        bool tty;
};

static int system_sink(void *userdata, uint64_t offset, const uint8_t *buf, size_t n) {
        struct system_sink *s = userdata;
        int r = 0;
        if (offset < s->data_size) {
                size_t k = (size_t) MIN((uint64_t) n, s->data_size - offset);
                r = pwrite_all(s->data_fd, buf, k, s->data_off + offset);
                buf += k, n -= k, offset += k;
        }
        if (r >= 0 && n > 0)
                r = pwrite_all(s->hash_fd, buf, n, s->hash_off + offset - s->data_size);
        if (r < 0)
                return log_error_errno(r, "Writing %s failed: %m", s->what);
        uint64_t t = now_monotonic_ms(), done = offset + n;
        if (s->tty && (t - s->shown_ms >= 250 || done == s->total)) {
                double secs = (double) (t - s->started_ms) / 1000;
                fprintf(stderr, "\rabctl: %s: %3llu%% %7.1f of %.1f MiB, %.1f MiB/s   ", s->what,
                        (unsigned long long) (s->total ? done * 100 / s->total : 100), (double) done / 1048576,
                        (double) s->total / 1048576, secs > 0 ? (double) done / 1048576 / secs : 0.0);
                s->shown_ms = t;
        }
        return 0;
}

struct file_sink {
        int fd;
};

static int file_sink(void *userdata, uint64_t offset, const uint8_t *buf, size_t n) {
        struct file_sink *f = userdata;
        int r = pwrite_all(f->fd, buf, n, offset);
        return r < 0 ? log_error_errno(r, "Writing the UKI to the ESP failed%s: %m",
                                       r == -ENOSPC ? " (the ESP is full)" : "") : 0;
}

/* The partition's own device when it is one (reads then see what was
 * written); else the disk (an image file) at the partition's offset. */
static int open_target(const struct ctx *c, const char *dev, uint64_t start, int *ret_fd, uint64_t *ret_off) {
        struct stat st;
        if (dev[0] && stat(dev, &st) == 0 && S_ISBLK(st.st_mode)) {
                *ret_fd = open(dev, O_WRONLY | O_CLOEXEC | O_NOCTTY);
                *ret_off = 0;
        } else {
                *ret_fd = open(c->disk, O_WRONLY | O_CLOEXEC | O_NOCTTY);
                *ret_off = start * 512;
        }
        return *ret_fd < 0 ? log_error_errno(-errno, "Cannot open %s for writing: %m", dev[0] ? dev : c->disk) : 0;
}

/* Flushed to the medium and dropped from the cache, so that the check
 * after it reads the disk, not memory. */
static int flush_target(int fd, const char *what) {
        if (fdatasync(fd) < 0)
                return log_error_errno(-errno, "Flushing %s failed: %m", what);
        struct stat st;
        if (fstat(fd, &st) == 0 && S_ISBLK(st.st_mode))
                (void) ioctl(fd, BLKFLSBUF, 0);
        return 0;
}

int abctl_install_oci(struct ctx *c, const char *reference, const struct oci_options *o) {
        Slot t = c->install_slot >= 0 ? c->install_slot : slot_other(c->running);
        struct slot_partitions *p = &c->view.layout.slot[t];
        char why[300], dst[600], tmp[610], digest[OCI_DIGEST_MAX + 1], uki_hash[ROOTHASH_HEX_MAX + 1];
        struct oci_ref ref;
        struct oci_source src;
        struct oci_manifest m;
        struct oci_config cfg;
        _cleanup_free_ char *cfg_json = NULL;
        _cleanup_close_ int data_fd = -1, hash_fd = -1;
        bool mounted = false;
        int r;

        /* ---- checks: nothing of the slot is written until all pass ---- */
        r = oci_ref_parse(reference, &ref, why, sizeof(why));
        if (r < 0)
                return log_error_errno(r, "Refusing to install: %s. Nothing was changed.", why);
        r = install_allowed(c, t);
        if (r < 0)
                return r;
        /* The partitions' own nodes, when the disk is a device: written
         * through them, what is verified afterwards is read from them. */
        struct stat sd;
        if (!p->data_dev[0] && stat(c->view.layout.disk, &sd) == 0 && S_ISBLK(sd.st_mode)) {
                partition_node(c->view.layout.disk, p->data_partno, p->data_dev, sizeof(p->data_dev));
                partition_node(c->view.layout.disk, p->hash_partno, p->hash_dev, sizeof(p->hash_dev));
        }
        r = oci_source_open(&src, &ref, o);
        if (r < 0)
                goto refused;
        r = oci_resolve(&src, &m, digest);
        if (r < 0)
                goto refused;
        r = oci_fetch_small(&src, &m.config, OCI_CONFIG_MAX, &cfg_json);
        if (r < 0)
                goto refused;
        r = oci_config_parse(cfg_json, (size_t) m.config.size, &cfg, why, sizeof(why));
        if (r < 0) {
                log_error("Image %s: %s", digest, why);
                goto refused;
        }
        if (!streq(cfg.os, "linux") || !streq(cfg.architecture, oci_native_architecture())) {
                r = log_error_errno(-ENOEXEC, "Image %s is for %s/%s; this machine is linux/%s", digest, cfg.os,
                                    cfg.architecture, oci_native_architecture());
                goto refused;
        }
        if (m.system.size != cfg.data_size + cfg.hash_size) {
                r = log_error_errno(-EBADMSG, "Image %s: its system layer has %llu bytes, its config says %llu + %llu",
                                    digest, (unsigned long long) m.system.size, (unsigned long long) cfg.data_size,
                                    (unsigned long long) cfg.hash_size);
                goto refused;
        }
        if (cfg.data_size > p->data_size * 512 || cfg.hash_size > p->hash_size * 512) {
                r = log_error_errno(-EFBIG, "Image %s does not fit slot %s: %llu + %llu bytes, the partitions hold "
                                    "%llu + %llu", digest, slot_to_string(t), (unsigned long long) cfg.data_size,
                                    (unsigned long long) cfg.hash_size, (unsigned long long) p->data_size * 512,
                                    (unsigned long long) p->hash_size * 512);
                goto refused;
        }
        log_info("Image %s: %s %s, root hash %.16s..., %.1f MiB", digest, cfg.name, cfg.version, cfg.roothash,
                 (double) (m.uki.size + m.system.size) / 1048576);

        const char *esp = abctl_esp_find(c, &mounted);
        if (!esp) {
                r = log_error_errno(-ENOENT, "Cannot find the ESP with EFI/abswitch in /efi, /boot/efi or /boot, "
                                    "nor mount it; mount it or pass --esp DIR");
                goto refused;
        }
        uki_file(esp, t, dst, sizeof(dst));
        r = failed_before(c, t, dst, cfg.roothash);
        if (r < 0)
                goto refused;
        r = esp_has_room(esp, dst, m.uki.size);
        if (r < 0)
                goto refused;

        /* The UKI, next to the slot's current one; renamed over it last. */
        (void) snprintf(tmp, sizeof(tmp), "%s.new", dst);
        {
                struct file_sink f = { .fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY, 0644) };
                if (f.fd < 0) {
                        r = log_error_errno(-errno, "Cannot create %s: %m", tmp);
                        goto refused;
                }
                r = oci_fetch_blob(&src, &m.uki, file_sink, &f);
                if (r >= 0 && fsync(f.fd) < 0)
                        r = log_error_errno(-errno, "Flushing %s failed: %m", tmp);
                close(f.fd);
        }
        if (r >= 0)
                r = uki_roothash(tmp, uki_hash);
        if (r >= 0 && !streq(uki_hash, cfg.roothash))
                r = log_error_errno(-EBADMSG, "The image's UKI pins root hash %.16s..., its config says %.16s...: "
                                    "they do not belong together", uki_hash, cfg.roothash);
        if (r < 0) {
                (void) unlink(tmp);
                goto refused;
        }

        /* ---- writes ---- */
        r = mark_not_bootable(c, t);
        if (r < 0) {
                (void) unlink(tmp);
                abctl_esp_release(mounted);
                oci_source_close(&src);
                return r;
        }

        char what[64];
        (void) snprintf(what, sizeof(what), "slot %s", slot_to_string(t));
        struct system_sink ss = { .data_size = cfg.data_size, .total = m.system.size, .what = what,
                                  .tty = isatty(STDERR_FILENO), .started_ms = now_monotonic_ms() };
        r = open_target(c, p->data_dev, p->data_start, &data_fd, &ss.data_off);
        if (r >= 0)
                r = open_target(c, p->hash_dev, p->hash_start, &hash_fd, &ss.hash_off);
        ss.data_fd = data_fd, ss.hash_fd = hash_fd;
        if (r >= 0)
                r = oci_fetch_blob(&src, &m.system, system_sink, &ss);
        if (ss.tty)
                fprintf(stderr, "\n");
        if (r >= 0) {
                double secs = (double) (now_monotonic_ms() - ss.started_ms) / 1000;
                log_info("Wrote %.1f MiB into slot %s in %.1f s (%.1f MiB/s, %u retries)",
                         (double) m.system.size / 1048576, slot_to_string(t), secs,
                         secs > 0 ? (double) m.system.size / 1048576 / secs : 0.0, src.retries);
                r = flush_target(data_fd, p->data_dev);
        }
        if (r >= 0)
                r = flush_target(hash_fd, p->hash_dev);
        oci_source_close(&src);
        /* What is on the disk now, against the root hash the UKI pins. */
        if (r >= 0 && (!p->data_dev[0] || !p->hash_dev[0]))
                r = log_error_errno(-ENODEV, "Slot %s's partitions have no device nodes: cannot verify what was written",
                                    slot_to_string(t));
        if (r >= 0)
                r = verify_image(p->data_dev, p->hash_dev, cfg.roothash);
        if (r >= 0)
                r = put_in_place(tmp, dst);
        else
                (void) unlink(tmp);
        abctl_esp_release(mounted);
        if (r < 0)
                return log_error_errno(r, "Install failed; slot %s stays not bootable, slot %s is untouched.",
                                       slot_to_string(t), slot_to_string(c->running));

        printf("Installed %s (%s %s, %s) into slot %s, verified against root hash %.16s...\n", reference, cfg.name,
               cfg.version, digest, slot_to_string(t), cfg.roothash);
        return abctl_apply(c, SLOT_OP_INSTALL, t);

refused:
        oci_source_close(&src);
        abctl_esp_release(mounted);
        return log_error_errno(r, "Refusing to install %s. Nothing was changed.", reference);
}
