/* SPDX-License-Identifier: MIT */
/* The boot sequence: from the slot's partitions found to its root opened.
 *
 * The same function runs in the init and in the power-cut simulator
 * (tests/powercut/bootsim.c), which passes its own answers for dm-verity
 * and mount (struct boot_ops). It reads the state once (slots_view_read),
 * decides with the pure protocol (slots_decide_boot), writes through the
 * one writer (slots_commit), and never reboots or stops by itself. */

#include <fcntl.h>
#include <linux/watchdog.h>
#include <stdio.h>
#include <sys/ioctl.h>

#include "../common/log.h"
#include "init.h"

void boot_announce_identity(struct boot *b) {
        for (int i = 0; i < IDENTITY_DEFAULT; i++)
                if (b->id.verdicts[i] != VERDICT_NOT_CONSULTED && b->id.verdicts[i] != VERDICT_ANSWERED)
                        log_info("Identity source %s: %s", identity_source_to_string(i),
                                 identity_verdict_to_string(b->id.verdicts[i]));

        if (b->id.source == IDENTITY_BOOT_CURRENT)
                log_info("This is slot %s, from %s: BootCurrent=%04X '%s' starts %s", slot_to_string(b->id.slot),
                         identity_source_to_string(b->id.source), b->facts.boot_current, b->boot_current_desc,
                         b->id.value);
        else
                log_info("This is slot %s, from %s%s%s", slot_to_string(b->id.slot),
                         identity_source_to_string(b->id.source), b->id.value ? ": " : "", b->id.value ?: "");
        if (b->id.source == IDENTITY_DEFAULT)
                log_warning("No source named this UKI's slot: slot %s is only the default guess, so no slot "
                            "will be marked failed by this boot", slot_to_string(b->id.slot));
}

static void protocol_read(struct boot *b) {
        const struct gpt_status *g = &b->view.gpt;
        char s[_SLOT_MAX][48];
        int r;

        r = slots_view_read(&b->view);
        if (r < 0) {
                /* libblkid read the table a moment ago; use what it saw. */
                log_warning_errno(r, "Failed to read the GPT of %s, using the attributes libblkid saw: %m",
                                  b->view.layout.disk);
                for (int i = 0; i < _SLOT_MAX; i++)
                        b->view.st[i] = b->view.layout.slot[i].present
                                                ? slot_state_from_attrs(b->view.layout.slot[i].data_attrs)
                                                : (struct slot_state) {};
        } else if (!g->primary_valid || !g->backup_valid || g->copies_differ)
                log_warning("GPT of %s: primary %s%s%s%s, backup %s%s%s%s%s; the next state write repairs it",
                            b->view.layout.disk, g->primary_valid ? "valid" : "INVALID", g->primary_valid ? "" : " (",
                            g->primary_valid ? "" : g->primary_reason, g->primary_valid ? "" : ")",
                            g->backup_valid ? "valid" : "INVALID", g->backup_valid ? "" : " (",
                            g->backup_valid ? "" : g->backup_reason, g->backup_valid ? "" : ")",
                            g->copies_differ ? ", copies differ (primary used)" : "");
        if (b->view.bad_vars > 0)
                log_warning("%d boot manager variable(s) unreadable or malformed, ignoring them", b->view.bad_vars);
        for (int i = 0; i < _SLOT_MAX; i++) {
                b->before[i] = b->view.st[i];
                slot_state_format(b->before[i], s[i]);
        }
        log_info("State: A %s%s; B %s%s; BootNext %s", s[0], b->view.layout.slot[0].present ? "" : " (no partitions)",
                 s[1], b->view.layout.slot[1].present ? "" : " (no partitions)",
                 b->view.vars.boot_next >= 0 ? "set" : "unset");
}

static void protocol_decide(struct boot *b, bool root_failed) {
        Slot other = slot_other(b->id.slot);
        struct boot_input in = {
                .running = b->id.slot,
                /* ab.slot= next to ab.kexec= only names the slot a kexec
                 * started (the stub's variables describe the first boot):
                 * that trial follows the protocol as a firmware-started one. */
                .override = b->id.source == IDENTITY_CMDLINE && !b->cmdline.kexec_sha256[0],
                .root_failed = root_failed,
                /* Our BootNext for the other slot is still there: the firmware
                 * started us instead of it. */
                .bootnext_pending = slots_view_boot_next_is(&b->view, other),
                .unsure = b->id.source == IDENTITY_DEFAULT || b->pin_missing,
        };
        /* After a first decision was applied, decide again from its result. */
        const struct slot_state *from = b->decided ? b->decision.t.slot : b->before;
        in.slot[SLOT_A] = from[SLOT_A];
        in.slot[SLOT_B] = from[SLOT_B];
        slots_decide_boot(&in, &b->decision);
        b->decided = true;

        const struct boot_decision *d = &b->decision;
        char st[_SLOT_MAX][48];
        for (int i = 0; i < _SLOT_MAX; i++)
                slot_state_format(d->t.slot[i], st[i]);
        log_info("Decision: %s %s (%s)%s; new state: A %s; B %s", boot_action_to_string(d->action),
                 slot_to_string(d->target), boot_reason_to_string(d->reason), d->trial ? ", trial boot" : "", st[0],
                 st[1]);
        if (in.unsure && root_failed)
                log_warning("This UKI is not known to be slot %s's (%s): no slot is marked failed for it",
                            slot_to_string(b->id.slot),
                            b->pin_missing ? "it pins no root hash" : "no source named its slot");
        for (int s = 0; s < _SLOT_MAX; s++)
                if ((d->marked_failed & (1u << s)) && b->view.layout.slot[s].present)
                        log_warning("Slot %s is now marked failed (priority 0): it will not be tried again until "
                                    "a new image is installed into it", slot_to_string(s));
}

static void protocol_apply(struct boot *b) {
        int r = slots_commit(&b->view, &b->decision.t, &b->writes);
        b->commit_failed = r < 0;
        if (r < 0 && b->decision.action == BOOT_ACTION_BOOT && b->decision.t.changed)
                log_warning("Booting slot %s although its state could not be written",
                            slot_to_string(b->decision.target));
}

BootAction boot_sequence(struct boot *b, const struct boot_ops *ops, bool partitions_missing) {
        /* Nothing named a slot: the one slot whose hash tree verifies
         * against the pinned root hash is us (a removable-path copy). */
        if (!partitions_missing && b->id.source == IDENTITY_DEFAULT &&
            (b->facts.sources & (1u << IDENTITY_ROOT_HASH))) {
                b->facts.root_hash_slot = ops->root_hash_slot(b);
                slot_identity_resolve(&b->facts, &b->id);
        }
        boot_announce_identity(b);

        protocol_read(b);
        protocol_decide(b, partitions_missing);
        protocol_apply(b);
        b->t_phase[PHASE_STATE] = now_boottime_us();
        if (partitions_missing && b->decision.action == BOOT_ACTION_BOOT) {
                log_error("The boot protocol decided to boot a slot without partitions; stopping");
                b->decision.action = BOOT_ACTION_STOP;
        }
        if (b->decision.action != BOOT_ACTION_BOOT)
                return b->decision.action;

        /* The decision is to boot this slot: its root must verify and mount. */
        if (ops->open_root(b) < 0) {
                protocol_decide(b, true);
                protocol_apply(b);
                if (b->decision.action == BOOT_ACTION_BOOT) {
                        /* The protocol never boots a root that failed; say so if it did. */
                        log_error("The boot protocol decided to boot a root that failed; stopping");
                        b->decision.action = BOOT_ACTION_STOP;
                }
        }
        return b->decision.action;
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
