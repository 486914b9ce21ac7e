/* SPDX-License-Identifier: MIT */
#pragma once

/* engine: the one reader and the one writer of a slot disk's boot state.
 *
 * The state is the slots' GPT attribute bits; the boot manager's variables
 * (Boot####, BootNext, BootOrder) are hints derived from it. The init, abctl
 * and the power-cut simulator all read through slots_view_read() and write
 * through slots_commit(), so the write order, the bootnext-first rule and
 * the boot-entry policy are stated once, here. The decisions themselves are
 * pure (slots_decide_boot, slots_apply_op) and return a slot_transition. */

#include "../efi/efi.h"
#include "slots.h"

struct slots_view {
        struct slot_layout layout;          /* the caller fills it (slots_find_partitions, slots_read_layout) */
        const char *efivarfs;               /* NULL: no EFI variables to read or write */
        struct slot_state st[_SLOT_MAX];    /* from the GPT */
        struct gpt_status gpt;
        struct efi_boot_vars vars;          /* boot_next -1 when absent */
        int bad_vars;                       /* boot manager variables that did not parse (ignored) */
};

/* Reads both slots' state from the GPT and the boot manager's variables.
 * < 0 when the GPT cannot be read (both copies invalid, I/O error). */
int slots_view_read(struct slots_view *v);
void slots_view_done(struct slots_view *v);

/* The Boot#### number of slot s's entry on the ESP, -1 if it has none. */
int slots_view_entry(const struct slots_view *v, Slot s);
/* BootNext is set and names slot s's entry (a redirect to s is pending). */
bool slots_view_boot_next_is(const struct slots_view *v, Slot s);

struct slots_commit_stats {
        unsigned gpt_writes, nvram_writes;
        unsigned hint_failures;             /* boot entries or BootOrder that could not be written (logged) */
};

/* Writes t: the one order every state change takes.
 *
 *   1. a committed arm target: its entry and BootNext first (it pays no
 *      try; its armed bit bounds redirects, so it must never be armed in
 *      the GPT without a BootNext that reaches it);
 *   2. the GPT: the slots in t->changed only, primary copy, flush, backup;
 *   3. otherwise the arm target's entry and BootNext now (a try is spent
 *      before the attempt is armed);
 *   4. entries for every present slot that can boot (created only when
 *      missing); a slot that cannot boot gets none and stays out of
 *      BootOrder;
 *   5. BootOrder when t->boot_order: committed slots first.
 *
 * Each write only when its value changes (NVRAM wears). Returns < 0 when
 * the GPT or BootNext could not be written (the transition did not take
 * effect as a whole); a failed hint (4, 5) is logged and counted. v is
 * updated to what was written. */
int slots_commit(struct slots_view *v, const struct slot_transition *t, struct slots_commit_stats *stats);
