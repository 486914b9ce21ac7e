/* SPDX-License-Identifier: MIT */
#pragma once

/* The ab.* parameters of a UKI's command line: the contract between the UKI
 * (initramfs/mkuki writes them), the init (reads /proc/cmdline) and abctl
 * (reads a UKI's .cmdline section). Pure: parses a string.
 *
 * Parameters (all optional but ab.roothash=):
 *   ab.slot=A|B               the slot, overriding every EFI source
 *   ab.roothash=HEX           the dm-verity root hash the UKI pins (64 hex for sha256)
 *   ab.identity=SRC[,SRC...]  which identity sources to consult (names as in
 *                             identity_source_to_string); default all
 *   ab.timeout=SECONDS        how long to wait for the slot's partitions (default 10)
 *   ab.verity_error=fallback|restart|panic|eio   dm-verity corruption policy (default
 *                             fallback: EIO, and the init's watcher records the damage
 *                             and falls back to the other slot; README "Self-healing")
 *   ab.watchdog=SECONDS       hardware watchdog timeout on a trial boot (default 120)
 *   ab.debug                  log at debug level
 *   ab.redirect=firmware|kexec how the init hands over to a better slot: a
 *                             firmware reset (default) or a kexec of that
 *                             slot's UKI from the ESP (README "kexec")
 *   ab.kexec=SHA256           this kernel was started by kexec, not by the
 *                             firmware, from the UKI file with that SHA-256
 *                             (64 hex); abctl reboot --kexec and the init's
 *                             kexec redirect add it with ab.slot=, which then
 *                             names the slot without overriding the protocol
 *   init=PATH                 the root's init (default /sbin/init)
 * Tokens follow the kernel's rules: separated by spaces, double quotes group
 * ("a=b c" or a="b c") and are removed; the last valid occurrence wins (a
 * bad value is reported and ignored, so it never drops an earlier good one). */

#include <stdbool.h>
#include <stddef.h>

#include "../slots/slots.h"

#define ROOTHASH_HEX_MAX 128     /* sha512 */

typedef enum VerityErrorPolicy {
        VERITY_ERROR_RESTART,
        VERITY_ERROR_PANIC,
        VERITY_ERROR_EIO,
        VERITY_ERROR_FALLBACK,   /* EIO, plus init/watch.c */
        _VERITY_ERROR_MAX,
        _VERITY_ERROR_INVALID = -22,
} VerityErrorPolicy;

const char *verity_error_policy_to_string(VerityErrorPolicy p);

typedef enum RedirectMode {
        REDIRECT_FIRMWARE,
        REDIRECT_KEXEC,
        _REDIRECT_MAX,
        _REDIRECT_INVALID = -22,
} RedirectMode;

const char *redirect_mode_to_string(RedirectMode m);

#define KEXEC_SHA256_HEX 64

struct cmdline {
        Slot slot;                    /* _SLOT_INVALID when absent or invalid */
        char roothash[ROOTHASH_HEX_MAX + 1]; /* lower case; empty when absent or invalid */
        unsigned identity_sources;    /* mask of IdentitySource */
        unsigned timeout_ms;
        unsigned watchdog_sec;
        VerityErrorPolicy verity_error;
        bool debug;
        char init[256];
        RedirectMode redirect;
        char kexec_sha256[KEXEC_SHA256_HEX + 1]; /* lower case; empty: started by the firmware */
};

/* Called once for each parameter the parser rejects, with the parameter
 * (as written) and why; the parser then carries on with the default. */
typedef void (*cmdline_complaint_fn)(void *userdata, const char *param, const char *why);

/* Never fails on content: bad parameters are reported and ignored.
 * Returns -ENOMEM only. */
int cmdline_parse(const char *line, struct cmdline *ret, cmdline_complaint_fn complain, void *userdata);

/* ---- the pin a UKI carries in its .initrd ----
 *
 * initramfs/mkuki appends to the UKI's initramfs a small archive holding
 * UKI_PIN_PATH: lines "roothash=HEX" and, when the UKI bakes its slot in,
 * "slot=A|B"; blank lines and '#' comments are ignored. Without Secure Boot
 * systemd-stub replaces the UKI's whole .cmdline with a boot entry's
 * optional data, but nothing on the machine can change the .initrd (the
 * stub's own additions land under /.extra): so the pin, not the command
 * line, says what root is trusted. */

#define UKI_PIN_PATH "/etc/abswitch/pin"
#define UKI_PIN_SIZE_MAX 4096

struct uki_pin {
        char roothash[ROOTHASH_HEX_MAX + 1]; /* lower case */
        Slot slot;                           /* _SLOT_INVALID when the pin names none */
};

/* Parses a pin file's text. 0 with ret filled when it pins a valid root
 * hash; -EBADMSG when it does not, or a line is malformed or unknown (each
 * reported through complain, param "pin: LINE"): a broken pin trusts
 * nothing, and never falls back to the command line. */
int uki_pin_parse(const char *text, struct uki_pin *ret, cmdline_complaint_fn complain, void *userdata);

/* Makes the pin win over the command line: its root hash (and slot, when it
 * names one) replace c's; a differing ab.roothash= or ab.slot= on the
 * command line is reported through complain and ignored. */
void cmdline_apply_pin(struct cmdline *c, const struct uki_pin *pin, cmdline_complaint_fn complain,
                       void *userdata);
