/* SPDX-License-Identifier: MIT */
/* Operator actions on the slot state, pure. The rules are BRIEF.md's. */

#include <stdio.h>

#include "../common/macro.h"
#include "slots.h"

static const char *const op_names[_SLOT_OP_MAX] = {
        [SLOT_OP_INSTALL] = "install",
        [SLOT_OP_MARK_GOOD] = "mark-good",
        [SLOT_OP_MARK_BAD] = "mark-bad",
        [SLOT_OP_SET_ACTIVE] = "set-active",
        [SLOT_OP_ROLLBACK] = "rollback",
};

const char *slot_op_to_string(SlotOp op) {
        return op >= 0 && op < _SLOT_OP_MAX ? op_names[op] : "invalid";
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

int slots_apply_op(SlotOp op, const struct slot_state in[_SLOT_MAX], Slot running, Slot target, unsigned tries,
                   struct slot_op_result *ret, char *why, size_t why_size) {
        struct slot_op_result r = { .slot = { in[0], in[1] }, .target = target, .boot_order_first = _SLOT_INVALID };

        if (target < 0 || target >= _SLOT_MAX || running < 0 || running >= _SLOT_MAX) {
                (void) snprintf(why, why_size, "no such slot");
                return -EINVAL;
        }
        switch (op) {
        case SLOT_OP_INSTALL:
                if (target == running) {
                        (void) snprintf(why, why_size, "slot %s is the running slot; install into slot %s",
                                        slot_to_string(target), slot_to_string(slot_other(target)));
                        return -EBUSY;
                }
                if (tries < 1 || tries > SLOT_TRIES_MAX) {
                        (void) snprintf(why, why_size, "tries must be 1 to %d", SLOT_TRIES_MAX);
                        return -EINVAL;
                }
                /* New image: a trial at the top; arming the first attempt costs a try. */
                r.slot[target] = (struct slot_state) { .tries = (uint8_t) (tries - 1), .armed = true };
                prefer(r.slot, target);
                r.arm = true;
                break;

        case SLOT_OP_MARK_GOOD:
                if (target != running) {
                        (void) snprintf(why, why_size, "only the running slot (%s) can be marked good",
                                        slot_to_string(running));
                        return -EINVAL;
                }
                r.slot[target].successful = true;
                r.slot[target].tries = 0;
                r.slot[target].armed = false;
                prefer(r.slot, target);
                r.boot_order_first = target;
                break;

        case SLOT_OP_MARK_BAD:
                if (target == running && !(in[slot_other(target)].successful && in[slot_other(target)].priority > 0)) {
                        (void) snprintf(why, why_size,
                                        "slot %s is running and slot %s is not a committed fallback: "
                                        "marking it bad would leave no slot to boot", slot_to_string(target),
                                        slot_to_string(slot_other(target)));
                        return -EBUSY;
                }
                r.slot[target].priority = 0;
                r.slot[target].tries = 0;
                r.slot[target].armed = false;
                if (target == running) {
                        /* The fallback takes over at the next boot. */
                        r.target = slot_other(target);
                        r.boot_order_first = r.target;
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
                prefer(r.slot, target);
                if (!in[target].successful) {
                        r.slot[target].tries--;
                        r.slot[target].armed = true;
                        r.arm = true;
                } else
                        r.boot_order_first = target;
                break;

        case SLOT_OP_ROLLBACK:
                target = r.target = slot_other(running);
                if (!in[target].successful) {
                        (void) snprintf(why, why_size, "slot %s has never been committed; there is nothing to roll back to",
                                        slot_to_string(target));
                        return -ESTALE;
                }
                /* A committed slot marked bad may be rolled back to on purpose. */
                if (r.slot[target].priority == 0)
                        r.slot[target].priority = 1;
                prefer(r.slot, target);
                r.boot_order_first = target;
                r.arm = true;
                break;

        default:
                (void) snprintf(why, why_size, "unknown operation");
                return -EINVAL;
        }

        for (int s = 0; s < _SLOT_MAX; s++)
                if (!slot_state_equal(r.slot[s], in[s]))
                        r.changed |= 1u << s;
        *ret = r;
        return 0;
}
