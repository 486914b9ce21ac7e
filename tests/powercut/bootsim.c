/* SPDX-License-Identifier: MIT */
/* bootsim: one run of the init's boot protocol on a disk image and a
 * directory standing in for efivarfs, for the power-cut harness.
 *
 *   bootsim --disk IMG --efivars DIR --loader-path PATH --root-ok A|B|AB|-
 *
 * It runs the init's own boot sequence (init/protocol.c, boot_sequence):
 * the identity (slot_identity_resolve, with LoaderImageIdentifier = PATH as
 * systemd-stub sets it), the root-hash probe, the state read, the decision,
 * the writes through slots_commit, the root, and the second decision when
 * the root fails. Only what it cannot do on files the harness answers
 * (struct boot_ops): --root-ok names the slots whose image verifies against
 * the root hash PATH's UKI pins; a slot not named fails its root exactly
 * where the init's dm-verity set-up would.
 *
 * Prints one line of JSON: action, target, reason, trial, writes. */

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/log.h"
#include "../../init/init.h"

static bool root_ok[_SLOT_MAX];

static Slot root_hash_slot(struct boot *b) {
        (void) b;
        return root_ok[SLOT_A] == root_ok[SLOT_B] ? _SLOT_INVALID : root_ok[SLOT_A] ? SLOT_A : SLOT_B;
}

static int open_root(struct boot *b) {
        if (root_ok[b->id.slot])
                return 0;
        (void) snprintf(b->failure, sizeof(b->failure), "setting up dm-verity: (bootsim) slot %s does not verify",
                        slot_to_string(b->id.slot));
        return -EKEYREJECTED;
}

int main(int argc, char **argv) {
        static struct boot b = { .id = { .source = _IDENTITY_INVALID }, .facts = { .root_hash_slot = _SLOT_INVALID } };
        static const struct boot_ops ops = { .root_hash_slot = root_hash_slot, .open_root = open_root };
        const char *disk = NULL, *loader = NULL, *ok = "-";
        static const struct option opts[] = {
                { "disk", required_argument, NULL, 'd' },
                { "efivars", required_argument, NULL, 'e' },
                { "loader-path", required_argument, NULL, 'l' },
                { "root-ok", required_argument, NULL, 'r' },
                {},
        };
        int c;

        log_setup("bootsim", LOG_TARGET_STDERR);
        while ((c = getopt_long(argc, argv, "", opts, NULL)) >= 0)
                switch (c) {
                case 'd': disk = optarg; break;
                case 'e': b.efivarfs = optarg; break;
                case 'l': loader = optarg; break;
                case 'r': ok = optarg; break;
                default: return 2;
                }
        if (!disk || !b.efivarfs || !loader) {
                fprintf(stderr, "usage: bootsim --disk IMG --efivars DIR --loader-path PATH --root-ok A|B|AB|-\n");
                return 2;
        }
        root_ok[SLOT_A] = strchr(ok, 'A') != NULL;
        root_ok[SLOT_B] = strchr(ok, 'B') != NULL;

        char why[1024] = "";
        if (cmdline_parse("", &b.cmdline, NULL, NULL) < 0 || slots_read_layout(disk, &b.view.layout, why, sizeof(why)) < 0) {
                fprintf(stderr, "bootsim: cannot read %s: %s\n", disk, why);
                return 2;
        }
        b.efi = true;
        b.view.efivarfs = b.efivarfs;
        b.facts.cmdline_slot = _SLOT_INVALID;
        b.facts.boot_current = -1;
        b.facts.loader_image_identifier = loader;
        b.facts.sources = b.cmdline.identity_sources;
        slot_identity_resolve(&b.facts, &b.id);

        (void) boot_sequence(&b, &ops, !b.view.layout.slot[b.id.slot].present);
        const struct boot_decision *d = &b.decision;
        printf("{\"slot\": \"%s\", \"action\": \"%s\", \"target\": \"%s\", \"reason\": \"%s\", \"trial\": %s, "
               "\"gpt_writes\": %u, \"nvram_writes\": %u}\n",
               slot_to_string(b.id.slot), boot_action_to_string(d->action), slot_to_string(d->target),
               boot_reason_to_string(d->reason), d->trial ? "true" : "false", b.writes.gpt_writes,
               b.writes.nvram_writes);
        slots_view_done(&b.view);
        return 0;
}
