/* SPDX-License-Identifier: MIT */
#pragma once

/* damage: the record of a slot whose blocks failed dm-verity after boot.
 *
 * The init's watcher (init/watch.c) learns of a corrupted block from the
 * kernel's uevent (dm-verity, Linux 6.1 drivers/md/dm-verity-target.c,
 * verity_handle_err: KOBJ_CHANGE on the mapped device with
 * DM_VERITY_ERR_BLOCK_NR=<type>,<block>, type 0 data, 1 hash; at most 100
 * per device) and writes this record into an EFI variable, which survives
 * the reboot into the other slot and costs NVRAM only when a slot rots.
 * abctl status shows it; abctl repair reads the blocks from it and deletes
 * it once the slot verifies again. One variable per slot:
 * AbswitchDamageA-<EFI_ABSWITCH_GUID> (and B), ASCII text, e.g.
 *
 *   abswitch-damage 1
 *   slot=B
 *   roothash=<the root hash the slot's UKI pinned>
 *   time=<seconds since the epoch, as the machine's clock said>
 *   data=1234
 *   hash=7
 *
 * Parsing distrusts it as every parser of ours does (size, each line). */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../slots/slots.h"
#include "cmdline.h"

#define EFI_ABSWITCH_GUID "b9d4c0a3-5e2f-4a1d-8c6b-3f7e2a91d054"  /* abswitch's own variables */
#define DAMAGE_BLOCKS_MAX 32u
#define DAMAGE_TEXT_MAX 2048u

typedef enum DamageKind {
        DAMAGE_DATA = 0,     /* the kernel's DM_VERITY_BLOCK_TYPE_DATA: a block of the file system */
        DAMAGE_HASH = 1,     /* DM_VERITY_BLOCK_TYPE_METADATA: a block of the hash device */
        _DAMAGE_KIND_MAX,
} DamageKind;

struct damage_block {
        DamageKind kind;
        uint64_t block;      /* in data blocks (data) or hash blocks from the hash device's start (hash) */
};

struct slot_damage {
        Slot slot;
        char roothash[ROOTHASH_HEX_MAX + 1];
        uint64_t time;
        unsigned n;
        struct damage_block blocks[DAMAGE_BLOCKS_MAX];
};

const char *damage_kind_to_string(DamageKind k);   /* "data", "hash" */
/* "AbswitchDamageA" */
const char *damage_var_name(Slot s);

/* Adds a block once: 1 added, 0 already there, -E2BIG when full. */
int damage_add(struct slot_damage *d, DamageKind kind, uint64_t block);

/* The variable's text; -ENOBUFS when it does not fit. Returns its length. */
int damage_format(const struct slot_damage *d, char *buf, size_t size);

/* -EBADMSG with why for a person when the text is not a damage record. */
int damage_parse(const char *text, size_t size, struct slot_damage *ret, char *why, size_t why_size);

/* One kernel uevent (a NETLINK_KOBJECT_UEVENT datagram: "ACTION@DEVPATH"
 * then NUL-separated KEY=VALUE) about the block device major:minor:
 * 1 and the block when it reports a dm-verity corruption
 * (DM_VERITY_ERR_BLOCK_NR), 0 when it is about something else. */
int damage_parse_uevent(const void *msg, size_t size, unsigned major, unsigned minor, DamageKind *ret_kind,
                        uint64_t *ret_block);

/* The record in efivarfs dir: -ENOENT when there is none, -EBADMSG (why) when malformed. */
int damage_read(const char *dir, Slot s, struct slot_damage *ret, char *why, size_t why_size);
int damage_write(const char *dir, const struct slot_damage *d);
int damage_clear(const char *dir, Slot s);
