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
 *   ab.verity_error=restart|panic|eio   dm-verity corruption policy (default restart)
 *   ab.watchdog=SECONDS       hardware watchdog timeout on a trial boot (default 120)
 *   ab.debug                  log at debug level
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
        _VERITY_ERROR_MAX,
        _VERITY_ERROR_INVALID = -22,
} VerityErrorPolicy;

const char *verity_error_policy_to_string(VerityErrorPolicy p);

struct cmdline {
        Slot slot;                    /* _SLOT_INVALID when absent or invalid */
        char roothash[ROOTHASH_HEX_MAX + 1]; /* lower case; empty when absent or invalid */
        unsigned identity_sources;    /* mask of IdentitySource */
        unsigned timeout_ms;
        unsigned watchdog_sec;
        VerityErrorPolicy verity_error;
        bool debug;
        char init[256];
};

/* Called once for each parameter the parser rejects, with the parameter
 * (as written) and why; the parser then carries on with the default. */
typedef void (*cmdline_complaint_fn)(void *userdata, const char *param, const char *why);

/* Never fails on content: bad parameters are reported and ignored.
 * Returns -ENOMEM only. */
int cmdline_parse(const char *line, struct cmdline *ret, cmdline_complaint_fn complain, void *userdata);
