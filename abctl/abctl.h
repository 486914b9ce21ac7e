/* SPDX-License-Identifier: MIT */
#pragma once

/* Internal interfaces of abctl (not a library). */

#include <json-c/json.h>

#include "../efi/efi.h"
#include "../slots/engine.h"
#include "../slots/slots.h"

#define RECORD "/run/abswitch/boot.json"

struct ctx {
        const char *disk, *efivars, *record, *esp;
        Slot running;
        Slot install_slot;      /* --slot, or _SLOT_INVALID for the one not running */
        bool json, force;
        unsigned tries;
        char record_disk[320], record_source[64];
        struct slots_view view;  /* layout, GPT state, boot variables: re-read under the lock */
        bool efi;
        int install_lock;        /* held for a whole install (abctl_lock_install) */
};

struct abctl_record {
        Slot slot;              /* _SLOT_INVALID when absent */
        char disk[320];         /* "" when absent */
        char source[64];
};

/* Picks abctl's fields out of a parsed boot record (record.c). */
void abctl_record_from_json(json_object *o, struct abctl_record *ret);
/* Reads and picks a boot record file: -ENOENT when missing, -EFBIG over max
 * bytes, -EBADFD when not a regular file, -EBADMSG when not JSON. */
#define RECORD_SIZE_MAX (1024u * 1024u)
int abctl_record_read(const char *path, size_t max, struct abctl_record *ret, uint64_t *ret_size);

/* Applies op under the state lock: re-reads the state, runs slots_apply_op
 * on it, and writes the transition through slots_commit (engine.h). */
int abctl_apply(struct ctx *c, SlotOp op, Slot target);

/* Takes the install lock on the disk for the rest of the process: one
 * install at a time, each from start to end (a second one waits). */
int abctl_lock_install(struct ctx *c);

/* Writes PREFIX.img, PREFIX.verity and the UKI into the inactive slot, then
 * arms its first attempt (install.c). */
int abctl_install(struct ctx *c, const char *prefix, const char *uki);

/* Installs an OS image from an OCI layout (oci:DIR[:TAG]) or a registry
 * (HOST/REPO:TAG or @sha256:DIGEST): streams its system layer into the
 * inactive slot (marked not bootable first), checks every digest and the
 * root hash on the disk, then arms the slot (install.c, oci.c). */
struct oci_options;
int abctl_install_oci(struct ctx *c, const char *reference, const struct oci_options *o);

/* The ESP: --esp, a mounted one holding EFI/abswitch, or the layout's ESP
 * mounted by us (*ret_mounted; release with abctl_esp_release). */
const char *abctl_esp_find(const struct ctx *c, bool *ret_mounted);
void abctl_esp_release(bool mounted);
/* Replaces dst by a copy of src: temporary file, fsync, rename, fsync of the directory. */
int abctl_replace_file(const char *src, const char *dst);

/* What a slot's UKI on the ESP says of itself: VERSION_ID (or IMAGE_VERSION)
 * and PRETTY_NAME from .osrel, and the root hash its .cmdline pins. Empty
 * strings when absent. */
struct uki_info {
        char version[64], name[128], roothash[129];
};
int abctl_uki_info(const char *path, struct uki_info *ret);
/* An ESP that is already mounted (--esp, /efi, /boot/efi, /boot); never mounts. */
const char *abctl_esp_mounted(const struct ctx *c);
