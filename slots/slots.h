/* SPDX-License-Identifier: MIT */
#pragma once

/* slots: which slot is this, and where its partitions are.
 *
 * slot_identity_resolve() is pure: it decides from facts the caller read
 * (kernel command line, systemd stub/loader variables, the firmware's
 * BootCurrent load option) and touches nothing. slots_find_partitions() is
 * the thin libblkid adapter that finds a slot's partitions on disk. */

#include <stdbool.h>
#include <stdint.h>

typedef enum Slot {
        SLOT_A,
        SLOT_B,
        _SLOT_MAX,
        _SLOT_INVALID = -22, /* -EINVAL */
} Slot;

const char *slot_to_string(Slot s);          /* "A", "B" */
const char *slot_to_lower(Slot s);           /* "a", "b" */
Slot slot_from_string(const char *s);        /* "A"/"a"/"B"/"b", else _SLOT_INVALID */
static inline Slot slot_other(Slot s) {
        return s == SLOT_A ? SLOT_B : SLOT_A;
}

/* Sources of slot identity, in the order they are consulted (BRIEF.md). */
typedef enum IdentitySource {
        IDENTITY_CMDLINE,         /* ab.slot= */
        IDENTITY_STUB_IMAGE,      /* StubImageIdentifier */
        IDENTITY_LOADER_IMAGE,    /* LoaderImageIdentifier, unless a boot loader ran */
        IDENTITY_LOADER_ENTRY,    /* LoaderEntrySelected */
        IDENTITY_BOOT_CURRENT,    /* BootCurrent -> Boot#### -> file path */
        IDENTITY_DEFAULT,         /* nothing answered: A */
        _IDENTITY_MAX,
        _IDENTITY_INVALID = -22,
} IdentitySource;

const char *identity_source_to_string(IdentitySource s);
IdentitySource identity_source_from_string(const char *s);

/* What became of each source during resolution, for the log and boot record. */
typedef enum IdentityVerdict {
        VERDICT_NOT_CONSULTED,    /* an earlier source answered */
        VERDICT_ANSWERED,
        VERDICT_ABSENT,           /* the variable or parameter is not there */
        VERDICT_NO_SLOT,          /* present, but names no slot (e.g. \EFI\BOOT\BOOTX64.EFI) */
        VERDICT_NAMES_LOADER,     /* LoaderImageIdentifier under a boot loader names the loader */
        VERDICT_DISABLED,         /* excluded by ab.identity= */
        _VERDICT_MAX,
} IdentityVerdict;

const char *identity_verdict_to_string(IdentityVerdict v);

#define IDENTITY_MASK_ALL ((1u << _IDENTITY_MAX) - 1)

struct identity_facts {
        Slot cmdline_slot;                   /* _SLOT_INVALID when ab.slot= is absent */
        const char *stub_image_identifier;   /* NULL when absent */
        const char *loader_image_identifier;
        const char *loader_info;             /* set by a boot loader such as systemd-boot */
        const char *loader_entry_selected;
        int boot_current;                    /* -1 when absent */
        const char *boot_current_path;       /* file path of Boot<BootCurrent>, NULL if none */
        unsigned sources;                    /* bit mask of IdentitySource to consult */
};

struct identity {
        Slot slot;
        IdentitySource source;
        const char *value;                   /* the fact that answered; points into facts */
        IdentityVerdict verdicts[_IDENTITY_MAX];
};

/* The slot named by an EFI image path or boot entry id: the last path
 * component, less ".efi"/".conf" and a boot-counting suffix ("+3" or "+3-1"),
 * must end in "-a" or "-b" (any case). _SLOT_INVALID when it names none. */
Slot slot_from_image_name(const char *path);

/* Never fails: with no source answering, the result is A from IDENTITY_DEFAULT. */
void slot_identity_resolve(const struct identity_facts *facts, struct identity *ret);

/* ---- partitions on disk (libblkid) ---- */

/* Discoverable Partitions Specification type UUIDs for x86-64. */
#define GPT_ROOT_X86_64        "4f68bce3-e8cd-4db1-96e7-fbcaf984b709"
#define GPT_ROOT_X86_64_VERITY "2c7357ed-ebd2-46d9-aec1-23d437ec2bf5"
#define GPT_ESP                "c12a7328-f81f-11d2-ba4b-00a0c93ec93b"

struct slot_partitions {
        char disk[320];         /* /dev/vda */
        char data_dev[320];      /* /dev/vda2: file system, label system-a */
        char hash_dev[320];      /* /dev/vda3: dm-verity hash tree, label system-a-verity */
        int data_partno;
        int hash_partno;
        char data_uuid[40];
        uint64_t data_attrs;    /* the GPT entry attribute bits of the data partition */
};

/* Labels are "system-a" and "system-a-verity" (and -b). */
void slot_partition_labels(Slot s, char data[static 32], char hash[static 32]);

/* Looks through the whole disks under sysfs_block (normally /sys/class/block)
 * for GPT partitions labelled for slot s, device nodes under devdir (/dev).
 * When esp_partuuid is given (LoaderDevicePartUUID), only the disk holding
 * that partition counts. -ENOENT: not (yet) there; -ENOTUNIQ: more than one
 * disk has them; -EMEDIUMTYPE: a partition has the wrong type UUID. */
int slots_find_partitions(const char *sysfs_block, const char *devdir, Slot s,
                          const char *esp_partuuid, struct slot_partitions *ret,
                          char *why, size_t why_size);
