/* SPDX-License-Identifier: MIT */
/* bootsim: one run of the init's boot protocol on a disk image and a
 * directory standing in for efivarfs, for the power-cut harness.
 *
 *   bootsim --disk IMG --efivars DIR --loader-path PATH --root-ok A|B|AB|-
 *
 * It is the init's own code from the GPT read to the writes: the layout
 * (slots_read_layout), the identity (slot_identity_resolve, with
 * LoaderImageIdentifier = PATH as systemd-stub sets it), protocol_read,
 * protocol_decide and protocol_apply. What it cannot do on files (dm-verity)
 * the harness answers: --root-ok names the slots whose image verifies
 * against the root hash PATH's UKI pins; a slot not named fails its root
 * exactly where the init's verity set-up would, and the init decides again.
 *
 * Prints one line of JSON: action, target, reason, trial, writes. */

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/log.h"
#include "../../init/init.h"

static void apply(struct boot *b) {
        int r = protocol_apply(b);
        if (r < 0)
                log_warning_errno(r, "protocol_apply: %m");
}

int main(int argc, char **argv) {
        static struct boot b = { .id = { .source = _IDENTITY_INVALID }, .facts = { .root_hash_slot = _SLOT_INVALID } };
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
        bool root_ok[_SLOT_MAX] = { strchr(ok, 'A') != NULL, strchr(ok, 'B') != NULL };

        if (cmdline_parse("", &b.cmdline, NULL, NULL) < 0 || slots_read_layout(disk, &b.layout) < 0) {
                fprintf(stderr, "bootsim: cannot read %s\n", disk);
                return 2;
        }
        b.efi = true;
        b.facts.cmdline_slot = _SLOT_INVALID;
        b.facts.boot_current = -1;
        b.facts.loader_image_identifier = loader;
        b.facts.sources = b.cmdline.identity_sources;
        slot_identity_resolve(&b.facts, &b.id);
        if (b.id.source == IDENTITY_DEFAULT && (b.facts.sources & (1u << IDENTITY_ROOT_HASH))) {
                /* The init's root-hash probe: the one slot whose image verifies. */
                b.facts.root_hash_slot = root_ok[SLOT_A] == root_ok[SLOT_B] ? _SLOT_INVALID
                                         : root_ok[SLOT_A]                  ? SLOT_A
                                                                            : SLOT_B;
                slot_identity_resolve(&b.facts, &b.id);
        }

        bool missing = !b.layout.slot[b.id.slot].present;
        protocol_read(&b);
        protocol_decide(&b, missing);
        apply(&b);
        if (b.decision.action == BOOT_ACTION_BOOT && !root_ok[b.id.slot]) {
                protocol_decide(&b, true);
                apply(&b);
        }
        const struct boot_decision *d = &b.decision;
        printf("{\"slot\": \"%s\", \"action\": \"%s\", \"target\": \"%s\", \"reason\": \"%s\", \"trial\": %s, "
               "\"gpt_writes\": %u, \"nvram_writes\": %u}\n",
               slot_to_string(b.id.slot), boot_action_to_string(d->action), slot_to_string(d->target),
               boot_reason_to_string(d->reason), d->trial ? "true" : "false", b.gpt_writes, b.nvram_writes);
        return 0;
}
