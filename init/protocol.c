/* SPDX-License-Identifier: MIT */
/* The boot protocol's I/O: read state from GPT and NVRAM, run the pure
 * decision (slots_decide_boot), write its results in the order that keeps
 * every power cut safe: GPT (one copy, then the other), then NVRAM. */

#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/watchdog.h>
#include <stdio.h>
#include <sys/ioctl.h>

#include "../common/log.h"
#include "init.h"

static unsigned present_partnos(const struct boot *b, unsigned partnos[_SLOT_MAX], Slot slots[_SLOT_MAX]) {
        unsigned n = 0;
        for (int s = 0; s < _SLOT_MAX; s++)
                if (b->layout.slot[s].present) {
                        partnos[n] = b->layout.slot[s].data_partno;
                        slots[n++] = s;
                }
        return n;
}

static void read_gpt_state(struct boot *b) {
        unsigned partnos[_SLOT_MAX];
        Slot slots[_SLOT_MAX];
        uint64_t attrs[_SLOT_MAX];
        struct gpt_status st;
        unsigned n = present_partnos(b, partnos, slots);

        for (int s = 0; s < _SLOT_MAX; s++)
                b->before[s] = (struct slot_state) {};

        _cleanup_close_ int fd = open(b->layout.disk, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        int r = fd < 0 ? -errno : gpt_get_attrs(fd, partnos, attrs, n, &st);
        if (r < 0) {
                /* libblkid read the table a moment ago; fall back to what it saw. */
                log_warning_errno(r, "Failed to read the GPT of %s, using the attributes libblkid saw: %m",
                                  b->layout.disk);
                for (unsigned i = 0; i < n; i++)
                        b->before[slots[i]] = slot_state_from_attrs(b->layout.slot[slots[i]].data_attrs);
                return;
        }
        if (!st.primary_valid || !st.backup_valid || st.copies_differ)
                log_warning("GPT of %s: primary %s, backup %s%s; the next state write repairs it", b->layout.disk,
                            st.primary_valid ? "valid" : "INVALID", st.backup_valid ? "valid" : "INVALID",
                            st.copies_differ ? ", copies differ (primary used)" : "");
        for (unsigned i = 0; i < n; i++)
                b->before[slots[i]] = slot_state_from_attrs(attrs[i]);
}

static bool esp_guid_matches(const struct boot *b, const uint8_t sig[16]) {
        char g[37];
        efi_guid_to_string(sig, g);
        return b->layout.esp_present && strcasecmp(g, b->layout.esp_uuid) == 0;
}

static void read_boot_entries(struct boot *b) {
        _cleanup_free_ void *v = NULL;
        size_t size;
        uint16_t u;
        int r;

        b->boot_next = -1;
        if (!b->efi)
                return;
        r = efi_var_read(EFIVARFS_PATH, "BootNext", EFI_GLOBAL_GUID, NULL, &v, &size);
        if (r >= 0 && efi_parse_u16(v, size, &u) >= 0)
                b->boot_next = u;
        else if (r >= 0 || r != -ENOENT)
                log_warning("EFI variable BootNext is unreadable or not 2 bytes, ignoring it");
        free(v);
        v = NULL;

        r = efi_var_read(EFIVARFS_PATH, "BootOrder", EFI_GLOBAL_GUID, NULL, &v, &size);
        if (r >= 0 && size % 2 == 0 && size / 2 <= ELEMENTSOF(b->order) - 2) {
                b->order_len = size / 2;
                for (size_t i = 0; i < b->order_len; i++)
                        b->order[i] = (uint16_t) (((uint8_t *) v)[2 * i] | (((uint8_t *) v)[2 * i + 1] << 8));
        } else if (r >= 0)
                log_warning("EFI variable BootOrder has an odd or too large size (%zu bytes), rebuilding it", size);

        DIR *d = opendir(EFIVARFS_PATH);
        struct dirent *de;
        while (d && (de = readdir(d))) {
                char name[9];
                if (strlen(de->d_name) != 8 + 1 + 36 || !startswith(de->d_name, "Boot") ||
                    !streq(de->d_name + 9, EFI_GLOBAL_GUID))
                        continue;
                memcpy(name, de->d_name, 8);
                name[8] = 0;
                if (!isxdigit((unsigned char) name[4]) || !isxdigit((unsigned char) name[5]) ||
                    !isxdigit((unsigned char) name[6]) || !isxdigit((unsigned char) name[7]))
                        continue;
                _cleanup_free_ void *opt = NULL;
                struct efi_load_option lo;
                if (efi_var_read(EFIVARFS_PATH, name, EFI_GLOBAL_GUID, NULL, &opt, &size) < 0 ||
                    efi_load_option_parse(opt, size, &lo) < 0) {
                        log_debug("%s is not a valid load option, ignoring it", name);
                        continue;
                }
                struct efi_boot_entry *n = realloc(b->entries, (b->n_entries + 1) * sizeof(*n));
                if (!n) {
                        efi_load_option_done(&lo);
                        break;
                }
                b->entries = n;
                b->entries[b->n_entries++] = (struct efi_boot_entry) {
                        .id = (uint16_t) strtoul(name + 4, NULL, 16),
                        .active = lo.attributes & LOAD_OPTION_ACTIVE,
                        .description = TAKE_PTR(lo.description),
                        .path = TAKE_PTR(lo.file_path),
                        .on_esp = lo.has_partition && esp_guid_matches(b, lo.part_signature),
                };
                efi_load_option_done(&lo);
        }
        if (d)
                closedir(d);
}

/* The BootOrder hint: committed slots by priority, best first. */
static void hint_order(const struct slot_state st[_SLOT_MAX], int *ret_first, int *ret_second) {
        int first = -1, second = -1;
        for (int s = 0; s < _SLOT_MAX; s++) {
                if (!st[s].successful || st[s].priority == 0)
                        continue;
                if (first < 0 || st[s].priority > st[first].priority)
                        second = first, first = s;
                else
                        second = s;
        }
        *ret_first = first;
        *ret_second = second;
}

static void plan_entries(struct boot *b, const struct slot_state st[_SLOT_MAX]) {
        const char *paths[_SLOT_MAX] = { slot_uki_path(SLOT_A), slot_uki_path(SLOT_B) };
        int first, second;

        hint_order(st, &first, &second);
        b->plan_ok = b->efi && b->layout.esp_present &&
                     efi_boot_plan(b->entries, b->n_entries, b->order, b->order_len, paths, first, second,
                                   &b->plan) >= 0;
}

void protocol_read(struct boot *b) {
        char s[_SLOT_MAX][48];

        read_gpt_state(b);
        read_boot_entries(b);
        plan_entries(b, b->before);
        for (int i = 0; i < _SLOT_MAX; i++)
                slot_state_format(b->before[i], s[i]);
        log_info("State: A %s%s; B %s%s; BootNext %s", s[0], b->layout.slot[0].present ? "" : " (no partitions)", s[1],
                 b->layout.slot[1].present ? "" : " (no partitions)", b->boot_next >= 0 ? "set" : "unset");
}

void protocol_decide(struct boot *b, bool root_failed) {
        Slot other = slot_other(b->id.slot);
        struct boot_input in = {
                .running = b->id.slot,
                .override = b->id.source == IDENTITY_CMDLINE,
                .root_failed = root_failed,
                /* Our BootNext for the other slot is still there: the firmware
                 * started us instead of it. */
                .bootnext_pending = b->boot_next >= 0 && b->plan_ok && !b->plan.create[other] &&
                                    b->boot_next == b->plan.entry[other],
        };
        /* After a first decision was applied, decide again from its result. */
        const struct slot_state *from = b->decided ? b->decision.slot : b->before;
        in.slot[SLOT_A] = from[SLOT_A];
        in.slot[SLOT_B] = from[SLOT_B];
        b->root_failed = root_failed;
        slots_decide_boot(&in, &b->decision);
        b->decided = true;

        const struct boot_decision *d = &b->decision;
        char st[_SLOT_MAX][48];
        for (int i = 0; i < _SLOT_MAX; i++)
                slot_state_format(d->slot[i], st[i]);
        log_info("Decision: %s %s (%s)%s; new state: A %s; B %s", boot_action_to_string(d->action),
                 slot_to_string(d->target), boot_reason_to_string(d->reason), d->trial ? ", trial boot" : "", st[0],
                 st[1]);
        for (int s = 0; s < _SLOT_MAX; s++)
                if ((d->marked_failed & (1u << s)) && b->layout.slot[s].present)
                        log_warning("Slot %s is now marked failed (priority 0): it will not be tried again until "
                                    "a new image is installed into it", slot_to_string(s));
}

static int write_gpt(struct boot *b) {
        unsigned partnos[_SLOT_MAX];
        Slot slots[_SLOT_MAX];
        uint64_t attrs[_SLOT_MAX];
        struct gpt_status st;
        unsigned n = present_partnos(b, partnos, slots);

        _cleanup_close_ int fd = open(b->layout.disk, O_RDWR | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return log_error_errno(-errno, "Failed to open %s to write the boot state: %m", b->layout.disk);
        int r = gpt_get_attrs(fd, partnos, attrs, n, NULL);
        if (r < 0)
                return log_error_errno(r, "Failed to read the GPT of %s before writing the boot state: %m",
                                       b->layout.disk);
        for (unsigned i = 0; i < n; i++)
                attrs[i] = slot_state_to_attrs(attrs[i], b->decision.slot[slots[i]]);
        r = gpt_set_attrs(fd, partnos, attrs, n, NULL, &st);
        b->gpt_writes += st.writes;
        if (r < 0)
                return log_error_errno(r, "Failed to write the boot state to the GPT of %s: %m", b->layout.disk);
        return 0;
}

static int ensure_entry(struct boot *b, Slot s) {
        if (!b->plan.create[s])
                return 0;
        struct efi_partition esp = {
                .number = b->layout.esp_partno, .start = b->layout.esp_start, .size = b->layout.esp_size,
        };
        _cleanup_free_ void *opt = NULL;
        size_t size;
        char name[9], desc[32];
        int r;

        if (efi_guid_from_string(b->layout.esp_uuid, esp.guid) < 0)
                return log_error_errno(-EINVAL, "The ESP's PARTUUID '%s' is not a GUID", b->layout.esp_uuid);
        (void) snprintf(desc, sizeof(desc), "abswitch %s", slot_to_string(s));
        r = efi_load_option_build(desc, &esp, slot_uki_path(s), &opt, &size);
        if (r < 0)
                return log_error_errno(r, "Failed to build the boot entry for slot %s: %m", slot_to_string(s));
        efi_boot_option_name((uint16_t) b->plan.entry[s], name);
        r = efi_var_write(EFIVARFS_PATH, name, EFI_GLOBAL_GUID, EFI_VARIABLE_NV_BS_RT, opt, size);
        if (r < 0)
                return log_error_errno(r, "Failed to create %s for slot %s: %m", name, slot_to_string(s));
        b->nvram_writes += r > 0;
        b->plan.create[s] = false;
        log_notice("Created boot entry %s '%s' for %s", name, desc, slot_uki_path(s));
        return 0;
}

int protocol_apply(struct boot *b) {
        const struct boot_decision *d = &b->decision;
        int r;

        /* GPT first: a try is spent before the attempt is armed. */
        if (d->changed) {
                r = write_gpt(b);
                if (r < 0)
                        return r;
        }
        if (!b->efi || !b->layout.esp_present) {
                if (d->action == BOOT_ACTION_REBOOT)
                        log_warning("No EFI boot variables to arm slot %s with: the firmware chooses the next boot",
                                    slot_to_string(d->target));
                return 0;
        }
        if (!b->plan_ok)
                return log_warning_errno(-EINVAL, "Cannot plan the boot entries; leaving BootNext and BootOrder alone");

        if (d->action == BOOT_ACTION_REBOOT) {
                r = ensure_entry(b, d->target);
                if (r < 0)
                        return r;
                uint16_t next = (uint16_t) b->plan.entry[d->target];
                r = efi_var_write(EFIVARFS_PATH, "BootNext", EFI_GLOBAL_GUID, EFI_VARIABLE_NV_BS_RT, &next, 2);
                if (r < 0)
                        return log_error_errno(r, "Failed to set BootNext to Boot%04X: %m", next);
                b->nvram_writes += r > 0;
                return 0;
        }

        if (d->action != BOOT_ACTION_BOOT)
                return 0;
        /* Booting: repair the entries firmware lost, and keep BootOrder
         * consistent with the GPT state. Both writes happen only on change. */
        plan_entries(b, d->slot);
        for (int s = 0; s < _SLOT_MAX; s++)
                if (b->layout.slot[s].present && (d->slot[s].priority > 0 || d->slot[s].successful))
                        (void) ensure_entry(b, s);
        if (b->plan.order_changed) {
                uint8_t buf[2 * ELEMENTSOF(b->plan.order)];
                for (size_t i = 0; i < b->plan.order_len; i++)
                        buf[2 * i] = (uint8_t) b->plan.order[i], buf[2 * i + 1] = (uint8_t) (b->plan.order[i] >> 8);
                r = efi_var_write(EFIVARFS_PATH, "BootOrder", EFI_GLOBAL_GUID, EFI_VARIABLE_NV_BS_RT, buf,
                                  2 * b->plan.order_len);
                if (r < 0)
                        return log_warning_errno(r, "Failed to update BootOrder: %m");
                b->nvram_writes += r > 0;
                if (r > 0)
                        log_notice("BootOrder updated: committed slot first");
        }
        return 0;
}

bool protocol_arm_watchdog(unsigned seconds) {
        static const char *const devs[] = { "/dev/watchdog0", "/dev/watchdog" };
        for (size_t i = 0; i < ELEMENTSOF(devs); i++) {
                _cleanup_close_ int fd = open(devs[i], O_WRONLY | O_CLOEXEC | O_NOCTTY);
                if (fd < 0)
                        continue;
                int t = (int) seconds;
                if (ioctl(fd, WDIOC_SETTIMEOUT, &t) < 0)
                        log_warning_errno(-errno, "Failed to set the timeout of %s, keeping its default: %m", devs[i]);
                (void) ioctl(fd, WDIOC_KEEPALIVE, 0);
                /* Closing without the magic 'V' leaves it running: the new
                 * userspace must commit (abctl mark-good stops it) or pet it. */
                log_info("Trial boot: %s armed, %d s: a hang in the new system resets the machine", devs[i], t);
                return true;
        }
        return false;
}
