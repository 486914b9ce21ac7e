/* SPDX-License-Identifier: MIT */
/* The ESP: finding or mounting it, the slots' UKIs and the removable-path
 * copy on it. See esp.h. */

#include <fcntl.h>
#include <stdio.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "../common/io.h"
#include "../common/log.h"
#include "../efi/uki.h"
#include "blockdev.h"
#include "esp.h"
#include "origin.h"

#define RUN_DIR "/run/abswitch"

const char *esp_find_mounted(const struct ctx *c) {
        static const char *const candidates[] = { "/efi", "/boot/efi", "/boot" };
        if (c->esp)
                return c->esp;
        if (c->esp_mount)
                return c->esp_mount;
        for (size_t i = 0; i < ELEMENTSOF(candidates); i++) {
                _cleanup_free_ char *p = NULL;
                if (abctl_path(&p, "%s/EFI/abswitch", candidates[i]) >= 0 && access(p, F_OK) == 0)
                        return candidates[i];
        }
        return NULL;
}

int esp_open(const struct ctx *c, struct esp *ret) {
        const struct slot_layout *l = &c->view.layout;
        struct part_dev dev = PART_DEV_NULL;
        char mp[] = RUN_DIR "/esp.XXXXXX";
        int r;

        *ret = (struct esp) {};
        ret->dir = esp_find_mounted(c);
        if (ret->dir)
                return 0;
        if (!l->esp_present) {
                log_warning("%s has no EFI System partition, and none is mounted on /efi, /boot/efi or /boot",
                            c->disk);
                return -ENOENT;
        }
        r = part_dev_get(c->disk, l->esp_partno, l->esp_start, l->esp_size, true, &dev);
        if (r < 0) {
                log_warning_errno(r, "Cannot find the node of the ESP (partition %u of %s): %m", l->esp_partno,
                                  c->disk);
                return -ENOENT;
        }
        (void) mkdir(RUN_DIR, 0755);
        if (!mkdtemp(mp)) {
                r = -errno;
                part_dev_release(&dev);
                log_warning_errno(r, "Cannot make a mount point under " RUN_DIR ": %m");
                return -ENOENT;
        }
        if (mount(dev.path, mp, "vfat", MS_NOSUID | MS_NODEV | MS_NOEXEC, "umask=0077") < 0) {
                r = -errno;
                log_warning_errno(r, "Cannot mount the ESP %s on %s: %m", dev.path, mp);
                (void) rmdir(mp);
                part_dev_release(&dev);
                return -ENOENT;
        }
        log_info("Mounted the ESP %s on %s", dev.path, mp);
        /* A loop device stays while mounted, and goes with the mount. */
        part_dev_release(&dev);
        ret->mountpoint = strdup(mp);
        if (!ret->mountpoint) {
                (void) umount(mp);
                (void) rmdir(mp);
                return -ENOMEM;
        }
        ret->dir = ret->mountpoint;
        return 0;
}

void esp_close(struct esp *e) {
        if (e->mountpoint) {
                /* umount writes the file system back; a file still open
                 * somewhere must not keep it mounted. */
                if (umount(e->mountpoint) < 0)
                        (void) umount2(e->mountpoint, MNT_DETACH);
                (void) rmdir(e->mountpoint);
                free(e->mountpoint);
        }
        *e = (struct esp) {};
}

int esp_uki_path(const char *dir, Slot s, char **ret) {
        return abctl_path(ret, "%s/EFI/abswitch/boot-%s.efi", dir, slot_to_lower(s));
}

int esp_temp_path(const char *dst, char **ret) {
        return abctl_path(ret, "%s.new", dst);
}

int esp_remove_stale(const char *dir) {
        for (unsigned i = 0; i < 2 * _SLOT_MAX; i++) {
                _cleanup_free_ char *dst = NULL, *tmp = NULL;
                Slot s = (Slot) (i % _SLOT_MAX);
                /* The UKIs' temporaries, then the origins' (origin.c). */
                int r = i < _SLOT_MAX ? esp_uki_path(dir, s, &dst) : origin_path(dir, s, &dst);
                if (r >= 0)
                        r = esp_temp_path(dst, &tmp);
                if (r < 0)
                        return r;
                struct stat st;
                /* A read-only ESP says EROFS even for a missing file. */
                if (lstat(tmp, &st) < 0 && errno == ENOENT)
                        continue;
                if (unlink(tmp) >= 0)
                        log_info("Removed %s, left by an interrupted install", tmp);
                else if (errno != ENOENT)
                        return log_error_errno(-errno, "Cannot remove %s, left by an interrupted install: %m", tmp);
        }
        return 0;
}

/* The directory a file name is in ("a/b/c" -> "a/b"). */
static char *dir_of(const char *path) {
        char *d = strdup(path);
        char *slash = d ? strrchr(d, '/') : NULL;
        if (slash)
                *slash = 0;
        return d;
}

int esp_check_room(const char *esp, const char *dst, uint64_t size) {
        _cleanup_free_ char *dir = dir_of(dst);
        struct statvfs sv;

        if (!dir)
                return log_error_errno(-ENOMEM, "Out of memory");
        if (access(dir, W_OK) < 0)
                return log_error_errno(-errno, "The ESP at %s is not writable (%m)%s", esp,
                                       errno == EROFS ? ": it is mounted read-only; remount it read-write" : "");
        if (statvfs(dir, &sv) < 0)
                return log_error_errno(-errno, "Cannot read the free space of the ESP at %s: %m", esp);
        uint64_t free_bytes = (uint64_t) sv.f_bavail * sv.f_frsize, need = size + 64 * 1024;
        if (free_bytes < need)
                return log_error_errno(-ENOSPC, "the ESP is full: %s has %llu bytes free, the UKI needs %llu "
                                       "(with a margin); remove old files from it", esp,
                                       (unsigned long long) free_bytes, (unsigned long long) need);
        return 0;
}

int esp_put_in_place(const char *tmp, const char *dst) {
        int r = rename_into_place(tmp, dst);
        if (r < 0)
                return log_error_errno(r, "Cannot put %s in place: %m", dst);
        return 0;
}

/* Replaces dst by a copy of src (write_file_atomic): src is a UKI, read
 * whole, as abctl reboot --kexec does. Its temporary is esp_temp_path(dst). */
static int replace_file(const char *src, const char *dst) {
        _cleanup_free_ char *data = NULL;
        size_t size = 0;
        int r = read_file_bounded(src, UKI_SIZE_MAX, &data, &size);
        if (r < 0)
                return log_error_errno(r, "Cannot read %s: %m", src);
        r = write_file_atomic(dst, data, size);
        if (r < 0)
                return log_error_errno(r, "Writing %s failed%s: %m", dst,
                                       r == -ENOSPC ? " (the ESP is full)"
                                       : r == -EROFS || r == -EACCES ? " (is the ESP mounted read-write?)" : "");
        return 0;
}

void esp_update_removable(const struct ctx *c, Slot s) {
        _cleanup_(esp_close) struct esp esp = {};
        _cleanup_free_ char *src = NULL, *dst = NULL;

        if (esp_open(c, &esp) < 0) {
                log_warning("Cannot find or mount the ESP: the removable-path copy \\EFI\\BOOT\\BOOTX64.EFI "
                            "still holds the previously committed UKI");
                return;
        }
        if (esp_uki_path(esp.dir, s, &src) < 0 || abctl_path(&dst, "%s/EFI/BOOT/BOOTX64.EFI", esp.dir) < 0) {
                log_warning("The ESP's path %s is too long: the removable-path copy is left as it was", esp.dir);
                return;
        }
        if (access(src, F_OK) < 0)
                log_warning("%s is missing: the removable-path copy is left as it was", src);
        else if (replace_file(src, dst) >= 0)
                printf("Removable path %s is now a copy of slot %s's UKI\n", dst, slot_to_string(s));
}
