/* SPDX-License-Identifier: MIT */
/* The init's two kexec duties (README "kexec").
 *
 * A kernel started by kexec (ab.kexec= on its command line, added by abctl
 * reboot --kexec or by a kexec redirect) booted through no firmware: the
 * BootNext that armed its attempt is still set. Once its init runs, that
 * attempt has started, as the firmware would have consumed BootNext; it is
 * removed, so that a reset during the trial goes where it goes after a
 * firmware-started attempt (BootOrder: the committed slot), and a try buys
 * one attempt either way.
 *
 * With ab.redirect=kexec, a redirect to the other slot starts that slot's
 * UKI from the ESP by kexec instead of a firmware reset. Anything that does
 * not work falls back to the firmware reset, with one line saying why. */

#define _GNU_SOURCE 1
#include <dirent.h>
#include <fcntl.h>
#include <linux/reboot.h>
#include <stdio.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>

#include "../common/log.h"
#include "../efi/kexec.h"
#include "init.h"

#define ESP_MOUNT "/run/abswitch-esp"

static void closedirp(DIR **d) {
        if (*d)
                (void) closedir(*d);
}

void kexec_boot_started(struct boot *b) {
        if (!b->cmdline.kexec_sha256[0])
                return;
        log_info("Started by kexec from a UKI with sha256 %.16s..., not by the firmware", b->cmdline.kexec_sha256);
        if (!b->view.efivarfs || !slots_view_boot_next_is(&b->view, b->id.slot))
                return;
        int r = efi_var_delete(b->view.efivarfs, "BootNext", EFI_GLOBAL_GUID);
        if (r < 0 && r != -ENOENT) {
                log_warning_errno(r, "Failed to remove BootNext (Boot%04X, this slot's attempt, started by kexec): "
                                  "%m; a reset starts slot %s once more through the firmware",
                                  (unsigned) b->view.vars.boot_next, slot_to_string(b->id.slot));
                return;
        }
        log_info("Removed BootNext (Boot%04X): this kexec is the attempt it armed", (unsigned) b->view.vars.boot_next);
        b->view.vars.boot_next = -1;
        b->writes.nvram_writes++;
}

/* The ESP's device node, from sysfs: the child of the disk whose partition
 * number is the ESP's. */
static int esp_node(const struct slot_layout *l, char *ret, size_t size) {
        const char *disk = strrchr(l->disk, '/');
        char dir[384];
        disk = disk ? disk + 1 : l->disk;
        (void) snprintf(dir, sizeof(dir), "/sys/class/block/%s", disk);
        _cleanup_(closedirp) DIR *d = opendir(dir);
        if (!d)
                return -errno;
        for (struct dirent *de; (de = readdir(d));) {
                char p[640], num[16];
                if (de->d_name[0] == '.')
                        continue;
                (void) snprintf(p, sizeof(p), "%s/%s/partition", dir, de->d_name);
                _cleanup_close_ int fd = open(p, O_RDONLY | O_CLOEXEC | O_NOCTTY);
                ssize_t n = fd < 0 ? -1 : read(fd, num, sizeof(num) - 1);
                if (n <= 0)
                        continue;
                num[n] = 0;
                if ((unsigned) strtoul(num, NULL, 10) == l->esp_partno) {
                        (void) snprintf(ret, size, "/dev/%s", de->d_name);
                        return 0;
                }
        }
        return -ENOENT;
}

/* Reads slot s's UKI from the ESP, mounted read-only for the time it takes. */
static int read_uki(struct boot *b, Slot s, struct uki_image *ret, char *why, size_t why_size) {
        char dev[320], path[256];
        int r;

        if (!b->view.layout.esp_present) {
                (void) snprintf(why, why_size, "no ESP on %s", b->view.layout.disk);
                return -ENOENT;
        }
        r = esp_node(&b->view.layout, dev, sizeof(dev));
        if (r < 0) {
                (void) snprintf(why, why_size, "the ESP (partition %u of %s) has no device node: %s",
                                b->view.layout.esp_partno, b->view.layout.disk, strerror(-r));
                return r;
        }
        /* On demand: a boot that does not redirect never loads them. */
        static const char *const mods[] = { "vfat", "nls_cp437", "nls_ascii" };
        for (size_t i = 0; i < ELEMENTSOF(mods); i++)
                (void) modules_load_one(mods[i]);
        (void) mkdir(ESP_MOUNT, 0700);
        if (mount(dev, ESP_MOUNT, "vfat", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "umask=0077") < 0) {
                r = -errno;
                (void) snprintf(why, why_size, "mounting the ESP %s failed: %s (is vfat in the initramfs?)", dev,
                                strerror(-r));
                (void) rmdir(ESP_MOUNT);
                return r;
        }
        /* slot_uki_path() is the EFI path, with backslashes. */
        (void) snprintf(path, sizeof(path), ESP_MOUNT "%s", slot_uki_path(s));
        for (char *p = path; *p; p++)
                if (*p == '\\')
                        *p = '/';
        r = uki_image_read(path, ret);
        if (r < 0)
                (void) snprintf(why, why_size, "cannot read %s on the ESP: %s", slot_uki_path(s), strerror(-r));
        (void) umount(ESP_MOUNT);
        (void) rmdir(ESP_MOUNT);
        return r;
}

int kexec_redirect(struct boot *b, Slot s) {
        _cleanup_(uki_image_done) struct uki_image img = {};
        _cleanup_(uki_kexec_parts_done) struct uki_kexec_parts parts = {};
        char why[512] = "", sha[KEXEC_SHA256_HEX + 1];
        const char *missing = NULL;
        uint64_t t0 = now_boottime_us();
        int r;

        r = read_uki(b, s, &img, why, sizeof(why));
        if (r >= 0) {
                uki_image_sha256_hex(&img, sha);
                char extra[160];
                (void) snprintf(extra, sizeof(extra), "ab.slot=%s ab.kexec=%s", slot_to_string(s), sha);
                r = uki_kexec_parts(&img, extra, &parts, &missing);
                if (r < 0)
                        (void) snprintf(why, sizeof(why), "%s %s", slot_uki_path(s),
                                        r == -ENOEXEC ? "has no .linux section" : "is not a valid UKI");
        }
        if (r >= 0) {
                r = uki_kexec_load(&parts);
                if (r < 0)
                        (void) snprintf(why, sizeof(why), "kexec_file_load refused: %s (%s)", uki_kexec_strerror(r),
                                        strerror(-r));
        }
        uki_image_done(&img);
        if (r < 0) {
                log_warning("ab.redirect=kexec: cannot start slot %s by kexec: %s; rebooting through the firmware",
                            slot_to_string(s), why);
                return r;
        }

        /* A trial's try buys one attempt, and this kexec is it: without its
         * BootNext, a kernel that dies before its init gives the machine
         * back to BootOrder (the committed slot, which redirects again and
         * pays again), not to a second attempt for the same try. A committed
         * target keeps it: it pays no try, and its armed bit bounds the
         * redirects only while a BootNext reaches it (slots/engine.h). */
        int next = b->view.vars.boot_next;
        bool removed = false;
        if (!b->decision.t.slot[s].successful && next >= 0 && b->view.efivarfs) {
                r = efi_var_delete(b->view.efivarfs, "BootNext", EFI_GLOBAL_GUID);
                removed = r >= 0;
                if (r < 0)
                        log_warning_errno(r, "Failed to remove BootNext before the kexec: %m; a kernel that dies "
                                          "before its init is started once more through the firmware");
        }
        log_notice("Starting slot %s by kexec (ab.redirect=kexec): %s, sha256 %.16s..., loaded in %llu ms",
                   slot_to_string(s), slot_uki_path(s), sha, (unsigned long long) (now_boottime_us() - t0) / 1000);
        log_close();
        sync();
        (void) reboot(LINUX_REBOOT_CMD_KEXEC);
        r = -errno;
        log_setup("abswitch", LOG_TARGET_KMSG);
        if (removed && efi_boot_next_write(b->view.efivarfs, (uint16_t) next) < 0)
                log_warning("Failed to restore BootNext (Boot%04X)", (unsigned) next);
        (void) uki_kexec_unload();
        log_warning("ab.redirect=kexec: reboot(KEXEC) failed: %s; rebooting through the firmware", strerror(-r));
        return r;
}
