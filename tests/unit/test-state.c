/* SPDX-License-Identifier: MIT */
#include "unit.h"
#include "../../common/macro.h"
#include "../../slots/slots.h"

static struct slot_state st(unsigned i) {
        /* i in 0..1023: priority, tries, successful, armed */
        return (struct slot_state) { .priority = i & 15, .tries = (i >> 4) & 15, .successful = (i >> 8) & 1,
                                     .armed = (i >> 9) & 1 };
}

static void test_attrs_roundtrip(void **state) {
        for (unsigned i = 0; i < 1024; i++) {
                struct slot_state s = st(i);
                uint64_t other = 0x0000ffffffffffffULL | (0x3fULL << 58); /* every bit we must not touch */
                uint64_t a = slot_state_to_attrs(other, s);
                assert_true(slot_state_equal(slot_state_from_attrs(a), s));
                assert_int_equal(a & ~GPT_ATTR_STATE_MASK, other);
        }
        /* The ChromeOS layout exactly: priority 2, tries 3, successful. */
        struct slot_state s = { .priority = 2, .tries = 3, .successful = true };
        assert_int_equal(slot_state_to_attrs(0, s), 0x0132000000000000ULL);
}

static void check_one(const struct boot_input *in, const struct boot_decision *d) {
        Slot x = in->running, y = slot_other(x);
        const struct slot_state *I = in->slot, *D = d->t.slot;

        /* changed is exactly the set of slots whose state differs */
        for (int s = 0; s < _SLOT_MAX; s++)
                assert_int_equal(!!(d->t.changed & (1u << s)), !slot_state_equal(I[s], D[s]));

        /* Never touch the successful bit: a committed slot stays reachable
         * as the last resort. */
        for (int s = 0; s < _SLOT_MAX; s++)
                assert_int_equal(D[s].successful, I[s].successful);

        /* A committed slot is failed only when its own root failed. */
        if (I[y].successful)
                assert_false(d->marked_failed & (1u << y));
        if (I[x].successful && !in->root_failed)
                assert_false(d->marked_failed & (1u << x));

        switch (d->action) {
        case BOOT_ACTION_BOOT:
                assert_int_equal(d->target, x);
                assert_false(in->root_failed);           /* never boot a root that failed */
                assert_int_equal(d->trial, !D[x].successful);
                assert_false(D[x].armed);               /* the attempt has started */
                /* a failed slot boots only as the last resort or by override */
                if (D[x].priority == 0)
                        assert_true(d->reason == REASON_LAST_RESORT || d->reason == REASON_OVERRIDE);
                if (d->reason == REASON_LAST_RESORT)
                        assert_true(D[x].successful);
                break;
        case BOOT_ACTION_REBOOT:
                assert_int_equal(d->target, y);
                assert_false(in->override && !in->root_failed); /* an override is never redirected */
                assert_false(in->bootnext_pending);     /* never ask an ignoring firmware again */
                assert_true(D[y].armed);
                assert_true(D[y].successful || D[y].priority > 0);
                if (!I[y].successful) {
                        /* arming cost exactly one try */
                        assert_true(I[y].tries > 0);
                        assert_int_equal(D[y].tries, I[y].tries - 1);
                } else
                        assert_false(I[y].armed);      /* one unanswered redirect at most */
                break;
        case BOOT_ACTION_STOP:
                /* Only when no slot can boot. */
                assert_false(in->override && !in->root_failed);
                assert_false(!in->root_failed && D[x].successful);
                assert_true(!D[y].successful || in->bootnext_pending || I[y].armed ||
                            (in->root_failed && I[x].priority == 0)); /* one last-resort hand-over */
                assert_false(slot_state_is_candidate(D[y]) && !in->bootnext_pending &&
                             !(D[y].successful && I[y].armed));
                break;
        default:
                fail();
        }

        if (in->root_failed) {
                assert_int_equal(D[x].priority, 0);
                assert_int_equal(D[x].tries, 0);
        }
        if (in->override && !in->root_failed)
                assert_int_equal(d->action, BOOT_ACTION_BOOT);

        /* Zero writes on a normal boot: a committed, best, unarmed slot, with
         * the other one committed below it or failed. */
        if (!in->root_failed && I[x].successful && !I[x].armed && I[x].priority > 0 &&
            ((I[y].successful && !I[y].armed && I[y].priority <= I[x].priority) || I[y].priority == 0)) {
                assert_int_equal(d->action, BOOT_ACTION_BOOT);
                assert_int_equal(d->t.changed, 0);
        }
}

static void test_exhaustive(void **state) {
        unsigned long n = 0, counts[_BOOT_ACTION_MAX] = {};
        for (unsigned a = 0; a < 1024; a++)
        for (unsigned b = 0; b < 1024; b++)
        for (int run = 0; run < _SLOT_MAX; run++)
        for (int flags = 0; flags < 8; flags++) {
                struct boot_input in = {
                        .slot = { st(a), st(b) },
                        .running = run,
                        .override = flags & 1,
                        .root_failed = flags & 2,
                        .bootnext_pending = flags & 4,
                };
                struct boot_decision d;
                slots_decide_boot(&in, &d);
                check_one(&in, &d);
                counts[d.action]++;
                n++;
        }
        assert_int_equal(n, 1024ul * 1024 * 2 * 8);
        print_message("%lu decisions: %lu boot, %lu reboot, %lu stop\n", n, counts[0], counts[1], counts[2]);
}

/* A boot that is not sure which slot's image it runs (identity only the
 * default guess, or a UKI that pins no root hash) never marks a slot failed,
 * whatever the state, the override, the root's fate or BootNext; and what it
 * arms obeys the same bounds as any other redirect (BRIEF.md). */
static void test_exhaustive_unsure(void **state) {
        unsigned long n = 0, counts[_BOOT_ACTION_MAX] = {};
        for (unsigned a = 0; a < 1024; a++)
        for (unsigned b = 0; b < 1024; b++)
        for (int run = 0; run < _SLOT_MAX; run++)
        for (int flags = 0; flags < 8; flags++) {
                struct boot_input in = {
                        .slot = { st(a), st(b) },
                        .running = run,
                        .override = flags & 1,
                        .root_failed = flags & 2,
                        .bootnext_pending = flags & 4,
                        .unsure = true,
                };
                struct boot_decision d;
                slots_decide_boot(&in, &d);
                const struct slot_state *I = in.slot, *D = d.t.slot;

                assert_int_equal(d.marked_failed, 0);
                for (int s = 0; s < _SLOT_MAX; s++) {
                        /* Not failed, not exhausted into failure, not committed or uncommitted. */
                        if (I[s].priority > 0)
                                assert_int_not_equal(D[s].priority, 0);
                        assert_int_equal(D[s].successful, I[s].successful);
                        assert_int_equal(!!(d.t.changed & (1u << s)), !slot_state_equal(I[s], D[s]));
                }
                if (in.root_failed)
                        assert_int_not_equal(d.action, BOOT_ACTION_BOOT);
                if (d.action == BOOT_ACTION_REBOOT) {
                        Slot t = d.target;
                        assert_int_equal(d.t.arm, t);
                        assert_true(D[t].armed);
                        /* a slot that can boot, or the last resort: the committed one */
                        assert_true(slot_state_is_candidate(I[t]) || I[t].successful);
                        if (!I[t].successful)
                                assert_int_equal(D[t].tries, I[t].tries - 1); /* a try per attempt */
                        else
                                assert_false(I[t].armed); /* one unanswered redirect at most */
                        assert_false(in.bootnext_pending && t == slot_other(run));
                        /* Only the target's state changes. */
                        assert_true(slot_state_equal(D[slot_other(t)], I[slot_other(t)]) ||
                                    (!in.root_failed && slot_other(t) == run));
                }
                counts[d.action]++;
                n++;
        }
        print_message("%lu unsure decisions: %lu boot, %lu reboot, %lu stop; none failed a slot\n", n, counts[0],
                      counts[1], counts[2]);
}

/* ---- no loops: a model check over an adversarial firmware ----------------------
 *
 * A node is both slots' state and BootNext (none, A, B). From a node the
 * firmware starts either slot, and consumes BootNext or not, or loses it.
 * The started slot's kernel may die before its init (counted only when the
 * firmware started it because of our BootNext: a firmware that keeps
 * starting a dead kernel on its own defeats any software), or its init runs
 * with a root that fails or verifies; a trial boot may then hang into the
 * watchdog. Every such edge can repeat; a BOOT of a committed slot, a
 * commit, and a STOP end the walk. The graph must have no cycle, so every
 * sequence of boots settles. Priorities 0-2 and tries 0-3 cover every
 * comparison the protocol makes.
 *
 * With model_unsure, the firmware may also start a UKI the init cannot be
 * sure of: a foreign one (the removable-path copy whose pin matches no
 * slot: the init guesses A, the default) or a slot's UKI whose pin a boot
 * entry removed (the init knows the slot but has no root hash): "unsure"
 * boots, mixed in anywhere, with the root failing or not. */

#define MP 3
#define MT 4
#define NS (MP * MT * 2 * 2)
#define NODES (NS * NS * 3)

static unsigned enc_state(struct slot_state s) {
        return ((s.priority * MT + s.tries) * 2 + s.successful) * 2 + s.armed;
}
static struct slot_state dec_state(unsigned i) {
        return (struct slot_state) { .armed = i & 1, .successful = (i >> 1) & 1, .tries = (i >> 2) % MT,
                                     .priority = (i >> 2) / MT };
}
static unsigned enc(struct slot_state a, struct slot_state b, int bn) {
        return (enc_state(a) * NS + enc_state(b)) * 3 + (unsigned) bn;
}

static bool model_unsure;
static bool model_damage;

/* With model_damage, any slot that boots may find a block of its root
 * damaged after the boot (init/watch.c): it applies SLOT_OP_DAMAGED and
 * reboots into the other slot, or, refused (no other slot can boot),
 * stays up in EIO mode, which ends the walk. */
static void damage_edge(const struct boot_decision *d, unsigned out[64], int *n) {
        struct slot_op_request req = { .op = SLOT_OP_DAMAGED, .running = d->target, .target = d->target };
        struct slot_op_result r;
        char why[256];
        if (!model_damage || d->action != BOOT_ACTION_BOOT)
                return;
        /* The booted slot's init cleared its armed bit before it switched root. */
        struct slot_state st[2] = { d->t.slot[0], d->t.slot[1] };
        st[d->target].armed = false;
        if (slots_apply_op(&req, st, &r, why, sizeof(why)) >= 0)
                out[(*n)++] = enc(r.t.slot[0], r.t.slot[1], r.t.arm + 1);
}
static unsigned char color[NODES];
static unsigned depth[NODES];
static unsigned longest;
static unsigned stack[NODES], sp;

static void print_node(unsigned node) {
        char a[48], b[48];
        slot_state_format(dec_state((node / 3) / NS), a);
        slot_state_format(dec_state((node / 3) % NS), b);
        print_message("    A: %-36s B: %-36s BootNext: %s\n", a, b, (const char *[]) { "-", "A", "B" }[node % 3]);
}

static int edges(unsigned node, unsigned out[64]) {
        int bn = node % 3; /* 0 none, 1 A armed in BootNext, 2 B */
        struct slot_state s[2] = { dec_state((node / 3) / NS), dec_state((node / 3) % NS) };
        int n = 0;

        for (int z = 0; z < 2; z++)
        for (int keep = 0; keep < 2; keep++) {
                if (bn == 0 && keep)
                        continue;
                int bn2 = keep ? bn : 0;
                bool via_bootnext = bn == z + 1 && !keep;

                /* The kernel dies before the init. */
                if (via_bootnext)
                        out[n++] = enc(s[0], s[1], bn2);

                for (int root_failed = 0; root_failed < 2; root_failed++) {
                        struct boot_input in = { .slot = { s[0], s[1] }, .running = z, .root_failed = root_failed,
                                                 .bootnext_pending = bn2 == (1 - z) + 1 };
                        struct boot_decision d;
                        slots_decide_boot(&in, &d);
                        if (d.action == BOOT_ACTION_REBOOT)
                                out[n++] = enc(d.t.slot[0], d.t.slot[1], d.target + 1);
                        else if (d.action == BOOT_ACTION_BOOT && d.trial)
                                out[n++] = enc(d.t.slot[0], d.t.slot[1], bn2); /* hangs, watchdog */
                        damage_edge(&d, out, &n);
                }
        }

        /* Unsure boots: z is the slot the init believes it is (the default
         * guess A for a foreign UKI, or the started slot without a pin). */
        for (int z = 0; model_unsure && z < 2; z++)
        for (int keep = 0; keep < 2; keep++) {
                if (bn == 0 && keep)
                        continue;
                int bn2 = keep ? bn : 0;
                for (int root_failed = 0; root_failed < 2; root_failed++) {
                        struct boot_input in = { .slot = { s[0], s[1] }, .running = z, .root_failed = root_failed,
                                                 .bootnext_pending = bn2 == (1 - z) + 1, .unsure = true };
                        struct boot_decision d;
                        slots_decide_boot(&in, &d);
                        assert_int_equal(d.marked_failed, 0);
                        if (d.action == BOOT_ACTION_REBOOT)
                                out[n++] = enc(d.t.slot[0], d.t.slot[1], d.target + 1);
                        else if (d.action == BOOT_ACTION_BOOT && d.trial)
                                out[n++] = enc(d.t.slot[0], d.t.slot[1], bn2);
                }
        }
        assert_true(n <= 64);
        return n;
}

static unsigned dfs(unsigned node) {
        unsigned out[64];
        if (color[node] == 2)
                return depth[node];
        if (color[node] == 1) {
                print_message("a cycle of boots:\n");
                unsigned i = sp;
                while (i > 0 && stack[i - 1] != node)
                        i--;
                for (i = i ? i - 1 : 0; i < sp; i++)
                        print_node(stack[i]);
                print_node(node);
                fail_msg("the machine could loop forever");
        }
        color[node] = 1;
        stack[sp++] = node;
        unsigned best = 0;
        int n = edges(node, out);
        for (int i = 0; i < n; i++) {
                unsigned d = dfs(out[i]) + 1;
                if (d > best)
                        best = d;
        }
        color[node] = 2;
        sp--;
        depth[node] = best;
        return best;
}

static void test_no_loops(void **state) {
        memset(color, 0, sizeof(color));
        longest = 0;
        for (unsigned a = 0; a < NS; a++)
        for (unsigned b = 0; b < NS; b++)
        for (int bn = 0; bn < 3; bn++) {
                struct slot_state sa = dec_state(a), sb = dec_state(b);
                if (sa.priority >= MP || sb.priority >= MP)
                        continue;
                unsigned d = dfs(enc(sa, sb, bn));
                if (d > longest)
                        longest = d;
        }
        /* With tries <= 3 the longest walk is bounded; print it for the record. */
        print_message("no cycles over %u states; longest sequence of unsettled boots: %u\n", NODES, longest);
        assert_true(longest < 32);
}

/* The heal promise (issue 15): a slot whose blocks rot after boot, on every
 * boot, never makes the machine loop; the walk settles on the other slot or
 * stays up in EIO mode. */
static void test_no_loops_with_damage(void **state) {
        model_damage = true;
        test_no_loops(state);
        model_unsure = true;
        test_no_loops(state);
        model_unsure = false;
        model_damage = false;
}

static void test_no_loops_with_unsure_boots(void **state) {
        model_unsure = true;
        test_no_loops(state);
        model_unsure = false;
}

/* ---- the stories of BRIEF.md, step by step ------------------------------------- */

static struct boot_decision decide(struct slot_state a, struct slot_state b, Slot run, bool root_failed,
                                   bool pending) {
        struct boot_input in = { .slot = { a, b }, .running = run, .root_failed = root_failed,
                                 .bootnext_pending = pending };
        struct boot_decision d;
        slots_decide_boot(&in, &d);
        return d;
}

static void test_story_update_then_commit_path(void **state) {
        struct slot_state A = { .priority = 1, .successful = true };
        /* abctl install into B: priority 2, tries 3, then armed: tries 2. */
        struct slot_state B = { .priority = 2, .tries = 2, .armed = true };

        /* Firmware starts B (BootNext): trial boot, armed cleared. */
        struct boot_decision d = decide(A, B, SLOT_B, false, false);
        assert_int_equal(d.action, BOOT_ACTION_BOOT);
        assert_true(d.trial);
        assert_int_equal(d.reason, REASON_TRIAL);
        assert_false(d.t.slot[SLOT_B].armed);
        assert_int_equal(d.t.slot[SLOT_B].tries, 2);
        assert_int_equal(d.t.changed, 1u << SLOT_B);
}

static void test_story_never_committed(void **state) {
        struct slot_state A = { .priority = 1, .successful = true };
        struct slot_state B = { .priority = 2, .tries = 3 };
        unsigned reboots = 0;
        /* abctl arms the first attempt */
        B.tries--, B.armed = true;
        for (int boot = 0; boot < 20; boot++) {
                /* B boots (trial) and never commits; the watchdog or a reboot
                 * brings the firmware back to A through BootOrder. */
                struct boot_decision d = decide(A, B, SLOT_B, false, false);
                assert_int_equal(d.action, BOOT_ACTION_BOOT);
                A = d.t.slot[SLOT_A], B = d.t.slot[SLOT_B];
                d = decide(A, B, SLOT_A, false, false);
                A = d.t.slot[SLOT_A], B = d.t.slot[SLOT_B];
                if (d.action == BOOT_ACTION_BOOT) {
                        assert_int_equal(d.reason, REASON_COMMITTED);
                        assert_true(d.marked_failed & (1u << SLOT_B));
                        break;
                }
                assert_int_equal(d.action, BOOT_ACTION_REBOOT);
                reboots++;
        }
        /* three tries: the armed one and two redirects */
        assert_int_equal(reboots, 2);
        assert_int_equal(B.priority, 0);
}

static void test_story_panic_before_init(void **state) {
        struct slot_state A = { .priority = 1, .successful = true };
        struct slot_state B = { .priority = 2, .tries = 2, .armed = true }; /* armed by install */
        int attempts = 1;
        for (;;) {
                /* B's kernel panics: A's init runs next, BootNext consumed. */
                struct boot_decision d = decide(A, B, SLOT_A, false, false);
                A = d.t.slot[SLOT_A], B = d.t.slot[SLOT_B];
                if (d.action == BOOT_ACTION_BOOT)
                        break;
                attempts++;
                assert_true(attempts < 10);
        }
        assert_int_equal(attempts, 3);
        assert_int_equal(B.priority, 0);
        assert_int_equal(B.tries, 0);
}

static void test_story_bootnext_ignored(void **state) {
        struct slot_state A = { .priority = 1, .successful = true };
        struct slot_state B = { .priority = 2, .tries = 2, .armed = true };
        /* Firmware ignored BootNext and started A: A boots, nothing written. */
        struct boot_decision d = decide(A, B, SLOT_A, false, true);
        assert_int_equal(d.action, BOOT_ACTION_BOOT);
        assert_int_equal(d.reason, REASON_BOOTNEXT_IGNORED);
        assert_int_equal(d.t.changed, 0);
}

static void test_story_corrupt_root_falls_back(void **state) {
        struct slot_state A = { .priority = 1, .successful = true };
        struct slot_state B = { .priority = 2, .tries = 2, .armed = true };
        struct boot_decision d = decide(A, B, SLOT_B, true, false);
        assert_int_equal(d.action, BOOT_ACTION_REBOOT);
        assert_int_equal(d.target, SLOT_A);
        assert_int_equal(d.reason, REASON_ROOT_FAILED);
        assert_int_equal(d.t.slot[SLOT_B].priority, 0);
        /* A is committed: arming it costs nothing */
        assert_int_equal(d.t.slot[SLOT_A].tries, 0);
        /* Next boot: A, and B is not retried. */
        d = decide(d.t.slot[SLOT_A], d.t.slot[SLOT_B], SLOT_A, false, false);
        assert_int_equal(d.action, BOOT_ACTION_BOOT);
        assert_int_equal(d.reason, REASON_COMMITTED);
}

static void test_story_committed_redirect_bounded(void **state) {
        /* Both committed, A preferred; firmware starts B and A never comes up. */
        struct slot_state A = { .priority = 2, .successful = true };
        struct slot_state B = { .priority = 1, .successful = true };
        struct boot_decision d = decide(A, B, SLOT_B, false, false);
        assert_int_equal(d.action, BOOT_ACTION_REBOOT);
        assert_true(d.t.slot[SLOT_A].armed);
        /* A's kernel dies; B again: no second redirect. */
        d = decide(d.t.slot[SLOT_A], d.t.slot[SLOT_B], SLOT_B, false, false);
        assert_int_equal(d.action, BOOT_ACTION_BOOT);
        assert_int_equal(d.reason, REASON_REDIRECT_UNANSWERED);
        assert_int_equal(d.t.changed, 0);
}

static void test_story_nothing_bootable(void **state) {
        struct slot_state A = { .priority = 0 };
        struct slot_state B = { .priority = 0 };
        struct boot_decision d = decide(A, B, SLOT_A, false, false);
        assert_int_equal(d.action, BOOT_ACTION_STOP);
        assert_int_equal(d.reason, REASON_NOTHING_BOOTABLE);
        /* Both failed but A was committed once: last resort. */
        A.successful = true;
        d = decide(A, B, SLOT_A, false, false);
        assert_int_equal(d.action, BOOT_ACTION_BOOT);
        assert_int_equal(d.reason, REASON_LAST_RESORT);
        d = decide(A, B, SLOT_B, false, false);
        assert_int_equal(d.action, BOOT_ACTION_REBOOT);
        assert_int_equal(d.target, SLOT_A);
}

static void test_names(void **state) {
        for (int i = 0; i < _BOOT_REASON_MAX; i++)
                assert_string_not_equal(boot_reason_to_string(i), "invalid");
        for (int i = 0; i < _BOOT_ACTION_MAX; i++)
                assert_string_not_equal(boot_action_to_string(i), "invalid");
        char buf[48];
        slot_state_format((struct slot_state) { .priority = 2, .tries = 1, .successful = true, .armed = true }, buf);
        assert_string_equal(buf, "priority=2 tries=1 successful armed");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_attrs_roundtrip),
                cmocka_unit_test(test_exhaustive),
                cmocka_unit_test(test_exhaustive_unsure),
                cmocka_unit_test(test_no_loops),
                cmocka_unit_test(test_no_loops_with_unsure_boots),
                cmocka_unit_test(test_no_loops_with_damage),
                cmocka_unit_test(test_story_update_then_commit_path),
                cmocka_unit_test(test_story_never_committed),
                cmocka_unit_test(test_story_panic_before_init),
                cmocka_unit_test(test_story_bootnext_ignored),
                cmocka_unit_test(test_story_corrupt_root_falls_back),
                cmocka_unit_test(test_story_committed_redirect_bounded),
                cmocka_unit_test(test_story_nothing_bootable),
                cmocka_unit_test(test_names),
        };
        return cmocka_run_group_tests_name("state", tests, NULL, NULL);
}
