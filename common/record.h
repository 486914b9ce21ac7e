/* SPDX-License-Identifier: MIT */
#pragma once

/* The boot record: what the init saw and decided on one boot, written to
 * /run/abswitch/boot.json (carried into the new root) and read by abctl,
 * the tests and the bench. This struct is its one schema; boot_record_format
 * writes it as JSON (json-c, which both programs link), boot_record_parse
 * reads it back. The JSON, version 1:
 *
 *   version, abswitch, slot, log,
 *   identity {source, value, sources {NAME: VERDICT, ...}},
 *   efi {booted_via_efi, StubImageIdentifier, LoaderImageIdentifier, LoaderInfo,
 *        LoaderEntrySelected, LoaderDevicePartUUID, [BootCurrent "XXXX",
 *        BootCurrentDescription, BootCurrentPath], [BootNext "XXXX"]},
 *   partitions {disk, data, hash, data_partuuid},
 *   state {A|B: {present, before|after: {priority, tries, successful, armed}}},
 *   decision {action, reason, target, trial, watchdog, gpt_writes, nvram_writes},
 *   root {device, fstype, roothash, roothash_source, verity_error, init},
 *   kexec {uki_sha256}: the SHA-256 of the UKI file this kernel was kexec'd
 *         from (ab.kexec=), null when the firmware started it,
 *   timings_ms {init_start_ms, modules, identity, devices, state, verity, mount,
 *               total, switch_root_ms},
 *   tpm {state, device, pcr, banks [NAME, ...], log, error,
 *        measurements [{string, digests {BANK: HEX, ...}, logged}, ...]}
 *
 * A string is NULL where the JSON has null; a parsed record reads a field
 * that is missing or of another type as absent (NULL, -1 or 0): the file is
 * in /run, where anyone root can write. No logging here. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BOOT_RECORD_VERSION 1
#define BOOT_RECORD_DIR "/run/abswitch"
#define BOOT_RECORD_PATH BOOT_RECORD_DIR "/boot.json"
/* The init's record is a few KiB: a larger file is not one. */
#define BOOT_RECORD_SIZE_MAX (1024u * 1024u)
#define BOOT_RECORD_SOURCES_MAX 16
#define BOOT_RECORD_SLOTS 2             /* state.A, state.B */
#define BOOT_RECORD_PHASES 6            /* modules, identity, devices, state, verity, mount */
#define BOOT_RECORD_TPM_BANKS_MAX 8     /* sha1, sha256, sha384, sha512, sm3_256, ... */
#define BOOT_RECORD_MEASUREMENTS_MAX 8

extern const char *const boot_record_slot_names[BOOT_RECORD_SLOTS];
extern const char *const boot_record_phase_names[BOOT_RECORD_PHASES];

struct boot_record_slot_state {
        int priority, tries;            /* -1: absent */
        bool successful, armed;
};

struct boot_record {
        int version;                    /* BOOT_RECORD_VERSION; 0 when absent */
        const char *abswitch;           /* the init's build */
        const char *slot;               /* "A" or "B" */
        const char *log;                /* where the init logged: /dev/kmsg, ... */
        struct {
                const char *source, *value;
                struct {
                        const char *name, *verdict;
                } sources[BOOT_RECORD_SOURCES_MAX];
                size_t n_sources;
        } identity;
        struct {
                bool booted_via_efi;
                const char *stub_image, *loader_image, *loader_info, *loader_entry, *esp_partuuid;
                int boot_current;       /* 0-0xFFFF, -1: absent (then description and path are too) */
                const char *boot_current_desc, *boot_current_path;
                int boot_next;          /* 0-0xFFFF, -1: absent */
        } efi;
        struct {
                const char *disk, *data, *hash, *data_partuuid;
        } partitions;
        struct {
                bool present;
                struct boot_record_slot_state before, after;
        } state[BOOT_RECORD_SLOTS];
        struct {
                const char *action, *reason, *target;
                bool trial, watchdog;
                int gpt_writes, nvram_writes;
        } decision;
        struct {
                const char *device, *fstype, *roothash, *roothash_source, *verity_error, *init;
        } root;
        struct {
                const char *uki_sha256; /* NULL: started by the firmware */
        } kexec;
        struct {
                double init_start, phase[BOOT_RECORD_PHASES], total, switch_root;  /* milliseconds */
        } timings_ms;
        struct {
                const char *state;      /* "absent", "ready", "failed", ...; NULL: no tpm object */
                const char *device, *log, *error;
                int pcr;                /* -1: absent */
                const char *banks[BOOT_RECORD_TPM_BANKS_MAX];
                size_t n_banks;
                struct {
                        const char *string;
                        struct {
                                const char *bank, *hex;
                        } digests[BOOT_RECORD_TPM_BANKS_MAX];
                        size_t n_digests;
                        bool logged;
                } measurements[BOOT_RECORD_MEASUREMENTS_MAX];
                size_t n_measurements;
        } tpm;

        void *json_;                    /* a parsed record's strings point into it */
};

/* A record with every field absent. */
void boot_record_init(struct boot_record *r);
/* Frees what boot_record_parse() allocated; safe on any initialized record. */
void boot_record_done(struct boot_record *r);

/* The record as pretty-printed JSON with a final newline, into *ret (free()
 * it). -ENOMEM. */
int boot_record_format(const struct boot_record *r, char **ret);
/* Writes it to dir/boot.json through dir/boot.json.tmp and a rename, so a
 * reader sees the old record or the new one. -errno. */
int boot_record_write(const struct boot_record *r, const char *dir);

/* Parses size bytes of text. -EBADMSG: not one complete JSON object with
 * nothing but white space after it; -ENOMEM. On success *ret holds the fields (release with
 * boot_record_done). */
int boot_record_parse(const char *text, size_t size, struct boot_record *ret);
/* Reads and parses the record at path: a regular file of at most max bytes.
 * -ENOENT when missing, -EBADFD when not a regular file, -EFBIG over max
 * bytes (*ret_size then says how many), -EBADMSG when not JSON. */
int boot_record_read(const char *path, size_t max, struct boot_record *ret, uint64_t *ret_size);

/* Every field the same (strings by content). */
bool boot_record_equal(const struct boot_record *a, const struct boot_record *b);
