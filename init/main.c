/* SPDX-License-Identifier: MIT */
/* abswitch-init: the initramfs's PID 1.
 *
 * Works out its slot, finds the slot's system partition, sets up dm-verity
 * against the root hash this UKI pins, mounts the result read-only and
 * switches root. Every failing step prints one line naming the step and the
 * cause, then the init stops (fallback to the other slot is the job of the
 * boot protocol in slots/, which this flow will call). */

#include <blkid.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <json-c/linkhash.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>

#include "../common/log.h"
#include "../common/record.h"
#include "../efi/efi.h"
#include "../slots/slots.h"
#include "../verity/verity.h"
#include "../efi/cmdline.h"
#include "init.h"

#ifndef ABSWITCH_VERSION
#define ABSWITCH_VERSION "0"
#endif

#define NEWROOT "/sysroot"
#define MODULES_LIST "/etc/abswitch/modules"
#define DM_NAME "abswitch-root"

/* The boot record's phases are this init's, in this order. */
_Static_assert(_PHASE_MAX == BOOT_RECORD_PHASES, "common/record.h's phases are enum phase's");
_Static_assert(_SLOT_MAX == BOOT_RECORD_SLOTS, "common/record.h's slots are A and B");

static _Noreturn void stop(struct boot *b, const char *step, const char *fmt, ...) _printf_(3, 4);

/* The one emergency path, when the protocol says nothing can boot: the
 * reason on the console, and no reboot: an unexplained reboot loop is the
 * worst outcome for an operator. */
static _Noreturn void stop(struct boot *b, const char *step, const char *fmt, ...) {
        char msg[768];
        va_list ap;

        va_start(ap, fmt);
        (void) vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);

        log_emerg("Cannot boot slot %s: %s: %s", b->id.source >= 0 ? slot_to_string(b->id.slot) : "?", step, msg);
        log_emerg("Stopped here; the running slot's partitions were not written. Fix the cause above, or start "
                  "a slot's own UKI (%s or %s) from the firmware's boot menu.",
                  slot_uki_path(SLOT_A), slot_uki_path(SLOT_B));
        for (;;)
                pause();
}

static void complain(void *userdata, const char *param, const char *why) {
        (void) userdata;
        log_warning("Kernel command line: %s %s", param, why);
}

static void complain_pin(void *userdata, const char *param, const char *why) {
        (void) userdata;
        log_error("This UKI's root-hash pin %s: %s %s", UKI_PIN_PATH, param, why);
}

static int write_file(const char *path, const char *s) {
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        size_t n = strlen(s);
        return write(fd, s, n) == (ssize_t) n ? 0 : -errno;
}

/* -EFBIG when the file does not fit: never act on half of it. */
static int read_small_file(const char *path, char *buf, size_t size) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        char more;
        if (fd < 0)
                return -errno;
        ssize_t n = read(fd, buf, size - 1);
        if (n < 0)
                return -errno;
        if (read(fd, &more, 1) > 0)
                return -EFBIG;
        buf[n] = 0;
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
                buf[--n] = 0;
        return 0;
}

/* The root hash this UKI trusts. The pin mkuki put into its .initrd wins:
 * without Secure Boot a boot entry's optional data replaces the whole
 * command line (systemd-stub 252), and must neither remove the pin nor
 * change it. A UKI without a pin (an integrator's own) falls back to
 * ab.roothash=; one with a broken pin trusts nothing. */
static void read_pin(struct boot *b) {
        char text[UKI_PIN_SIZE_MAX + 1];
        struct uki_pin pin;
        int r;

        r = read_small_file(UKI_PIN_PATH, text, sizeof(text));
        if (r == -ENOENT) {
                b->roothash_source = b->cmdline.roothash[0] ? "cmdline" : "none";
                if (b->cmdline.roothash[0])
                        log_notice("This UKI carries no %s: trusting ab.roothash= from the kernel command line, "
                                   "which a boot entry's options replace without Secure Boot (initramfs/mkuki "
                                   "writes the pin)", UKI_PIN_PATH);
                return;
        }
        if (r >= 0)
                r = uki_pin_parse(text, &pin, complain_pin, NULL);
        else
                log_error_errno(r, "Failed to read this UKI's root-hash pin %s: %m", UKI_PIN_PATH);
        if (r < 0) {
                log_error("This UKI's root-hash pin %s is broken (see above): it pins no root hash, and "
                          "ab.roothash= on the command line does not stand in for it; rebuild the UKI with "
                          "initramfs/mkuki", UKI_PIN_PATH);
                b->cmdline.roothash[0] = 0;
                b->roothash_source = "none";
                return;
        }
        cmdline_apply_pin(&b->cmdline, &pin, complain, NULL);
        b->roothash_source = "pin";
        log_info("Root hash pinned by this UKI (%s): %.16s...%s%s", UKI_PIN_PATH, pin.roothash,
                 pin.slot >= 0 ? ", slot " : "", pin.slot >= 0 ? slot_to_string(pin.slot) : "");
}

static void mount_api_filesystems(void) {
        static const struct {
                const char *what, *where, *type, *opts;
                unsigned long flags;
        } m[] = {
                { "proc", "/proc", "proc", NULL, MS_NOSUID | MS_NOEXEC | MS_NODEV },
                { "sysfs", "/sys", "sysfs", NULL, MS_NOSUID | MS_NOEXEC | MS_NODEV },
                { "devtmpfs", "/dev", "devtmpfs", "mode=0755", MS_NOSUID },
                { "tmpfs", "/run", "tmpfs", "mode=0755", MS_NOSUID | MS_NODEV },
        };
        for (size_t i = 0; i < ELEMENTSOF(m); i++) {
                (void) mkdir(m[i].where, 0755);
                if (mount(m[i].what, m[i].where, m[i].type, m[i].flags, m[i].opts) < 0 && errno != EBUSY)
                        /* Logging is not up yet: the console is all there is. */
                        dprintf(STDERR_FILENO, "abswitch: Failed to mount %s on %s: %m\n", m[i].type, m[i].where);
        }
}

/* Userspace writes to /dev/kmsg are rate-limited per open file (10 lines
 * per 5 s by default): switch that off while we log, restore it before the
 * root's init runs. The sysctl accepts a value only with its trailing
 * newline (kernel/printk/printk.c, devkmsg_sysctl_set_loglvl). */
static void devkmsg_unlimit(struct boot *b) {
        if (read_small_file("/proc/sys/kernel/printk_devkmsg", b->devkmsg_saved, sizeof(b->devkmsg_saved)) < 0)
                b->devkmsg_saved[0] = 0;
        if (b->devkmsg_saved[0] && !streq(b->devkmsg_saved, "on"))
                (void) write_file("/proc/sys/kernel/printk_devkmsg", "on\n");
}

static void devkmsg_restore(struct boot *b) {
        if (b->devkmsg_saved[0] && !streq(b->devkmsg_saved, "on")) {
                char v[40];
                (void) snprintf(v, sizeof(v), "%s\n", b->devkmsg_saved);
                (void) write_file("/proc/sys/kernel/printk_devkmsg", v);
        }
}

static void read_efi_facts(struct boot *b) {
        struct stat st;
        int r;

        b->facts.boot_current = -1;
        if (stat("/sys/firmware/efi", &st) < 0) {
                log_notice("Not booted through EFI: the slot comes from ab.slot= or the default");
                return;
        }
        (void) mkdir(EFIVARFS_PATH, 0755);
        if (mount("efivarfs", EFIVARFS_PATH, "efivarfs", MS_NOSUID | MS_NOEXEC | MS_NODEV, NULL) < 0 &&
            errno != EBUSY) {
                log_warning_errno(-errno, "Failed to mount efivarfs on %s, ignoring EFI variables: %m",
                                  EFIVARFS_PATH);
                return;
        }
        b->efi = true;

        static const struct {
                const char *name;
                size_t offset;
        } strs[] = {
                { "StubImageIdentifier", offsetof(struct boot, stub_image) },
                { "LoaderImageIdentifier", offsetof(struct boot, loader_image) },
                { "LoaderInfo", offsetof(struct boot, loader_info) },
                { "LoaderEntrySelected", offsetof(struct boot, loader_entry) },
                { "LoaderDevicePartUUID", offsetof(struct boot, esp_partuuid) },
        };
        for (size_t i = 0; i < ELEMENTSOF(strs); i++) {
                char **p = (char **) ((uint8_t *) b + strs[i].offset);
                r = efi_var_read_string(EFIVARFS_PATH, strs[i].name, EFI_LOADER_GUID, p);
                if (r < 0 && r != -ENOENT)
                        log_warning_errno(r, "EFI variable %s is unreadable or not UTF-16, ignoring it: %m",
                                          strs[i].name);
                else if (r >= 0)
                        log_debug("EFI variable %s=%s", strs[i].name, *p);
        }

        _cleanup_free_ void *v = NULL;
        size_t size;
        uint16_t cur;
        r = efi_var_read(EFIVARFS_PATH, "BootCurrent", EFI_GLOBAL_GUID, NULL, &v, &size);
        if (r == -ENOENT)
                return;
        if (r < 0 || efi_parse_u16(v, size, &cur) < 0) {
                log_warning_errno(r < 0 ? r : -EBADMSG, "EFI variable BootCurrent is unreadable or not 2 bytes, ignoring it");
                return;
        }
        b->facts.boot_current = cur;

        char name[9];
        _cleanup_free_ void *opt = NULL;
        efi_boot_option_name(cur, name);
        r = efi_var_read(EFIVARFS_PATH, name, EFI_GLOBAL_GUID, NULL, &opt, &size);
        if (r < 0) {
                log_warning_errno(r, "BootCurrent names %s, which cannot be read: %m", name);
                return;
        }
        struct efi_load_option lo;
        r = efi_load_option_parse(opt, size, &lo);
        if (r < 0) {
                log_warning_errno(r, "%s is not a valid EFI load option, ignoring it: %m", name);
                return;
        }
        (void) snprintf(b->boot_current_desc, sizeof(b->boot_current_desc), "%s", lo.description);
        b->boot_current_path = TAKE_PTR(lo.file_path);
        efi_load_option_done(&lo);
}

/* Which slot's hash tree verifies against the pinned root hash: asked only
 * when no EFI source named a slot (the removable-path copy of a UKI). */
static Slot slot_matching_root_hash(struct boot *b) {
        Slot match = _SLOT_INVALID;
        int matches = 0;

        for (int s = 0; s < _SLOT_MAX; s++) {
                const struct slot_partitions *p = &b->view.layout.slot[s];
                struct verity_setup v = { .data_dev = p->data_dev, .hash_dev = p->hash_dev,
                                          .root_hash = b->cmdline.roothash, .name = "abswitch-probe",
                                          .policy = VERITY_POLICY_EIO };
                _cleanup_free_ char *path = NULL;
                char why[512];
                if (!p->present || !b->cmdline.roothash[0])
                        continue;
                if (verity_open(&v, &path, why, sizeof(why)) < 0)
                        continue;
                (void) verity_close(v.name);
                match = s;
                matches++;
        }
        return matches == 1 ? match : _SLOT_INVALID;
}

static void resolve_identity(struct boot *b) {
        b->facts.cmdline_slot = b->cmdline.slot;
        b->facts.stub_image_identifier = b->stub_image;
        b->facts.loader_image_identifier = b->loader_image;
        b->facts.loader_info = b->loader_info;
        b->facts.loader_entry_selected = b->loader_entry;
        b->facts.boot_current_path = b->boot_current_path;
        b->facts.sources = b->cmdline.identity_sources;
        slot_identity_resolve(&b->facts, &b->id);
}

static int wait_for_partitions(struct boot *b) {
        uint64_t deadline = now_boottime_us() + (uint64_t) b->cmdline.timeout_ms * 1000u;
        char why[512], last[512] = "";
        bool announced = false;

        for (;;) {
                int r = slots_find_partitions("/sys/block", "/dev", b->id.slot, b->esp_partuuid, &b->view.layout,
                                          why, sizeof(why));
                if (r >= 0)
                        break;
                if (r != -ENOENT)
                        stop(b, "finding the system partition", "%s", why);
                if (now_boottime_us() >= deadline) {
                        (void) snprintf(b->failure, sizeof(b->failure),
                                        "finding the system partition: %s after waiting %u s", why,
                                        b->cmdline.timeout_ms / 1000);
                        /* If the other slot is on a disk, this is a slot that cannot
                         * boot, and the protocol falls back; else nothing can. */
                        char other_why[512];
                        if (slots_find_partitions("/sys/block", "/dev", slot_other(b->id.slot), b->esp_partuuid,
                                                  &b->view.layout, other_why, sizeof(other_why)) < 0)
                                stop(b, "finding the system partition",
                                     "%s after waiting %u s. Is the disk's storage driver in the initramfs "
                                     "(initramfs/mkinitramfs --module), and was the disk made by initramfs/mkdisk?",
                                     why, b->cmdline.timeout_ms / 1000);
                        log_error("Slot %s: %s", slot_to_string(b->id.slot), b->failure);
                        return -ENOENT;
                }
                if (!announced || !streq(why, last)) {
                        log_info("Waiting up to %u s for slot %s's system partition: %s", b->cmdline.timeout_ms / 1000,
                                 slot_to_string(b->id.slot), why);
                        announced = true;
                        (void) snprintf(last, sizeof(last), "%s", why);
                }
                (void) usleep(20 * 1000);
        }
        const struct slot_partitions *p = &b->view.layout.slot[b->id.slot];
        log_info("Slot %s: file system %s, hash tree %s on %s", slot_to_string(b->id.slot), p->data_dev, p->hash_dev,
                 b->view.layout.disk);
        return 0;
}

/* Both return < 0 with b->failure set when the root cannot be used. */
static int setup_verity(struct boot *b) {
        static const enum verity_policy policy[_VERITY_ERROR_MAX] = {
                [VERITY_ERROR_RESTART] = VERITY_POLICY_RESTART,
                [VERITY_ERROR_PANIC] = VERITY_POLICY_PANIC,
                [VERITY_ERROR_EIO] = VERITY_POLICY_EIO,
                [VERITY_ERROR_FALLBACK] = VERITY_POLICY_EIO,  /* and the watcher (watch.c) */
        };
        struct verity_setup s = {
                .data_dev = b->view.layout.slot[b->id.slot].data_dev,
                .hash_dev = b->view.layout.slot[b->id.slot].hash_dev,
                .root_hash = b->cmdline.roothash,
                .name = DM_NAME,
                .policy = policy[b->cmdline.verity_error],
        };
        char why[512] = "";
        int r;

        if (!b->cmdline.roothash[0]) {
                /* A UKI that pins nothing: no root is mounted. Not a failure
                 * of the slot's image (pin_missing makes the boot unsure):
                 * a boot entry's options may have replaced the command line. */
                (void) snprintf(b->failure, sizeof(b->failure),
                                "this UKI pins no root hash (no valid %s in its initramfs, no valid ab.roothash= on "
                                "the kernel command line, which a boot entry's options replace without Secure "
                                "Boot), so no root will be mounted; build the UKI with initramfs/mkuki --roothash",
                                UKI_PIN_PATH);
                log_error("Slot %s: %s", slot_to_string(b->id.slot), b->failure);
                return -ENOKEY;
        }
        verity_log_to_debug();
        r = verity_open(&s, &b->root_dev, why, sizeof(why));
        if (r == -EKEYREJECTED)
                (void) snprintf(b->failure, sizeof(b->failure), "setting up dm-verity: %s; refusing to mount an unverified root", why);
        else if (r < 0)
                (void) snprintf(b->failure, sizeof(b->failure), "setting up dm-verity: %s (%s); refusing to mount an unverified root",
                                why, strerror(-r));
        if (r < 0) {
                log_error("Slot %s: %s", slot_to_string(b->id.slot), b->failure);
                return r;
        }
        log_info("dm-verity: %s verified against root hash %.16s... (on corruption: %s)", b->root_dev,
                 b->cmdline.roothash, verity_error_policy_to_string(b->cmdline.verity_error));
        return 0;
}

static int mount_root(struct boot *b) {
        if (!b->root_dev)
                return -ENODEV; /* setup_verity() sets it; never reached without */
        blkid_probe pr = blkid_new_probe_from_filename(b->root_dev);
        const char *type = NULL;

        if (pr) {
                /* Only the file systems a slot holds: each prober reads its own
                 * blocks through dm-verity, and the root needs none of the others. */
                static char *const types[] = { "erofs", "squashfs", "ext4", NULL };
                blkid_probe_enable_superblocks(pr, 1);
                blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE);
                (void) blkid_probe_filter_superblocks_type(pr, BLKID_FLTR_ONLYIN, (char **) types);
                if (blkid_do_safeprobe(pr) == 0 && blkid_probe_lookup_value(pr, "TYPE", &type, NULL) == 0)
                        (void) snprintf(b->fstype, sizeof(b->fstype), "%s", type);
                blkid_free_probe(pr);
        }
        if (!b->fstype[0]) {
                (void) snprintf(b->failure, sizeof(b->failure), "mounting the root: %s holds no file system libblkid recognises",
                                b->root_dev);
                goto fail;
        }
        /* The file system's module, now that the probe named it: the
         * initramfs carries erofs and squashfs, a boot loads only one. */
        (void) modules_load_one(b->fstype);
        (void) mkdir(NEWROOT, 0755);
        if (mount(b->root_dev, NEWROOT, b->fstype, MS_RDONLY | MS_NODEV, NULL) < 0) {
                (void) snprintf(b->failure, sizeof(b->failure), "mounting the root: mounting %s (%s) read-only on %s failed: %s",
                                b->root_dev, b->fstype, NEWROOT, strerror(errno));
                goto fail;
        }
        log_info("Mounted %s (%s) read-only on %s", b->root_dev, b->fstype, NEWROOT);
        return 0;
fail:
        log_error("Slot %s: %s", slot_to_string(b->id.slot), b->failure);
        (void) verity_close(DM_NAME);
        return -EIO;
}

static struct boot_record_slot_state record_state(struct slot_state s) {
        return (struct boot_record_slot_state) { .priority = s.priority, .tries = s.tries,
                                                 .successful = s.successful, .armed = s.armed };
}

/* What this boot saw and decided, in the boot record's one schema
 * (common/record.h), for abctl status, the tests and the bench. */
static void write_record(struct boot *b, uint64_t t_end) {
        const struct slot_partitions *sp = &b->view.layout.slot[b->id.slot];
        struct boot_record r;
        int k;

        /* json-c seeds its default string hash with getrandom(), which blocks
         * until the kernel's CRNG is ready: a second or more this early in
         * boot. The record is ours and small; the unseeded hash is fine. */
        (void) json_global_set_string_hash(JSON_C_STR_HASH_PERLLIKE);

        boot_record_init(&r);
        r.version = BOOT_RECORD_VERSION;
        r.abswitch = ABSWITCH_VERSION;
        r.slot = slot_to_string(b->id.slot);
        r.log = log_target_path();

        r.identity.source = identity_source_to_string(b->id.source);
        r.identity.value = b->id.value;
        for (int i = 0; i < _IDENTITY_MAX && i < BOOT_RECORD_SOURCES_MAX; i++) {
                r.identity.sources[i].name = identity_source_to_string(i);
                r.identity.sources[i].verdict = identity_verdict_to_string(b->id.verdicts[i]);
                r.identity.n_sources++;
        }

        r.efi.booted_via_efi = b->efi;
        r.efi.stub_image = b->stub_image;
        r.efi.loader_image = b->loader_image;
        r.efi.loader_info = b->loader_info;
        r.efi.loader_entry = b->loader_entry;
        r.efi.esp_partuuid = b->esp_partuuid;
        r.efi.boot_current = b->facts.boot_current;
        r.efi.boot_current_desc = b->boot_current_desc;
        r.efi.boot_current_path = b->boot_current_path;
        r.efi.boot_next = b->view.vars.boot_next;

        r.partitions.disk = b->view.layout.disk;
        r.partitions.data = sp->data_dev;
        r.partitions.hash = sp->hash_dev;
        r.partitions.data_partuuid = sp->data_uuid;

        for (int s = 0; s < _SLOT_MAX; s++) {
                r.state[s].present = b->view.layout.slot[s].present;
                r.state[s].before = record_state(b->before[s]);
                r.state[s].after = record_state(b->decision.t.slot[s]);
        }

        r.decision.action = boot_action_to_string(b->decision.action);
        r.decision.reason = boot_reason_to_string(b->decision.reason);
        r.decision.target = slot_to_string(b->decision.target);
        r.decision.trial = b->decision.trial;
        r.decision.watchdog = b->watchdog_armed;
        r.decision.gpt_writes = (int) b->writes.gpt_writes;
        r.decision.nvram_writes = (int) b->writes.nvram_writes;

        r.root.device = b->root_dev;
        r.root.fstype = b->fstype;
        r.root.roothash = b->cmdline.roothash;
        r.root.roothash_source = b->roothash_source;
        r.root.verity_error = verity_error_policy_to_string(b->cmdline.verity_error);
        r.root.init = b->cmdline.init;
        r.kexec.uki_sha256 = b->cmdline.kexec_sha256[0] ? b->cmdline.kexec_sha256 : NULL;

        /* Milliseconds: absolute on CLOCK_BOOTTIME (comparable with the
         * kernel's timestamps), and the length of each phase. */
        r.timings_ms.init_start = (double) b->t_start / 1000.0;
        uint64_t prev = b->t_start;
        for (int i = 0; i < _PHASE_MAX; i++) {
                r.timings_ms.phase[i] = (double) (b->t_phase[i] - prev) / 1000.0;
                prev = b->t_phase[i];
        }
        r.timings_ms.total = (double) (t_end - b->t_start) / 1000.0;
        r.timings_ms.switch_root = (double) t_end / 1000.0;

        static struct measure_record_hex hex;  /* 8 KiB: not on PID 1's stack */
        measure_record(b, &r, &hex);

        k = boot_record_write(&r, BOOT_RECORD_DIR);
        if (k < 0)
                log_warning_errno(k, "Failed to write %s: %m", BOOT_RECORD_PATH);
}

/* dm-verity, then the mount: the root the decision boots (struct boot_ops). */
static int open_root(struct boot *b) {
        int r = setup_verity(b);
        if (r < 0) {
                /* A distinct event: this root was refused (README "Measured boot"). */
                measure_root_failed(b, r == -ENOKEY ? "pin" : "verity");
                return -EIO;
        }
        b->t_phase[PHASE_VERITY] = now_boottime_us();
        if (mount_root(b) < 0) {
                measure_root_failed(b, "mount");
                return -EIO;
        }
        b->t_phase[PHASE_MOUNT] = now_boottime_us();
        return 0;
}

/* Acts on a decision to reboot or stop (boot_sequence wrote it); returns on boot. */
static void follow_decision(struct boot *b) {
        const struct boot_decision *d = &b->decision;

        switch (d->action) {
        case BOOT_ACTION_BOOT:
                return;
        case BOOT_ACTION_REBOOT:
                if (b->commit_failed)
                        stop(b, "arming the other slot",
                             "the state could not be written (see above), so rebooting could loop");
                log_notice("Rebooting into slot %s (%s)%s%s", slot_to_string(d->target), boot_reason_to_string(d->reason),
                           b->failure[0] ? ": " : "", b->failure);
                if (b->cmdline.redirect == REDIRECT_KEXEC)
                        (void) kexec_redirect(b, d->target); /* returns when it cannot: the firmware then */
                log_close();
                sync();
                (void) reboot(RB_AUTOBOOT);
                log_setup("abswitch", LOG_TARGET_KMSG);
                stop(b, "rebooting", "reboot() failed: %s", strerror(errno));
        case BOOT_ACTION_STOP:
        default:
                /* A root that failed, of a UKI not known to be the slot's
                 * (partitions missing take the general message below). */
                if (d->reason == REASON_IDENTITY_UNKNOWN && b->view.layout.slot[b->id.slot].present) {
                        /* Several lines: stop() formats into a bounded buffer. */
                        log_emerg("%s", b->failure);
                        log_emerg("%s", b->pin_missing
                                                ? "This UKI pins no root hash (rebuild it with initramfs/mkuki)."
                                                : "This UKI's pinned root hash verifies against neither slot's hash "
                                                  "tree, and no EFI source named its slot: a stale removable-path "
                                                  "copy? abctl mark-good or set-active in a running slot refreshes "
                                                  "\\EFI\\BOOT\\BOOTX64.EFI.");
                        log_emerg("%s", slot_state_is_candidate(d->t.slot[SLOT_A]) ||
                                                        slot_state_is_candidate(d->t.slot[SLOT_B])
                                                ? "The slot to hand over to was armed once already and never "
                                                  "reached its init (the firmware ignores BootNext?), so rebooting "
                                                  "again could loop."
                                                : "No slot is left to hand over to.");
                        stop(b, "this UKI is not known to be any slot's", "no slot was marked failed for it");
                }
                if (b->failure[0])
                        stop(b, "no slot can boot", "%s; and slot %s cannot take over (%s)", b->failure,
                             slot_to_string(slot_other(b->id.slot)), boot_reason_to_string(d->reason));
                stop(b, "no slot can boot",
                     "slot %s cannot boot (failed, or on trial with no tries left) and slot %s cannot take over (%s)",
                     slot_to_string(b->id.slot), slot_to_string(slot_other(b->id.slot)),
                     boot_reason_to_string(d->reason));
        }
}

int main(int argc, char **argv) {
        /* No fact is known yet; the root-hash probe runs once the partitions are there. */
        static struct boot b = { .id = { .source = _IDENTITY_INVALID },
                                 .facts = { .root_hash_slot = _SLOT_INVALID },
                                 .efivarfs = EFIVARFS_PATH };
        char line[4096];
        int r;

        (void) argc;
        b.t_start = now_boottime_us();
        umask(0022);
        mount_api_filesystems();
        devkmsg_unlimit(&b);
        log_setup("abswitch", LOG_TARGET_KMSG);
        log_info("abswitch %s: init starting, logging to %s", ABSWITCH_VERSION, log_target_path());

        r = read_small_file("/proc/cmdline", line, sizeof(line));
        if (r < 0)
                log_warning_errno(r, "Failed to read /proc/cmdline, using defaults: %m");
        if (cmdline_parse(r < 0 ? "" : line, &b.cmdline, complain, NULL) < 0)
                stop(&b, "reading the kernel command line", "out of memory");
        if (b.cmdline.debug)
                log_set_max_level(LOG_DEBUG);
        read_pin(&b);

        static const char *const always[] = { "dm-verity", "efivarfs", NULL };
        int failed = modules_load(MODULES_LIST, always);
        b.t_phase[PHASE_MODULES] = now_boottime_us();
        log_info("Loaded kernel modules in %llu ms%s", (unsigned long long) (b.t_phase[PHASE_MODULES] - b.t_start) / 1000,
                 failed ? " (some failed, see above)" : "");

        read_efi_facts(&b);
        resolve_identity(&b);
        b.t_phase[PHASE_IDENTITY] = now_boottime_us();

        bool missing = wait_for_partitions(&b) < 0;
        b.t_phase[PHASE_DEVICES] = now_boottime_us();

        static const struct boot_ops ops = { .root_hash_slot = slot_matching_root_hash, .open_root = open_root };
        b.view.efivarfs = b.efi ? b.efivarfs : NULL;
        b.pin_missing = !b.cmdline.roothash[0];
        (void) boot_sequence(&b, &ops, missing);
        follow_decision(&b);
        kexec_boot_started(&b);

        if (b.decision.trial) {
                b.watchdog_armed = protocol_arm_watchdog(b.cmdline.watchdog_sec);
                if (!b.watchdog_armed)
                        /* At error level, so the console shows it even with quiet. */
                        log_error("TRIAL BOOT WITHOUT A HARDWARE WATCHDOG: no /dev/watchdog0 or /dev/watchdog. "
                                  "If slot %s hangs, only a power cycle brings the fallback. Put the "
                                  "watchdog's driver into the initramfs (mkinitramfs --module ...).",
                                  slot_to_string(b.id.slot));
        }

        /* What was decided and activated, into the TPM: after the watchdog,
         * so that a TPM that hangs a trial boot still ends in the fallback. */
        measure_boot(&b);
        measure_close(&b);

        uint64_t t_end = now_boottime_us();
        write_record(&b, t_end);
        log_info("Switching root to slot %s (%s) and executing %s after %llu ms "
                 "(modules %llu, identity %llu, devices %llu, state %llu, verity %llu, mount %llu)",
                 slot_to_string(b.id.slot), b.fstype, b.cmdline.init, (unsigned long long) (t_end - b.t_start) / 1000,
                 (unsigned long long) (b.t_phase[PHASE_MODULES] - b.t_start) / 1000,
                 (unsigned long long) (b.t_phase[PHASE_IDENTITY] - b.t_phase[PHASE_MODULES]) / 1000,
                 (unsigned long long) (b.t_phase[PHASE_DEVICES] - b.t_phase[PHASE_IDENTITY]) / 1000,
                 (unsigned long long) (b.t_phase[PHASE_STATE] - b.t_phase[PHASE_DEVICES]) / 1000,
                 (unsigned long long) (b.t_phase[PHASE_VERITY] - b.t_phase[PHASE_STATE]) / 1000,
                 (unsigned long long) (b.t_phase[PHASE_MOUNT] - b.t_phase[PHASE_VERITY]) / 1000);
        devkmsg_restore(&b);

        r = switch_root(NEWROOT, b.cmdline.init, argv, watch_start, &b);
        stop(&b, "switching root", "%s could not be executed: %s", b.cmdline.init, strerror(-r));
}
