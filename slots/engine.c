/* SPDX-License-Identifier: MIT */
/* The one reader and writer of a slot disk's boot state: see engine.h. */

#include <stdio.h>

#include "../common/log.h"
#include "engine.h"

int slots_view_read(struct slots_view *v) {
        int r;

        efi_boot_vars_done(&v->vars);
        v->vars = (struct efi_boot_vars) { .boot_next = -1 };
        v->bad_vars = 0;
        r = slots_state_read(&v->layout, v->st, &v->gpt);
        if (r < 0)
                return r;
        if (v->efivarfs) {
                r = efi_boot_vars_read(v->efivarfs, v->layout.esp_present ? v->layout.esp_uuid : NULL, &v->vars);
                v->bad_vars = r > 0 ? r : 0;
        }
        return 0;
}

void slots_view_done(struct slots_view *v) {
        efi_boot_vars_done(&v->vars);
}

int slots_view_entry(const struct slots_view *v, Slot s) {
        for (size_t i = 0; i < v->vars.n_entries; i++)
                if (v->vars.entries[i].on_esp && v->vars.entries[i].path &&
                    strcasecmp(v->vars.entries[i].path, slot_uki_path(s)) == 0)
                        return v->vars.entries[i].id;
        return -1;
}

bool slots_view_boot_next_is(const struct slots_view *v, Slot s) {
        int e = slots_view_entry(v, s);
        return v->vars.boot_next >= 0 && e >= 0 && v->vars.boot_next == e;
}

/* A slot that can boot has an entry; one that cannot (failed, empty) gets none. */
static bool wants_entry(const struct slots_view *v, const struct slot_transition *t, Slot s) {
        return v->layout.slot[s].present && (t->slot[s].priority > 0 || t->slot[s].successful || t->arm == s);
}

struct committer {
        struct slots_view *v;
        const struct slot_transition *t;
        struct slots_commit_stats *stats;
        struct efi_boot_plan plan;
        bool nvram;             /* EFI variables and an ESP to point entries at */
        bool armed;             /* BootNext written */
};

/* The view holds what is now in NVRAM: a second commit in the same run
 * (the init deciding again after a root failed) must not create it again. */
static void remember_entry(struct slots_view *v, uint16_t id, const char *desc, const char *path) {
        struct efi_boot_entry *e = reallocarray(v->vars.entries, v->vars.n_entries + 1, sizeof(*e));
        if (!e)
                return; /* then it is only planned again, and written again */
        v->vars.entries = e;
        e[v->vars.n_entries] = (struct efi_boot_entry) { .id = id, .active = true, .description = strdup(desc),
                                                         .path = strdup(path), .on_esp = true };
        v->vars.n_entries++;
}

static int ensure_entry(struct committer *c, Slot s) {
        struct slots_view *v = c->v;
        struct efi_partition esp = { .number = v->layout.esp_partno, .start = v->layout.esp_start,
                                     .size = v->layout.esp_size };
        char desc[32], name[9];
        int r;

        if (!c->plan.create[s])
                return 0;
        if (efi_guid_from_string(v->layout.esp_uuid, esp.guid) < 0)
                return log_error_errno(-EINVAL, "The ESP's PARTUUID '%s' is not a GUID", v->layout.esp_uuid);
        (void) snprintf(desc, sizeof(desc), "abswitch %s", slot_to_string(s));
        efi_boot_option_name((uint16_t) c->plan.entry[s], name);
        r = efi_boot_entry_create(v->efivarfs, &c->plan, s, desc, &esp, slot_uki_path(s));
        if (r < 0)
                return log_error_errno(r, "Failed to create boot entry %s for slot %s: %m", name, slot_to_string(s));
        c->stats->nvram_writes += r > 0;
        c->plan.create[s] = false;
        log_notice("Created boot entry %s '%s' for %s", name, desc, slot_uki_path(s));
        remember_entry(v, (uint16_t) c->plan.entry[s], desc, slot_uki_path(s));
        return 0;
}

static int arm(struct committer *c) {
        Slot s = c->t->arm;
        int r;

        if (!c->nvram) {
                log_warning("No EFI boot variables to arm slot %s with: the firmware chooses the next boot",
                            slot_to_string(s));
                return 0;
        }
        r = ensure_entry(c, s);
        if (r < 0)
                return r;
        uint16_t next = (uint16_t) c->plan.entry[s];
        r = efi_boot_next_write(c->v->efivarfs, next);
        if (r < 0)
                return log_error_errno(r, "Failed to set BootNext to Boot%04X: %m", next);
        c->stats->nvram_writes += r > 0;
        c->v->vars.boot_next = next;
        c->armed = true;
        return 0;
}

int slots_commit(struct slots_view *v, const struct slot_transition *t, struct slots_commit_stats *stats) {
        struct slots_commit_stats dummy = {};
        struct committer c = { .v = v, .t = t, .stats = stats ?: &dummy };
        bool want[_SLOT_MAX];
        int first, second, r;

        for (int s = 0; s < _SLOT_MAX; s++)
                want[s] = wants_entry(v, t, s);
        slots_boot_order_hint(t->slot, &first, &second);
        if (t->order_first >= 0) {
                second = first == t->order_first ? second : first;
                first = t->order_first;
                if (second == first)
                        second = -1;
        }
        c.nvram = v->efivarfs && v->layout.esp_present;
        if (c.nvram) {
                const char *paths[_SLOT_MAX] = { slot_uki_path(SLOT_A), slot_uki_path(SLOT_B) };
                r = efi_boot_plan(v->vars.entries, v->vars.n_entries, v->vars.order, v->vars.order_len, paths, want,
                                  first, second, &c.plan);
                if (r < 0) {
                        log_warning_errno(r, "Cannot plan the boot entries (BootOrder too long?): %m; "
                                          "leaving the boot variables alone");
                        c.nvram = false;
                }
        }

        /* 1. A committed target: BootNext before its armed bit. */
        bool bootnext_first = t->arm >= 0 && t->slot[t->arm].successful;
        if (bootnext_first) {
                r = arm(&c);
                if (r < 0)
                        return r;
        }
        /* 2. The GPT: the truth. */
        if (t->changed) {
                r = slots_state_write(&v->layout, t->slot, t->changed, &c.stats->gpt_writes);
                if (r < 0)
                        return log_error_errno(r, "Failed to write the slots' state to the GPT of %s: %m",
                                               v->layout.disk);
                for (int s = 0; s < _SLOT_MAX; s++)
                        if (t->changed & (1u << s))
                                v->st[s] = t->slot[s];
        }
        /* 3. A trial target: its try is spent, now arm it. */
        if (t->arm >= 0 && !bootnext_first) {
                r = arm(&c);
                if (r < 0)
                        return r;
        }
        if (!c.nvram)
                return 0;
        /* 4. Entries for the slots that can boot, repaired when firmware lost them. */
        for (int s = 0; s < _SLOT_MAX; s++)
                if (want[s] && ensure_entry(&c, s) < 0)
                        c.stats->hint_failures++;
        /* 5. BootOrder follows the state. */
        if (t->boot_order) {
                r = efi_boot_order_write(v->efivarfs, &c.plan);
                if (r < 0) {
                        log_warning_errno(r, "Failed to update BootOrder: %m");
                        c.stats->hint_failures++;
                } else if (r > 0) {
                        c.stats->nvram_writes++;
                        log_notice("BootOrder updated: committed slot first");
                }
                if (r >= 0 && c.plan.order_len <= ELEMENTSOF(v->vars.order)) {
                        memcpy(v->vars.order, c.plan.order, c.plan.order_len * sizeof(uint16_t));
                        v->vars.order_len = c.plan.order_len;
                }
        }
        return 0;
}
