/* SPDX-License-Identifier: MIT */
/* The boot protocol's I/O in the init: read state from GPT and NVRAM, run
 * the pure decision (slots_decide_boot), write its results in the order
 * that keeps every power cut safe: GPT (one copy, then the other), then
 * NVRAM, each only when it changes. */

#include <fcntl.h>
#include <linux/watchdog.h>
#include <stdio.h>
#include <sys/ioctl.h>

#include "../common/log.h"
#include "init.h"

static void plan_entries(struct boot *b, const struct slot_state st[_SLOT_MAX]) {
        const char *paths[_SLOT_MAX] = { slot_uki_path(SLOT_A), slot_uki_path(SLOT_B) };
        int first, second;

        slots_boot_order_hint(st, &first, &second);
        b->plan_ok = b->efi && b->layout.esp_present &&
                     efi_boot_plan(b->vars.entries, b->vars.n_entries, b->vars.order, b->vars.order_len, paths,
                                   first, second, &b->plan) >= 0;
}

void protocol_read(struct boot *b) {
        struct gpt_status st = {};
        char s[_SLOT_MAX][48];
        int r;

        r = slots_state_read(&b->layout, b->before, &st);
        if (r < 0) {
                /* libblkid read the table a moment ago; use what it saw. */
                log_warning_errno(r, "Failed to read the GPT of %s, using the attributes libblkid saw: %m",
                                  b->layout.disk);
                for (int i = 0; i < _SLOT_MAX; i++)
                        b->before[i] = b->layout.slot[i].present ? slot_state_from_attrs(b->layout.slot[i].data_attrs)
                                                                 : (struct slot_state) {};
        } else if (!st.primary_valid || !st.backup_valid || st.copies_differ)
                log_warning("GPT of %s: primary %s, backup %s%s; the next state write repairs it", b->layout.disk,
                            st.primary_valid ? "valid" : "INVALID", st.backup_valid ? "valid" : "INVALID",
                            st.copies_differ ? ", copies differ (primary used)" : "");

        b->vars = (struct efi_boot_vars) { .boot_next = -1 };
        if (b->efi) {
                r = efi_boot_vars_read(b->efivarfs, b->layout.esp_present ? b->layout.esp_uuid : NULL, &b->vars);
                if (r > 0)
                        log_warning("%d boot manager variable(s) unreadable or malformed, ignoring them", r);
        }
        plan_entries(b, b->before);

        for (int i = 0; i < _SLOT_MAX; i++)
                slot_state_format(b->before[i], s[i]);
        log_info("State: A %s%s; B %s%s; BootNext %s", s[0], b->layout.slot[0].present ? "" : " (no partitions)", s[1],
                 b->layout.slot[1].present ? "" : " (no partitions)", b->vars.boot_next >= 0 ? "set" : "unset");
}

void protocol_decide(struct boot *b, bool root_failed) {
        Slot other = slot_other(b->id.slot);
        struct boot_input in = {
                .running = b->id.slot,
                .override = b->id.source == IDENTITY_CMDLINE,
                .root_failed = root_failed,
                /* Our BootNext for the other slot is still there: the firmware
                 * started us instead of it. */
                .bootnext_pending = b->vars.boot_next >= 0 && b->plan_ok && !b->plan.create[other] &&
                                    b->vars.boot_next == b->plan.entry[other],
        };
        /* After a first decision was applied, decide again from its result. */
        const struct slot_state *from = b->decided ? b->decision.slot : b->before;
        in.slot[SLOT_A] = from[SLOT_A];
        in.slot[SLOT_B] = from[SLOT_B];
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

static int ensure_entry(struct boot *b, Slot s) {
        struct efi_partition esp = {
                .number = b->layout.esp_partno, .start = b->layout.esp_start, .size = b->layout.esp_size,
        };
        char desc[32], name[9];
        int r;

        if (!b->plan.create[s])
                return 0;
        if (efi_guid_from_string(b->layout.esp_uuid, esp.guid) < 0)
                return log_error_errno(-EINVAL, "The ESP's PARTUUID '%s' is not a GUID", b->layout.esp_uuid);
        (void) snprintf(desc, sizeof(desc), "abswitch %s", slot_to_string(s));
        efi_boot_option_name((uint16_t) b->plan.entry[s], name);
        r = efi_boot_entry_create(b->efivarfs, &b->plan, s, desc, &esp, slot_uki_path(s));
        if (r < 0)
                return log_error_errno(r, "Failed to create %s for slot %s: %m", name, slot_to_string(s));
        b->nvram_writes += r > 0;
        b->plan.create[s] = false;
        log_notice("Created boot entry %s '%s' for %s", name, desc, slot_uki_path(s));
        return 0;
}

/* BootNext for the decision's target, with its Boot#### if the firmware lost it. */
static int arm_bootnext(struct boot *b) {
        const struct boot_decision *d = &b->decision;
        int r;

        if (!b->efi || !b->layout.esp_present) {
                log_warning("No EFI boot variables to arm slot %s with: the firmware chooses the next boot",
                            slot_to_string(d->target));
                return 0;
        }
        if (!b->plan_ok)
                return log_warning_errno(-EINVAL, "Cannot plan the boot entries; leaving BootNext and BootOrder alone");
        r = ensure_entry(b, d->target);
        if (r < 0)
                return r;
        uint16_t next = (uint16_t) b->plan.entry[d->target];
        r = efi_boot_next_write(b->efivarfs, next);
        if (r < 0)
                return log_error_errno(r, "Failed to set BootNext to Boot%04X: %m", next);
        b->nvram_writes += r > 0;
        return 0;
}

int protocol_apply(struct boot *b) {
        const struct boot_decision *d = &b->decision;
        int r;

        /* GPT first: a try is spent before the attempt is armed. A committed
         * target pays no try; its armed bit is what bounds redirects to it
         * (an armed committed slot that never reached its init is not asked
         * again). So it gets BootNext first: a power cut between the two
         * writes must not leave it armed with no BootNext to reach it, or
         * the next init here would stop (found by make powercut with a
         * firmware that reorders its entries). */
        bool bootnext_first = d->action == BOOT_ACTION_REBOOT && d->slot[d->target].successful;
        if (bootnext_first) {
                r = arm_bootnext(b);
                if (r < 0)
                        return r;
        }
        if (d->changed) {
                r = slots_state_write(&b->layout, d->slot, &b->gpt_writes);
                if (r < 0)
                        return log_error_errno(r, "Failed to write the boot state to the GPT of %s: %m",
                                               b->layout.disk);
        }
        if (d->action == BOOT_ACTION_REBOOT)
                return bootnext_first ? 0 : arm_bootnext(b);
        if (!b->efi || !b->layout.esp_present)
                return 0;
        if (!b->plan_ok)
                return log_warning_errno(-EINVAL, "Cannot plan the boot entries; leaving BootNext and BootOrder alone");

        if (d->action != BOOT_ACTION_BOOT)
                return 0;

        /* Booting: repair the entries firmware lost, and keep BootOrder
         * consistent with the GPT state. */
        plan_entries(b, d->slot);
        for (int s = 0; s < _SLOT_MAX; s++)
                if (b->layout.slot[s].present && (d->slot[s].priority > 0 || d->slot[s].successful))
                        (void) ensure_entry(b, s);
        r = efi_boot_order_write(b->efivarfs, &b->plan);
        if (r < 0)
                return log_warning_errno(r, "Failed to update BootOrder: %m");
        b->nvram_writes += r > 0;
        if (r > 0)
                log_notice("BootOrder updated: committed slot first");
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
