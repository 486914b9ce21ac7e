/* SPDX-License-Identifier: MIT */
#pragma once

/* Internal interfaces of the init program (not a library). */

#include <stdint.h>

#include "../efi/efi.h"
#include "../slots/engine.h"
#include "../slots/slots.h"
#include "../efi/cmdline.h"
#include "tpm2.h"
#include "../common/record.h"

/* What the init measured into the TPM this boot (init/measure.c). */
enum tpm_state { TPM_UNPROBED, TPM_ABSENT, TPM_READY, TPM_FAILED };
#define MEASUREMENTS_MAX 4
struct measurement {
        char text[256];
        struct tpm2_digests digests;    /* of the banks with the PCR allocated */
        bool logged;                    /* appended to the event log */
};
struct boot_tpm {
        enum tpm_state state;
        int fd;                         /* valid in TPM_READY */
        bool closed;                    /* measure_close() ran: nothing more is measured */
        const char *device;
        struct tpm2_banks banks;
        char error[256];                /* why TPM_FAILED, or the last failed measurement */
        unsigned n;
        struct measurement m[MEASUREMENTS_MAX];
};

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
        struct slots_view view;         /* layout, GPT state, boot variables (slots/engine.h) */

        /* protocol */
        struct slot_state before[_SLOT_MAX];
        struct boot_decision decision;
        bool decided;                   /* decision holds a decision already applied */
        bool commit_failed;             /* the last decision's GPT or BootNext write failed */
        bool pin_missing;               /* the UKI pins no root hash */
        const char *roothash_source;    /* "pin" (UKI_PIN_PATH), "cmdline" (ab.roothash=) or "none" */
        char failure[512];              /* what failed: verity or mount */
        struct slots_commit_stats writes;
        bool watchdog_armed;

        char *root_dev;
        char fstype[32];
        char devkmsg_saved[32];
        struct boot_tpm tpm;
};

/* Loads each module named in list_file (one per line, # comments) and in
 * extra (NULL-terminated), with their dependencies, from the running
 * kernel's module directory. Built-in and already loaded count as success.
 * Returns the number that failed; each failure is logged as a warning. */
int modules_load(const char *list_file, const char *const *extra);
/* Loads one module (and its dependencies) by name or alias; 0 if built in. */
int modules_load_one(const char *name);

/* measure.c: extends PCR TPM2_PCR_ABSWITCH with what this boot activated
 * (the slot, where its identity came from, the root hash, trial or
 * committed) or, with measure_root_failed, with the root that failed
 * (step: "verity", "mount", "pin"), and appends each extension to the
 * userspace event log. No TPM: one line says so and nothing happens; a TPM
 * error is logged and the boot goes on (README "Measured boot" says why). */
void measure_boot(struct boot *b);
void measure_root_failed(struct boot *b, const char *step);
void measure_close(struct boot *b);
/* The boot record's "tpm" object: r's strings point into b and into hex,
 * which must outlive r. */
struct boot_record;
struct measure_record_hex {
        char digest[BOOT_RECORD_MEASUREMENTS_MAX][BOOT_RECORD_TPM_BANKS_MAX][2 * TPM2_DIGEST_MAX + 1];
};
void measure_record(const struct boot *b, struct boot_record *r, struct measure_record_hex *hex);

/* Moves /dev, /proc, /sys and /run under newroot, frees the initramfs,
 * makes newroot the root, calls before_exec (if given) there, and execs
 * init. Returns only on failure. */
int switch_root(const char *newroot, const char *init, char **argv, void (*before_exec)(void *userdata),
                void *userdata);

/* watch.c: under ab.verity_error=fallback, forks the corruption watcher
 * (README "Self-healing") for the root b set up; userdata is the struct
 * boot. Called in the new root, before its init. */
void watch_start(void *userdata);


/* What the boot sequence needs from its surroundings: the init passes
 * dm-verity and mount, the power-cut simulator (tests/powercut/bootsim.c)
 * answers from its command line. Everything else is the same code. */
struct boot_ops {
        /* The one slot whose hash tree verifies against the pinned root hash,
         * else _SLOT_INVALID (none, both, or no pin). */
        Slot (*root_hash_slot)(struct boot *b);
        /* Sets up dm-verity on the running slot and mounts it; < 0 with
         * b->failure set when the root cannot be used. */
        int (*open_root)(struct boot *b);
};

/* protocol.c: the boot protocol from the partitions found to the root
 * opened. b->view.layout holds the disk's layout, b->id the identity from
 * the EFI facts (resolved again here with the root-hash probe if nothing
 * named a slot); partitions_missing when the running slot's partitions
 * never appeared. Reads the state, decides, writes through slots_commit(),
 * opens the root when the decision is to boot, and decides again if it
 * fails. Returns the final action; b->decision holds the decision and
 * b->commit_failed says whether its writes failed. Never reboots or stops
 * by itself: the caller acts. */
BootAction boot_sequence(struct boot *b, const struct boot_ops *ops, bool partitions_missing);
/* Logs the identity (called by boot_sequence once it is final). */
void boot_announce_identity(struct boot *b);
/* Starts the hardware watchdog for a trial boot; false if there is none. */
bool protocol_arm_watchdog(unsigned seconds);

/* kexec.c (README "kexec"). After the decision to boot this slot: when
 * this kernel was started by kexec (ab.kexec=) and BootNext still names
 * this slot, its attempt has started, so BootNext is removed as the
 * firmware would have consumed it. */
void kexec_boot_started(struct boot *b);
/* With ab.redirect=kexec: starts slot s's UKI from the ESP by kexec (the
 * decision armed it already). Returns only when it could not, having
 * logged one line why: the caller reboots through the firmware. */
int kexec_redirect(struct boot *b, Slot s);
