/* SPDX-License-Identifier: MIT */
#pragma once

/* Lower-case hexadecimal, the form every digest here is written in (boot
 * record, TPM event log, OCI digests, kexec's UKI hash, EFI signature
 * owners): one function instead of a digit table or a snprintf("%02x")
 * loop at each site. */

#include <stddef.h>
#include <stdint.h>

#define HEX_DIGITS "0123456789abcdef"

/* The 2n hex digits of the n bytes at p into ret, then a NUL: ret holds 2n + 1. */
static inline void hex_encode(const void *p, size_t n, char *ret) {
        const uint8_t *b = p;
        for (size_t i = 0; i < n; i++) {
                ret[2 * i] = HEX_DIGITS[b[i] >> 4];
                ret[2 * i + 1] = HEX_DIGITS[b[i] & 15];
        }
        ret[2 * n] = 0;
}
