/* SPDX-License-Identifier: MIT */
#pragma once

/* Internal interfaces of abctl (not a library). */

#include <json-c/json.h>

#include "../common/io.h"
#include "../common/macro.h"
#include "../common/record.h"
#include "../efi/cmdline.h"
#include "../efi/efi.h"
#include "../slots/engine.h"
#include "../slots/slots.h"

#define RECORD BOOT_RECORD_PATH

typedef enum DeltaMode {
        DELTA_AUTO,             /* registries and OCI layouts: a delta; files: the whole image */
        DELTA_YES,              /* a delta for every source that has ranges (files too) */
        DELTA_NO,               /* always the whole image */
        _DELTA_MODE_MAX,
        _DELTA_MODE_INVALID = -EINVAL,
} DeltaMode;

struct ctx {
        const char *disk, *efivars, *record, *esp;
        Slot running;
        Slot install_slot;      /* --slot, or _SLOT_INVALID for the one not running */
        bool json, force;
        bool allow_downgrade;    /* install an image older than the committed slot's */
        DeltaMode delta;         /* --delta */
        unsigned tries;
        char record_disk[320], record_source[64];
        char record_kexec[KEXEC_SHA256_HEX + 1]; /* the record's kexec.uki_sha256: "" when the firmware started us */
        struct slots_view view;  /* layout, GPT state, boot variables: re-read under the lock */
        bool efi;
        int install_lock;        /* held for a whole install (abctl_lock_install) */
        const char *esp_mount;   /* the ESP while an install has it mounted (esp.c): used, not mounted again */
};

/* Applies op under the state lock: re-reads the state, runs slots_apply_op
 * on it, and writes the transition through slots_commit (engine.h). */
int abctl_apply(struct ctx *c, SlotOp op, Slot target);
/* The same, only while target's priority and successful bit under the
 * lock are still *expect's (what the caller saw before its long work: the
 * bits an operator's set-active, rollback or install change): else
 * -ESTALE, nothing written, and *expect set to the state now. */
int abctl_apply_if(struct ctx *c, SlotOp op, Slot target, struct slot_state *expect);

/* Creates the boot entries the slots that can boot are missing, under
 * the state lock, changing no state (slots_commit of an empty transition). */
int abctl_repair_entries(struct ctx *c);

/* kexec.c: abctl reboot [--kexec]: with kexec, loads the armed slot's UKI
 * (BootNext's, else the first slot in BootOrder) from the ESP and starts
 * it; refused by the kernel, reboots through the firmware instead. Returns
 * only on failure. */
int abctl_reboot(struct ctx *c, bool kexec);
/* Before mark-good: a slot started by kexec is committed only when the
 * firmware could start it too (its entry exists, or is created now, and
 * its UKI on the ESP is the file that was kexec'd). < 0, logged, when not. */
int abctl_kexec_check_commit(struct ctx *c);

/* Takes the install lock on the disk for the rest of the process: one
 * install at a time, each from start to end (a second one waits); then
 * reads the slots' state again, as it is once the lock is held. */
int abctl_lock_install(struct ctx *c);

/* Gives the install lock back before the process ends (when its work is
 * done and it starts something that may take it: abctl reboot --kexec). */
void abctl_unlock_install(struct ctx *c);

/* Takes the state lock on the disk (one read-modify-write of the slots'
 * state at a time; a second operator waits) and reads the state again, as
 * it is once the lock is held. Returns the lock's descriptor (closing it
 * releases the lock), or < 0, logged. */
int abctl_lock_state(struct ctx *c);

struct slot_damage;
/* Slot s's damage record (efi/damage.h) into *ret: true when there is one.
 * A malformed record is warned about and counts as none. */
bool abctl_damage_read(const struct ctx *c, Slot s, struct slot_damage *ret);

/* Installs into the inactive slot through install.c's one pipeline, then
 * arms its first attempt. With uki: image is a PREFIX whose PREFIX.img and
 * PREFIX.verity (from mkslot) go with that UKI (source-files.c). Without:
 * image is an OS image in an OCI layout (oci:DIR[:TAG]) or a registry
 * (HOST/REPO:TAG or @sha256:DIGEST), fetched with o (source-oci.c, oci.c). */
struct oci_options;
int abctl_install(struct ctx *c, const char *image, const char *uki, const struct oci_options *o);

/* Rewrites the blocks of target (not running; _SLOT_INVALID: the damaged
 * slot that is not running) that fail its pinned hash tree, from the other
 * slot or its origin's registry, verifies it and returns it to service
 * (repair.c, README "Self-healing"). Call under the install lock. */
int abctl_repair(struct ctx *c, Slot target, const struct oci_options *o);

/* ---- small helpers (util.c) ---- */

/* Formats a path into *ret (free() it). Never truncates: -ENAMETOOLONG
 * when it is longer than the kernel takes (PATH_MAX), -ENOMEM. */
int abctl_path(char **ret, const char *fmt, ...) _printf_(2, 3);

/* All n bytes at off, through short writes and EINTR. */

/* The root hash the UKI at path pins; says why not when it cannot tell
 * (not a PE file, no .cmdline, no ab.roothash=). */
int abctl_uki_roothash(const char *path, char ret[static ROOTHASH_HEX_MAX + 1]);

/* Verifies every block of the system image data_dev (files or block
 * devices) against roothash with the hash tree on hash_dev, through
 * libcryptsetup (verify.c). Says why not. */
int abctl_verify_image(const char *data_dev, const char *hash_dev, const char *roothash);
