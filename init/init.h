/* SPDX-License-Identifier: MIT */
#pragma once

/* Internal interfaces of the init program (not a library). */

#include <stdint.h>

#include "../efi/efi.h"
#include "../slots/slots.h"
#include "cmdline.h"

enum phase { PHASE_MODULES, PHASE_IDENTITY, PHASE_DEVICES, PHASE_STATE, PHASE_VERITY, PHASE_MOUNT, _PHASE_MAX };

/* Everything one boot saw and decided; written to /run/abswitch/boot.json. */
struct boot {
        uint64_t t_start, t_phase[_PHASE_MAX];
        struct cmdline cmdline;
        struct identity_facts facts;
        struct identity id;
        char *loader_image, *stub_image, *loader_info, *loader_entry, *esp_partuuid, *boot_current_path;
        char boot_current_desc[128];
        bool efi;
        const char *efivarfs;           /* EFIVARFS_PATH; a directory in tests/powercut/bootsim */
        struct slot_layout layout;

        /* protocol */
        struct slot_state before[_SLOT_MAX];
        struct efi_boot_vars vars;      /* BootNext, BootOrder, Boot#### */
        struct efi_boot_plan plan;
        bool plan_ok;
        struct boot_decision decision;
        bool decided;                   /* decision holds a decision already applied */
        char failure[512];              /* what failed: verity or mount */
        unsigned gpt_writes, nvram_writes;
        bool watchdog_armed;

        char *root_dev;
        char fstype[32];
        char devkmsg_saved[32];
};

/* Loads each module named in list_file (one per line, # comments) and in
 * extra (NULL-terminated), with their dependencies, from the running
 * kernel's module directory. Built-in and already loaded count as success.
 * Returns the number that failed; each failure is logged as a warning. */
int modules_load(const char *list_file, const char *const *extra);
/* Loads one module (and its dependencies) by name or alias; 0 if built in. */
int modules_load_one(const char *name);

/* Moves /dev, /proc, /sys and /run under newroot, frees the initramfs,
 * makes newroot the root and execs init. Returns only on failure. */
int switch_root(const char *newroot, const char *init, char **argv);

uint64_t now_boottime_us(void);

/* protocol.c: reads both slots' GPT state, BootNext, the boot entries. */
void protocol_read(struct boot *b);
/* Runs the pure decision on what protocol_read found (and root_failed). */
void protocol_decide(struct boot *b, bool root_failed);
/* Writes what the decision needs: GPT state first, then boot entries,
 * BootNext (on reboot) or the BootOrder hint (on boot). */
int protocol_apply(struct boot *b);
/* Starts the hardware watchdog for a trial boot; false if there is none. */
bool protocol_arm_watchdog(unsigned seconds);
