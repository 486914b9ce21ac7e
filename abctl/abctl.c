/* SPDX-License-Identifier: MIT */
/* abctl: the operator's side of abswitch. Reads the slots' state from the
 * GPT and the boot manager's variables from efivarfs, applies one operation
 * through the pure transitions in slots/ops.c, and writes GPT first, then
 * NVRAM, only what changed. A refused operation writes nothing. */

#define _GNU_SOURCE 1 /* F_OFD_SETLK */
#include <fcntl.h>
#include <getopt.h>
#include <json-c/json.h>
#include <json-c/linkhash.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>

#include "../common/log.h"
#include "../efi/damage.h"
#include "../efi/efi.h"
#include "../efi/uki.h"
#include "../slots/slots.h"

#include "abctl.h"
#include "esp.h"
#include "origin.h"
#include "ocifetch.h"
#include "update.h"

static void help(void) {
        printf("abctl: A/B boot slots, as abswitch's init sees them\n\n"
               "Usage:\n"
               "  abctl status [--json]        both slots' state, BootNext and BootOrder\n"
               "  abctl mark-good              commit the running slot: successful, preferred,\n"
               "                               first in BootOrder; stops the trial watchdog\n"
               "  abctl mark-bad [A|B]         fail a slot (default: the running one, which needs\n"
               "                               a committed fallback); it is not tried again\n"
               "  abctl set-active A|B         prefer a slot; one not yet committed gets a trial\n"
               "                               (a try is spent and BootNext armed)\n"
               "  abctl rollback               prefer the other, committed slot and arm it\n"
               "  abctl repair [A|B]           rewrite only the blocks of a damaged slot (default: the\n"
               "                               damaged one not running) that fail its pinned hash tree,\n"
               "                               from the other slot or its origin's registry (Range);\n"
               "                               verify it and return it to service\n"
               "  abctl reboot [--kexec]       reboot (through systemd when it runs); with --kexec, start the\n"
               "                               armed slot's UKI with kexec, without a firmware reset\n"
               "  abctl install PREFIX UKI     write PREFIX.img and PREFIX.verity (from mkslot) and the\n"
               "                               slot's UKI into the inactive slot, verify them, give it\n"
               "                               the top priority with --tries attempts, arm the first\n"
               "  abctl install REFERENCE      the same from an OS image in a registry or a layout:\n"
               "                               HOST[:PORT]/REPO:TAG, HOST/REPO@sha256:DIGEST,\n"
               "                               oci:DIR[:TAG]; streamed into the slot, every digest and\n"
               "                               the root hash checked before the slot is armed\n"
               "  abctl update [--check] [--at TIME] [--config FILE] [--json]\n"
               "                               the update agent: install what the tag in update.conf names\n"
               "                               now once the rollout admits this machine, reboot into it\n"
               "                               inside a maintenance window under the FleetLock lock;\n"
               "                               --check says what it would do and changes nothing\n\n"
               "Options:\n"
               "  --json             machine-readable output (status; update: the run's report)\n"
               "  --kexec            reboot: start the slot BootNext arms (else the first in BootOrder) with\n"
               "                     kexec; refused by the kernel, a firmware reboot instead\n"
               "  --disk PATH        the disk holding the slots (default: from " RECORD ")\n"
               "  --running A|B      the running slot (default: from " RECORD ")\n"
               "  --efivars DIR      efivarfs (default " EFIVARFS_PATH ")\n"
               "  --record FILE      the init's boot record (default " RECORD ")\n"
               "  --esp DIR          the mounted ESP (default: /efi, /boot/efi or /boot, whichever holds\n"
               "                     EFI/abswitch)\n"
               "  --tries N          attempts for an installed image (default 3)\n"
               "  --force            install an image that already failed in that slot; set-active or\n"
               "                     rollback to a damaged slot\n"
               "  --allow-downgrade  install an image older than the committed slot's (or one with no\n"
               "                     version while the committed slot's has one)\n"
               "  --slot A|B         the slot to install into (default: the one not running)\n"
               "  --ca FILE          trust this PEM CA bundle for the registry instead of the system's\n"
               "  --plain-http       the registry speaks HTTP, not HTTPS\n"
               "  --delta auto|yes|no  fetch only the blocks this machine does not have (auto: for registries\n"
               "                     and OCI layouts; yes: image files too; no: always the whole image)\n"
               "  --timeout SEC      give up after SEC seconds without progress from the registry (default 300;\n"
               "                     update: update.conf's; these registry options override update.conf's)\n"
               "  --authfile FILE    registry credentials, in the containers auth file format podman and\n"
               "                     skopeo write (default: $REGISTRY_AUTH_FILE, else " AUTH_FILE_DEFAULT ",\n"
               "                     which may be missing)\n"
               "  --config FILE      the update agent's configuration (default " UPDATE_CONF_DEFAULT ")\n"
               "  --check            update: report only\n"
               "  --at TIME          update: decide as at TIME (RFC 3339, or @SECONDS since 1970), for planning\n\n"
               "State lives in the GPT attribute bits of system-a and system-b (cgpt show, sgdisk -A):\n"
               "48-51 priority, 52-55 tries left, 56 successful, 57 armed. Nothing reboots by itself:\n"
               "rebooting is the caller's choice. Exit status 0 on success, 1 when refused or failed,\n"
               "with the reason on stderr; a refused operation changes nothing.\n");
}

/* -ENOENT when there is no usable record (missing, not JSON); other errors
 * are logged and refuse the command. */
static int read_record(struct ctx *c) {
        _cleanup_(boot_record_done) struct boot_record rec = {};
        uint64_t size = 0;
        (void) json_global_set_string_hash(JSON_C_STR_HASH_PERLLIKE);
        int r = boot_record_read(c->record, BOOT_RECORD_SIZE_MAX, &rec, &size);
        if (r == -EFBIG)
                return log_error_errno(r, "The boot record %s is %llu bytes, more than the %u bytes a boot record "
                                       "can be: refusing to read it. Pass the init's record (" RECORD ") with --record, "
                                       "or --disk and --running. Nothing was changed.",
                                       c->record, (unsigned long long) size, BOOT_RECORD_SIZE_MAX);
        if (r == -EBADFD)
                return log_error_errno(r, "The boot record %s is not a regular file: refusing to read it. Pass the "
                                       "init's record (" RECORD ") with --record, or --disk and --running. "
                                       "Nothing was changed.", c->record);
        if (r < 0)
                return -ENOENT;
        if (c->running < 0)
                c->running = slot_from_string(rec.slot);
        (void) snprintf(c->record_disk, sizeof(c->record_disk), "%s", strempty(rec.partitions.disk));
        (void) snprintf(c->record_source, sizeof(c->record_source), "%s", strempty(rec.identity.source));
        (void) snprintf(c->record_kexec, sizeof(c->record_kexec), "%s", strempty(rec.kexec.uki_sha256));
        return 0;
}

/* The slots' state and the boot variables, as they are now. */
static int read_view(struct ctx *c) {
        int r = slots_view_read(&c->view);
        if (r < 0)
                return log_error_errno(r, "Failed to read the slots' state from the GPT of %s (both copies invalid?): %m",
                                       c->disk);
        if (c->view.bad_vars > 0)
                log_warning("%d boot manager variable(s) in %s are malformed; ignoring them", c->view.bad_vars,
                            c->efivars);
        return 0;
}

/* One operator at a time, per disk: an open file description lock on the
 * disk itself (a device node or an image file), so it needs no lock file,
 * is per disk, and goes away with the process however it ends. Byte 0
 * guards state changes (held for one read-modify-write); byte 1 a whole
 * install (held from its checks to its last write), so a commit never
 * waits for a download and two installs never interleave. */
#define LOCK_STATE 0
#define LOCK_INSTALL 1

static int lock_disk(const struct ctx *c, off_t which, const char *what) {
        struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = which, .l_len = 1 };
        /* F_WRLCK needs a descriptor open for writing (EBADF otherwise). */
        int fd = open(c->disk, O_RDWR | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return log_error_errno(-errno, "Cannot open %s to lock it: %m", c->disk);
        if (fcntl(fd, F_OFD_SETLK, &fl) < 0) {
                if (errno != EAGAIN && errno != EACCES) {
                        int r = -errno;
                        close(fd);
                        return log_error_errno(r, "Cannot lock %s: %m", c->disk);
                }
                log_info("Waiting for another abctl to finish %s on %s", what, c->disk);
                while (fcntl(fd, F_OFD_SETLKW, &fl) < 0)
                        if (errno != EINTR) {
                                int r = -errno;
                                close(fd);
                                return log_error_errno(r, "Cannot lock %s: %m", c->disk);
                        }
        }
        return fd;
}

int abctl_lock_install(struct ctx *c) {
        if (c->install_lock > 0)
                return 0;
        int fd = lock_disk(c, LOCK_INSTALL, "an install");
        if (fd < 0)
                return fd;
        c->install_lock = fd;
        /* What the holder decides on is the state as it is now that it has
         * the disk, not as it was before it waited for another install. */
        return read_view(c);
}

void abctl_unlock_install(struct ctx *c) {
        if (c->install_lock > 0)
                close(c->install_lock);
        c->install_lock = 0;
}

int abctl_lock_state(struct ctx *c) {
        int fd = lock_disk(c, LOCK_STATE, "a state change");
        if (fd < 0)
                return fd;
        int r = read_view(c);
        if (r < 0) {
                close(fd);
                return r;
        }
        return fd;
}

static int load(struct ctx *c) {
        int r;

        r = read_record(c);
        if (r < 0 && r != -ENOENT)
                return r;
        bool have_record = r >= 0;
        if (!c->disk && c->record_disk[0])
                c->disk = c->record_disk;
        if (!c->disk)
                return log_error_errno(-ENOENT, "Cannot tell which disk holds the slots: %s is %s. "
                                       "Was this system booted by abswitch? Pass --disk.", c->record,
                                       have_record ? "missing the disk" : "not there");
        if (c->running < 0)
                return log_error_errno(-ENOENT, "Cannot tell which slot is running: %s names none. Pass --running.",
                                       c->record);
        char why[1024] = "";
        r = slots_read_layout(c->disk, &c->view.layout, why, sizeof(why));
        if (r == -EUCLEAN || r == -EBADMSG)
                return log_error_errno(r, "Refusing to use %s: %s. Nothing was changed.", c->disk, why);
        if (r == -ENOENT)
                return log_error_errno(r, "%s has no valid GPT: both copies are corrupt, or it is not a GPT disk. "
                                       "Nothing was changed; restore the table from a backup (sgdisk --load-backup)",
                                       c->disk);
        if (r < 0)
                return log_error_errno(r, "Failed to read the partition table of %s: %m", c->disk);
        if (!c->view.layout.slot[SLOT_A].present && !c->view.layout.slot[SLOT_B].present)
                return log_error_errno(-ENOENT, "%s has no partitions labelled system-a/system-b with their "
                                       "-verity partners: not an abswitch disk", c->disk);
        c->efi = access(c->efivars, F_OK) == 0;
        c->view.efivarfs = c->efi ? c->efivars : NULL;
        return read_view(c);
}

static const char *state_word(struct slot_state s, bool present) {
        if (!present)
                return "absent";
        if (s.priority == 0)
                return s.successful ? "failed (was committed)" : "failed or empty";
        if (s.successful)
                return "committed";
        return s.tries > 0 || s.armed ? "on trial" : "exhausted";
}

bool abctl_damage_read(const struct ctx *c, Slot s, struct slot_damage *ret) {
        char why[256];
        if (!c->efi)
                return false;
        int r = damage_read(c->efivars, s, ret, why, sizeof(why));
        if (r == -EBADMSG)
                log_warning("Slot %s's damage record (%s-%s) is malformed, ignoring it: %s", slot_to_string(s),
                            damage_var_name(s), EFI_ABSWITCH_GUID, why);
        return r >= 0;
}

static int status(struct ctx *c, const char *update_config) {
        struct uki_info info[_SLOT_MAX] = {};
        struct slot_origin origin[_SLOT_MAX];
        bool has_origin[_SLOT_MAX] = {};
        struct slot_damage damage[_SLOT_MAX];
        bool has_damage[_SLOT_MAX] = {};
        for (int s = 0; s < _SLOT_MAX; s++)
                has_damage[s] = abctl_damage_read(c, s, &damage[s]);
        const char *esp = esp_find_mounted(c);
        for (int s = 0; esp && s < _SLOT_MAX; s++) {
                _cleanup_free_ char *path = NULL;
                if (esp_uki_path(esp, s, &path) >= 0)
                        (void) uki_read_info(path, &info[s]);
                /* Only the origin of the image the UKI pins (origin.h). */
                has_origin[s] = info[s].roothash[0] && origin_read(esp, s, info[s].roothash, &origin[s]) >= 0;
                /* A record for an image installed over since is stale (abctl repair deletes it). */
                if (has_damage[s] && info[s].roothash[0] && !streq(info[s].roothash, damage[s].roothash))
                        has_damage[s] = false;
        }

        if (c->json) {
                json_object *o = json_object_new_object(), *slots = json_object_new_object(),
                            *order = json_object_new_array();
                char buf[8];
                json_object_object_add(o, "running", json_object_new_string(slot_to_string(c->running)));
                if (c->record_source[0])
                        json_object_object_add(o, "identity_source", json_object_new_string(c->record_source));
                json_object_object_add(o, "disk", json_object_new_string(c->view.layout.disk));
                for (int s = 0; s < _SLOT_MAX; s++) {
                        json_object *j = json_object_new_object();
                        json_object_object_add(j, "present", json_object_new_boolean(c->view.layout.slot[s].present));
                        json_object_object_add(j, "status", json_object_new_string(state_word(c->view.st[s], c->view.layout.slot[s].present)));
                        json_object_object_add(j, "priority", json_object_new_int(c->view.st[s].priority));
                        json_object_object_add(j, "tries", json_object_new_int(c->view.st[s].tries));
                        json_object_object_add(j, "successful", json_object_new_boolean(c->view.st[s].successful));
                        json_object_object_add(j, "armed", json_object_new_boolean(c->view.st[s].armed));
                        json_object_object_add(j, "partition", json_object_new_int((int) c->view.layout.slot[s].data_partno));
                        json_object_object_add(j, "uki", json_object_new_string(slot_uki_path(s)));
                        if (info[s].version[0])
                                json_object_object_add(j, "version", json_object_new_string(info[s].version));
                        if (info[s].name[0])
                                json_object_object_add(j, "name", json_object_new_string(info[s].name));
                        if (info[s].roothash[0])
                                json_object_object_add(j, "roothash", json_object_new_string(info[s].roothash));
                        if (has_origin[s]) {
                                json_object *g = json_object_new_object();
                                json_object_object_add(g, "kind", json_object_new_string(origin_kind_to_string(origin[s].kind)));
                                json_object_object_add(g, "reference", json_object_new_string(origin[s].reference));
                                if (origin[s].digest[0])
                                        json_object_object_add(g, "digest", json_object_new_string(origin[s].digest));
                                json_object_object_add(g, "installed", json_object_new_string(origin[s].installed));
                                json_object_object_add(j, "origin", g);
                        }
                        if (has_damage[s]) {
                                json_object *g = json_object_new_object(), *bl = json_object_new_array();
                                json_object_object_add(g, "roothash", json_object_new_string(damage[s].roothash));
                                json_object_object_add(g, "time", json_object_new_int64((int64_t) damage[s].time));
                                for (unsigned i = 0; i < damage[s].n; i++) {
                                        json_object *k = json_object_new_object();
                                        json_object_object_add(k, "kind", json_object_new_string(
                                                                       damage_kind_to_string(damage[s].blocks[i].kind)));
                                        json_object_object_add(k, "block",
                                                               json_object_new_int64((int64_t) damage[s].blocks[i].block));
                                        json_object_array_add(bl, k);
                                }
                                json_object_object_add(g, "blocks", bl);
                                json_object_object_add(j, "damage", g);
                        }
                        int e = slots_view_entry(&c->view, s);
                        if (e >= 0) {
                                (void) snprintf(buf, sizeof(buf), "%04X", e);
                                json_object_object_add(j, "boot_entry", json_object_new_string(buf));
                        }
                        json_object_object_add(slots, slot_to_string(s), j);
                }
                json_object_object_add(o, "slots", slots);
                if (c->view.vars.boot_next >= 0) {
                        (void) snprintf(buf, sizeof(buf), "%04X", c->view.vars.boot_next);
                        json_object_object_add(o, "boot_next", json_object_new_string(buf));
                }
                for (size_t i = 0; i < c->view.vars.order_len; i++) {
                        (void) snprintf(buf, sizeof(buf), "%04X", c->view.vars.order[i]);
                        json_object_array_add(order, json_object_new_string(buf));
                }
                json_object_object_add(o, "boot_order", order);
                json_object *u = json_object_new_object();
                abctl_update_status(c, update_config, u);
                if (json_object_object_length(u) > 0)
                        json_object_object_add(o, "update", u);
                else
                        json_object_put(u);
                json_object_object_add(o, "gpt_primary_valid", json_object_new_boolean(c->view.gpt.primary_valid));
                json_object_object_add(o, "gpt_backup_valid", json_object_new_boolean(c->view.gpt.backup_valid));
                if (!c->view.gpt.primary_valid)
                        json_object_object_add(o, "gpt_primary_reason", json_object_new_string(c->view.gpt.primary_reason));
                if (!c->view.gpt.backup_valid)
                        json_object_object_add(o, "gpt_backup_reason", json_object_new_string(c->view.gpt.backup_reason));
                printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
                json_object_put(o);
                return 0;
        }

        printf("Running: slot %s%s%s%s\nDisk:    %s\n", slot_to_string(c->running), c->record_source[0] ? " (identity from " : "",
               c->record_source, c->record_source[0] ? ")" : "", c->view.layout.disk);
        for (int s = 0; s < _SLOT_MAX; s++) {
                struct slot_state st = c->view.st[s];
                int e = slots_view_entry(&c->view, s);
                printf("Slot %s:  %-22s priority %u, %u tries left%s%s", slot_to_string(s),
                       state_word(st, c->view.layout.slot[s].present), st.priority, st.tries, st.armed ? ", attempt armed" : "",
                       s == c->running ? ", running" : "");
                if (e >= 0)
                        printf(", Boot%04X", e);
                printf("\n");
                if (info[s].version[0] || info[s].name[0] || info[s].roothash[0])
                        printf("         %s%s%s%s%s%.16s%s\n", info[s].name[0] ? info[s].name : "",
                               info[s].version[0] ? " version " : "", info[s].version,
                               info[s].name[0] || info[s].version[0] ? ", " : "",
                               info[s].roothash[0] ? "root hash " : "", info[s].roothash,
                               info[s].roothash[0] ? "..." : "");
                if (has_origin[s])
                        printf("         installed %s from %s%s%.19s%s\n", origin[s].installed, origin[s].reference,
                               origin[s].digest[0] ? " (" : "", origin[s].digest, origin[s].digest[0] ? "...)" : "");
                if (has_damage[s]) {
                        char when[64] = "?";
                        time_t t = (time_t) damage[s].time;
                        struct tm tm;
                        if (gmtime_r(&t, &tm))
                                (void) strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
                        printf("         DAMAGED: %u block(s) failed dm-verity after boot at %s:", damage[s].n, when);
                        for (unsigned i = 0; i < damage[s].n && i < 8; i++)
                                printf("%s %s %llu", i ? "," : "", damage_kind_to_string(damage[s].blocks[i].kind),
                                       (unsigned long long) damage[s].blocks[i].block);
                        printf("%s\n", damage[s].n > 8 ? ", ..." : "");
                        printf("         %s\n", s == c->running ? "boot the other slot to repair it (abctl repair there)"
                                                                 : "abctl repair rewrites only those blocks");
                }
        }
        if (c->view.vars.boot_next >= 0)
                printf("BootNext: Boot%04X\n", c->view.vars.boot_next);
        printf("BootOrder:");
        for (size_t i = 0; i < c->view.vars.order_len; i++)
                printf("%s%04X", i ? "," : " ", c->view.vars.order[i]);
        printf("%s\n", c->efi ? "" : " (no EFI variables)");
        if (!c->view.gpt.primary_valid || !c->view.gpt.backup_valid)
                printf("GPT: primary %s, backup %s: the next state write repairs it\n",
                       c->view.gpt.primary_valid ? "valid" : "INVALID", c->view.gpt.backup_valid ? "valid" : "INVALID");
        if (!c->view.gpt.primary_valid)
                printf("     primary GPT refused: %s\n", c->view.gpt.primary_reason);
        if (!c->view.gpt.backup_valid)
                printf("     backup GPT refused: %s\n", c->view.gpt.backup_reason);
        abctl_update_status(c, update_config, NULL);
        return 0;
}

/* After a commit, the trial watchdog the init armed is no longer needed. */
static void watchdog_disarm(void) {
        static const char *const devs[] = { "/dev/watchdog0", "/dev/watchdog" };
        for (size_t i = 0; i < ELEMENTSOF(devs); i++) {
                _cleanup_close_ int fd = open(devs[i], O_WRONLY | O_CLOEXEC | O_NOCTTY);
                if (fd < 0)
                        continue;
                if (write(fd, "V", 1) == 1)
                        log_info("Stopped the trial watchdog %s", devs[i]);
                return;
        }
}

/* Slot s's blocks failed dm-verity after boot: its damage record, for the
 * image its UKI pins (a record for one installed over since is stale, as
 * status has it). */
static bool slot_damaged(const struct ctx *c, Slot s, struct slot_damage *ret) {
        _cleanup_free_ char *path = NULL;
        struct uki_info info = {};
        if (!abctl_damage_read(c, s, ret))
                return false;
        const char *esp = esp_find_mounted(c);
        if (esp && esp_uki_path(esp, s, &path) >= 0 && uki_read_info(path, &info) >= 0 && info.roothash[0] &&
            !streq(info.roothash, ret->roothash))
                return false;
        return true;
}

int abctl_apply(struct ctx *c, SlotOp op, Slot target) {
        return abctl_apply_if(c, op, target, NULL);
}

int abctl_apply_if(struct ctx *c, SlotOp op, Slot target, struct slot_state *expect) {
        struct slot_op_request req = { .op = op, .running = c->running, .target = target, .tries = c->tries,
                                       .force = c->force };
        struct slot_op_result res;
        struct slots_commit_stats stats = {};
        struct slot_damage dmg;
        char why[512];
        int r;

        /* Under the lock, from the state as it is now: whatever another
         * operator committed since this command started stays. */
        _cleanup_close_ int lock = abctl_lock_state(c);
        if (lock < 0)
                return lock;
        if (expect && (c->view.st[target].priority != expect->priority ||
                       c->view.st[target].successful != expect->successful)) {
                *expect = c->view.st[target];
                return -ESTALE;
        }
        /* A damaged slot is not put back in service by hand: it would read
         * the same blocks and fall back again, and abctl repair (which
         * holds the install lock, not this one) may be rewriting it now;
         * the repair returns it when it verifies. */
        Slot to = op == SLOT_OP_ROLLBACK ? slot_other(c->running) : target;
        if ((op == SLOT_OP_SET_ACTIVE || op == SLOT_OP_ROLLBACK) && to != c->running && !c->force &&
            slot_damaged(c, to, &dmg))
                return log_error_errno(-EBUSY, "Refusing to %s slot %s: %u of its blocks failed dm-verity after "
                                       "boot (abctl status), so it would read them and fall back again. Repair it "
                                       "first (abctl repair %s; it returns the slot to service), or pass --force if "
                                       "you mean to boot it damaged. Nothing was changed.", slot_op_to_string(op),
                                       slot_to_string(to), dmg.n, slot_to_string(to));
        r = slots_apply_op(&req, c->view.st, &res, why, sizeof(why));
        if (r < 0)
                return log_error_errno(r, "Refusing to %s slot %s: %s. Nothing was changed.", slot_op_to_string(op),
                                       slot_to_string(op == SLOT_OP_ROLLBACK ? slot_other(c->running) : target), why);
        if (!c->view.layout.slot[res.target].present)
                return log_error_errno(-ENOENT, "Refusing to %s: slot %s has no partitions on %s. Nothing was changed.",
                                       slot_op_to_string(op), slot_to_string(res.target), c->disk);
        if (res.t.arm >= 0 && !c->view.efivarfs)
                log_warning("No EFI variables: the firmware will not be told to try slot %s next",
                            slot_to_string(res.t.arm));

        r = slots_commit(&c->view, &res.t, &stats);
        if (r < 0)
                return log_error_errno(r, "%s of slot %s failed (see above)", slot_op_to_string(op),
                                       slot_to_string(res.target));
        if (res.t.arm >= 0 && c->view.vars.boot_next >= 0)
                printf("BootNext: Boot%04X (slot %s) for the next boot\n", c->view.vars.boot_next,
                       slot_to_string(res.t.arm));
        if (op == SLOT_OP_MARK_GOOD)
                watchdog_disarm();
        /* The removable path follows the slot that now leads. */
        if (res.t.order_first >= 0)
                esp_update_removable(c, res.t.order_first);
        if (op == SLOT_OP_INSTALL_BEGIN)
                return 0;

        Slot shown = op == SLOT_OP_MARK_BAD ? target : res.target;
        char st[48];
        slot_state_format(res.t.slot[shown], st);
        printf("%s: slot %s is now %s (%s)\n", slot_op_to_string(op), slot_to_string(shown),
               state_word(res.t.slot[shown], true), st);
        if (op == SLOT_OP_MARK_BAD && target == c->running)
                printf("Slot %s takes over at the next boot; reboot when ready.\n", slot_to_string(res.target));
        return 0;
}

int abctl_repair_entries(struct ctx *c) {
        struct slot_transition t;
        _cleanup_close_ int lock = abctl_lock_state(c);
        if (lock < 0)
                return lock;
        slot_transition_init(&t, c->view.st);
        return slots_commit(&c->view, &t, NULL);
}

/* A number from lo to hi in plain decimal digits: strtoul() alone takes a
 * sign, leading blanks and wraps "-18446744073709551615" around to 1. */
static bool parse_bounded(const char *s, unsigned long lo, unsigned long hi, unsigned *ret) {
        unsigned long v = 0;
        if (!*s)
                return false;
        for (const char *p = s; *p; p++) {
                if (*p < '0' || *p > '9')
                        return false;
                v = v * 10 + (unsigned long) (*p - '0');
                if (v > hi)
                        return false;
        }
        if (v < lo)
                return false;
        *ret = (unsigned) v;
        return true;
}

int main(int argc, char **argv) {
        static const struct option opts[] = {
                { "help", no_argument, NULL, 'h' },       { "json", no_argument, NULL, 'j' },
                { "disk", required_argument, NULL, 'd' }, { "running", required_argument, NULL, 'r' },
                { "efivars", required_argument, NULL, 'e' }, { "record", required_argument, NULL, 'R' },
                { "esp", required_argument, NULL, 'E' },  { "tries", required_argument, NULL, 't' },
                { "force", no_argument, NULL, 'f' },      { "slot", required_argument, NULL, 's' },
                { "ca", required_argument, NULL, 'C' },   { "plain-http", no_argument, NULL, 'P' },
                { "timeout", required_argument, NULL, 'T' },
                { "authfile", required_argument, NULL, 'A' },
                { "allow-downgrade", no_argument, NULL, 'D' },
                { "config", required_argument, NULL, 'c' },
                { "check", no_argument, NULL, 'k' },
                { "at", required_argument, NULL, 'a' },
                { "delta", required_argument, NULL, 'X' },
                { "kexec", no_argument, NULL, 'K' },
                {},
        };
        struct ctx c = { .efivars = EFIVARFS_PATH, .record = RECORD, .running = _SLOT_INVALID,
                         .install_slot = _SLOT_INVALID,
                         .tries = SLOT_TRIES_DEFAULT };
        struct oci_options oo = { .timeout_sec = 300 };
        unsigned timeout_given = 0;  /* update: 0 keeps update.conf's */
        const char *update_config = UPDATE_CONF_DEFAULT;
        bool update_check = false;
        time_t update_at = -1;
        bool kexec = false;
        int o;

        log_setup("abctl", LOG_TARGET_STDERR);
        while ((o = getopt_long(argc, argv, "hj", opts, NULL)) >= 0)
                switch (o) {
                case 'h':
                        help();
                        return 0;
                case 'j':
                        c.json = true;
                        break;
                case 'd':
                        c.disk = optarg;
                        break;
                case 'r':
                        c.running = slot_from_string(optarg);
                        if (c.running < 0) {
                                log_error("--running must be A or B, not '%s'", optarg);
                                return 1;
                        }
                        break;
                case 'e':
                        c.efivars = optarg;
                        break;
                case 'R':
                        c.record = optarg;
                        break;
                case 'E':
                        c.esp = optarg;
                        break;
                case 't':
                        if (!parse_bounded(optarg, 1, SLOT_TRIES_MAX, &c.tries)) {
                                log_error("--tries must be 1 to %d, not '%s'", SLOT_TRIES_MAX, optarg);
                                return 1;
                        }
                        break;
                case 'f':
                        c.force = true;
                        break;
                case 'D':
                        c.allow_downgrade = true;
                        break;
                case 'X':
                        c.delta = streq(optarg, "auto") ? DELTA_AUTO : streq(optarg, "yes") ? DELTA_YES
                                  : streq(optarg, "no") ? DELTA_NO : _DELTA_MODE_INVALID;
                        if (c.delta < 0) {
                                log_error("--delta must be auto, yes or no, not '%s'", optarg);
                                return 1;
                        }
                        break;
                case 'K':
                        kexec = true;
                        break;
                case 'C':
                        oo.ca = optarg;
                        break;
                case 'P':
                        oo.plain_http = true;
                        break;
                case 'A':
                        if (!optarg[0]) {
                                log_error("--authfile needs a file name");
                                return 1;
                        }
                        oo.authfile = optarg;
                        break;
                case 'T':
                        if (!parse_bounded(optarg, 1, 86400, &oo.timeout_sec)) {
                                log_error("--timeout must be 1 to 86400 seconds, not '%s'", optarg);
                                return 1;
                        }
                        timeout_given = oo.timeout_sec;
                        break;
                case 'c':
                        update_config = optarg;
                        break;
                case 'k':
                        update_check = true;
                        break;
                case 'a': {
                        unsigned long long secs;
                        char *end;
                        errno = 0;
                        if (optarg[0] == '@' && optarg[1] >= '0' && optarg[1] <= '9' &&
                            (secs = strtoull(optarg + 1, &end, 10), !*end && errno == 0) && secs < (1ull << 40))
                                update_at = (time_t) secs;
                        else if (rollout_parse_time(optarg, &update_at) < 0 || update_at < 0) {
                                log_error("--at '%s' is not a time: write RFC 3339 (2026-12-06T23:45:00Z) or "
                                          "@SECONDS since 1970", optarg);
                                return 1;
                        }
                        break;
                }
                case 's':
                        c.install_slot = slot_from_string(optarg);
                        if (c.install_slot < 0) {
                                log_error("--slot must be A or B, not '%s'", optarg);
                                return 1;
                        }
                        break;
                default:
                        return 1;
                }
        if (optind >= argc) {
                help();
                return 1;
        }
        /* Each verb with the arguments it takes; anything more is refused,
         * not ignored: "set-active A B" must not quietly mean "set-active A". */
        static const struct {
                const char *verb;
                int min, max;
                const char *usage;
        } verbs[] = {
                { "status", 0, 0, "abctl status [--json]" },
                { "mark-good", 0, 0, "abctl mark-good" },
                { "mark-bad", 0, 1, "abctl mark-bad [A|B]" },
                { "set-active", 1, 1, "abctl set-active A|B" },
                { "rollback", 0, 0, "abctl rollback" },
                { "repair", 0, 1, "abctl repair [A|B]" },
                { "reboot", 0, 0, "abctl reboot [--kexec]" },
                { "install", 1, 2, "abctl install PREFIX UKI, or abctl install REFERENCE" },
                { "update", 0, 0, "abctl update [--check] [--at TIME] [--config FILE]" },
        };
        const char *verb = argv[optind];
        int nargs = argc - optind - 1;
        size_t v;
        for (v = 0; v < ELEMENTSOF(verbs); v++)
                if (streq(verb, verbs[v].verb))
                        break;
        if (v >= ELEMENTSOF(verbs)) {
                log_error("Unknown command '%s'; see abctl --help", verb);
                return 1;
        }
        if (nargs > verbs[v].max) {
                log_error("Too many arguments for %s: '%s' is one more than it takes. Usage: %s", verb,
                          argv[optind + 1 + verbs[v].max], verbs[v].usage);
                return 1;
        }
        if (nargs < verbs[v].min) {
                if (streq(verb, "install"))
                        log_error("install needs an image: %s", verbs[v].usage);
                else
                        log_error("%s needs a slot: %s", verb, verbs[v].usage);
                return 1;
        }
        const char *arg = nargs > 0 ? argv[optind + 1] : NULL;
        bool is_install = streq(verb, "install");
        if ((update_check || update_at >= 0) && !streq(verb, "update")) {
                log_error("--check and --at are options of abctl update, not of %s", verb);
                return 1;
        }
        Slot target = arg && !is_install ? slot_from_string(arg) : _SLOT_INVALID;
        if (arg && !is_install && target < 0) {
                log_error("'%s' is not a slot: use A or B", arg);
                return 1;
        }
        if (kexec && !streq(verb, "reboot")) {
                log_error("--kexec goes with reboot: abctl reboot --kexec");
                return 1;
        }
        /* A plain reboot needs no slot disk. */
        if (streq(verb, "reboot") && !kexec)
                return abctl_reboot(&c, false) < 0 ? 1 : 0;
        if (load(&c) < 0)
                return 1;

        int r;
        bool is_repair = streq(verb, "repair");
        /* A repair writes a slot's blocks: never beside an install. A kexec
         * starts what an install in progress is writing: it waits for it. */
        if ((is_install || is_repair || (kexec && c.efi)) && abctl_lock_install(&c) < 0)
                return 1;
        if (is_install)
                r = abctl_install(&c, argv[optind + 1], optind + 2 < argc ? argv[optind + 2] : NULL, &oo);
        else if (streq(verb, "status"))
                r = status(&c, update_config);
        else if (streq(verb, "update")) {
                struct oci_options cli = oo;
                cli.timeout_sec = timeout_given;
                r = abctl_update(&c, update_config, update_check, update_at, &cli);
        } else if (streq(verb, "mark-good")) {
                r = abctl_kexec_check_commit(&c);
                if (r >= 0)
                        r = abctl_apply(&c, SLOT_OP_MARK_GOOD, c.running);
        } else if (streq(verb, "reboot"))
                r = abctl_reboot(&c, true);
        else if (streq(verb, "mark-bad"))
                r = abctl_apply(&c, SLOT_OP_MARK_BAD, target >= 0 ? target : c.running);
        else if (is_repair)
                r = abctl_repair(&c, target, &oo);
        else if (streq(verb, "set-active"))
                r = abctl_apply(&c, SLOT_OP_SET_ACTIVE, target);
        else
                r = abctl_apply(&c, SLOT_OP_ROLLBACK, c.running);
        slots_view_done(&c.view);
        return r < 0 ? 1 : 0;
}
