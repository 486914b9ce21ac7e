/* SPDX-License-Identifier: MIT */
#include "unit.h"
#include "../../common/macro.h"
#include "../../slots/slots.h"

static int apply(SlotOp op, const struct slot_state in[2], Slot running, Slot target, unsigned tries,
                 struct slot_op_result *r, char *why, size_t why_size) {
        struct slot_op_request req = { .op = op, .running = running, .target = target, .tries = tries };
        return slots_apply_op(&req, in, r, why, why_size);
}

static struct slot_state st(unsigned i) {
        return (struct slot_state) { .priority = i & 15, .tries = (i >> 4) & 15, .successful = (i >> 8) & 1,
                                     .armed = (i >> 9) & 1 };
}

/* Every operation, every state of both slots, every running and target
 * slot: the promises of BRIEF.md hold for whatever succeeds. */
static void test_exhaustive(void **state) {
        char why[256];
        unsigned long ok = 0, refused = 0;

        for (unsigned a = 0; a < 1024; a++)
        for (unsigned b = 0; b < 1024; b += 3) /* a third of B's states: every priority, tries, flag */
        for (int run = 0; run < _SLOT_MAX; run++)
        for (int tgt = 0; tgt < _SLOT_MAX; tgt++)
        for (int op = 0; op < _SLOT_OP_MAX; op++) {
                struct slot_state in[2] = { st(a), st(b) };
                struct slot_op_result r;
                why[0] = 0;
                int e = apply(op, in, run, tgt, SLOT_TRIES_DEFAULT, &r, why, sizeof(why));
                if (e < 0) {
                        assert_true(why[0] != 0);  /* a refusal always says why */
                        refused++;
                        continue;
                }
                ok++;
                Slot t = r.target, other = slot_other(t);
                for (int s = 0; s < 2; s++)
                        assert_int_equal(!!(r.t.changed & (1u << s)), !slot_state_equal(r.t.slot[s], in[s]));
                switch (op) {
                case SLOT_OP_INSTALL_BEGIN:
                        /* not bootable, nothing else touched */
                        assert_int_not_equal(t, run);
                        assert_int_equal(r.t.slot[t].priority, 0);
                        assert_false(r.t.slot[t].successful || r.t.slot[t].armed || r.t.slot[t].tries);
                        assert_true(slot_state_equal(r.t.slot[run], in[run]));
                        assert_int_equal(r.t.arm, _SLOT_INVALID);
                        assert_false(r.t.boot_order);
                        break;
                case SLOT_OP_INSTALL:
                        /* never the running slot */
                        assert_int_not_equal(t, run);
                        assert_int_equal(r.t.slot[run].successful, in[run].successful);
                        assert_int_equal(r.t.slot[run].tries, in[run].tries);
                        assert_false(r.t.slot[t].successful);
                        assert_int_equal(r.t.slot[t].tries, SLOT_TRIES_DEFAULT - 1);
                        assert_true(r.t.slot[t].armed && r.t.arm == t);
                        assert_true(r.t.slot[t].priority > r.t.slot[other].priority);
                        break;
                case SLOT_OP_MARK_GOOD:
                        assert_int_equal(t, run);
                        assert_true(r.t.slot[t].successful);
                        assert_int_equal(r.t.slot[t].tries, 0);
                        assert_true(r.t.slot[t].priority > r.t.slot[other].priority);
                        assert_int_equal(r.t.order_first, t);
                        /* the other stays a fallback unless it had failed */
                        assert_int_equal(r.t.slot[other].priority > 0, in[other].priority > 0);
                        break;
                case SLOT_OP_MARK_BAD:
                        assert_int_equal(r.t.slot[tgt].priority, 0);
                        /* never leaves the running machine without a committed slot to boot */
                        if (tgt == run)
                                assert_true(in[slot_other(run)].successful && in[slot_other(run)].priority > 0);
                        break;
                case SLOT_OP_SET_ACTIVE:
                        assert_true(r.t.slot[t].priority > r.t.slot[other].priority);
                        if (!in[t].successful) {
                                assert_true(r.t.arm >= 0);
                                assert_int_equal(r.t.slot[t].tries, in[t].tries - 1); /* arming costs a try */
                        }
                        break;
                case SLOT_OP_ROLLBACK:
                        assert_int_equal(t, slot_other(run));
                        assert_true(in[t].successful);
                        assert_true(r.t.slot[t].priority > r.t.slot[run].priority);
                        break;
                case SLOT_OP_DAMAGED:
                        /* The running slot, damaged: never booted again while
                         * the other can boot; the other is armed and leads. */
                        assert_int_equal(tgt, run);
                        assert_int_equal(t, slot_other(run));
                        assert_true(slot_state_is_candidate(in[t]));
                        assert_false(in[t].successful && in[t].armed); /* the redirect bound */
                        assert_int_equal(r.t.slot[run].priority, 0);
                        assert_false(r.t.slot[run].armed);
                        assert_true(r.t.arm == t && r.t.slot[t].armed);
                        assert_true(r.t.slot[t].priority > 0);
                        assert_true(r.t.slot[t].successful || r.t.slot[t].tries == in[t].tries - 1);
                        assert_int_equal(r.t.order_first, t);
                        break;
                case SLOT_OP_REPAIRED:
                        /* Back in service, committed, never the running slot,
                         * and below a running slot that can boot. */
                        assert_int_not_equal(t, run);
                        assert_true(in[t].successful && r.t.slot[t].successful);
                        assert_true(r.t.slot[t].priority > 0 && !r.t.slot[t].armed);
                        if (in[run].priority > 0)
                                assert_true(r.t.slot[run].priority > r.t.slot[t].priority);
                        assert_int_equal(r.t.arm, _SLOT_INVALID);
                        break;
                }
                /* With no other slot that can boot, damage changes nothing:
                 * the watcher stays up in EIO mode. */
                if (op == SLOT_OP_DAMAGED)
                        assert_true(slot_state_is_candidate(in[slot_other(run)]));
                /* The last known-good slot survives every operation without
                 * --force while the running slot is on trial (issue 12, defect 7). */
                Slot o = slot_other(run);
                if (!in[run].successful && in[o].successful && in[o].priority > 0)
                        assert_true(r.t.slot[o].successful && r.t.slot[o].priority > 0);
                /* The running slot's successful bit never changes except by mark-good. */
                if (op != SLOT_OP_MARK_GOOD)
                        assert_int_equal(r.t.slot[run].successful, in[run].successful);
                /* Priorities stay small whatever the history. */
                assert_true(r.t.slot[0].priority <= 2 || r.t.slot[0].priority == in[0].priority);
                assert_true(r.t.slot[1].priority <= 2 || r.t.slot[1].priority == in[1].priority);
        }
        print_message("%lu operations applied, %lu refused with a reason\n", ok, refused);
}

/* The heal story: B committed, damaged while it runs, A takes over; repaired,
 * B is the fallback again. */
static void test_damage_story(void **state) {
        struct slot_state s[2] = { { .priority = 1, .successful = true }, { .priority = 2, .successful = true } };
        struct slot_op_result r;
        char why[256];

        assert_int_equal(apply(SLOT_OP_DAMAGED, s, SLOT_B, SLOT_B, 0, &r, why, sizeof(why)), 0);
        assert_true(slot_state_equal(r.t.slot[SLOT_B], (struct slot_state) { .priority = 0, .successful = true }));
        assert_true(slot_state_equal(r.t.slot[SLOT_A], (struct slot_state) { .priority = 2, .successful = true,
                                                                              .armed = true }));
        assert_int_equal(r.t.arm, SLOT_A);
        s[0] = r.t.slot[0];
        s[1] = r.t.slot[1];
        /* A boots (its init clears armed); the damaged B is never chosen. */
        struct boot_input in = { .slot = { s[0], s[1] }, .running = SLOT_A };
        struct boot_decision d;
        slots_decide_boot(&in, &d);
        assert_int_equal(d.action, BOOT_ACTION_BOOT);
        assert_int_equal(d.target, SLOT_A);
        assert_false(d.t.slot[SLOT_A].armed);
        /* Later a firmware that starts B anyway: B hands over to A. */
        in.slot[0] = d.t.slot[0];
        in.running = SLOT_B;
        slots_decide_boot(&in, &d);
        assert_int_equal(d.action, BOOT_ACTION_REBOOT);
        assert_int_equal(d.target, SLOT_A);
        /* A firmware that ignored that BootNext starts B again: B, the
         * last resort, boots, and its damage no longer reboots. */
        s[0] = d.t.slot[0];
        assert_true(s[0].armed);
        in.slot[0] = s[0];
        in.bootnext_pending = true;
        slots_decide_boot(&in, &d);
        assert_int_equal(d.action, BOOT_ACTION_BOOT);
        assert_int_equal(d.reason, REASON_LAST_RESORT);
        assert_int_equal(apply(SLOT_OP_DAMAGED, s, SLOT_B, SLOT_B, 0, &r, why, sizeof(why)), -EBUSY);
        assert_non_null(strstr(why, "ignores BootNext"));
        s[0].armed = false;
        assert_int_equal(apply(SLOT_OP_REPAIRED, s, SLOT_A, SLOT_B, 0, &r, why, sizeof(why)), 0);
        assert_true(slot_state_equal(r.t.slot[SLOT_B], (struct slot_state) { .priority = 1, .successful = true }));
        assert_int_equal(r.t.slot[SLOT_A].priority, 2);
}

/* A damaged committed slot is the last resort: with the other failed, it boots. */
static void test_damaged_is_last_resort(void **state) {
        struct slot_state s[2] = { { .priority = 0 }, { .priority = 0, .successful = true } };
        struct boot_input in = { .slot = { s[0], s[1] }, .running = SLOT_B };
        struct boot_decision d;
        slots_decide_boot(&in, &d);
        assert_int_equal(d.action, BOOT_ACTION_BOOT);
        assert_int_equal(d.reason, REASON_LAST_RESORT);
        assert_int_equal(d.target, SLOT_B);
        assert_int_equal(d.t.changed, 0);
}

static void test_refusals(void **state) {
        char why[256];
        struct slot_op_result r;
        struct slot_state committed = { .priority = 2, .successful = true };
        struct slot_state failed = { .priority = 0 };
        struct slot_state s[2] = { committed, failed };

        assert_int_equal(apply(SLOT_OP_INSTALL, s, SLOT_A, SLOT_A, 3, &r, why, sizeof(why)), -EBUSY);
        assert_non_null(strstr(why, "running slot"));
        assert_int_equal(apply(SLOT_OP_INSTALL, s, SLOT_A, SLOT_B, 0, &r, why, sizeof(why)), -EINVAL);
        assert_int_equal(apply(SLOT_OP_MARK_GOOD, s, SLOT_A, SLOT_B, 0, &r, why, sizeof(why)), -EINVAL);
        assert_int_equal(apply(SLOT_OP_MARK_BAD, s, SLOT_A, SLOT_A, 0, &r, why, sizeof(why)), -EBUSY);
        assert_non_null(strstr(why, "no slot to boot"));
        assert_int_equal(apply(SLOT_OP_SET_ACTIVE, s, SLOT_A, SLOT_B, 0, &r, why, sizeof(why)), -ESTALE);
        assert_int_equal(apply(SLOT_OP_ROLLBACK, s, SLOT_A, SLOT_A, 0, &r, why, sizeof(why)), -ESTALE);
        assert_int_equal(apply(_SLOT_OP_MAX, s, SLOT_A, SLOT_A, 0, &r, why, sizeof(why)), -EINVAL);
        /* A damaged with B failed: nothing to fall back to, nothing written. */
        assert_int_equal(apply(SLOT_OP_DAMAGED, s, SLOT_A, SLOT_A, 0, &r, why, sizeof(why)), -EBUSY);
        assert_non_null(strstr(why, "no good slot"));
        assert_int_equal(apply(SLOT_OP_DAMAGED, s, SLOT_A, SLOT_B, 0, &r, why, sizeof(why)), -EINVAL);
        /* Repair: never the running slot, never a slot that was not committed. */
        assert_int_equal(apply(SLOT_OP_REPAIRED, s, SLOT_A, SLOT_A, 0, &r, why, sizeof(why)), -EBUSY);
        assert_non_null(strstr(why, "boot slot B"));
        assert_int_equal(apply(SLOT_OP_REPAIRED, s, SLOT_A, SLOT_B, 0, &r, why, sizeof(why)), -ESTALE);
}

/* Running B on trial, A the only committed slot: installing over A or
 * failing it is refused, and allowed with force. */
static void test_last_good_needs_force(void **state) {
        char why[512];
        struct slot_op_result r;
        struct slot_state s[2] = { { .priority = 1, .successful = true }, { .priority = 2, .tries = 2 } };
        static const SlotOp ops[] = { SLOT_OP_INSTALL_BEGIN, SLOT_OP_INSTALL, SLOT_OP_MARK_BAD };

        for (size_t i = 0; i < ELEMENTSOF(ops); i++) {
                struct slot_op_request req = { .op = ops[i], .running = SLOT_B, .target = SLOT_A, .tries = 3 };
                assert_int_equal(slots_apply_op(&req, s, &r, why, sizeof(why)), -EBUSY);
                assert_non_null(strstr(why, "only committed slot"));
                assert_non_null(strstr(why, "--force"));
                req.force = true;
                assert_int_equal(slots_apply_op(&req, s, &r, why, sizeof(why)), 0);
        }
        /* Once B is committed, A is no longer the last good one. */
        s[1] = (struct slot_state) { .priority = 2, .successful = true };
        struct slot_op_request req = { .op = SLOT_OP_INSTALL_BEGIN, .running = SLOT_B, .target = SLOT_A, .tries = 3 };
        assert_int_equal(slots_apply_op(&req, s, &r, why, sizeof(why)), 0);
}

static void test_update_story(void **state) {
        char why[256];
        struct slot_op_result r;
        struct slot_state s[2] = { { .priority = 2, .successful = true }, { .priority = 1, .successful = true } };

        /* install v2 into B from A */
        assert_int_equal(apply(SLOT_OP_INSTALL, s, SLOT_A, SLOT_B, 3, &r, why, sizeof(why)), 0);
        assert_true(r.t.arm >= 0);
        assert_int_equal(r.target, SLOT_B);
        s[0] = r.t.slot[0], s[1] = r.t.slot[1];
        assert_int_equal(s[1].priority, 2);
        assert_int_equal(s[1].tries, 2);
        assert_int_equal(s[0].priority, 1);

        /* the init boots B on trial; B commits */
        struct boot_input in = { .slot = { s[0], s[1] }, .running = SLOT_B };
        struct boot_decision d;
        slots_decide_boot(&in, &d);
        assert_int_equal(d.action, BOOT_ACTION_BOOT);
        s[0] = d.t.slot[0], s[1] = d.t.slot[1];
        assert_int_equal(apply(SLOT_OP_MARK_GOOD, s, SLOT_B, SLOT_B, 0, &r, why, sizeof(why)), 0);
        assert_true(r.t.slot[1].successful);
        assert_int_equal(r.t.order_first, SLOT_B);
        s[0] = r.t.slot[0], s[1] = r.t.slot[1];

        /* rollback to A from B */
        assert_int_equal(apply(SLOT_OP_ROLLBACK, s, SLOT_B, SLOT_B, 0, &r, why, sizeof(why)), 0);
        assert_int_equal(r.target, SLOT_A);
        assert_true(r.t.slot[0].priority > r.t.slot[1].priority);
        assert_true(r.t.arm >= 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_exhaustive),
                cmocka_unit_test(test_refusals),
                cmocka_unit_test(test_damage_story),
                cmocka_unit_test(test_damaged_is_last_resort),
                cmocka_unit_test(test_update_story),
                cmocka_unit_test(test_last_good_needs_force),
        };
        return cmocka_run_group_tests_name("ops", tests, NULL, NULL);
}
