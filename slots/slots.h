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
#include <sys/types.h>

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
        IDENTITY_ROOT_HASH,       /* the slot whose hash tree matches the pinned root hash
                                   * (the removable-path copy of a UKI names no slot) */
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
        Slot root_hash_slot;                 /* the one slot that verifies; _SLOT_INVALID if none,
                                              * both, or not probed */
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
        bool present;           /* both partitions found */
        char data_dev[320];     /* /dev/vda2: file system, label system-a */
        char hash_dev[320];     /* /dev/vda3: dm-verity hash tree, label system-a-verity */
        unsigned data_partno;
        unsigned hash_partno;
        char data_uuid[40];
        uint64_t data_attrs;    /* the GPT entry attribute bits of the data partition, as probed */
        uint64_t data_start, data_size, hash_start, hash_size;  /* 512-byte sectors */
};

struct slot_layout {
        char disk[320];                      /* /dev/vda */
        struct slot_partitions slot[_SLOT_MAX];
        bool esp_present;                    /* the partition LoaderDevicePartUUID names */
        unsigned esp_partno;
        uint64_t esp_start, esp_size;        /* 512-byte sectors */
        char esp_uuid[40];
};

/* The slot's UKI on the ESP: \EFI\abswitch\boot-a.efi (and -b). */
const char *slot_uki_path(Slot s);

/* Labels are "system-a" and "system-a-verity" (and -b). */
void slot_partition_labels(Slot s, char data[static 32], char hash[static 32]);

/* Looks through the whole disks under sysfs_block (normally /sys/block; under
 * /sys/class/block, where partitions are listed too, they are skipped)
 * for GPT partitions labelled for slot s, device nodes under devdir (/dev),
 * and returns that disk's layout: both slots (the other may be absent) and
 * the ESP. When esp_partuuid is given (LoaderDevicePartUUID), only the disk
 * holding that partition counts. -ENOENT: not (yet) there; -ENOTUNIQ: more
 * than one disk has them; -EMEDIUMTYPE: a partition has the wrong type UUID;
 * -EUCLEAN: the partitions overlap or lie outside the disk (see
 * gpt_check_geometry(); the init stops with why rather than boot a disk an
 * install would corrupt). A GPT libblkid reads but our checks refuse is
 * not refused here: the state reader falls back to what libblkid saw. */
int slots_find_partitions(const char *sysfs_block, const char *devdir, Slot s, const char *esp_partuuid,
                          struct slot_layout *ret, char *why, size_t why_size);

/* The layout of one disk (a device or an image file), without device nodes:
 * which partitions hold the slots, and the first EFI System partition.
 * -EUCLEAN when their geometry is unsafe (gpt_check_geometry()) and
 * -EBADMSG when no GPT copy is valid or the copies disagree with libblkid,
 * with why for a person. */
int slots_read_layout(const char *disk, struct slot_layout *ret, char *why, size_t why_size);

/* ---- boot state: GPT attribute bits, ChromeOS/Flatcar layout ----
 *
 * Bits 48-51 priority (0 = never boot), 52-55 tries left, 56 successful, as
 * cgpt and sgdisk -A read them. Bit 57 is abswitch's own: "armed", set by
 * whoever arms an attempt of the slot (BootNext) and cleared by the slot's
 * init when it runs. With it the init tells an attempt that was armed (and
 * paid for) from a firmware that started the slot on its own, and a
 * redirect whose target never reached its init. Bits below 48 and above 57
 * are never touched. */

#define GPT_ATTR_PRIORITY_SHIFT 48
#define GPT_ATTR_TRIES_SHIFT    52
#define GPT_ATTR_SUCCESSFUL_BIT 56
#define GPT_ATTR_ARMED_BIT      57
#define GPT_ATTR_STATE_MASK     (0x3ffULL << GPT_ATTR_PRIORITY_SHIFT)

#define SLOT_PRIORITY_MAX 15
#define SLOT_TRIES_MAX    15
#define SLOT_TRIES_DEFAULT 3

struct slot_state {
        uint8_t priority;   /* 0-15; 0 = failed, never boot */
        uint8_t tries;      /* 0-15; attempts left while not successful */
        bool successful;
        bool armed;
};

struct slot_state slot_state_from_attrs(uint64_t attrs);
uint64_t slot_state_to_attrs(uint64_t attrs, struct slot_state s);
bool slot_state_equal(struct slot_state a, struct slot_state b);
/* "prio=2 tries=0 successful armed" */
void slot_state_format(struct slot_state s, char ret[static 48]);

/* A slot another slot may hand over to: not failed, and committed or with tries left. */
static inline bool slot_state_is_candidate(struct slot_state s) {
        return s.priority > 0 && (s.successful || s.tries > 0);
}

typedef enum BootAction {
        BOOT_ACTION_BOOT,    /* switch root into the running slot */
        BOOT_ACTION_REBOOT,  /* arm target (BootNext) and reboot */
        BOOT_ACTION_STOP,    /* nothing can boot: stop with a message on the console */
        _BOOT_ACTION_MAX,
} BootAction;

typedef enum BootReason {
        REASON_COMMITTED,           /* boot: the running slot is committed and the best */
        REASON_TRIAL,               /* boot: the running slot is on trial (watchdog) */
        REASON_OVERRIDE,            /* boot: ab.slot= chose it */
        REASON_BOOTNEXT_IGNORED,    /* boot: a redirect is pending in BootNext; the firmware ignored it */
        REASON_REDIRECT_UNANSWERED, /* boot: the committed slot we redirected to never reached its init */
        REASON_LAST_RESORT,         /* boot: nothing is bootable; the running slot was the last good one */
        REASON_BETTER_SLOT,         /* reboot: the other slot is better */
        REASON_ROOT_FAILED,         /* reboot/stop: the running slot's root did not verify or mount */
        REASON_NOT_BOOTABLE,        /* reboot/stop: the firmware started a failed or exhausted slot */
        REASON_NOTHING_BOOTABLE,    /* stop: no slot can boot */
        REASON_IDENTITY_UNKNOWN,    /* reboot/stop: a root failed, but this UKI is not known to be that
                                     * slot's (identity guessed, or no pin): hand over by the slots' own UKIs */
        _BOOT_REASON_MAX,
} BootReason;

const char *boot_action_to_string(BootAction a);
const char *boot_reason_to_string(BootReason r);

struct boot_input {
        struct slot_state slot[_SLOT_MAX];
        Slot running;
        bool override;          /* ab.slot= was given: obey, never redirect */
        bool root_failed;       /* the running slot's root did not verify or mount */
        bool bootnext_pending;  /* BootNext is set and names the other slot's entry */
        bool unsure;            /* the init cannot tell that a failure is the running slot's image's:
                                 * its identity is only the default guess, or its UKI pins no root
                                 * hash. Then nothing is marked failed (BRIEF.md). */
};

/* What one boot decision or one operator operation changes, as one value:
 * both slots' state after it and the boot-variable hints that follow from
 * it. slots_commit() (engine.c) is the only writer; it writes it in the one
 * order that keeps every power cut safe. */
struct slot_transition {
        struct slot_state slot[_SLOT_MAX];  /* both slots' state after the transition */
        unsigned changed;                   /* bit (1 << slot) for each slot whose state changes */
        Slot arm;                           /* BootNext to this slot's entry; _SLOT_INVALID: leave it */
        bool boot_order;                    /* bring BootOrder in line: committed slots first */
        Slot order_first;                   /* lead BootOrder with this slot; _SLOT_INVALID: by state */
};

/* A transition that changes nothing, from state in. */
void slot_transition_init(struct slot_transition *t, const struct slot_state in[_SLOT_MAX]);
/* Recomputes t->changed against in. */
void slot_transition_diff(struct slot_transition *t, const struct slot_state in[_SLOT_MAX]);

struct boot_decision {
        BootAction action;
        BootReason reason;
        Slot target;            /* BOOT: the running slot; REBOOT: the slot to arm */
        bool trial;             /* BOOT into a slot not yet successful: arm the watchdog */
        struct slot_transition t;  /* what to write before acting */
        unsigned marked_failed; /* bit (1 << slot) for each slot this decision failed */
};

/* The protocol of BRIEF.md as one pure function: what the init does with
 * the running slot, and what must be written (GPT first, then BootNext)
 * before it does it. */
void slots_decide_boot(const struct boot_input *in, struct boot_decision *ret);

/* ---- GPT attribute writes (gpt.c) ----
 *
 * Hand-written because libblkid reads GPT but never writes it, and no
 * library we can link statically writes GPT entries (libfdisk rewrites whole
 * tables and is not built here); the on-disk format is UEFI 2.10 section
 * 5.3, validated as libblkid does before anything is used. */

struct gpt_io {
        /* Replaceable for fault injection; NULL means pwrite/fdatasync. */
        ssize_t (*pwrite)(int fd, const void *buf, size_t n, off_t off, void *userdata);
        int (*flush)(int fd, void *userdata);
        void *userdata;
};

#define GPT_REASON_MAX 256

struct gpt_status {
        bool primary_valid, backup_valid;
        /* Why a copy was refused ("header CRC32 0x... does not match its
         * contents (0x...)"), "" when it is valid: for the log and abctl status. */
        char primary_reason[GPT_REASON_MAX], backup_reason[GPT_REASON_MAX];
        bool copies_differ;       /* both valid but not the same entries */
        unsigned sector_size;
        unsigned entries;         /* number of entries in the array */
        unsigned writes;          /* pwrite calls made */
        unsigned flushes;
};

/* Reads the attributes of partitions partnos[0..n) (1-based) from the valid
 * copy (the primary if both are). -EBADMSG when neither copy is valid,
 * -ENOENT when an entry is empty. */
int gpt_get_attrs(int fd, const unsigned *partnos, uint64_t *ret_attrs, size_t n, struct gpt_status *ret_status);

/* Writes the attributes: the primary copy (entry array, then header with
 * the new CRCs), flush, then the backup, flush; a copy that already holds
 * them is not written; an invalid copy is rebuilt from the valid one. A
 * power cut at any point leaves one valid copy with the old or the new
 * state. */
int gpt_set_attrs(int fd, const unsigned *partnos, const uint64_t *attrs, size_t n, const struct gpt_io *io,
                  struct gpt_status *ret_status);

/* ---- partition geometry ----
 *
 * libblkid checks no geometry: a GPT with valid CRCs may hold partitions that
 * overlap, lie outside the usable LBAs or end before they start (the size
 * last - first + 1 then wraps). An install into such a "slot" would write
 * over the running slot, the ESP or a data partition. */

struct gpt_partition {
        unsigned partno;            /* 1-based */
        uint64_t first, last;       /* LBAs as the entry holds them; last is inclusive */
        char name[37];              /* the UTF-16LE name, non-ASCII as '?' */
};

struct gpt_table {
        unsigned sector_size;
        uint64_t sectors;                       /* of the disk */
        uint64_t first_usable, last_usable;     /* from the header */
        size_t n_parts;
        struct gpt_partition *parts;            /* the used entries, in table order */
};

/* The used entries of the valid copy (the primary if both are). -EBADMSG
 * when neither is valid (ret_status says why). Free with gpt_table_done(). */
int gpt_read_table(int fd, struct gpt_table *ret, struct gpt_status *ret_status);
void gpt_table_done(struct gpt_table *t);

/* Pure. Each partition in partnos (the ones abswitch reads or writes) must
 * start at or before its end, lie within the usable LBAs and the disk, and
 * share no sector with any other partition on the disk. -EUCLEAN with why
 * naming the partitions and their LBA ranges; -ENOENT when a partno is not
 * in the table. Adjacent partitions are fine. */
int gpt_check_geometry(const struct gpt_table *t, const unsigned *partnos, size_t n, char *why, size_t why_size);

/* ---- operator actions (abctl), pure ---- */

typedef enum SlotOp {
        SLOT_OP_INSTALL_BEGIN, /* target is about to be overwritten: not bootable until SLOT_OP_INSTALL */
        SLOT_OP_INSTALL,     /* a new image went into target: trial at top priority, first attempt armed */
        SLOT_OP_MARK_GOOD,   /* commit the running slot */
        SLOT_OP_MARK_BAD,    /* fail target */
        SLOT_OP_SET_ACTIVE,  /* prefer target from now on (armed if not yet committed) */
        SLOT_OP_ROLLBACK,    /* prefer the other, committed slot again */
        SLOT_OP_DAMAGED,     /* a block of the running slot failed verification after boot (init/watch.c):
                              * fail it (a committed one keeps its successful bit: the last resort) and
                              * arm the other slot, if that one can boot */
        SLOT_OP_REPAIRED,    /* target, not running, was repaired and verifies again (abctl repair):
                              * back in service as the fallback (or the top slot if the running one failed) */
        _SLOT_OP_MAX,
        _SLOT_OP_INVALID = -22,
} SlotOp;

struct slot_op_request {
        SlotOp op;
        Slot running;        /* the slot now booted */
        Slot target;         /* ignored by rollback (the other slot) and mark-good (the running one) */
        unsigned tries;      /* install: attempts for the new image, 1..SLOT_TRIES_MAX */
        bool force;          /* install or mark-bad the only committed slot while the running one is on trial */
};

struct slot_op_result {
        struct slot_transition t;
        Slot target;         /* the slot the operation is about (rollback: the other slot) */
};

const char *slot_op_to_string(SlotOp op);
SlotOp slot_op_from_string(const char *s);

/* Applies an operation to both slots' state. -EBUSY: it would touch the
 * running slot where it must not (install, mark the running slot bad
 * without a committed fallback), or the only committed slot while the
 * running one is still on trial (without force), damage of the running
 * slot with no other slot that can boot (the init's watcher then stays up
 * in EIO mode), repair of the running slot; -ESTALE: rollback to a
 * slot that is not committed, set-active of a failed slot, repair of a
 * slot never committed; -EINVAL:
 * nonsense (tries 0 for install, mark-good of a slot that is not
 * running). why names the reason for a person. */
int slots_apply_op(const struct slot_op_request *req, const struct slot_state in[_SLOT_MAX],
                   struct slot_op_result *ret, char *why, size_t why_size);

/* ---- the slots' state on a disk (store.c): gpt.c applied to a layout ---- */

/* Reads both slots' state; an absent slot reads as priority 0. */
int slots_state_read(const struct slot_layout *l, struct slot_state ret[_SLOT_MAX], struct gpt_status *ret_status);
/* Writes the state of the slots in mask (bit 1 << slot), re-reading the
 * others from the disk (only what differs, GPT copies in order). Only
 * slots_commit() (engine.c) calls it. ret_writes counts pwrite calls. */
int slots_state_write(const struct slot_layout *l, const struct slot_state st[_SLOT_MAX], unsigned mask,
                      unsigned *ret_writes);
/* The BootOrder hint: committed slots by priority, best first; -1 if none. */
void slots_boot_order_hint(const struct slot_state st[_SLOT_MAX], int *ret_first, int *ret_second);
