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
#define RECORD_DIR "/run/abswitch"

static const char *const phase_names[_PHASE_MAX] = { "modules", "identity", "devices", "state", "verity", "mount" };

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
                int r = slots_find_partitions("/sys/class/block", "/dev", b->id.slot, b->esp_partuuid, &b->view.layout,
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
                        if (slots_find_partitions("/sys/class/block", "/dev", slot_other(b->id.slot), b->esp_partuuid,
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

static json_object *jstr(const char *s) {
        return s ? json_object_new_string(s) : NULL;
}

static json_object *state_json(struct slot_state s) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "priority", json_object_new_int(s.priority));
        json_object_object_add(o, "tries", json_object_new_int(s.tries));
        json_object_object_add(o, "successful", json_object_new_boolean(s.successful));
        json_object_object_add(o, "armed", json_object_new_boolean(s.armed));
        return o;
}

static void write_record(struct boot *b, uint64_t t_end) {
        /* json-c seeds its default string hash with getrandom(), which blocks
         * until the kernel's CRNG is ready: a second or more this early in
         * boot. The record is ours and small; the unseeded hash is fine. */
        (void) json_global_set_string_hash(JSON_C_STR_HASH_PERLLIKE);

        json_object *o = json_object_new_object(), *id = json_object_new_object(),
                    *verdicts = json_object_new_object(), *efi = json_object_new_object(),
                    *parts = json_object_new_object(), *root = json_object_new_object(),
                    *tm = json_object_new_object();
        char buf[32];

        json_object_object_add(o, "version", json_object_new_int(1));
        json_object_object_add(o, "abswitch", json_object_new_string(ABSWITCH_VERSION));
        json_object_object_add(o, "slot", json_object_new_string(slot_to_string(b->id.slot)));
        json_object_object_add(o, "log", json_object_new_string(log_target_path()));

        json_object_object_add(id, "source", json_object_new_string(identity_source_to_string(b->id.source)));
        json_object_object_add(id, "value", jstr(b->id.value));
        for (int i = 0; i < _IDENTITY_MAX; i++)
                json_object_object_add(verdicts, identity_source_to_string(i),
                                       json_object_new_string(identity_verdict_to_string(b->id.verdicts[i])));
        json_object_object_add(id, "sources", verdicts);
        json_object_object_add(o, "identity", id);

        json_object_object_add(efi, "booted_via_efi", json_object_new_boolean(b->efi));
        json_object_object_add(efi, "StubImageIdentifier", jstr(b->stub_image));
        json_object_object_add(efi, "LoaderImageIdentifier", jstr(b->loader_image));
        json_object_object_add(efi, "LoaderInfo", jstr(b->loader_info));
        json_object_object_add(efi, "LoaderEntrySelected", jstr(b->loader_entry));
        json_object_object_add(efi, "LoaderDevicePartUUID", jstr(b->esp_partuuid));
        if (b->facts.boot_current >= 0) {
                (void) snprintf(buf, sizeof(buf), "%04X", b->facts.boot_current);
                json_object_object_add(efi, "BootCurrent", json_object_new_string(buf));
                json_object_object_add(efi, "BootCurrentDescription", jstr(b->boot_current_desc));
                json_object_object_add(efi, "BootCurrentPath", jstr(b->boot_current_path));
        }
        json_object_object_add(o, "efi", efi);

        const struct slot_partitions *sp = &b->view.layout.slot[b->id.slot];
        json_object_object_add(parts, "disk", jstr(b->view.layout.disk));
        json_object_object_add(parts, "data", jstr(sp->data_dev));
        json_object_object_add(parts, "hash", jstr(sp->hash_dev));
        json_object_object_add(parts, "data_partuuid", jstr(sp->data_uuid));
        json_object_object_add(o, "partitions", parts);

        json_object *state = json_object_new_object(), *dec = json_object_new_object();
        for (int s = 0; s < _SLOT_MAX; s++) {
                json_object *sl = json_object_new_object();
                json_object_object_add(sl, "present", json_object_new_boolean(b->view.layout.slot[s].present));
                json_object_object_add(sl, "before", state_json(b->before[s]));
                json_object_object_add(sl, "after", state_json(b->decision.t.slot[s]));
                json_object_object_add(state, slot_to_string(s), sl);
        }
        json_object_object_add(o, "state", state);
        json_object_object_add(dec, "action", json_object_new_string(boot_action_to_string(b->decision.action)));
        json_object_object_add(dec, "reason", json_object_new_string(boot_reason_to_string(b->decision.reason)));
        json_object_object_add(dec, "target", json_object_new_string(slot_to_string(b->decision.target)));
        json_object_object_add(dec, "trial", json_object_new_boolean(b->decision.trial));
        json_object_object_add(dec, "watchdog", json_object_new_boolean(b->watchdog_armed));
        json_object_object_add(dec, "gpt_writes", json_object_new_int((int) b->writes.gpt_writes));
        json_object_object_add(dec, "nvram_writes", json_object_new_int((int) b->writes.nvram_writes));
        if (b->view.vars.boot_next >= 0) {
                (void) snprintf(buf, sizeof(buf), "%04X", b->view.vars.boot_next);
                json_object_object_add(efi, "BootNext", json_object_new_string(buf));
        }
        json_object_object_add(o, "decision", dec);

        json_object_object_add(root, "device", jstr(b->root_dev));
        json_object_object_add(root, "fstype", jstr(b->fstype));
        json_object_object_add(root, "roothash", jstr(b->cmdline.roothash));
        json_object_object_add(root, "roothash_source", jstr(b->roothash_source));
        json_object_object_add(root, "verity_error",
                               json_object_new_string(verity_error_policy_to_string(b->cmdline.verity_error)));
        json_object_object_add(root, "init", jstr(b->cmdline.init));
        json_object_object_add(o, "root", root);
        json_object_object_add(o, "tpm", measure_record_json(b));

        /* Milliseconds: absolute on CLOCK_BOOTTIME (comparable with the
         * kernel's timestamps), and the length of each phase. */
        json_object_object_add(tm, "init_start_ms", json_object_new_double((double) b->t_start / 1000.0));
        uint64_t prev = b->t_start;
        for (int i = 0; i < _PHASE_MAX; i++) {
                json_object_object_add(tm, phase_names[i], json_object_new_double((double) (b->t_phase[i] - prev) / 1000.0));
                prev = b->t_phase[i];
        }
        json_object_object_add(tm, "total", json_object_new_double((double) (t_end - b->t_start) / 1000.0));
        json_object_object_add(tm, "switch_root_ms", json_object_new_double((double) t_end / 1000.0));
        json_object_object_add(o, "timings_ms", tm);

        (void) mkdir(RECORD_DIR, 0755);
        const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
        _cleanup_close_ int fd = open(RECORD_DIR "/boot.json.tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0 || write(fd, s, strlen(s)) != (ssize_t) strlen(s) || write(fd, "\n", 1) != 1 ||
            rename(RECORD_DIR "/boot.json.tmp", RECORD_DIR "/boot.json") < 0)
                log_warning_errno(-errno, "Failed to write %s/boot.json: %m", RECORD_DIR);
        json_object_put(o);
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

        r = switch_root(NEWROOT, b.cmdline.init, argv);
        stop(&b, "switching root", "%s could not be executed: %s", b.cmdline.init, strerror(-r));
}
