/* SPDX-License-Identifier: MIT */
/* Operator actions on the slot state, pure. The rules are BRIEF.md's. */

#include <stdio.h>

#include "../common/macro.h"
#include "slots.h"

static const char *const op_names[_SLOT_OP_MAX] = {
        [SLOT_OP_INSTALL_BEGIN] = "install-begin",
        [SLOT_OP_INSTALL] = "install",
        [SLOT_OP_MARK_GOOD] = "mark-good",
        [SLOT_OP_MARK_BAD] = "mark-bad",
        [SLOT_OP_SET_ACTIVE] = "set-active",
        [SLOT_OP_ROLLBACK] = "rollback",
        [SLOT_OP_DAMAGED] = "damaged",
        [SLOT_OP_REPAIRED] = "repair",
};

const char *slot_op_to_string(SlotOp op) {
        return op >= 0 && op < _SLOT_OP_MAX ? op_names[op] : "invalid";
}

SlotOp slot_op_from_string(const char *s) {
        for (int i = 0; s && i < _SLOT_OP_MAX; i++)
                if (streq(s, op_names[i]))
                        return i;
        return _SLOT_OP_INVALID;
}

void slot_transition_init(struct slot_transition *t, const struct slot_state in[_SLOT_MAX]) {
        *t = (struct slot_transition) { .slot = { in[0], in[1] }, .arm = _SLOT_INVALID,
                                        .order_first = _SLOT_INVALID };
}

void slot_transition_diff(struct slot_transition *t, const struct slot_state in[_SLOT_MAX]) {
        t->changed = 0;
        for (int s = 0; s < _SLOT_MAX; s++)
                if (!slot_state_equal(t->slot[s], in[s]))
                        t->changed |= 1u << s;
}

/* The target gets the top priority; the other slot keeps a lower one if it
 * is still a good fallback. Priorities stay within 1..2 so they never run
 * out however often slots alternate. */
static void prefer(struct slot_state s[_SLOT_MAX], Slot target) {
        Slot other = slot_other(target);
        s[target].priority = 2;
        if (s[other].priority > 0)
                s[other].priority = 1;
}

/* The Fedora CoreOS rule: while the running slot is still on trial, the
 * other, committed slot is the last known-good one; overwriting or failing
 * it needs --force. */
static bool last_good(const struct slot_state in[_SLOT_MAX], Slot running, Slot target) {
        return target != running && !in[running].successful && in[target].successful && in[target].priority > 0;
}

int slots_apply_op(const struct slot_op_request *req, const struct slot_state in[_SLOT_MAX],
                   struct slot_op_result *ret, char *why, size_t why_size) {
        Slot running = req->running, target = req->target;
        struct slot_op_result r = { .target = target };
        struct slot_state *st = r.t.slot;

        slot_transition_init(&r.t, in);
        if (req->op == SLOT_OP_MARK_GOOD && target < 0)
                target = r.target = running;
        if (req->op == SLOT_OP_ROLLBACK)
                target = r.target = slot_other(running);
        if (target < 0 || target >= _SLOT_MAX || running < 0 || running >= _SLOT_MAX) {
                (void) snprintf(why, why_size, "no such slot");
                return -EINVAL;
        }
        switch (req->op) {
        case SLOT_OP_INSTALL_BEGIN:
        case SLOT_OP_INSTALL:
                if (target == running) {
                        (void) snprintf(why, why_size, "slot %s is the running slot; install into slot %s",
                                        slot_to_string(target), slot_to_string(slot_other(target)));
                        return -EBUSY;
                }
                if (req->tries < 1 || req->tries > SLOT_TRIES_MAX) {
                        (void) snprintf(why, why_size, "tries must be 1 to %d", SLOT_TRIES_MAX);
                        return -EINVAL;
                }
                if (last_good(in, running, target) && !req->force) {
                        (void) snprintf(why, why_size,
                                        "slot %s is the only committed slot and the running slot %s is still on "
                                        "trial: overwriting it would leave no known-good slot. Commit slot %s "
                                        "first (abctl mark-good), or pass --force", slot_to_string(target),
                                        slot_to_string(running), slot_to_string(running));
                        return -EBUSY;
                }
                if (req->op == SLOT_OP_INSTALL_BEGIN) {
                        /* Not bootable before a byte of it is overwritten. */
                        st[target] = (struct slot_state) {};
                        break;
                }
                /* New image: a trial at the top; arming the first attempt costs a try. */
                st[target] = (struct slot_state) { .tries = (uint8_t) (req->tries - 1), .armed = true };
                prefer(st, target);
                r.t.arm = target;
                break;

        case SLOT_OP_MARK_GOOD:
                if (target != running) {
                        (void) snprintf(why, why_size, "only the running slot (%s) can be marked good",
                                        slot_to_string(running));
                        return -EINVAL;
                }
                st[target].successful = true;
                st[target].tries = 0;
                st[target].armed = false;
                prefer(st, target);
                r.t.boot_order = true;
                r.t.order_first = target;
                break;

        case SLOT_OP_MARK_BAD:
                if (target == running && !(in[slot_other(target)].successful && in[slot_other(target)].priority > 0)) {
                        (void) snprintf(why, why_size,
                                        "slot %s is running and slot %s is not a committed fallback: "
                                        "marking it bad would leave no slot to boot", slot_to_string(target),
                                        slot_to_string(slot_other(target)));
                        return -EBUSY;
                }
                if (last_good(in, running, target) && !req->force) {
                        (void) snprintf(why, why_size,
                                        "slot %s is the only committed slot and the running slot %s is still on "
                                        "trial: failing it would leave no known-good slot. Pass --force if you "
                                        "mean it", slot_to_string(target), slot_to_string(running));
                        return -EBUSY;
                }
                st[target].priority = 0;
                st[target].tries = 0;
                st[target].armed = false;
                if (target == running) {
                        /* The fallback takes over at the next boot. */
                        r.target = slot_other(target);
                        r.t.boot_order = true;
                        r.t.order_first = r.target;
                }
                break;

        case SLOT_OP_SET_ACTIVE:
                if (in[target].priority == 0 && !in[target].successful) {
                        (void) snprintf(why, why_size, "slot %s has failed; install a new image into it first",
                                        slot_to_string(target));
                        return -ESTALE;
                }
                if (!in[target].successful && in[target].tries == 0) {
                        (void) snprintf(why, why_size, "slot %s is not committed and has no tries left",
                                        slot_to_string(target));
                        return -ESTALE;
                }
                prefer(st, target);
                if (!in[target].successful) {
                        st[target].tries--;
                        st[target].armed = true;
                        r.t.arm = target;
                } else {
                        r.t.boot_order = true;
                        r.t.order_first = target;
                }
                break;

        case SLOT_OP_ROLLBACK:
                if (!in[target].successful) {
                        (void) snprintf(why, why_size, "slot %s has never been committed; there is nothing to roll back to",
                                        slot_to_string(target));
                        return -ESTALE;
                }
                /* A committed slot marked bad may be rolled back to on purpose. */
                if (st[target].priority == 0)
                        st[target].priority = 1;
                prefer(st, target);
                r.t.boot_order = true;
                r.t.order_first = target;
                r.t.arm = target;
                break;

        case SLOT_OP_DAMAGED: {
                /* Only the running slot's init sees its blocks fail. */
                Slot other = slot_other(target);
                if (target != running) {
                        (void) snprintf(why, why_size, "only the running slot (%s) can be found damaged",
                                        slot_to_string(running));
                        return -EINVAL;
                }
                if (!slot_state_is_candidate(in[other])) {
                        (void) snprintf(why, why_size,
                                        "slot %s cannot boot (failed, or on trial with no tries left): there is "
                                        "no good slot to fall back to", slot_to_string(other));
                        return -EBUSY;
                }
                if (in[other].successful && in[other].armed) {
                        /* The bound slots_decide_boot keeps (may_arm): a
                         * committed slot armed before that never reached its
                         * init; the firmware ignores BootNext, and another
                         * reboot would loop (found by test-state's model
                         * check with damage). */
                        (void) snprintf(why, why_size,
                                        "slot %s was armed before and never reached its init (the firmware "
                                        "ignores BootNext?): rebooting again could loop", slot_to_string(other));
                        return -EBUSY;
                }
                /* Like mark-bad, the successful bit stays: a damaged
                 * committed slot is the last resort when nothing else can
                 * boot (slots_decide_boot's last_resort), and abctl repair
                 * returns it to service. */
                st[target].priority = 0;
                st[target].tries = 0;
                st[target].armed = false;
                prefer(st, other);
                /* Arming costs a try unless the slot is committed. */
                if (!st[other].successful)
                        st[other].tries--;
                st[other].armed = true;
                r.t.arm = other;
                r.t.boot_order = true;
                r.t.order_first = other;
                r.target = other;
                break;
        }

        case SLOT_OP_REPAIRED:
                if (target == running) {
                        (void) snprintf(why, why_size, "slot %s is the running slot; boot slot %s to repair it",
                                        slot_to_string(target), slot_to_string(slot_other(target)));
                        return -EBUSY;
                }
                if (!in[target].successful) {
                        (void) snprintf(why, why_size, "slot %s was never committed: install an image into it "
                                        "instead", slot_to_string(target));
                        return -ESTALE;
                }
                /* Committed again, as the fallback behind a running slot
                 * that can boot; on top when the running slot itself failed. */
                st[target].tries = 0;
                st[target].armed = false;
                st[target].priority = 1;
                if (in[running].priority > 0)
                        prefer(st, running);
                else
                        prefer(st, target);
                r.t.boot_order = true;
                break;

        default:
                (void) snprintf(why, why_size, "unknown operation");
                return -EINVAL;
        }

        slot_transition_diff(&r.t, in);
        *ret = r;
        return 0;
}
