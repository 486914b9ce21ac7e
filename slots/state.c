/* SPDX-License-Identifier: MIT */
/* The boot protocol, pure: no I/O, no globals. See slots.h and BRIEF.md. */

#include <stdio.h>

#include "../common/macro.h"
#include "slots.h"

struct slot_state slot_state_from_attrs(uint64_t a) {
        return (struct slot_state) {
                .priority = (a >> GPT_ATTR_PRIORITY_SHIFT) & 0xf,
                .tries = (a >> GPT_ATTR_TRIES_SHIFT) & 0xf,
                .successful = (a >> GPT_ATTR_SUCCESSFUL_BIT) & 1,
                .armed = (a >> GPT_ATTR_ARMED_BIT) & 1,
        };
}

uint64_t slot_state_to_attrs(uint64_t a, struct slot_state s) {
        a &= ~GPT_ATTR_STATE_MASK;
        a |= (uint64_t) (s.priority & 0xf) << GPT_ATTR_PRIORITY_SHIFT;
        a |= (uint64_t) (s.tries & 0xf) << GPT_ATTR_TRIES_SHIFT;
        a |= (uint64_t) s.successful << GPT_ATTR_SUCCESSFUL_BIT;
        a |= (uint64_t) s.armed << GPT_ATTR_ARMED_BIT;
        return a;
}

bool slot_state_equal(struct slot_state a, struct slot_state b) {
        return a.priority == b.priority && a.tries == b.tries && a.successful == b.successful && a.armed == b.armed;
}

void slot_state_format(struct slot_state s, char ret[static 48]) {
        (void) snprintf(ret, 48, "priority=%u tries=%u%s%s", s.priority, s.tries, s.successful ? " successful" : "",
                        s.armed ? " armed" : "");
}

static const char *const action_names[_BOOT_ACTION_MAX] = {
        [BOOT_ACTION_BOOT] = "boot",
        [BOOT_ACTION_REBOOT] = "reboot",
        [BOOT_ACTION_STOP] = "stop",
};

const char *boot_action_to_string(BootAction a) {
        return a < _BOOT_ACTION_MAX ? action_names[a] : "invalid";
}

static const char *const reason_names[_BOOT_REASON_MAX] = {
        [REASON_COMMITTED] = "committed",
        [REASON_TRIAL] = "trial",
        [REASON_OVERRIDE] = "override",
        [REASON_BOOTNEXT_IGNORED] = "bootnext-ignored",
        [REASON_REDIRECT_UNANSWERED] = "redirect-unanswered",
        [REASON_LAST_RESORT] = "last-resort",
        [REASON_BETTER_SLOT] = "better-slot",
        [REASON_ROOT_FAILED] = "root-failed",
        [REASON_NOT_BOOTABLE] = "not-bootable",
        [REASON_IDENTITY_UNKNOWN] = "identity-unknown",
        [REASON_NOTHING_BOOTABLE] = "nothing-bootable",
};

const char *boot_reason_to_string(BootReason r) {
        return r < _BOOT_REASON_MAX ? reason_names[r] : "invalid";
}

static void mark_failed(const struct boot_input *in, struct boot_decision *d, Slot s) {
        if (in->unsure)
                return; /* never on a guess */
        d->t.slot[s].priority = 0;
        d->t.slot[s].tries = 0;
        d->t.slot[s].armed = false;
        d->marked_failed |= 1u << s;
}

/* Arming costs a try unless the slot is committed (BRIEF.md): a kernel that
 * dies before its init still uses up its attempts. */
static void arm(struct boot_decision *d, Slot s) {
        if (!d->t.slot[s].successful && d->t.slot[s].tries > 0)
                d->t.slot[s].tries--;
        d->t.slot[s].armed = true;
}

/* May the running slot hand over to other now? Returns false when the
 * firmware evidently did not start other after the last hand-over. */
static bool may_arm(const struct boot_input *in, const struct boot_decision *d, Slot other, BootReason *ret_why) {
        if (in->bootnext_pending) {
                /* We set BootNext for other before and the firmware started
                 * us instead: it ignores BootNext. Asking again loops. */
                *ret_why = REASON_BOOTNEXT_IGNORED;
                return false;
        }
        if (d->t.slot[other].successful && d->t.slot[other].armed) {
                /* A committed slot has no tries to bound redirects: the armed
                 * bit is the bound. It was armed and never reached its init. */
                *ret_why = REASON_REDIRECT_UNANSWERED;
                return false;
        }
        return true;
}

static void finish(struct boot_decision *d, const struct boot_input *in, BootAction a, BootReason r, Slot target) {
        d->action = a;
        d->reason = r;
        d->target = target;
        d->trial = a == BOOT_ACTION_BOOT && !d->t.slot[target].successful;
        if (a == BOOT_ACTION_REBOOT)
                d->t.arm = target;
        /* Booting: the boot entries and BootOrder follow the state. */
        d->t.boot_order = a == BOOT_ACTION_BOOT;
        slot_transition_diff(&d->t, in->slot);
}

/* Nothing the protocol prefers can boot: the last successful slot, or stop. */
static void last_resort(const struct boot_input *in, struct boot_decision *d, BootReason stop_reason) {
        Slot x = in->running, y = slot_other(x);
        BootReason why;

        if (!in->root_failed && d->t.slot[x].successful) {
                finish(d, in, BOOT_ACTION_BOOT, REASON_LAST_RESORT, x);
                return;
        }
        /* After a root failure, hand over to a failed slot only if we were
         * not ourselves booted as such a last resort: two broken roots must
         * not pass the machine back and forth (found by the model check in
         * tests/unit/test-state.c). */
        bool handed_over_before = in->root_failed && in->slot[x].priority == 0;
        if (d->t.slot[y].successful && !handed_over_before && may_arm(in, d, y, &why)) {
                arm(d, y);
                finish(d, in, BOOT_ACTION_REBOOT, stop_reason, y);
                return;
        }
        finish(d, in, BOOT_ACTION_STOP, REASON_NOTHING_BOOTABLE, x);
}

void slots_decide_boot(const struct boot_input *in, struct boot_decision *ret) {
        struct boot_decision d = {};
        Slot x = in->running, y = slot_other(x);
        BootReason why;

        slot_transition_init(&d.t, in->slot);

        /* This init runs: whatever attempt was armed for us has started.
         * Unless we are not sure we are x: then x's armed bit stays, the
         * bound on asking x again. */
        bool was_armed = d.t.slot[x].armed;
        if (!in->unsure)
                d.t.slot[x].armed = false;

        /* The other slot used its last try and is not running: exhausted,
         * unless that last attempt is still waiting in an ignored BootNext. */
        if (!d.t.slot[y].successful && d.t.slot[y].tries == 0 && d.t.slot[y].priority > 0 && !in->bootnext_pending)
                mark_failed(in, &d, y);

        if (in->root_failed && in->unsure) {
                /* The root failed, but this UKI is not known to be x's (a
                 * removable-path copy of another slot's UKI, a pin that
                 * matches no slot, a UKI that pins nothing): fail nothing,
                 * and start the best slot through its own UKI, whose
                 * identity is certain. Bounded: a trial target pays a try,
                 * a committed one is asked once (armed). */
                Slot best = _SLOT_INVALID;
                for (int s = 0; s < _SLOT_MAX; s++)
                        if (slot_state_is_candidate(d.t.slot[s]) &&
                            (best < 0 || d.t.slot[s].successful > d.t.slot[best].successful ||
                             (d.t.slot[s].successful == d.t.slot[best].successful &&
                              d.t.slot[s].priority > d.t.slot[best].priority)))
                                best = s;
                if (best >= 0 && may_arm(in, &d, best, &why)) {
                        arm(&d, best);
                        finish(&d, in, BOOT_ACTION_REBOOT, REASON_IDENTITY_UNKNOWN, best);
                } else
                        finish(&d, in, BOOT_ACTION_STOP, REASON_IDENTITY_UNKNOWN, x);
                goto done;
        }

        if (in->root_failed) {
                mark_failed(in, &d, x);
                if (slot_state_is_candidate(d.t.slot[y]) && may_arm(in, &d, y, &why)) {
                        arm(&d, y);
                        finish(&d, in, BOOT_ACTION_REBOOT, REASON_ROOT_FAILED, y);
                } else
                        last_resort(in, &d, REASON_ROOT_FAILED);
                goto done;
        }

        /* The firmware started a trial slot nobody armed (BootOrder was
         * reordered, or the removable path): that start costs a try now, or
         * the slot is exhausted. An unsure boot pays a try even when x was
         * armed: it leaves x's armed bit set, so only the tries bound its
         * trial boots; and an exhausted x it cannot mark failed is still
         * not booted (found by the model check with unsure boots in
         * tests/unit/test-state.c: a trial that hangs, booted unsure,
         * looped). */
        bool exhausted = false;
        if (!d.t.slot[x].successful && (!was_armed || in->unsure) && d.t.slot[x].priority > 0) {
                if (d.t.slot[x].tries > 0)
                        d.t.slot[x].tries--;
                else if (!in->override) {
                        mark_failed(in, &d, x);
                        exhausted = true;
                }
        }

        if (in->override) {
                /* Obeyed, never redirected, even to a failed slot: ab.slot=
                 * is how an operator (or a UKI with its slot baked in) picks
                 * it. A slot not yet committed boots as a trial, under the
                 * watchdog. Only a root that fails to verify falls back. */
                finish(&d, in, BOOT_ACTION_BOOT, REASON_OVERRIDE, x);
                goto done;
        }

        if (d.t.slot[x].priority == 0 || exhausted) {
                if (slot_state_is_candidate(d.t.slot[y]) && may_arm(in, &d, y, &why)) {
                        arm(&d, y);
                        finish(&d, in, BOOT_ACTION_REBOOT, REASON_NOT_BOOTABLE, y);
                } else
                        last_resort(in, &d, REASON_NOT_BOOTABLE);
                goto done;
        }

        bool better = d.t.slot[y].priority > d.t.slot[x].priority && slot_state_is_candidate(d.t.slot[y]);
        if (better && may_arm(in, &d, y, &why)) {
                arm(&d, y);
                finish(&d, in, BOOT_ACTION_REBOOT, REASON_BETTER_SLOT, y);
                goto done;
        }
        if (better)
                finish(&d, in, BOOT_ACTION_BOOT, why, x);
        else
                finish(&d, in, BOOT_ACTION_BOOT, d.t.slot[x].successful ? REASON_COMMITTED : REASON_TRIAL, x);
done:
        *ret = d;
}
